// libFuzzer target: the daemon's AuthZReq/AuthZRes JSON (plugin/codec.hpp).
//
// Input: the HTTP body dockerd POSTs to /AuthZPlugin.AuthZReq, as is.
// Checks, besides "no crash, leak or UB":
//   * decode_authz_request (a SAX decoder) agrees with a reference decoder written over the
//     document of parse_json_strict: same accept/refuse, same fields. The two share the strict
//     structural rules (depth, Go-folded duplicate keys, UTF-8, trailing data), so a call that one
//     accepts and the other refuses, or decodes differently, is a bug;
//   * the replies the plugin builds from any message (the decode error, the URI) are valid JSON
//     that carries the message.
#include "plugin/codec.hpp"
#include "plugin/crypto.hpp"
#include "plugin/gojson.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

using namespace portcullis;
using json = nlohmann::json;

namespace {

[[noreturn]] void fail(const char *what) {
  std::fprintf(stderr, "fuzz_codec: invariant violated: %s\n", what);
  std::abort();
}

// What decode_authz_request should produce, from the parsed document.
std::optional<AuthzRequest> reference_decode(const json &doc) {
  if (!doc.is_object()) return std::nullopt;
  AuthzRequest r;
  auto string_field = [&](const char *name, auto &&set) {
    auto it = doc.find(name);
    if (it == doc.end() || it->is_null()) return true;
    if (!it->is_string()) return false;
    set(it->get<std::string>());
    return true;
  };
  if (!string_field("User", [&](std::string v) { r.user = std::move(v); })) return std::nullopt;
  if (!string_field("UserAuthNMethod", [&](std::string v) { r.auth_method = std::move(v); }))
    return std::nullopt;
  if (!string_field("RequestMethod", [&](std::string v) { r.method = std::move(v); }))
    return std::nullopt;
  if (!string_field("RequestUri", [&](std::string v) { r.uri = std::move(v); }))
    return std::nullopt;
  bool body_ok = true;
  if (!string_field("RequestBody",
                    [&](const std::string &v) {
                      auto d = base64_decode(v);
                      if (!d)
                        body_ok = false;
                      else if (!d->empty())
                        r.body = std::move(*d);
                    }) ||
      !body_ok)
    return std::nullopt;
  if (auto it = doc.find("RequestHeaders"); it != doc.end() && !it->is_null()) {
    if (!it->is_object()) return std::nullopt;
    for (const auto &[k, v] : it->items()) {
      if (!v.is_string()) return std::nullopt;
      r.headers[k] = v.get<std::string>();
    }
  }
  if (auto it = doc.find("RequestPeerCertificates"); it != doc.end() && !it->is_null()) {
    if (!it->is_array()) return std::nullopt;
    for (const auto &v : *it) {
      if (!v.is_string()) return std::nullopt;
      auto pem = base64_decode(v.get<std::string>());
      if (!pem) return std::nullopt;
      r.peer_certificates.push_back(std::move(*pem));
    }
  }
  if (auto it = doc.find("ResponseStatusCode"); it != doc.end() && !it->is_null()) {
    if (it->is_number_unsigned())
      r.response_status = static_cast<long long>(it->get<json::number_unsigned_t>());
    else if (it->is_number_integer())
      r.response_status = static_cast<long long>(it->get<json::number_integer_t>());
    else
      return std::nullopt;
  }
  if (r.method.empty() || r.uri.empty()) return std::nullopt;
  return r;
}

bool same(const AuthzRequest &a, const AuthzRequest &b) {
  return a.user == b.user && a.auth_method == b.auth_method && a.method == b.method &&
         a.uri == b.uri && a.body == b.body && a.headers == b.headers &&
         a.peer_certificates == b.peer_certificates && a.response_status == b.response_status;
}

// A reply must be one valid JSON object per line carrying `key` == msg (invalid UTF-8 replaced).
void check_reply(const std::string &reply, const char *key, std::string_view msg) {
  if (reply.empty() || reply.back() != '\n') fail("reply does not end with a newline");
  json j = json::parse(reply, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail("reply is not a JSON object");
  if (msg.empty()) return;
  auto it = j.find(key);
  if (it == j.end() || !it->is_string() || it->get<std::string>().empty())
    fail("reply lost its message");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  JsonLimits limits;
  limits.max_depth = 32; // small, so that the fuzzer reaches the depth limit too

  DecodeResult got = decode_authz_request(text, limits);
  if (got.request.has_value() == !got.error.empty()) fail("exactly one of request/error is set");

  JsonParseResult doc = parse_json_strict(text, limits);
  std::optional<AuthzRequest> want;
  if (doc.value) want = reference_decode(*doc.value);
  if (got.request.has_value() != want.has_value()) {
    std::fprintf(stderr, "decode_authz_request: %s; reference: %s\n",
                 got.request ? "accepted" : got.error.c_str(),
                 want ? "accepted" : (doc.value ? "refused a field" : doc.error.c_str()));
    fail("the SAX decoder and the document decoder disagree on accepting the call");
  }
  if (got.request && !same(*got.request, *want))
    fail("the SAX decoder and the document decoder decode different fields");

  check_reply(encode_authz_response(false, got.error), "Msg", got.error);
  check_reply(encode_plugin_error(got.error), "Err", got.error);
  if (got.request)
    check_reply(encode_authz_response(true, got.request->uri), "Msg", got.request->uri);
  return 0;
}
