#include "plugin/codec.hpp"

#include "plugin/crypto.hpp"

namespace portcullis {

namespace {
using json = nlohmann::json;

// Returns an error text, or "" on success.
std::string read_string(const json &v, const char *key, std::optional<std::string> &out) {
  if (v.is_null()) return "";
  if (!v.is_string()) return std::string("field ") + key + " is not a string";
  out = v.get<std::string>();
  return "";
}
} // namespace

DecodeResult decode_authz_request(std::string_view text, const JsonLimits &limits) {
  DecodeResult r;
  if (text.empty()) {
    r.error = "empty request from the daemon";
    return r;
  }
  auto parsed = parse_json_strict(text, limits);
  if (!parsed.value) {
    r.error = "undecodable request from the daemon: " + parsed.error;
    return r;
  }
  const json &doc = *parsed.value;
  if (!doc.is_object()) {
    r.error = "request from the daemon is not a JSON object";
    return r;
  }
  AuthzRequest req;
  std::optional<std::string> tmp;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string &k = it.key();
    const json &v = it.value();
    std::string err;
    if (k == "User") {
      err = read_string(v, "User", req.user);
    } else if (k == "UserAuthNMethod") {
      err = read_string(v, "UserAuthNMethod", req.auth_method);
    } else if (k == "RequestMethod") {
      tmp.reset();
      err = read_string(v, "RequestMethod", tmp);
      if (tmp) req.method = *tmp;
    } else if (k == "RequestUri") {
      tmp.reset();
      err = read_string(v, "RequestUri", tmp);
      if (tmp) req.uri = *tmp;
    } else if (k == "RequestBody") {
      if (v.is_null()) continue;
      if (!v.is_string()) {
        err = "field RequestBody is not a string";
      } else { // decoded straight from the document: the base64 text is not copied first
        auto decoded = base64_decode(v.get_ref<const std::string &>());
        if (!decoded)
          err = "RequestBody is not valid base64";
        else if (!decoded->empty())
          req.body = std::move(*decoded);
      }
    } else if (k == "RequestHeaders") {
      if (v.is_null()) continue;
      if (!v.is_object()) {
        err = "RequestHeaders is not an object";
      } else {
        for (auto h = v.begin(); h != v.end() && err.empty(); ++h) {
          if (!h.value().is_string())
            err = "RequestHeaders values must be strings";
          else
            req.headers.emplace_hint(req.headers.end(), h.key(),
                                     h.value().get_ref<const std::string &>());
        }
      }
    } else if (k == "RequestPeerCertificates") {
      if (v.is_null()) continue;
      if (!v.is_array()) {
        err = "RequestPeerCertificates is not an array";
      } else {
        for (const auto &c : v) {
          if (!c.is_string()) {
            err = "RequestPeerCertificates entries must be strings";
            break;
          }
          auto pem = base64_decode(c.get_ref<const std::string &>());
          if (!pem) {
            err = "RequestPeerCertificates entry is not valid base64";
            break;
          }
          req.peer_certificates.push_back(std::move(*pem));
        }
      }
    } else if (k == "ResponseStatusCode") {
      if (v.is_null()) continue;
      if (!v.is_number_integer())
        err = "ResponseStatusCode is not an integer";
      else
        req.response_status = v.get<long long>();
    }
    // ResponseBody, ResponseHeaders and unknown keys are not used (the daemon ignores nothing we
    // need; unknown keys from a newer daemon are tolerated as Go does).
    if (!err.empty()) {
      r.error = "malformed request from the daemon: " + err;
      return r;
    }
  }
  if (req.method.empty() || req.uri.empty()) {
    r.error = "malformed request from the daemon: RequestMethod or RequestUri missing";
    return r;
  }
  r.request = std::move(req);
  return r;
}

std::string encode_authz_response(bool allow, std::string_view msg) {
  json j = {{"Allow", allow}};
  if (!msg.empty()) j["Msg"] = std::string(msg);
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string encode_activate_response() {
  return "{\"Implements\":[\"authz\"]}\n";
}

std::string encode_plugin_error(std::string_view err) {
  json j = {{"Err", std::string(err)}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

} // namespace portcullis
