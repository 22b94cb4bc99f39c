// The single place that understands the Docker Engine API: raw AuthZ request fields -> Request
// (clean path, API version, named action, object, typed facts). See
// docs/NORMALIZATION.md and ../shared/research/docker-authz-protocol.md.
#pragma once

#include "plugin/gojson.hpp"
#include "policy/model.hpp"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// What the normalizer needs from the daemon's AuthZ request.
struct RawHttpRequest {
  std::string method;                         // RequestMethod
  std::string uri;                            // RequestUri, raw
  std::optional<std::string> body;            // decoded RequestBody; nullopt when absent
  std::map<std::string, std::string> headers; // RequestHeaders (Go-canonical keys)
};

// Resolves every symlink in an absolute path on this host, as the kernel would when mounting
// it; components that do not exist yet are taken as written. nullopt when it cannot be resolved
// (a symlink loop, a path too long, a directory that cannot be read).
std::optional<std::string> resolve_host_path_on_host(const std::string &path);

// The daemon's answer to a GET of its own API (plugin/daemon.hpp): status 200 with a JSON body,
// 404, or an error (unreachable, timeout, other status, unparsable body).
struct DaemonAnswer {
  enum class Status { found, not_found, error };
  Status status = Status::error;
  std::string error;   // for Status::error: what went wrong, no secrets
  nlohmann::json body; // for Status::found
};

struct NormalizeOptions {
  JsonLimits json;
  // API version assumed when the URI has no /vX.Y prefix (the daemon's default version).
  std::string default_api_version = "1.41";
  // Resolves symlinks in host mount paths (see add_symlink_targets in normalize.cpp). Tests
  // replace it; empty means no resolution (lexical paths only).
  std::function<std::optional<std::string>(const std::string &)> resolve_host_path =
      resolve_host_path_on_host;
  // GET of a daemon API path ("/volumes/NAME", already percent-encoded) for add_daemon_facts.
  // Empty means daemon lookups are disabled: requests that need one are refused.
  std::function<DaemonAnswer(const std::string &path)> daemon_get;
};

// Never throws. Problems are reported in Request::invalid (which the policy denies).
// normalize() does no daemon lookups; see needs_daemon_facts / add_daemon_facts.
Request normalize(const RawHttpRequest &raw, const NormalizeOptions &opts = {});

// True when the request's facts depend on the daemon's state and add_daemon_facts must run
// before the policy decides: named volumes (a volume created with bind options is a host mount)
// and exec.start (the exec it starts may be privileged or run as root).
bool needs_daemon_facts(const Request &r);

// Asks the daemon through opts.daemon_get and adds what it says to `r`'s facts: the host path
// (and symlink target) of each existing named volume, or the unsafe setting of a third-party
// driver; for exec.start the privileged flag and user of the exec instance. Blocks for the
// daemon's answers. Returns why the request cannot be judged (daemon unreachable, lookups
// disabled, no such exec instance, ...): the caller must deny it. Never throws.
std::optional<std::string> add_daemon_facts(Request &r, const NormalizeOptions &opts);

// Percent-encodes everything but RFC 3986 unreserved characters (for one path segment).
std::string percent_encode_segment(std::string_view s);

} // namespace portcullis
