// Shared by the in-process benchmarks: the AuthZReq call dockerd 20.10 makes for alice's
// `docker create` over mutual TLS (Go struct field order, compact, trailing newline), the same
// shape bench_client.cpp sends over the socket.
#pragma once

#include "plugin/crypto.hpp"

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace portcullis::bench {

inline std::string authz_call(std::string_view api_body, const std::string &pem) {
  nlohmann::ordered_json j;
  j["User"] = "alice";
  j["UserAuthNMethod"] = "TLS";
  j["RequestMethod"] = "POST";
  j["RequestUri"] = "/v1.41/containers/create?name=web";
  j["RequestBody"] = base64_encode(api_body);
  nlohmann::ordered_json h;
  h["Content-Length"] = std::to_string(api_body.size());
  h["Content-Type"] = "application/json";
  h["User-Agent"] = "Docker-Client/28.2.2 (linux)";
  j["RequestHeaders"] = h;
  if (!pem.empty()) j["RequestPeerCertificates"] = nlohmann::json::array({base64_encode(pem)});
  return j.dump() + "\n";
}

} // namespace portcullis::bench
