// Who is calling: the principal from the daemon's request, groups from a directory.
#pragma once

#include "plugin/codec.hpp"
#include "plugin/directory.hpp"
#include "policy/model.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace portcullis {

struct IdentityResult {
  std::optional<Principal> principal; // empty on error
  std::string error;                  // why the caller could not be identified
  std::string cert_fingerprint;       // SHA-256 of the leaf client certificate, if any
};

// Builds the principal from the daemon's fields (never from client-controlled headers):
//   * no User, no auth method, no peer certificates -> "local" (unix socket), auth "none";
//   * User + UserAuthNMethod "TLS" -> that user; the leaf certificate, when sent, must parse and
//     carry the same CN;
//   * anything else (TLS without a CN, a certificate whose CN is the reserved name "local",
//     unknown auth methods, CN mismatch) -> error, which the caller turns into a deny.
// Groups are then looked up in the directory.
IdentityResult identify(const AuthzRequest &req, const Directory &directory);

} // namespace portcullis
