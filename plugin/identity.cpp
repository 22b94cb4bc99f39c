#include "plugin/identity.hpp"

#include "plugin/crypto.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <yaml-cpp/yaml.h>

namespace portcullis {

namespace {
// dockerd sends the same client certificate with every request of a connection; parsing it
// with OpenSSL costs more than the rest of the decision. Cache the parse by the exact PEM text
// (bounded; cleared when full). Only the parse is cached, never a decision.
std::optional<CertificateInfo> parse_certificate_cached(const std::string &pem) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::optional<CertificateInfo>> cache;
  {
    std::lock_guard lock(mu);
    if (auto it = cache.find(pem); it != cache.end()) return it->second;
  }
  auto info = parse_certificate_pem(pem);
  std::lock_guard lock(mu);
  if (cache.size() >= 4096) cache.clear();
  cache.emplace(pem, info);
  return info;
}

std::string at(const std::string &file, const YAML::Mark &m) {
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": ";
}
} // namespace

std::unique_ptr<FileDirectory>
FileDirectory::parse(const std::string &text, const std::string &filename, std::string &error) {
  auto dir = std::unique_ptr<FileDirectory>(new FileDirectory());
  dir->filename_ = filename;
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) {
      error = at(filename, root.Mark()) + "expected a mapping with key 'users'";
      return nullptr;
    }
    for (auto kv : root) {
      auto *it = &kv;
      const std::string key = it->first.as<std::string>();
      if (key != "users") {
        error = at(filename, it->first.Mark()) + "unknown key '" + key + "' (expected 'users')";
        return nullptr;
      }
    }
    YAML::Node users = root["users"];
    if (!users || users.IsNull()) return dir;
    if (!users.IsMap()) {
      error = at(filename, users.Mark()) + "'users' must map user names to lists of groups";
      return nullptr;
    }
    for (auto kv : users) {
      auto *it = &kv;
      const std::string name = it->first.as<std::string>();
      if (name.empty()) {
        error = at(filename, it->first.Mark()) + "empty user name";
        return nullptr;
      }
      std::vector<std::string> groups;
      if (it->second.IsSequence()) {
        for (const auto &g : it->second) {
          if (!g.IsScalar() || g.as<std::string>().empty()) {
            error = at(filename, g.Mark()) + "group names must be non-empty strings";
            return nullptr;
          }
          groups.push_back(g.as<std::string>());
        }
      } else if (!it->second.IsNull()) {
        error = at(filename, it->second.Mark()) + "expected a list of group names for user '" +
                name + "'";
        return nullptr;
      }
      std::sort(groups.begin(), groups.end());
      groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
      if (!dir->users_.emplace(name, std::move(groups)).second) {
        error = at(filename, it->first.Mark()) + "user '" + name + "' listed twice";
        return nullptr;
      }
    }
  } catch (const YAML::Exception &e) {
    error = at(filename, e.mark) + e.msg;
    return nullptr;
  }
  return dir;
}

std::unique_ptr<FileDirectory> FileDirectory::load(const std::string &path, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open user directory file";
    return nullptr;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path, error);
}

DirectoryResult FileDirectory::groups_for(const std::string &user) const {
  DirectoryResult r;
  r.ok = true;
  if (auto it = users_.find(user); it != users_.end()) r.groups = it->second;
  return r;
}

IdentityResult identify(const AuthzRequest &req, const Directory &directory) {
  IdentityResult r;
  const bool has_user = req.user && !req.user->empty();
  const bool has_method = req.auth_method && !req.auth_method->empty();
  const bool has_certs = !req.peer_certificates.empty();
  Principal p;
  if (!has_user && !has_method && !has_certs) {
    p.name = kLocalPrincipal;
    p.auth_method = "none";
  } else {
    if (!has_method || *req.auth_method != "TLS") {
      r.error = "unsupported authentication method" +
                (has_method ? " '" + req.auth_method->substr(0, 32) + "'" : std::string());
      return r;
    }
    if (!has_user) {
      r.error = "TLS client certificate has no common name";
      return r;
    }
    if (*req.user == kLocalPrincipal) {
      r.error = "TLS client certificate common name 'local' is reserved for the unix socket";
      return r;
    }
    if (has_certs) {
      auto info = parse_certificate_cached(req.peer_certificates.front());
      if (!info) {
        r.error = "client certificate from the daemon could not be parsed";
        return r;
      }
      if (info->subject_cn != *req.user) {
        r.error = "client certificate common name does not match the daemon's User field";
        return r;
      }
      r.cert_fingerprint = info->sha256_fingerprint;
    }
    p.name = *req.user;
    p.auth_method = "TLS";
  }
  DirectoryResult d = directory.groups_for(p.name);
  if (!d.ok) {
    r.error = "directory unavailable: " + d.error;
    return r;
  }
  p.groups = std::move(d.groups);
  r.principal = std::move(p);
  return r;
}

} // namespace portcullis
