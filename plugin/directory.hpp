// Where a caller's groups come from: the Directory interface, the YAML users file, and the
// types shared by the LDAP provider (plugin/ldap.hpp) and the cache (plugin/dircache.hpp).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace portcullis {

// One group the user belongs to, and how.
struct GroupMembership {
  std::string key;              // what policy bindings are compared with (canonical DN for LDAP)
  std::string display;          // as the directory spells it (DN for LDAP), for logs and whoami
  std::vector<std::string> via; // groups between the user and this one ([] = direct member)
  std::string source;           // how it was found: "file", "member", "memberOf", "posix", ...
};

struct DirectoryResult {
  bool ok = false;
  std::vector<std::string> groups; // binding keys, sorted, unique (empty for an unknown user)
  std::string error;               // when !ok: why the directory could not answer
  bool unreachable = false;        // when !ok: the directory could not be reached at all
  bool found = false;              // the user exists in the directory
  std::string user_dn;             // LDAP: the user's entry
  std::vector<GroupMembership> memberships; // same groups, with details (whoami, audit)
  std::string cache;                        // "", "hit", "miss", "stale", "refresh"
};

// Groups for a user name. Implementations must be thread-safe. An unknown user is ok with no
// groups; an unreachable or broken directory is !ok (and the request is denied).
class Directory {
public:
  virtual ~Directory() = default;
  virtual DirectoryResult groups_for(const std::string &user) const = 0;
  virtual std::string describe() const = 0;
  // Turns a group as written in a policy binding into the key groups_for() reports for it, or
  // nullopt + error when this directory cannot match it (e.g. a bare CN without bind_by_cn).
  virtual std::optional<std::string> binding_key(const std::string &group,
                                                 std::string &error) const {
    (void)error;
    return group;
  }
  // Forget cached answers (policy reload, admin request).
  virtual void flush() const {}
  // True when every caller must have an entry (LDAP): an unknown user is then denied instead of
  // getting only the roles bound to its name.
  virtual bool requires_entry() const { return false; }
};

// What a remote directory (LDAP) answers for one user, before caching.
enum class LookupStatus {
  found,       // exactly one entry; groups complete
  not_found,   // the directory answered: no such user (or a name that cannot be one)
  unreachable, // transport-class failure: could not connect, timed out, server down
  failed,      // the directory answered but the answer is unusable (duplicate users, size
               // limit, nesting too deep, referral, bad config): never cached, never stale-served
};

// "found", "not_found", "unreachable", "failed" (logs, tests, benchmarks).
inline const char *lookup_status_name(LookupStatus s) {
  switch (s) {
  case LookupStatus::found:
    return "found";
  case LookupStatus::not_found:
    return "not_found";
  case LookupStatus::unreachable:
    return "unreachable";
  case LookupStatus::failed:
    return "failed";
  }
  return "?";
}

struct UserLookup {
  LookupStatus status = LookupStatus::failed;
  std::string user_dn;
  std::vector<GroupMembership> groups; // sorted by key, unique keys
  std::string error;                   // for unreachable/failed (and a note for not_found)
};

// A directory without a cache; plugin/dircache.hpp puts the cache in front of it.
class DirectoryBackend {
public:
  virtual ~DirectoryBackend() = default;
  // Must be thread-safe and finish within the backend's own per-lookup deadline.
  virtual UserLookup lookup(const std::string &user) = 0;
  virtual std::string describe() const = 0;
  virtual std::optional<std::string> binding_key(const std::string &group,
                                                 std::string &error) const {
    (void)error;
    return group;
  }
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

} // namespace portcullis
