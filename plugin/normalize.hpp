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

struct NormalizeOptions {
  JsonLimits json;
  // API version assumed when the URI has no /vX.Y prefix (the daemon's default version).
  std::string default_api_version = "1.41";
  // Resolves symlinks in host mount paths (see add_symlink_targets in normalize.cpp). Tests
  // replace it; empty means no resolution (lexical paths only).
  std::function<std::optional<std::string>(const std::string &)> resolve_host_path =
      resolve_host_path_on_host;
};

// Never throws. Problems are reported in Request::invalid (which the policy denies).
Request normalize(const RawHttpRequest &raw, const NormalizeOptions &opts = {});

} // namespace portcullis
