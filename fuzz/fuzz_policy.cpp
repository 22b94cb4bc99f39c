// libFuzzer target: the policy loader, validator and compiler (policy/policy.hpp), and the
// evaluator over whatever compiles.
//
// Input: a policy document (YAML or JSON), as an admin would write it. Inputs of odd length are
// compiled with LDAP group keys (ldap_binding_key: DNs canonicalized by libldap), even ones with
// group names as written, so both binding paths of the compiler run.
// When the policy compiles, a fixed set of realistic requests (normalized once at start-up) is
// evaluated for a few callers. Checks, besides "no crash, leak or UB": compile_policy and
// evaluate never throw; a policy either compiles or says why; an invalid request is never
// allowed; an allow names its rule; the roles a decision reports are the caller's roles.
#include "fuzz/fuzz_util.hpp"
#include "plugin/ldap.hpp"
#include "plugin/normalize.hpp"
#include "policy/policy.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using namespace portcullis;

namespace {

[[noreturn]] void fail(const char *what) {
  std::fprintf(stderr, "fuzz_policy: invariant violated: %s\n", what);
  std::abort();
}

const std::string kCreateBody =
    R"({"Hostname":"","User":"","AttachStdout":true,"AttachStderr":true,"Tty":false,)"
    R"("Env":null,"Cmd":["sh","-c","echo hi"],"Image":"busybox:latest","Volumes":{},)"
    R"("Labels":{},"HostConfig":{"Binds":null,"NetworkMode":"default","CapAdd":null,)"
    R"("Privileged":false,"SecurityOpt":null,"Mounts":null},"NetworkingConfig":{}})";

// Requests as the normalizer makes them from the daemon's calls.
const std::vector<Request> &requests() {
  static const std::vector<Request> all = [] {
    const std::string json = "Content-Type: application/json\n\n";
    const std::string hex(64, 'a');
    const char *raw[] = {
        "GET /_ping",
        "HEAD /v1.41/_ping",
        "GET /v1.41/version",
        "GET /v1.41/containers/json?all=1",
        "GET /v1.41/containers/web/json",
        "POST /v1.41/containers/web/start\n\n",
        "DELETE /v1.41/containers/web?force=1",
        "POST /v1.41/images/create?fromImage=busybox&tag=latest",
        "POST /v1.41/images/create?fromImage=registry.example.internal/team/app&tag=1",
        "POST /v1.41/images/busybox/tag?repo=ghcr.io/me/bb&tag=v2",
        "POST /v1.41/plugins/vieux/sshfs/enable",
        "POST /v1.41/swarm/join",
        "GET /v1.41/nonsense/endpoint",
        "GET /v1.41/containers/%zz/json",       // invalid: bad escape
        "POST /v1.41/containers/create\n",      // invalid: no body
        "POST /v1.41/containers/create?name=x", // invalid: no body, no content type
    };
    std::vector<std::string> inputs(std::begin(raw), std::end(raw));
    inputs.push_back("GET /v1.41/images/sha256:" + hex + "/json");
    const std::string create = "POST /v1.41/containers/create?name=web\n" + json;
    inputs.push_back(create + kCreateBody);
    inputs.push_back(create + R"({"Image":"registry.example.internal/team/app:1","User":"1000",)"
                              R"("HostConfig":{"Binds":["/srv/projects/app:/app:ro"],)"
                              R"("CapAdd":["net_bind_service"]}})");
    inputs.push_back(create + R"({"Image":"alpine","HostConfig":{"Privileged":true,)"
                              R"("CapAdd":["ALL"],"PidMode":"host","NetworkMode":"host",)"
                              R"("Binds":["/var/run/docker.sock:/var/run/docker.sock"],)"
                              R"("Devices":[{"PathOnHost":"/dev/sda"}],)"
                              R"("SecurityOpt":["seccomp=unconfined"]}})");
    inputs.push_back(create + R"({"Image":"busybox","HostConfig":{"Mounts":[{"Type":"bind",)"
                              R"("Source":"/srv/projects/link/docker.sock","Target":"/s"}]}})");
    inputs.push_back(create +
                     R"({"Image":"busybox","HostConfig":{"Privileged":true,"Privileged":false}})");
    inputs.push_back("POST /v1.41/containers/web/exec\n" + json +
                     R"({"Cmd":["sh"],"Privileged":true,"User":"0"})");
    inputs.push_back("POST /v1.41/volumes/create\n" + json +
                     R"({"Name":"v","DriverOpts":{"type":"none","o":"bind","device":"/etc"}})");
    NormalizeOptions opts;
    opts.resolve_host_path = fuzz::fake_resolve;
    std::vector<Request> out;
    for (const auto &in : inputs)
      out.push_back(normalize(fuzz::parse_http_like(in), opts));
    return out;
  }();
  return all;
}

const std::vector<Principal> &principals() {
  static const std::vector<Principal> all = {
      {kLocalPrincipal, "none", {}},
      {"alice", "TLS", {"developers"}},
      {"bob", "TLS", {"cn=docker-admins,ou=groups,dc=example,dc=test"}},
      {"carol", "TLS", {"operators", "admins", "cn=devs,ou=groups,dc=example,dc=test"}},
      {"", "TLS", {}},
  };
  return all;
}

void check_principal(const CompiledPolicy &p, const Principal &who) {
  std::vector<std::string> roles = p.roles_for(who);
  if (!std::is_sorted(roles.begin(), roles.end()) ||
      std::adjacent_find(roles.begin(), roles.end()) != roles.end())
    fail("roles_for is not sorted and unique");
  std::vector<std::string> granted;
  for (const auto &g : p.role_grants(who))
    granted.push_back(g.role);
  std::sort(granted.begin(), granted.end());
  granted.erase(std::unique(granted.begin(), granted.end()), granted.end());
  if (granted != roles) fail("role_grants and roles_for disagree");

  for (const Request &r : requests()) {
    Decision d = p.evaluate(who, r);
    if (d.allow && r.invalid) fail("an invalid request was allowed");
    if (d.allow && d.rule.empty()) fail("an allow without a rule");
    if (d.roles != roles) fail("the decision's roles are not the caller's roles");
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  (void)requests();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  CompileOptions options;
  if (size % 2 == 1)
    options.group_key = [](const std::string &group, std::string &error) {
      return ldap_binding_key(group, /*bind_by_cn=*/false, error);
    };
  CompileResult c = compile_policy(text, "fuzz.yaml", options);
  if (!c.policy) {
    if (c.errors.empty()) fail("a policy that did not compile has no diagnostics");
    for (const auto &d : c.errors)
      (void)d.to_string();
    return 0;
  }
  if (!c.errors.empty()) fail("a compiled policy with errors");
  (void)c.policy->role_count();
  (void)c.policy->rule_count();
  for (const auto &who : principals())
    check_principal(*c.policy, who);
  return 0;
}
