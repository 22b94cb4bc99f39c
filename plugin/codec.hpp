// The daemon's AuthZ JSON <-> typed values. Field names and encodings follow what dockerd really
// sends (research/docker-authz-protocol.md §1.3): "RequestUri" (sic), base64 RequestBody,
// RequestHeaders as a flat map, RequestPeerCertificates as base64 of PEM text.
#pragma once

#include "plugin/gojson.hpp"

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

struct AuthzRequest {
  std::optional<std::string> user;            // "User": certificate CN; absent over the unix socket
  std::optional<std::string> auth_method;     // "UserAuthNMethod": "TLS" or absent
  std::string method;                         // "RequestMethod"
  std::string uri;                            // "RequestUri", raw
  std::optional<std::string> body;            // "RequestBody", base64-decoded; nullopt when absent
  std::map<std::string, std::string> headers; // "RequestHeaders"
  std::vector<std::string> peer_certificates; // PEM text, leaf first
  std::optional<long long> response_status;   // "ResponseStatusCode" (AuthZRes only)
};

struct DecodeResult {
  std::optional<AuthzRequest> request;
  std::string error; // set when request is empty; safe to show to the docker user
};

DecodeResult decode_authz_request(std::string_view json, const JsonLimits &limits);

std::string encode_authz_response(bool allow, std::string_view msg);
std::string encode_activate_response();
std::string encode_plugin_error(std::string_view err); // {"Err": "..."} for non-200 replies

} // namespace portcullis
