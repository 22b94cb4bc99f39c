// The plugin's own calls to dockerd's API (Boost.Beast over the daemon's unix socket): GETs of
// the few objects whose state decides a request (named volumes, exec instances). dockerd sends
// these calls through its authorization plugins too, portcullis included; they carry a header
// with a per-process random token so that portcullis recognises and allows its own lookups
// (and nothing else) without a policy rule. See docs/DAEMON-LOOKUPS.md.
#pragma once

#include "plugin/normalize.hpp"

#include <chrono>
#include <string>
#include <string_view>

namespace portcullis {

// Header that carries the lookup token. Go canonicalizes header names as written here.
inline constexpr const char *kLookupHeader = "X-Portcullis-Lookup";

struct DaemonClientOptions {
  std::string socket;                        // dockerd's unix socket
  std::chrono::milliseconds timeout{2000};   // default for get(): connect, write, read
  std::size_t max_response_bytes = 1u << 20; // larger answers are errors
  std::string token;                         // value of kLookupHeader
};

class DaemonClient {
public:
  explicit DaemonClient(DaemonClientOptions o) : opts_(std::move(o)) {}
  // GET `path` (absolute, already percent-encoded, no version prefix: the daemon's default API
  // version answers). 200 with a JSON body -> found; 404 -> not_found; anything else -> error.
  // Never throws.
  DaemonAnswer get(const std::string &path) const { return get(path, opts_.timeout); }
  DaemonAnswer get(const std::string &path, std::chrono::milliseconds timeout) const;
  const DaemonClientOptions &options() const { return opts_; }

private:
  DaemonClientOptions opts_;
};

// Constant-time comparison of a presented lookup token with ours (both non-empty).
bool lookup_token_matches(std::string_view presented, std::string_view ours);

} // namespace portcullis
