// Who is calling: the principal from the daemon's request, groups from a directory.
#pragma once

#include "plugin/codec.hpp"
#include "plugin/config.hpp"
#include "plugin/directory.hpp"
#include "policy/model.hpp"

#include <optional>
#include <string>
#include <vector>

namespace portcullis {

struct IdentityResult {
  std::optional<Principal> principal; // empty on error
  std::string error;                  // why the caller could not be identified
  std::string cert_fingerprint;       // SHA-256 of the leaf client certificate, if any
  // The certificate value the name was taken from, before strip. Unvalidated: sanitize it before
  // logging it.
  std::string mapped_from;
  // From the directory lookup (empty for "local", which is never looked up):
  std::string user_dn;                      // LDAP: the user's entry
  std::string directory_cache;              // "", "hit", "miss", "stale", "refresh"
  std::vector<GroupMembership> memberships; // the groups, with how each was found
};

// Longest principal name accepted (bytes, after strip).
inline constexpr std::size_t kMaxPrincipalName = 256;

// Builds the principal from the daemon's fields (never from client-controlled headers):
//   * no User, no auth method, no peer certificates -> "local" (unix socket), auth "none", no
//     groups and no directory lookup (the policy binds it with `users: [local]`);
//   * User + UserAuthNMethod "TLS" -> a TLS caller. The leaf certificate, when sent, must parse
//     and carry exactly one CN, equal to User. The name is then taken per `config.source`:
//       cn           - User (the certificate is optional);
//       san_email    - the certificate's only SAN rfc822Name (required; none or several: error);
//       san_uri      - the certificate's only SAN URI (likewise);
//       dn_attribute - the only subject attribute whose short name, long name or dotted OID
//                      equals config.dn_attribute (case-insensitive);
//     then the first match of `config.strip` (ECMAScript) is removed. The result must be
//     non-empty, at most kMaxPrincipalName bytes, valid UTF-8 without control or bidi/line
//     separator characters, and not "local";
//   * anything else (TLS without a CN, unknown auth methods, ...) -> error.
// Groups are then looked up in the directory; a directory error is an error, and so is a user
// the directory does not know when directory.requires_entry().
// Never throws; every error leaves `principal` empty, which the caller turns into a deny.
IdentityResult identify(const AuthzRequest &req, const Directory &directory,
                        const IdentityConfig &config = {});

} // namespace portcullis
