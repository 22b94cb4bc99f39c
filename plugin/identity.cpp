#include "plugin/identity.hpp"

#include "plugin/crypto.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <regex>
#include <string_view>
#include <unordered_map>

namespace portcullis {

namespace {
// dockerd sends the same client certificate with every request of a connection; parsing it
// with OpenSSL costs more than the rest of the decision. Cache the parse by the exact PEM text
// (bounded; cleared when full). Only the parse is cached, never a decision.
// Entries are shared and immutable: a hit costs a reference count, not a copy of the parse.
std::shared_ptr<const CertificateInfo> parse_certificate_cached(const std::string &pem) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<const CertificateInfo>> cache;
  {
    std::lock_guard lock(mu);
    if (auto it = cache.find(pem); it != cache.end()) return it->second;
  }
  std::shared_ptr<const CertificateInfo> info;
  if (auto parsed = parse_certificate_pem(pem))
    info = std::make_shared<const CertificateInfo>(std::move(*parsed));
  std::lock_guard lock(mu);
  if (cache.size() >= 4096) cache.clear();
  cache.emplace(pem, info); // a certificate that does not parse is cached as null
  return info;
}

// Certificate values longer than this are refused before the strip pattern runs on them
// (libstdc++'s regex recurses per input character).
constexpr std::size_t kMaxRawName = 1024;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Code points that must not appear in a principal name: C0/C1 controls and DEL, and the invisible
// formatting characters that make two different names look alike in logs (zero-width, bidi
// embeddings/overrides/isolates, line and paragraph separators, BOM).
bool forbidden_code_point(std::uint32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x200b && c <= 0x200f) ||
         (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f) || c == 0xfeff;
}

// "" when `s` is valid UTF-8 without forbidden code points, else what is wrong.
std::string check_characters(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::uint32_t cp = 0;
    std::size_t len = 0;
    std::uint32_t min = 0;
    if (b0 < 0x80) {
      cp = b0, len = 1;
    } else if ((b0 & 0xe0) == 0xc0) {
      cp = b0 & 0x1fu, len = 2, min = 0x80;
    } else if ((b0 & 0xf0) == 0xe0) {
      cp = b0 & 0x0fu, len = 3, min = 0x800;
    } else if ((b0 & 0xf8) == 0xf0) {
      cp = b0 & 0x07u, len = 4, min = 0x10000;
    } else {
      return "is not valid UTF-8";
    }
    if (i + len > s.size()) return "is not valid UTF-8";
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xc0) != 0x80) return "is not valid UTF-8";
      cp = (cp << 6) | (b & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return "is not valid UTF-8";
    if (forbidden_code_point(cp)) return "contains control or invisible formatting characters";
    i += len;
  }
  return "";
}

// Removes the first match of `pattern` from `in`. The compiled pattern is kept per thread (the
// configuration rarely changes; compiling costs more than matching). nullopt when the pattern
// cannot be compiled or applied.
std::optional<std::string> strip_first(const std::string &in, const std::string &pattern) {
  struct Compiled {
    std::string pattern;
    std::optional<std::regex> re;
    bool valid = false;
  };
  thread_local Compiled compiled;
  try {
    if (!compiled.valid || compiled.pattern != pattern) {
      compiled.valid = false;
      compiled.re.emplace(pattern, std::regex::ECMAScript);
      compiled.pattern = pattern;
      compiled.valid = true;
    }
    return std::regex_replace(in, *compiled.re, "", std::regex_constants::format_first_only);
  } catch (const std::exception &) {
    return std::nullopt;
  }
}

// The certificate value the name is taken from, per config.source; sets `error` when there is
// not exactly one.
std::optional<std::string> certificate_value(const CertificateInfo &info,
                                             const IdentityConfig &config, std::string &error) {
  const auto one = [&](const std::vector<std::string> &values, const char *none,
                       const char *several) -> std::optional<std::string> {
    if (values.empty()) {
      error = none;
      return std::nullopt;
    }
    if (values.size() > 1) {
      error = several;
      return std::nullopt;
    }
    return values.front();
  };
  if (config.source == "san_email")
    return one(info.san_emails, "client certificate has no SAN email",
               "client certificate has several SAN emails: ambiguous");
  if (config.source == "san_uri")
    return one(info.san_uris, "client certificate has no SAN URI",
               "client certificate has several SAN URIs: ambiguous");
  if (config.source == "dn_attribute") {
    const std::string &want = config.dn_attribute;
    const DnAttribute *found = nullptr;
    for (const auto &a : info.subject) {
      if (!iequals(want, a.short_name) && !iequals(want, a.long_name) && !iequals(want, a.oid))
        continue;
      if (found) {
        error = "client certificate subject has several '" + want + "' attributes: ambiguous";
        return std::nullopt;
      }
      found = &a;
    }
    if (!found) {
      error = "client certificate subject has no '" + want + "' attribute";
      return std::nullopt;
    }
    if (!found->decoded) {
      error = "client certificate subject attribute '" + want + "' is not a text value";
      return std::nullopt;
    }
    return found->value;
  }
  error = "unknown identity source '" + config.source.substr(0, 32) + "'";
  return std::nullopt;
}

