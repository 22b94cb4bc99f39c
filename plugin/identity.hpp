// Who is calling: the principal from the daemon's request, groups from a directory.
#pragma once

#include "plugin/codec.hpp"
#include "policy/model.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace portcullis {

struct DirectoryResult {
  bool ok = false;
  std::vector<std::string> groups; // sorted, unique
  std::string error;               // when !ok: why the directory could not answer
};

// Groups for a user name. Implementations must be thread-safe. An unknown user is ok with no
// groups; an unreachable or broken directory is !ok (and the request is denied).
class Directory {
public:
  virtual ~Directory() = default;
  virtual DirectoryResult groups_for(const std::string &user) const = 0;
  virtual std::string describe() const = 0;
};

// The embedded default: a YAML file `users: {name: [group, ...]}`.
class FileDirectory final : public Directory {
public:
  // Parses the YAML text; on error returns nullptr and sets `error` (with line:col).
  static std::unique_ptr<FileDirectory> parse(const std::string &text, const std::string &filename,
                                              std::string &error);
  static std::unique_ptr<FileDirectory> load(const std::string &path, std::string &error);
  DirectoryResult groups_for(const std::string &user) const override;
  std::string describe() const override { return "file " + filename_; }
  std::size_t user_count() const { return users_.size(); }

private:
  std::string filename_;
  std::map<std::string, std::vector<std::string>> users_;
};

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
