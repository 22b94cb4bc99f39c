#include "plugin/codec.hpp"
#include "plugin/crypto.hpp"

#include <doctest/doctest.h>

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
