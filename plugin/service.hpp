// The decision pipeline behind the plugin endpoints: codec -> normalize -> identity -> decide ->
// audit. Knows nothing about sockets or HTTP framing (server.cpp does that).
#pragma once

#include "plugin/audit.hpp"
#include "plugin/config.hpp"
#include "plugin/daemon.hpp"
#include "plugin/directory.hpp"
#include "plugin/identity.hpp"
#include "plugin/registry.hpp"
#include "plugin/signatures.hpp"
#include "plugin/trust.hpp"
#include "policy/policy.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

struct PluginReply {
  int status = 200;
  std::string body;
  // Set instead of an answer when the call needs daemon lookups and the handler was not allowed
  // to block: the server calls the handler again, with may_block, on a thread that may wait.
  bool defer = false;
};

// The policy in force and where it came from. Immutable once published.
struct PolicySnapshot {
  std::shared_ptr<const CompiledPolicy> policy;
  std::shared_ptr<const Directory> directory;
  std::shared_ptr<const TrustPolicy> trust; // image_trust with keys loaded; null when none
  std::string hash;                         // "sha256:<hex>" of the policy file's bytes
  std::string path;
};

// Reads and compiles a policy file. Group bindings are keyed through `directory` when given (an
// LDAP directory turns DNs into their canonical form and refuses what it cannot match). On
// failure returns null and fills `errors` (one per line).
std::shared_ptr<PolicySnapshot> load_policy_file(const std::string &path, std::string &errors,
                                                 std::shared_ptr<const Directory> directory = {});

class AuthzService {
public:
  // Loads the policy and the directory and opens the decision log. nullptr + error on failure.
  static std::unique_ptr<AuthzService> create(const Config &config, std::string &error);

  // Handles one plugin call. Never throws. Without `may_block` a call that needs daemon lookups
  // (plugin/daemon.hpp) is answered with PluginReply::defer; the server's I/O threads must
  // never wait for the daemon, because the daemon's authorization of portcullis's own lookup
  // comes back to this server (waiting there would deadlock once every I/O thread waits).
  PluginReply handle(std::string_view http_method, std::string_view target, std::string_view body,
                     bool may_block = false);

  // SIGHUP: re-read policy and directory; swap atomically only if both load. Returns a one-line
  // summary; `ok` tells whether the new policy is in force.
  std::string reload(bool &ok);

  std::shared_ptr<const PolicySnapshot> snapshot() const { return snapshot_.load(); }

private:
  explicit AuthzService(Config c) : config_(std::move(c)) {}
  PluginReply authz_request(std::string_view body, bool may_block);
  PluginReply authz_response(std::string_view body);
  // Writes the decision-log record and turns the decision into the plugin's reply.
  PluginReply finish(LogRecord &rec, const Request &req, Decision &decision,
                     const std::string &policy_hash, std::chrono::steady_clock::time_point t0,
                     const std::string &method, const std::string &user, const std::string &id);

  Config config_;
  std::shared_ptr<const Directory> remote_directory_; // LDAP: kept across reloads (pool, cache)
  std::atomic<std::shared_ptr<const PolicySnapshot>> snapshot_;
  DecisionLog log_;
  std::optional<DaemonClient> daemon_; // unset when daemon.socket is ""
  std::unique_ptr<Registry> registry_; // signature checks (docs/IMAGE-TRUST.md)
  std::unique_ptr<VerdictCache> verdicts_;
};

// Registry client options from the configuration's `registries` section, password files read
// (each must be mode 0600 or stricter). nullopt + error when one cannot be used.
std::optional<RegistryOptions> registry_options(const Config &config, std::string &error);

// "portcullis: <reason> [rule=<rule> decision=<id>]" — what the docker user sees on a deny.
std::string deny_message(std::string_view reason, std::string_view rule, std::string_view id);

// Time-ordered unique decision id: 12 hex digits of milliseconds since the epoch + 16 random.
std::string new_decision_id();

} // namespace portcullis
