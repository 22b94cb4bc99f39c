#include "plugin/trust.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace portcullis {

namespace {

std::string where(const std::string &file, int line, int column) {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": error: ";
}

// Higher is more specific: a pattern without wildcards beats every pattern with one; then the
// number of literal characters.
long specificity(const std::string &pattern) {
  long literal = 0;
  bool wild = false;
  for (char c : pattern) {
    if (c == '*' || c == '?')
      wild = true;
    else
      ++literal;
  }
  return (wild ? 0 : 1L << 20) + literal;
}

std::optional<std::string> read_small_file(const std::filesystem::path &p, std::string &error) {
  constexpr std::uintmax_t kMax = 64 * 1024;
  std::error_code ec;
  auto size = std::filesystem::file_size(p, ec);
  if (ec) {
    error = "cannot read " + p.string() + ": " + ec.message();
    return std::nullopt;
  }
  if (size > kMax) {
    error = p.string() + " is larger than 64 KiB; expected one PEM public key";
    return std::nullopt;
  }
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in && !in.eof()) {
    error = "cannot read " + p.string();
    return std::nullopt;
  }
  return ss.str();
}

} // namespace

std::string trust_repository_name(const std::string &registry, const std::string &repository) {
  std::string reg = registry;
  std::transform(reg.begin(), reg.end(), reg.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (reg == "index.docker.io" || reg == "registry-1.docker.io") reg = "docker.io";
  return reg + "/" + repository;
}

std::shared_ptr<const TrustPolicy> TrustPolicy::build(const ImageTrustSpec &spec,
                                                      const std::string &policy_path,
                                                      std::vector<std::string> &errors) {
  auto t = std::shared_ptr<TrustPolicy>(new TrustPolicy());
  const std::size_t errors_before = errors.size();
  const std::filesystem::path dir = std::filesystem::path(policy_path).parent_path();
  for (const auto &k : spec.keys) {
    const std::string at = where(policy_path, k.line, k.column);
    std::string pem = k.pem;
    if (!k.file.empty()) {
      std::filesystem::path p(k.file);
      if (p.is_relative()) p = dir / p;
      std::string why;
      auto text = read_small_file(p, why);
      if (!text) {
        errors.push_back(at + "image_trust.keys." + k.name + ": " + why);
        continue;
      }
      pem = std::move(*text);
    }
    std::string why;
    auto key = PublicKey::from_pem(pem, &why);
    if (!key) {
      errors.push_back(at + "image_trust.keys." + k.name + ": " + why);
      continue;
    }
    // One key under two names would let one signature count twice towards a threshold.
    auto same = std::find_if(t->keys_.begin(), t->keys_.end(), [&](const TrustKey &o) {
      return o.key.fingerprint() == key->fingerprint();
    });
    if (same != t->keys_.end()) {
      errors.push_back(at + "image_trust.keys." + k.name + ": the same key as \"" + same->name +
                       "\" (" + key->fingerprint() + "); each key may be listed once");
      continue;
    }
    t->keys_.push_back(TrustKey{k.name, std::move(*key)});
  }
  std::string all;
  for (const auto &k : t->keys_)
    all += k.name + "=" + k.key.fingerprint() + "\n";
  t->keys_digest_ = "sha256:" + sha256_hex(all);
  for (const auto &r : spec.rules) {
    TrustRule rule;
    rule.spec = r;
    for (const auto &pat : r.images) {
      std::string why;
      auto g = PathGlob::compile("/" + pat, &why);
      if (!g || g->has_user_template()) {
        errors.push_back(
            where(policy_path, r.line, r.column) + "image_trust rule " + r.name + ": pattern " +
            pat + " cannot be compiled: " + (why.empty() ? "{user} is not allowed here" : why));
        continue;
      }
      rule.globs.push_back(std::move(*g));
    }
    for (const auto &name : r.keys) {
      auto it = std::find_if(t->keys_.begin(), t->keys_.end(),
                             [&](const TrustKey &k) { return k.name == name; });
      if (it != t->keys_.end())
        rule.keys.push_back(static_cast<std::size_t>(it - t->keys_.begin()));
      // An undefined or unreadable key was reported above or by the compiler.
    }
    t->rules_.push_back(std::move(rule));
  }
  if (errors.size() != errors_before) return nullptr;
  return t;
}

std::optional<TrustPolicy::Match> TrustPolicy::match(const std::string &repository_name) const {
  std::optional<Match> best;
  long best_score = -1;
  const std::string path = "/" + repository_name;
  for (const auto &r : rules_)
    for (std::size_t i = 0; i < r.globs.size(); ++i) {
      if (!r.globs[i].matches(path)) continue;
      long score = specificity(r.spec.images[i]);
      if (score > best_score) {
        best_score = score;
        best = Match{&r, r.spec.images[i]};
      }
    }
  return best;
}

} // namespace portcullis
