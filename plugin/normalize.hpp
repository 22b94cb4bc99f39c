// The single place that understands the Docker Engine API: raw AuthZ request fields -> Request
// (clean path, API version, named action, object, typed facts). See
// docs/NORMALIZATION.md and ../shared/research/docker-authz-protocol.md.
#pragma once

#include "plugin/gojson.hpp"
#include "policy/model.hpp"

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

struct NormalizeOptions {
  JsonLimits json;
  // API version assumed when the URI has no /vX.Y prefix (the daemon's default version).
  std::string default_api_version = "1.41";
};

// Never throws. Problems are reported in Request::invalid (which the policy denies).
Request normalize(const RawHttpRequest &raw, const NormalizeOptions &opts = {});

} // namespace portcullis
