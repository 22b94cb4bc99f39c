#include "plugin/codec.hpp"
#include "plugin/crypto.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <random>

using namespace portcullis;

TEST_CASE("base64 is strict") {
  CHECK(base64_decode("eyJhIjoxfQ==").value() == "{\"a\":1}");
  CHECK(base64_decode("").value().empty());
  CHECK(base64_decode("YQ==").value() == "a");
  CHECK(base64_decode("YWI=").value() == "ab");
  CHECK(base64_decode("YWJj").value() == "abc");
  CHECK_FALSE(base64_decode("YWJ").has_value());      // bad length
  CHECK_FALSE(base64_decode("YW J").has_value());     // space
  CHECK_FALSE(base64_decode("YW\nJj").has_value());   // newline
  CHECK_FALSE(base64_decode("Y=Jj").has_value());     // padding in the middle
  CHECK_FALSE(base64_decode("YWJj!===").has_value()); // bad character
  CHECK(base64_encode("hello world") == "aGVsbG8gd29ybGQ=");
  CHECK(base64_decode(base64_encode(std::string("\0\xff\x10", 3))).value() ==
        std::string("\0\xff\x10", 3));
}

TEST_CASE("decode a TLS request the way dockerd sends it") {
  const std::string body = "{\"Image\":\"alpine\",\"HostConfig\":{\"Privileged\":true}}";
  const std::string json = R"({"User":"alice","UserAuthNMethod":"TLS","RequestMethod":"POST",)"
                           R"("RequestUri":"/v1.41/containers/create?name=x","RequestBody":")" +
                           base64_encode(body) +
                           R"(","RequestHeaders":{"Content-Type":"application/json"},)"
                           R"("RequestPeerCertificates":[")" +
                           base64_encode("-----BEGIN CERTIFICATE-----\n") + "\"]}\n";
  auto r = decode_authz_request(json, {});
  REQUIRE(r.request);
  CHECK(r.request->user.value() == "alice");
  CHECK(r.request->auth_method.value() == "TLS");
  CHECK(r.request->method == "POST");
  CHECK(r.request->uri == "/v1.41/containers/create?name=x");
  CHECK(r.request->body.value() == body);
  CHECK(r.request->headers.at("Content-Type") == "application/json");
  REQUIRE(r.request->peer_certificates.size() == 1);
  CHECK(r.request->peer_certificates[0] == "-----BEGIN CERTIFICATE-----\n");
}

TEST_CASE("decode a unix-socket request: no user, no body") {
  auto r = decode_authz_request(R"({"RequestMethod":"GET","RequestUri":"/_ping"})", {});
  REQUIRE(r.request);
  CHECK_FALSE(r.request->user.has_value());
  CHECK_FALSE(r.request->body.has_value());
  CHECK(r.request->peer_certificates.empty());
}

TEST_CASE("malformed daemon requests are errors, never a request") {
  const char *bad[] = {
      "",
      "null",
      "[]",
      "{",
      R"({"RequestMethod":"GET","RequestUri":"/_ping"} trailing)",
      R"({"RequestMethod":"GET"})",
      R"({"RequestUri":"/_ping"})",
      R"({"RequestMethod":5,"RequestUri":"/_ping"})",
      R"({"RequestMethod":"GET","RequestUri":"/_ping","RequestBody":"!!!"})",
      R"({"RequestMethod":"GET","RequestUri":"/_ping","RequestBody":7})",
      R"({"RequestMethod":"GET","RequestUri":"/_ping","RequestHeaders":[]})",
      R"({"RequestMethod":"GET","RequestUri":"/_ping","RequestHeaders":{"A":1}})",
      R"({"RequestMethod":"GET","RequestUri":"/_ping","RequestPeerCertificates":"x"})",
      R"({"RequestMethod":"GET","RequestUri":"/_ping","RequestPeerCertificates":[1]})",
      R"({"RequestMethod":"GET","RequestUri":"/_ping","User":["a"]})",
      // the same key twice (or case-folded) must not let a later value hide an earlier one
      R"({"RequestMethod":"GET","RequestUri":"/_ping","User":"a","User":"b"})",
      R"({"RequestMethod":"GET","RequestUri":"/_ping","User":"a","user":"b"})",
  };
  for (const char *b : bad) {
    CAPTURE(b);
    auto r = decode_authz_request(b, {});
    CHECK_FALSE(r.request.has_value());
    CHECK_FALSE(r.error.empty());
  }
}

TEST_CASE("limits: size and depth") {
  std::string deep = R"({"RequestMethod":"GET","RequestUri":"/x","X":)";
  for (int i = 0; i < 100; ++i)
    deep += "[";
  for (int i = 0; i < 100; ++i)
    deep += "]";
  deep += "}";
  auto r = decode_authz_request(deep, JsonLimits{1 << 20, 64});
  CHECK_FALSE(r.request.has_value());
  CHECK(r.error.find("nesting") != std::string::npos);

  std::string big =
      R"({"RequestMethod":"GET","RequestUri":"/x","X":")" + std::string(5000, 'a') + "\"}";
  auto r2 = decode_authz_request(big, JsonLimits{4096, 64});
  CHECK_FALSE(r2.request.has_value());
  CHECK(r2.error.find("limit") != std::string::npos);
}

