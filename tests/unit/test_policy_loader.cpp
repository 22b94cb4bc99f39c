// Policy loading and validation: every mistake is reported with file:line:col.
#include "policy/policy.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <string>

using portcullis::compile_policy;
using portcullis::Diagnostic;

namespace {

// True when some error is at line:col and its message contains `needle`.
bool has_error(const std::vector<Diagnostic> &errs, int line, int col, const std::string &needle) {
  return std::any_of(errs.begin(), errs.end(), [&](const Diagnostic &d) {
    return d.line == line && d.column == col && d.message.find(needle) != std::string::npos;
  });
}

std::string dump(const std::vector<Diagnostic> &errs) {
  std::string s;
  for (const auto &d : errs)
    s += d.to_string() + "\n";
  return s;
}

} // namespace

TEST_CASE("policy loader: a minimal policy compiles") {
  auto r = compile_policy("version: 1\n", "min.yaml");
  CHECK_MESSAGE(r.errors.empty(), dump(r.errors));
  REQUIRE(r.policy);
  CHECK(r.policy->role_count() == 0);
  CHECK(r.policy->rule_count() == 0);
}

TEST_CASE("policy loader: all mistakes are collected with exact line:col") {
  const char *text = "version: 1\n"                                     // 1
                     "roles:\n"                                         // 2
                     "  dev:\n"                                         // 3
                     "    rules:\n"                                     // 4
                     "      - name: r1\n"                               // 5
                     "        actions: [container.creat, image.pull]\n" // 6
                     "        when:\n"                                  // 7
                     "          privileged: maybe\n"                    // 8
                     "          capabilities: [SYS_ADMN]\n"             // 9
                     "          colour: red\n"                          // 10
                     "      - name: r1\n"                               // 11
                     "        actions: []\n"                            // 12
                     "bindings:\n"                                      // 13
                     "  - role: ghost\n"                                // 14
                     "    groups: [g]\n";                               // 15
  auto r = compile_policy(text, "bad.yaml");
  CHECK_FALSE(r.policy);
  INFO(dump(r.errors));
  CHECK(r.errors.size() == 7);
  CHECK(has_error(r.errors, 6, 19, "unknown action \"container.creat\""));
  CHECK(has_error(r.errors, 6, 19, "did you mean container.create?"));
  CHECK(has_error(r.errors, 8, 23, "expected a boolean (true or false), found \"maybe\""));
  CHECK(has_error(r.errors, 9, 26, "unknown capability \"SYS_ADMN\""));
  CHECK(has_error(r.errors, 10, 11, "unknown key \"colour\""));
  CHECK(has_error(r.errors, 10, 11, "allowed keys: privileged, capabilities, host_paths"));
  CHECK(has_error(r.errors, 11, 15, "duplicate rule name \"r1\" (first defined at line 5)"));
  CHECK(has_error(r.errors, 12, 18, "the list is empty"));
  CHECK(has_error(r.errors, 14, 11, "undefined role \"ghost\"; defined roles: dev"));
  // Sorted by position, formatted as file:line:col: error: message.
  CHECK(r.errors.front().to_string().rfind("bad.yaml:6:19: error: ", 0) == 0);
  CHECK(std::is_sorted(r.errors.begin(), r.errors.end(), [](const auto &a, const auto &b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  }));
}

TEST_CASE("policy loader: version is required and must be 1") {
  auto missing = compile_policy("roles: {}\n", "p.yaml");
  CHECK_FALSE(missing.policy);
  CHECK(has_error(missing.errors, 1, 1, "missing required key \"version\""));

  auto wrong = compile_policy("version: 2\n", "p.yaml");
  CHECK_FALSE(wrong.policy);
  CHECK(has_error(wrong.errors, 1, 10, "unsupported policy version \"2\"; expected the number 1"));

  auto quoted = compile_policy("version: \"1\"\n", "p.yaml");
  CHECK_FALSE(quoted.policy);

  auto empty = compile_policy("", "p.yaml");
  CHECK_FALSE(empty.policy);
  CHECK(has_error(empty.errors, 1, 1, "the policy is empty"));

  auto scalar = compile_policy("hello\n", "p.yaml");
  CHECK_FALSE(scalar.policy);
  CHECK(has_error(scalar.errors, 1, 1, "expected a mapping"));
}

