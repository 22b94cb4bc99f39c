// The whole pipeline behind the plugin endpoints (codec -> normalize -> identity -> policy ->
// decision log), driven with the JSON dockerd sends.
#include "cert_support.hpp"
#include "plugin/crypto.hpp"
#include "plugin/service.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

using namespace portcullis;
using portcullis::test::tls_request;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char *kPolicy = R"(version: 1
roles:
  developer:
    rules:
      - name: dev-basics
        actions: [system.ping, container.list]
      - name: dev-run
        actions: [container.create]
        when:
          privileged: false
guardrails:
  - name: no-plugin-management
    actions: ["plugin.*"]
bindings:
  - role: developer
    groups: [developers]
)";

struct Fixture {
  fs::path dir;
  Config cfg;
  std::unique_ptr<AuthzService> svc;

  explicit Fixture(const std::string &policy = kPolicy) {
    char tmpl[] = "/tmp/portcullis-svc-XXXXXX";
    dir = mkdtemp(tmpl);
    write("policy.yaml", policy);
    write("users.yaml", "users:\n  alice: [developers]\n");
    cfg.policy = (dir / "policy.yaml").string();
    cfg.directory_path = (dir / "users.yaml").string();
    cfg.decision_log = (dir / "decisions.log").string();
    std::string err;
    svc = AuthzService::create(cfg, err);
    REQUIRE_MESSAGE(svc, err);
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  void write(const std::string &name, const std::string &text) {
    std::ofstream(dir / name) << text;
  }
  std::vector<json> log_lines() const {
    std::ifstream in(cfg.decision_log);
    std::vector<json> out;
    for (std::string line; std::getline(in, line);)
      out.push_back(json::parse(line));
    return out;
  }
  json call(const json &req) {
    auto reply = svc->handle("POST", "/AuthZPlugin.AuthZReq", req.dump());
    REQUIRE(reply.status == 200);
    return json::parse(reply.body);
  }
};

std::string id_in(const std::string &msg) {
  auto p = msg.find("decision=");
  REQUIRE(p != std::string::npos);
  return msg.substr(p + 9, msg.find(']', p) - p - 9);
}

} // namespace

TEST_CASE("activate and unknown endpoints") {
  Fixture f;
  auto a = f.svc->handle("POST", "/Plugin.Activate", "");
  CHECK(a.status == 200);
  CHECK(json::parse(a.body)["Implements"] == json::array({"authz"}));
  CHECK(f.svc->handle("POST", "/Nope", "{}").status == 404);
  CHECK(f.svc->handle("GET", "/AuthZPlugin.AuthZReq", "{}").status == 405);
}

TEST_CASE("allow, deny with rule and decision id, and the decision log") {
  Fixture f;
  auto ok = f.call(tls_request("alice", "GET", "/v1.41/_ping"));
  CHECK(ok["Allow"] == true);
  CHECK_FALSE(ok.contains("Msg"));

  auto denied = f.call(tls_request("alice", "POST", "/v1.41/containers/create",
                                   R"({"Image":"busybox","HostConfig":{"Privileged":true}})"));
  CHECK(denied["Allow"] == false);
  const std::string msg = denied["Msg"];
  CHECK(msg.rfind("portcullis: ", 0) == 0);
  CHECK(msg.find("rule=dev-run") != std::string::npos);
  const std::string id = id_in(msg);
  CHECK(id.size() == 28);

  auto lines = f.log_lines();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["allow"] == true);
  CHECK(lines[0]["action"] == "system.ping");
  CHECK(lines[0]["user"] == "alice");
  CHECK(lines[0]["auth_method"] == "TLS");
  CHECK(lines[0]["cert_sha256"].get<std::string>().size() == 64);
  const json &d = lines[1];
  CHECK(d["decision_id"] == id);
  CHECK(d["allow"] == false);
  CHECK(d["rule"] == "dev-run");
  CHECK(d["action"] == "container.create");
  CHECK(d["groups"] == json::array({"developers"}));
  CHECK(d["roles"] == json::array({"developer"}));
  CHECK(d["facts"]["privileged"] == true);
  CHECK(d["policy_hash"].get<std::string>().rfind("sha256:", 0) == 0);
  CHECK(d["path"] == "/containers/create");
}

TEST_CASE("guardrail and default deny name their rule") {
  Fixture f;
  auto g = f.call(tls_request("alice", "POST", "/v1.41/plugins/portcullis/disable"));
  CHECK(g["Allow"] == false);
  CHECK(g["Msg"].get<std::string>().find("rule=no-plugin-management") != std::string::npos);
  auto d = f.call(tls_request("alice", "GET", "/v1.41/info"));
  CHECK(d["Allow"] == false);
  CHECK(d["Msg"].get<std::string>().find("rule=default-deny") != std::string::npos);
  // The unix-socket caller has no role in this policy.
  auto local = f.call(json{{"RequestMethod", "GET"}, {"RequestUri", "/_ping"}});
  CHECK(local["Allow"] == false);
}

