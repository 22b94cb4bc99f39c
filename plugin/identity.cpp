#include "plugin/identity.hpp"

#include "plugin/crypto.hpp"

#include <algorithm>
#include <unordered_map>

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

} // namespace

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