TEST_CASE("policy loader: syntax errors carry the parser's position") {
  auto r = compile_policy("version: 1\nroles:\n  dev: [a, b\n", "syn.yaml");
  CHECK_FALSE(r.policy);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message.rfind("syntax error: ", 0) == 0);
  CHECK(r.errors[0].line >= 3);
  CHECK(r.errors[0].column >= 1);

  auto tab = compile_policy("version: 1\nroles:\n\tdev: {}\n", "tab.yaml");
  CHECK_FALSE(tab.policy);
  REQUIRE(tab.errors.size() == 1);
  CHECK(tab.errors[0].line == 3);

  auto two = compile_policy("version: 1\n---\nversion: 1\n", "two.yaml");
  CHECK_FALSE(two.policy);
  CHECK(has_error(two.errors, 2, 1, "expected a single YAML document")); // at the "---"
}

TEST_CASE("policy loader: texts that make yaml-cpp 0.7's LoadAll loop forever are errors") {
  // jbeder/yaml-cpp#1040: LoadAll never returned on these and allocated until memory ran out
  // (found by fuzz/fuzz_policy). Each must now fail to compile, quickly.
  for (const char *text : {",", "version: 1\n,", "- a\n,\n", "{a: 1},", "version: 1\nroles: ,"}) {
    CAPTURE(text);
    auto r = compile_policy(text, "hang.yaml");
    CHECK_FALSE(r.policy);
    CHECK_FALSE(r.errors.empty());
  }
}

TEST_CASE("policy loader: wrong types, duplicate keys and unknown keys") {
  const char *text = "version: 1\n"                                      // 1
                     "colour: blue\n"                                    // 2
                     "roles:\n"                                          // 3
                     "  dev:\n"                                          // 4
                     "    rules:\n"                                      // 5
                     "      - name: a\n"                                 // 6
                     "        actions: container.create\n"               // 7
                     "        when:\n"                                   // 8
                     "          privileged: \"false\"\n"                 // 9
                     "          host_namespaces: [pid, host]\n"          // 10
                     "          host_paths: {allow: [srv/x], mode: 1}\n" // 11
                     "          devices: false\n"                        // 12
                     "          devices: true\n"                         // 13
                     "      - actions: [image.pull]\n"                   // 14
                     "guardrails: {}\n"                                  // 15
                     "bindings:\n"                                       // 16
                     "  - groups: [x]\n";                                // 17
  auto r = compile_policy(text, "types.yaml");
  CHECK_FALSE(r.policy);
  INFO(dump(r.errors));
  CHECK(has_error(r.errors, 2, 1,
                  "unknown key \"colour\"; allowed keys: version, roles, "
                  "guardrails, bindings"));
  CHECK(has_error(r.errors, 7, 18, "expected a list of strings, found a scalar"));
  CHECK(has_error(r.errors, 9, 23, "found the quoted string \"false\""));
  CHECK(has_error(r.errors, 10, 34, "unknown namespace \"host\""));
  CHECK(has_error(r.errors, 11, 32, "is relative; expected an absolute path"));
  CHECK(has_error(r.errors, 11, 40, "unknown key \"mode\"; allowed keys: allow, deny, read_only"));
  CHECK(has_error(r.errors, 13, 11, "duplicate key \"devices\""));
  CHECK(has_error(r.errors, 14, 9, "missing required key \"name\""));
  CHECK(has_error(r.errors, 15, 13, "guardrails: expected a list, found a mapping"));
  CHECK(has_error(r.errors, 17, 5, "missing required key \"role\""));
  CHECK(r.errors.size() == 10);
}

