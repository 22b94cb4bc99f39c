#include "plugin/config.hpp"

#include <doctest/doctest.h>

using namespace portcullis;

TEST_CASE("config: defaults and relative paths") {
  auto r = parse_config("policy: policy.yaml\ndirectory: {type: file, path: users.yaml}\n"
                        "decision_log: /var/log/portcullis/decisions.log\n",
                        "/etc/portcullis/portcullis.yaml", "/etc/portcullis");
  REQUIRE_MESSAGE(r.config, r.error);
  CHECK(r.config->socket == "/run/docker/plugins/portcullis.sock");
  CHECK(r.config->socket_mode == 0600);
  CHECK(r.config->policy == "/etc/portcullis/policy.yaml");
  CHECK(r.config->directory_path == "/etc/portcullis/users.yaml");
  CHECK(r.config->decision_log == "/var/log/portcullis/decisions.log");
  CHECK(r.config->max_json_depth == 64);
}

TEST_CASE("config: every value") {
  auto r = parse_config(
      "socket: run/p.sock\nsocket_mode: \"0660\"\nsocket_group: docker\n"
      "policy: /p.yaml\ndirectory:\n  path: u.yaml\nthreads: 4\nlog_level: debug\n"
      "limits: {max_request_bytes: 65536, max_json_depth: 32, idle_timeout_seconds: 9}\n",
      "c.yaml", "/base");
  REQUIRE_MESSAGE(r.config, r.error);
  CHECK(r.config->socket == "/base/run/p.sock");
  CHECK(r.config->socket_mode == 0660);
  CHECK(r.config->socket_group == "docker");
  CHECK(r.config->threads == 4);
  CHECK(r.config->max_request_bytes == 65536);
  CHECK(r.config->max_json_depth == 32);
  CHECK(r.config->idle_timeout_seconds == 9);
}

TEST_CASE("config: errors say where and what") {
  struct Case {
    const char *text;
    const char *expect;
  } cases[] = {
      {"policy: p\ndirectory: {path: u}\nsockett: x\n", "c.yaml:3:1: unknown key 'sockett'"},
      {"policy: p\ndirectory: {path: u}\nsocket_mode: \"0666\"\n", "no permissions for others"},
      {"policy: p\ndirectory: {path: u}\nsocket_mode: \"rw\"\n", "octal"},
      {"policy: p\ndirectory: {path: u}\nthreads: 0\n", "'threads' must be an integer"},
      {"policy: p\ndirectory: {path: u}\nthreads: many\n", "'threads' must be an integer"},
      {"directory: {path: u}\n", "'policy'"},
      {"policy: p\n", "'directory.path'"},
      {"policy: p\ndirectory: {type: ldap, path: u}\n", "directory type"},
      {"policy: [p]\ndirectory: {path: u}\n", "'policy' must be a string"},
      {"policy: p\ndirectory: {path: u}\nlimits: {max_json_depth: 1}\n", "max_json_depth"},
      {"policy: p\n  bad: [\n", "c.yaml:"},
  };
  for (const auto &c : cases) {
    CAPTURE(c.text);
    auto r = parse_config(c.text, "c.yaml", "/");
    CHECK_FALSE(r.config.has_value());
    CHECK(r.error.find(c.expect) != std::string::npos);
  }
}