IdentityResult identify_unchecked(const AuthzRequest &req, const Directory &directory,
                                  const IdentityConfig &config) {
  IdentityResult r;
  const bool has_user = req.user && !req.user->empty();
  const bool has_method = req.auth_method && !req.auth_method->empty();
  const bool has_certs = !req.peer_certificates.empty();
  if (!has_user && !has_method && !has_certs) {
    // The unix-socket caller. Not looked up: a directory (LDAP) has no "local" user; the policy
    // binds it by name (`users: [local]`).
    Principal p;
    p.name = kLocalPrincipal;
    p.auth_method = "none";
    r.principal = std::move(p);
    return r;
  }
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
  std::shared_ptr<const CertificateInfo> info;
  if (has_certs) {
    info = parse_certificate_cached(req.peer_certificates.front());
    if (!info) {
      r.error = "client certificate from the daemon could not be parsed";
      return r;
    }
    if (info->subject_cn_count > 1) {
      r.error = "client certificate has several common names: ambiguous";
      return r;
    }
    // dockerd takes User from the leaf's CN: any difference means something is off.
    if (info->subject_cn_count != 1 || info->subject_cn != *req.user) {
      r.error = "client certificate common name does not match the daemon's User field";
      return r;
    }
    r.cert_fingerprint = info->sha256_fingerprint;
  }

  std::string name;
  if (config.source == "cn") {
    name = *req.user;
  } else {
    if (!info) {
      r.error = "identity source " + config.source.substr(0, 32) +
                " needs the client certificate, and the daemon did not send one";
      return r;
    }
    auto v = certificate_value(*info, config, r.error);
    if (!v) return r;
    name = std::move(*v);
  }
  if (name.size() > kMaxRawName) {
    r.error = "identity taken from the client certificate is too long";
    return r;
  }
  r.mapped_from = name;
  if (!config.strip.empty()) {
    auto stripped = strip_first(name, config.strip);
    if (!stripped) {
      r.error = "identity.strip could not be applied to the client certificate's identity";
      return r;
    }
    name = std::move(*stripped);
  }
  if (name.empty()) {
    r.error = "identity taken from the client certificate is empty";
    return r;
  }
  if (name.size() > kMaxPrincipalName) {
    r.error = "identity taken from the client certificate is longer than " +
              std::to_string(kMaxPrincipalName) + " bytes";
    return r;
  }
  if (auto bad = check_characters(name); !bad.empty()) {
    r.error = "identity taken from the client certificate " + bad;
    return r;
  }
  if (name == kLocalPrincipal) {
    r.error = "identity 'local' taken from the client certificate is reserved for the unix socket";
    return r;
  }

  DirectoryResult d = directory.groups_for(name);
  r.directory_cache = d.cache;
  if (!d.ok) {
    // "unavailable" for an outage, "lookup failed" when the directory answered with something
    // unusable (duplicate users, limits, certificate errors): both deny.
    r.error = (d.unreachable ? "directory unavailable: " : "directory lookup failed: ") + d.error;
    if (d.unreachable && d.error.find("unreachable") == std::string::npos)
      r.error += " (directory unreachable)";
    return r;
  }
  if (!d.found && directory.requires_entry()) {
    r.error = "user '" + name + "' is not in the directory";
    return r;
  }
  r.user_dn = std::move(d.user_dn);
  r.memberships = std::move(d.memberships);
  Principal p;
  p.name = std::move(name);
  p.auth_method = "TLS";
  p.groups = std::move(d.groups);
  r.principal = std::move(p);
  return r;
}

} // namespace

IdentityResult identify(const AuthzRequest &req, const Directory &directory,
                        const IdentityConfig &config) {
  try {
    return identify_unchecked(req, directory, config);
  } catch (const std::exception &e) {
    IdentityResult r;
    r.error = std::string("internal error while identifying the caller: ") + e.what();
    return r;
  } catch (...) {
    IdentityResult r;
    r.error = "internal error while identifying the caller";
    return r;
  }
}

} // namespace portcullis