TEST_CASE("policy loader: names, reserved names and guardrail mistakes") {
  const char *text = "version: 1\n"                                    // 1
                     "roles:\n"                                        // 2
                     "  dev:\n"                                        // 3
                     "    rules:\n"                                    // 4
                     "      - name: Bad_Name\n"                        // 5
                     "        actions: [\"container.*\"]\n"            // 6
                     "      - name: default-deny\n"                    // 7
                     "        actions: [\"*\"]\n"                      // 8
                     "guardrails:\n"                                   // 9
                     "  - name: g1\n"                                  // 10
                     "    actions: [\"nosuch.*\"]\n"                   // 11
                     "    when:\n"                                     // 12
                     "      host_paths: [\"/ok\", \"/a/**b\"]\n"       // 13
                     "      capabilities: []\n"                        // 14
                     "      image_registries: [\"https://evil.io\"]\n" // 15
                     "    except_roles: [dev, nobody]\n"               // 16
                     "  - name: dev-rule\n"                            // 17
                     "    actions: [system.ping]\n";                   // 18
  auto r = compile_policy(text, "names.yaml");
  CHECK_FALSE(r.policy);
  INFO(dump(r.errors));
  CHECK(has_error(r.errors, 5, 15, "invalid rule name \"Bad_Name\""));
  CHECK(has_error(r.errors, 7, 15, "is reserved"));
  CHECK(has_error(r.errors, 11, 15, "unknown action \"nosuch.*\""));
  CHECK(has_error(r.errors, 13, 27, "\"**\" must be a whole segment"));
  CHECK(has_error(r.errors, 14, 21, "could never match"));
  CHECK(has_error(r.errors, 15, 26, "invalid registry \"https://evil.io\""));
  CHECK(has_error(r.errors, 16, 25, "undefined role \"nobody\""));
  CHECK(r.errors.size() == 7);
}

TEST_CASE("policy loader: JSON form compiles, and JSON mistakes have positions") {
  const char *json = R"({
  "version": 1,
  "roles": {
    "developer": {
      "rules": [
        {"name": "dev-create", "actions": ["container.create"],
         "when": {"privileged": false, "capabilities": ["NET_BIND_SERVICE"],
                  "host_paths": {"allow": ["/srv/**"], "read_only": true}}}
      ]
    }
  },
  "guardrails": [
    {"name": "no-sock", "actions": ["container.create"],
     "when": {"host_paths": ["/var/run/docker.sock"]}}
  ],
  "bindings": [{"role": "developer", "users": ["alice"]}]
})";
  auto r = compile_policy(json, "policy.json");
  CHECK_MESSAGE(r.errors.empty(), dump(r.errors));
  REQUIRE(r.policy);
  CHECK(r.policy->role_count() == 1);
  CHECK(r.policy->rule_count() == 2);
  portcullis::Principal alice{"alice", "TLS", {}};
  CHECK(r.policy->roles_for(alice) == std::vector<std::string>{"developer"});

  const char *bad = "{\"version\": 1,\n \"roles\": {\"d\": {\"rules\": [{\"name\": \"x\", "
                    "\"actions\": [\"container.create\"], \"when\": {\"privileged\": 1}}]}}}";
  auto b = compile_policy(bad, "bad.json");
  CHECK_FALSE(b.policy);
  INFO(dump(b.errors));
  CHECK(has_error(b.errors, 2, 98, "expected a boolean"));
}

TEST_CASE("policy loader: null sections and roles without rules are accepted") {
  auto r = compile_policy("version: 1\nroles:\n  empty:\n  other: {rules: }\nguardrails:\n"
                          "bindings:\n",
                          "p.yaml");
  CHECK_MESSAGE(r.errors.empty(), dump(r.errors));
  REQUIRE(r.policy);
  CHECK(r.policy->role_count() == 2);
}

TEST_CASE("policy loader: oversized input is refused") {
  std::string big = "version: 1\n# " + std::string(5u << 20, 'x') + "\n";
  auto r = compile_policy(big, "big.yaml");
  CHECK_FALSE(r.policy);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message.find("larger than") != std::string::npos);
}

TEST_CASE("policy loader: host_ports accepts numbers, ranges and random") {
  const char *text = "version: 1\n"
                     "roles:\n"
                     "  dev:\n"
                     "    rules:\n"
                     "      - name: ports\n"
                     "        actions: [container.create]\n"
                     "        when:\n"
                     "          host_ports: [8080, \"8081\", \"8000-8999\", 9000-9000, random, "
                     "\"1-65535\", 80, 80]\n"
                     "      - name: none\n"
                     "        actions: [container.create]\n"
                     "        when: {host_ports: []}\n"
                     "guardrails:\n"
                     "  - name: low\n"
                     "    actions: [container.create]\n"
                     "    when: {host_ports: [\"1-1023\"]}\n"
                     "  - name: rnd\n"
                     "    actions: [container.create]\n"
                     "    when: {host_ports: [random]}\n";
  auto r = compile_policy(text, "ports.yaml");
  CHECK_MESSAGE(r.errors.empty(), dump(r.errors));
  REQUIRE(r.policy);
  CHECK(r.policy->rule_count() == 4);
}

