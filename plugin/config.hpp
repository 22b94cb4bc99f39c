// The plugin's own configuration file (YAML). See docs/CONFIGURATION.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace portcullis {

// How the caller's name is taken from the TLS client certificate (docs/CONFIGURATION.md).
struct IdentityConfig {
  std::string source = "cn"; // cn | san_email | san_uri | dn_attribute
  std::string dn_attribute;  // for dn_attribute: an attribute of the subject DN, e.g. "UID"
  std::string strip;         // optional ECMAScript regex; its first match is removed from the name
};

// Cache in front of a remote directory (LDAP). Durations in milliseconds.
struct DirectoryCacheConfig {
  long long positive_ttl_ms = 120'000; // a found user's groups are reused this long
  long long negative_ttl_ms = 30'000;  // an unknown user is remembered this long
  double refresh_ahead =
      0.5; // after this fraction of the TTL a hit refreshes in background (0 = off)
  long long stale_grace_ms = 0; // directory unreachable: serve expired entries this long
  std::size_t max_entries = 10'000;
};

// The LDAP directory provider (plugin/ldap.hpp). Durations in milliseconds.
struct LdapConfig {
  std::vector<std::string> urls;       // ldaps://host:port or ldap://host:port (then starttls)
  bool starttls = false;               // required for ldap:// URLs
  std::string ca_file;                 // required: the server certificate is always verified
  std::string client_cert, client_key; // optional client certificate (both or neither)
  std::string tls_cipher_suite;        // optional GnuTLS priority string
  std::string bind_dn;                 // service account (required)
  std::string bind_password_file;      // its password (required, must not be empty)
  long long connect_timeout_ms = 3'000;
  long long operation_timeout_ms = 5'000;
  long long decision_timeout_ms = 5'000; // whole lookup of one user, all searches included
  int pool_size = 4;
  long long max_connection_age_ms = 900'000;
  long long backoff_max_ms = 30'000; // reconnect backoff cap (starts at 100 ms, doubles)
  // User lookup: (&<user_filter>(<user_attribute>=<escaped name>)) under user_base_dn.
  std::string user_base_dn;
  std::string user_scope = "sub"; // base | one | sub
  std::string user_attribute = "uid";
  std::string user_filter; // optional, admin-written, e.g. "(objectClass=inetOrgPerson)"
  // Groups.
  std::vector<std::string> group_strategies = {"member"}; // member | memberof | posix | ad_in_chain
  std::string group_base_dn; // required for member, posix and ad_in_chain
  std::string group_scope = "sub";
  std::string group_filter; // optional, ANDed into group searches
  std::vector<std::string> member_attributes = {"member", "uniqueMember"};
  std::string memberof_attribute = "memberOf";
  std::string posix_member_attribute = "memberUid";
  bool nested = true;      // resolve groups of groups (member / memberof strategies)
  int max_depth = 5;       // nesting deeper than this is an error, never a truncation
  int max_groups = 1000;   // more groups than this for one user is an error
  bool bind_by_cn = false; // allow policy bindings by bare CN (ambiguity is an error)
};

// The plugin's own lookups on dockerd (plugin/daemon.hpp, docs/DAEMON-LOOKUPS.md).
struct DaemonConfig {
  std::string socket = "/var/run/docker.sock"; // "" disables lookups: requests needing one are
                                               // denied (rule daemon-lookup)
  long long timeout_ms = 2'000;                // one lookup, connect to answer
  int lookup_threads = 4;                      // threads that wait for lookups
  int max_pending = 64;                        // requests queued for lookups; more are denied
};

// One registry portcullis reads signatures from (docs/IMAGE-TRUST.md).
struct RegistryHostSettings {
  bool insecure_http = false; // plain HTTP (loopback registries always use it)
  std::string username;       // credentials portcullis holds; "" = anonymous
  std::string password_file;  // file with the password (mode 0600 or stricter)
};

// Registry access for image signature checks.
struct RegistriesConfig {
  long long timeout_ms = 5'000;     // all registry calls of one decision together
  long long verified_ttl_s = 3'600; // a verified (repository, digest) is reused this long
  long long unsigned_ttl_s = 30;    // "no trusted signature" is reused this long
  long long error_ttl_s = 5;        // a registry error is reused this long
  std::string ca_file;              // "" = the system's CA store
  std::vector<std::pair<std::string, RegistryHostSettings>> hosts; // by registry name
};

struct Config {
  std::string file; // where it was loaded from
  std::string socket = "/run/docker/plugins/portcullis.sock";
  unsigned socket_mode = 0600;
  std::string socket_group;            // "" = keep the creating process's group
  std::string policy;                  // policy file (required)
  std::string directory_type = "file"; // file | ldap
  std::string directory_path;          // users file for type "file"
  LdapConfig ldap;                     // for type "ldap"
  DirectoryCacheConfig cache;          // for type "ldap"
  IdentityConfig identity;
  DaemonConfig daemon;
  RegistriesConfig registries;
  std::string decision_log; // JSON-lines file ("" = decisions go to stderr only)
  int threads = 2;
  std::string log_level = "info";
  std::size_t max_request_bytes = 16u << 20; // whole AuthZ request from the daemon
  int max_json_depth = 64;
  int idle_timeout_seconds = 300; // keep-alive connections idle longer than this are closed
  std::string default_api_version = "1.41";
};

struct ConfigResult {
  std::optional<Config> config;
  std::string error; // "file:line:col: message"
};

// Parses YAML text; relative paths are resolved against `base_dir`.
ConfigResult parse_config(const std::string &text, const std::string &filename,
                          const std::string &base_dir);
ConfigResult load_config(const std::string &path);

} // namespace portcullis