TEST_CASE("malformed-JSON errors do not echo request content") {
  auto r = decode_authz_request(R"({"RequestMethod":"GET","Env":"SECRET=hunter2)", {});
  REQUIRE_FALSE(r.request.has_value());
  CHECK(r.error.find("hunter2") == std::string::npos);
}

// The decoder as it was before it became a SAX handler: parse the call into a document with
// parse_json_strict, then read the members in key order. It is the oracle for the test below.
namespace {
DecodeResult reference_decode(std::string_view text, const JsonLimits &limits) {
  using json = nlohmann::json;
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
  auto read_string = [](const json &v, const char *key, std::optional<std::string> &out) {
    if (v.is_null()) return std::string();
    if (!v.is_string()) return std::string("field ") + key + " is not a string";
    out = v.get<std::string>();
    return std::string();
  };
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
      } else {
        auto decoded = base64_decode(v.get<std::string>());
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
            req.headers.emplace(h.key(), h.value().get<std::string>());
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
          auto pem = base64_decode(c.get<std::string>());
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

void check_same(const std::string &call, const DecodeResult &got, const DecodeResult &want) {
  CAPTURE(call);
  REQUIRE(got.request.has_value() == want.request.has_value());
  CHECK(got.error == want.error);
  if (!got.request) return;
  const AuthzRequest &a = *got.request, &b = *want.request;
  CHECK(a.user == b.user);
  CHECK(a.auth_method == b.auth_method);
  CHECK(a.method == b.method);
  CHECK(a.uri == b.uri);
  CHECK(a.body == b.body);
  CHECK(a.headers == b.headers);
  CHECK(a.peer_certificates == b.peer_certificates);
  CHECK(a.response_status == b.response_status);
}
} // namespace

TEST_CASE("the streaming decoder decides exactly as decoding a parsed document did") {
  const std::string b64 = "\"" + base64_encode("{\"Image\":\"alpine\"}") + "\"";
  const std::string pem = "\"" + base64_encode("-----BEGIN CERTIFICATE-----\n") + "\"";
  // Candidate values per field: valid ones, null, and each wrong type.
  const std::vector<std::pair<std::string, std::vector<std::string>>> fields = {
      {"User", {"\"alice\"", "\"\"", "null", "5", "true", "[\"a\"]", "{}", "1.5"}},
      {"UserAuthNMethod", {"\"TLS\"", "null", "[]", "0"}},
      {"RequestMethod", {"\"POST\"", "\"\"", "null", "7", "{\"a\":1}", "false"}},
      {"RequestUri", {"\"/v1.41/containers/create\"", "null", "[1]", "\"\"", "-3"}},
      {"RequestBody", {b64, "\"\"", "null", "\"!!!\"", "\"YQ\"", "12", "[" + b64 + "]", "{}"}},
      {"RequestHeaders",
       {"{\"Content-Type\":\"application/json\",\"X-A\":\"1\"}", "{}", "null", "[]", "[\"a\"]",
        "\"h\"", "{\"A\":1}", "{\"A\":\"x\",\"B\":{\"c\":\"d\"}}", "{\"A\":[\"x\"]}",
        "{\"A\":null}", "3"}},
      {"RequestPeerCertificates",
       {"[" + pem + "]", "[]", "null", "[" + pem + "," + pem + "]", "[1]", "[" + pem + ",2]",
        "[\"%%\"]", "[" + pem + ",\"%%\"]", "[[" + pem + "]]", "[{}]", "{}", "\"x\""}},
      {"ResponseStatusCode",
       {"200", "null", "-1", "\"200\"", "200.0", "true", "18446744073709551615", "[]"}},
      {"ResponseBody", {"\"eyJhIjoxfQ==\"", "null", "{\"x\":[1,2,{\"y\":null}]}"}},
      {"Other", {"1", "{\"User\":5,\"RequestUri\":[]}", "[[[]]]"}},
  };
  std::mt19937 rng(20261123); // fixed seed: the same 4000 calls every run
  int accepted = 0;
  for (int n = 0; n < 4000; ++n) {
    std::vector<std::string> members;
    for (const auto &[name, values] : fields) {
      if (rng() % 4 == 0) continue; // absent
      // mostly valid values, so that both the accepting and the refusing paths are exercised
      const std::string &v = rng() % 3 ? values[0] : values[rng() % values.size()];
      members.push_back("\"" + name + "\":" + v);
    }
    std::shuffle(members.begin(), members.end(), rng);
    std::string call = "{";
    for (std::size_t i = 0; i < members.size(); ++i)
      call += (i ? "," : "") + members[i];
    call += "}";
    auto got = decode_authz_request(call, {});
    check_same(call, got, reference_decode(call, {}));
    accepted += got.request.has_value();
  }
  CHECK(accepted > 400);  // the generator does produce valid calls
  CHECK(accepted < 3600); // and invalid ones

  // Documents that are not calls, or not JSON, and single-byte damage to a valid call.
  for (std::string call :
       {"null", "5", "\"x\"", "[]", "[{}]", "{}", "[", "{\"RequestMethod\":\"GET\"",
        "{\"RequestMethod\":\"GET\",\"RequestUri\":\"/_ping\"}x", " {} ", "{\"a\":1,\"A\":2}",
        "[1,{\"a\":1,\"a\":2}]",
        "{\"RequestMethod\":\"GET\",\"RequestUri\":\"/_ping\","
        "\"RequestHeaders\":{\"X\":\"1\",\"x\":\"2\"}}"}) {
    check_same(call, decode_authz_request(call, {}), reference_decode(call, {}));
  }
  const std::string valid = "{\"User\":\"alice\",\"RequestMethod\":\"POST\",\"RequestUri\":\"/x\","
                            "\"RequestBody\":" +
                            b64 +
                            ",\"RequestHeaders\":{\"A\":\"b\"},\"RequestPeerCertificates\":[" +
                            pem + "],\"ResponseStatusCode\":200}";
  const std::string noise = "\"{}[],:\\ 0a-\x01\xC3\xff";
  for (std::size_t i = 0; i < valid.size(); ++i) {
    for (char c : noise) {
      std::string changed = valid;
      changed[i] = c;
      check_same(changed, decode_authz_request(changed, {}), reference_decode(changed, {}));
    }
    std::string removed = valid.substr(0, i) + valid.substr(i + 1);
    check_same(removed, decode_authz_request(removed, {}), reference_decode(removed, {}));
  }
  // the limits apply as before
  for (JsonLimits l : {JsonLimits{16, 64}, JsonLimits{1 << 20, 1}, JsonLimits{1 << 20, 2}}) {
    check_same(valid, decode_authz_request(valid, l), reference_decode(valid, l));
  }
}

TEST_CASE("responses are what dockerd decodes") {
  CHECK(encode_activate_response() == "{\"Implements\":[\"authz\"]}\n");
  CHECK(encode_authz_response(true, "") == "{\"Allow\":true}\n");
  auto deny = nlohmann::json::parse(encode_authz_response(false, "no \"way\""));
  CHECK(deny["Allow"] == false);
  CHECK(deny["Msg"] == "no \"way\"");
  CHECK(nlohmann::json::parse(encode_plugin_error("boom"))["Err"] == "boom");
}

// --- decision-log records (plugin/audit.hpp): same bytes as nlohmann's dump -------------------
#include "plugin/audit.hpp"

TEST_CASE("audit: LogRecord writes what nlohmann::json::dump writes") {
  const std::vector<std::string> strings = {
      "",
      "plain /v1.41/containers/create?name=web",
      "quote \" backslash \\ slash /",
      "ctl \x01\x1f\t\n\r\b\f del \x7f",
      "caf\xC3\xA9 \xE2\x84\xAA",
      "bad utf-8 \xff\xfe end",
      std::string("nul \0 inside", 12),
      "truncated \xE2\x84",
  };
  for (const auto &s : strings) {
    CAPTURE(s);
    LogRecord r;
    r.set("k", s);
    r.set(s, s); // keys are escaped the same way
    nlohmann::json j;
    j["k"] = s;
    j[s] = s;
    CHECK(r.dump() == j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }

  LogRecord inner;
  inner.set("ref", "busybox").set("id", true);
  LogRecord mount;
  mount.set("path", "/srv").set("read_only", false).set("origin", "Binds");
  LogRecord rec;
  rec.set("time", "t").set("decision_id", "id").set("phase", "request");
  rec.set("roles", std::vector<std::string>{"developer", "b\"x"});
  rec.set("groups", std::vector<std::string>{});
  rec.set("facts", inner);
  rec.set("empty", LogRecord());
  rec.set("host_mounts", std::vector<LogRecord>{mount, mount});
  rec.set("latency_us", 123L).set("neg", -5).set("allow", false);
  rec.set("rule", "first").set("rule", "second"); // replaced, as json::operator[] does
  rec.set("Zeta", "upper case sorts first").set("_u", 1);

  nlohmann::json j;
  j["time"] = "t";
  j["decision_id"] = "id";
  j["phase"] = "request";
  j["roles"] = std::vector<std::string>{"developer", "b\"x"};
  j["groups"] = std::vector<std::string>{};
  j["facts"] = {{"ref", "busybox"}, {"id", true}};
  j["empty"] = nlohmann::json::object();
  nlohmann::json m = {{"path", "/srv"}, {"read_only", false}, {"origin", "Binds"}};
  j["host_mounts"] = nlohmann::json::array({m, m});
  j["latency_us"] = 123L;
  j["neg"] = -5;
  j["allow"] = false;
  j["rule"] = "second";
  j["Zeta"] = "upper case sorts first";
  j["_u"] = 1;
  CHECK(rec.dump() == j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  CHECK(LogRecord().dump() == "{}");
}