TEST_CASE("malformed calls are denied with a clear message, never allowed") {
  Fixture f;
  const char *bad[] = {"",
                       "{",
                       "[]",
                       "null",
                       R"({"RequestMethod":"GET"})",
                       R"({"RequestMethod":"GET","RequestUri":"/_ping","RequestBody":"%%%"})"};
  for (const char *b : bad) {
    CAPTURE(b);
    auto reply = f.svc->handle("POST", "/AuthZPlugin.AuthZReq", b);
    CHECK(reply.status == 200);
    auto j = json::parse(reply.body);
    CHECK(j["Allow"] == false);
    CHECK(j["Msg"].get<std::string>().find("rule=malformed-request") != std::string::npos);
  }
  // AuthZRes: malformed -> deny; well-formed -> allow.
  for (const char *b : {"{", "", "[]", "null", "{} {}", "{\"a\":1} x"}) {
    CAPTURE(b);
    CHECK(json::parse(f.svc->handle("POST", "/AuthZPlugin.AuthZRes", b).body)["Allow"] == false);
  }
  CHECK(json::parse(f.svc
                        ->handle("POST", "/AuthZPlugin.AuthZRes",
                                 tls_request("alice", "GET", "/_ping").dump())
                        .body)["Allow"] == true);
}

TEST_CASE("identity problems deny") {
  Fixture f;
  auto r = tls_request("local", "GET", "/_ping");
  auto j = f.call(r);
  CHECK(j["Allow"] == false);
  CHECK(j["Msg"].get<std::string>().find("rule=identity-error") != std::string::npos);
}

TEST_CASE("a JSON endpoint without its body is denied") {
  Fixture f;
  json r = tls_request("alice", "POST", "/v1.41/containers/create");
  r["RequestHeaders"] = {{"Content-Type", "application/json"}, {"Content-Length", "2000000"}};
  auto j = f.call(r);
  CHECK(j["Allow"] == false);
  CHECK(j["Msg"].get<std::string>().find("rule=invalid-request") != std::string::npos);
}

TEST_CASE("reload keeps the last good policy") {
  Fixture f;
  const auto before = f.svc->snapshot()->hash;
  f.write("policy.yaml", "version: 1\nroles: {broken\n");
  bool ok = true;
  auto msg = f.svc->reload(ok);
  CHECK_FALSE(ok);
  CHECK(msg.find("keeping policy " + before) != std::string::npos);
  CHECK(f.svc->snapshot()->hash == before);
  CHECK(f.call(tls_request("alice", "GET", "/_ping"))["Allow"] == true);

  // A valid new policy that no longer lets developers ping.
  std::string p = kPolicy;
  p.replace(p.find("system.ping, "), 13, "");
  f.write("policy.yaml", p);
  f.svc->reload(ok);
  CHECK(ok);
  CHECK(f.svc->snapshot()->hash != before);
  CHECK(f.call(tls_request("alice", "GET", "/_ping"))["Allow"] == false);
}

TEST_CASE("an unwritable decision log fails closed") {
  Fixture f;
  // Replace the log with a directory-backed path that cannot be written: reopen onto /dev/full.
  f.cfg.decision_log = "/dev/full";
  std::string err;
  auto svc = AuthzService::create(f.cfg, err);
  REQUIRE_MESSAGE(svc, err);
  auto reply =
      svc->handle("POST", "/AuthZPlugin.AuthZReq", tls_request("alice", "GET", "/_ping").dump());
  auto j = json::parse(reply.body);
  CHECK(j["Allow"] == false);
  CHECK(j["Msg"].get<std::string>().find("rule=audit-failure") != std::string::npos);
}

TEST_CASE("start-up fails on a bad policy, users file or log path") {
  Fixture f;
  std::string err;
  Config c = f.cfg;
  c.policy = (f.dir / "missing.yaml").string();
  CHECK_FALSE(AuthzService::create(c, err));
  CHECK(err.find("missing.yaml") != std::string::npos);
  c = f.cfg;
  c.directory_path = (f.dir / "missing-users.yaml").string();
  CHECK_FALSE(AuthzService::create(c, err));
  c = f.cfg;
  c.decision_log = (f.dir / "no-such-dir" / "x.log").string();
  CHECK_FALSE(AuthzService::create(c, err));
}

TEST_CASE("decision ids are unique and time-ordered") {
  std::string prev;
  for (int i = 0; i < 200; ++i) {
    auto id = new_decision_id();
    CHECK(id.size() == 28);
    CHECK(id != prev);
    CHECK(id.substr(0, 12) >= prev.substr(0, std::min<std::size_t>(12, prev.size())));
    prev = id;
  }
  auto m = deny_message("bad\x01thing\n", "r1", "abc");
  CHECK(m == "portcullis: bad?thing? [rule=r1 decision=abc]");
}