TEST_CASE("policy loader: host_ports mistakes are reported with their positions") {
  const char *text = "version: 1\n"                                                           // 1
                     "roles:\n"                                                               // 2
                     "  dev:\n"                                                               // 3
                     "    rules:\n"                                                           // 4
                     "      - name: a\n"                                                      // 5
                     "        actions: [container.create]\n"                                  // 6
                     "        when:\n"                                                        // 7
                     "          host_ports: [0, 65536, \"9000-8000\", http, \"80:80\"]\n"     // 8
                     "      - name: b\n"                                                      // 9
                     "        actions: [container.create]\n"                                  // 10
                     "        when:\n"                                                        // 11
                     "          host_ports: [\"80-\", \" 80\", \"-1\", 0x50, [80], Random]\n" // 12
                     "      - name: c\n"                                                      // 13
                     "        actions: [container.create]\n"                                  // 14
                     "        when: {host_ports: 8080}\n"                                     // 15
                     "      - name: d\n"                                                      // 16
                     "        actions: [container.create]\n"                                  // 17
                     "        when: {host_port: [80]}\n"                                      // 18
                     "guardrails:\n"                                                          // 19
                     "  - name: g\n"                                                          // 20
                     "    actions: [container.create]\n"                                      // 21
                     "    when:\n"                                                            // 22
                     "      host_ports: []\n"                                                 // 23
                     "  - name: g2\n"                                                         // 24
                     "    actions: [container.create]\n"                                      // 25
                     "    when: {host_ports: [\"1-1023\", \"70000\"]}\n";                     // 26
  auto r = compile_policy(text, "ports.yaml");
  CHECK_FALSE(r.policy);
  INFO(dump(r.errors));
  const std::string w = "roles.dev.rules[0].when.host_ports: ";
  CHECK(has_error(r.errors, 8, 24, w + "host port \"0\" is out of range; ports are 1-65535"));
  CHECK(has_error(r.errors, 8, 24, "write random for a port the daemon picks"));
  CHECK(has_error(r.errors, 8, 27, "host port \"65536\" is out of range"));
  CHECK(has_error(r.errors, 8, 34,
                  "host port range \"9000-8000\" is reversed; expected first <= last"));
  CHECK(has_error(r.errors, 8, 47, w + "invalid host port \"http\"; expected a port number"));
  CHECK(has_error(r.errors, 8, 53, "invalid host port \"80:80\""));
  CHECK(has_error(r.errors, 12, 24, "invalid host port \"80-\""));
  CHECK(has_error(r.errors, 12, 31, "invalid host port \" 80\""));
  CHECK(has_error(r.errors, 12, 38, "invalid host port \"-1\""));
  CHECK(has_error(r.errors, 12, 44, "invalid host port \"0x50\""));
  CHECK(has_error(r.errors, 12, 50,
                  "roles.dev.rules[1].when.host_ports[4]: expected a port number, a range "
                  "\"first-last\" or random, found a list"));
  CHECK(has_error(r.errors, 12, 56, "invalid host port \"Random\""));
  CHECK(has_error(r.errors, 15, 28,
                  "roles.dev.rules[2].when.host_ports: expected a list of host ports"));
  CHECK(has_error(r.errors, 18, 16,
                  "unknown key \"host_port\"; allowed keys: privileged, capabilities, host_paths, "
                  "image_registries, run_as_root, host_namespaces, host_ports, devices, "
                  "unsafe_settings"));
  CHECK(has_error(r.errors, 23, 19,
                  "guardrails[0].when.host_ports: the list is empty, so this "
                  "matcher could never match"));
  CHECK(has_error(r.errors, 26, 35,
                  "guardrails[1].when.host_ports: host port \"70000\" is out of range"));
  CHECK(r.errors.size() == 15);
}
