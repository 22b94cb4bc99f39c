#include "plugin/config.hpp"

#include <doctest/doctest.h>
#include <string>
#include <vector>

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
      {"policy: p\ndirectory: {type: ldap, path: u}\n", "'path' belongs to directory type 'file'"},
      {"policy: p\ndirectory: {type: nis}\n", "directory type must be 'file' or 'ldap'"},
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

namespace {
const std::string kLdapBase = R"(policy: p.yaml
directory:
  type: ldap
  ldap:
    urls: ["ldaps://ldap.example.test:636"]
    tls: {ca_file: ca.pem}
    bind_dn: "cn=svc,dc=example,dc=test"
    bind_password_file: pw
    user: {base_dn: "ou=people,dc=example,dc=test"}
    groups: {base_dn: "ou=groups,dc=example,dc=test"}
)";
} // namespace

TEST_CASE("config: LDAP directory with defaults") {
  auto r = parse_config(kLdapBase, "c.yaml", "/etc/portcullis");
  REQUIRE_MESSAGE(r.config, r.error);
  const auto &l = r.config->ldap;
  CHECK(r.config->directory_type == "ldap");
  CHECK(l.urls == std::vector<std::string>{"ldaps://ldap.example.test:636"});
  CHECK(l.ca_file == "/etc/portcullis/ca.pem");
  CHECK(l.bind_password_file == "/etc/portcullis/pw");
  CHECK(l.user_attribute == "uid");
  CHECK(l.group_strategies == std::vector<std::string>{"member"});
  CHECK(l.member_attributes == std::vector<std::string>{"member", "uniqueMember"});
  CHECK(l.nested);
  CHECK(l.max_depth == 5);
  CHECK(r.config->cache.positive_ttl_ms == 120000);
  CHECK(r.config->cache.negative_ttl_ms == 30000);
  CHECK(r.config->cache.stale_grace_ms == 0);
  CHECK(r.config->identity.source == "cn");
}

TEST_CASE("config: LDAP, cache and identity values") {
  std::string text = kLdapBase;
  text.replace(text.find("    urls:"), std::string::npos,
               R"Y(    urls: ["ldap://10.0.0.1:389", "ldap://[::1]"]
    starttls: true
    tls: {ca_file: /ca.pem, client_cert: c.pem, client_key: k.pem, cipher_suite: "NORMAL"}
    bind_dn: "cn=svc,dc=example,dc=test"
    bind_password_file: /run/secrets/pw
    timeouts: {connect: 250ms, operation: 2s, decision: 1m}
    pool: {size: 8, max_age: 1h, backoff_max: 5s}
    user: {base_dn: "ou=people,dc=x", scope: one, attribute: sAMAccountName,
           filter: "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
}
    groups:
      strategies: [memberof, ad_in_chain]
      base_dn: "dc=x"
      scope: base
      filter: "(objectClass=group)"
      member_attributes: [member]
      memberof_attribute: memberOf
      nested: false
      max_depth: 3
      max_groups: 50
      bind_by_cn: true
  cache: {positive_ttl: 5m, negative_ttl: 10s, refresh_ahead: 0.75, stale_grace: 15m, max_entries: 100}
identity: {source: san_email, strip: "@example\\.test$"}
)Y");
  auto r = parse_config(text, "c.yaml", "/b");
  REQUIRE_MESSAGE(r.config, r.error);
  const auto &l = r.config->ldap;
  CHECK(l.starttls);
  CHECK(l.client_cert == "/b/c.pem");
  CHECK(l.connect_timeout_ms == 250);
  CHECK(l.operation_timeout_ms == 2000);
  CHECK(l.decision_timeout_ms == 60000);
  CHECK(l.pool_size == 8);
  CHECK(l.max_connection_age_ms == 3600000);
  CHECK(l.user_scope == "one");
  CHECK(l.user_attribute == "sAMAccountName");
  CHECK(l.group_strategies == std::vector<std::string>{"memberof", "ad_in_chain"});
  CHECK_FALSE(l.nested);
  CHECK(l.bind_by_cn);
  CHECK(r.config->cache.positive_ttl_ms == 300000);
  CHECK(r.config->cache.refresh_ahead == doctest::Approx(0.75));
  CHECK(r.config->cache.stale_grace_ms == 900000);
  CHECK(r.config->identity.source == "san_email");
  CHECK(r.config->identity.strip == "@example\\.test$");
}

TEST_CASE("config: LDAP settings that would weaken security are refused") {
  struct Case {
    const char *from, *to, *expect;
  } cases[] = {
      {"ldaps://ldap.example.test:636", "ldap://ldap.example.test:389", "needs 'starttls: true'"},
      {"ldaps://ldap.example.test:636", "ldaps://h/dc=x??sub", "LDAP URLs must be"},
      {"ldaps://ldap.example.test:636", "ldapi:///", "LDAP URLs must be"},
      {"    tls: {ca_file: ca.pem}\n", "", "'ldap.tls.ca_file' is required"},
      {"ca_file: ca.pem}", "ca_file: ca.pem, client_cert: c.pem}", "go together"},
      {"    bind_password_file: pw\n", "", "'ldap.bind_password_file' is required"},
      {"    bind_dn: \"cn=svc,dc=example,dc=test\"\n", "", "'ldap.bind_dn'"},
      {"    user: {base_dn: \"ou=people,dc=example,dc=test\"}\n", "", "'ldap.user' is required"},
      {"    groups: {base_dn: \"ou=groups,dc=example,dc=test\"}\n",
       "    groups: {strategies: [posix]}\n", "'ldap.groups.base_dn' is required"},
      {"groups: {base_dn", "groups: {strategies: [tokengroups], base_dn", "group strategies"},
      {"groups: {base_dn", "groups: {max_depth: 0, base_dn", "max_depth"},
      {"user: {base_dn", "user: {filter: \"objectClass=person\", base_dn", "balanced LDAP filter"},
      {"user: {base_dn", "user: {filter: \"(a=b))(\", base_dn", "balanced LDAP filter"},
      {"user: {base_dn", "user: {attribute: \"uid)(x\", base_dn", "not an LDAP attribute name"},
      {"user: {base_dn", "user: {scope: subtree, base_dn", "base, one or sub"},
      {"    bind_dn:", "    timeouts: {connect: 3}\n    bind_dn:", "must be a duration"},
      {"    bind_dn:", "    timeouts: {decision: 2h}\n    bind_dn:", "must be a duration"},
      {"    bind_dn:", "    referrals: true\n    bind_dn:", "unknown key 'referrals'"},
      {"  ldap:\n", "  cache: {positive_ttl: 10s, negative_ttl: 1m}\n  ldap:\n",
       "must not be longer"},
      {"  ldap:\n", "  cache: {refresh_ahead: 1.5}\n  ldap:\n", "refresh_ahead"},
      {"policy: p.yaml\n", "policy: p.yaml\nidentity: {source: san_dns}\n", "identity.source"},
      {"policy: p.yaml\n", "policy: p.yaml\nidentity: {source: dn_attribute}\n", "dn_attribute"},
      {"policy: p.yaml\n", "policy: p.yaml\nidentity: {strip: \"(\"}\n",
       "not a valid regular expression"},
  };
  for (const auto &c : cases) {
    std::string text = kLdapBase;
    auto pos = text.find(c.from);
    REQUIRE_MESSAGE(pos != std::string::npos, c.from);
    text = text.substr(0, pos) + c.to + text.substr(pos + std::string(c.from).size());
    CAPTURE(text);
    auto r = parse_config(text, "c.yaml", "/");
    CHECK_FALSE(r.config.has_value());
    CHECK_MESSAGE(r.error.find(c.expect) != std::string::npos, r.error);
  }
}

TEST_CASE("config: the shipped LDAP example parses") {
  auto r = load_config(PORTCULLIS_SOURCE_DIR "/examples/ldap/portcullis.yaml");
  REQUIRE_MESSAGE(r.config, r.error);
  CHECK(r.config->directory_type == "ldap");
  CHECK(r.config->ldap.urls.size() == 2);
  CHECK(r.config->cache.stale_grace_ms == 300000);
}

TEST_CASE("config: daemon section defaults") {
  auto r = parse_config("policy: p\ndirectory: {path: u}\n", "c.yaml", "/base");
  REQUIRE_MESSAGE(r.config, r.error);
  CHECK(r.config->daemon.socket == "/var/run/docker.sock");
  CHECK(r.config->daemon.timeout_ms == 2000);
  CHECK(r.config->daemon.lookup_threads == 4);
  CHECK(r.config->daemon.max_pending == 64);
  // An empty section keeps the defaults too.
  auto e = parse_config("policy: p\ndirectory: {path: u}\ndaemon: {}\n", "c.yaml", "/base");
  REQUIRE_MESSAGE(e.config, e.error);
  CHECK(e.config->daemon.socket == "/var/run/docker.sock");
  CHECK(e.config->daemon.timeout_ms == 2000);
}

TEST_CASE("config: daemon section values") {
  auto r = parse_config("policy: p\ndirectory: {path: u}\n"
                        "daemon:\n  socket: /run/docker.sock\n  timeout_ms: 500\n"
                        "  lookup_threads: 2\n  max_pending: 10\n",
                        "c.yaml", "/base");
  REQUIRE_MESSAGE(r.config, r.error);
  CHECK(r.config->daemon.socket == "/run/docker.sock");
  CHECK(r.config->daemon.timeout_ms == 500);
  CHECK(r.config->daemon.lookup_threads == 2);
  CHECK(r.config->daemon.max_pending == 10);
  // A relative socket is resolved against the configuration's directory.
  auto rel = parse_config("policy: p\ndirectory: {path: u}\ndaemon: {socket: run/d.sock}\n",
                          "c.yaml", "/base");
  REQUIRE_MESSAGE(rel.config, rel.error);
  CHECK(rel.config->daemon.socket == "/base/run/d.sock");
  // "" disables lookups and stays empty (not resolved to the base directory).
  auto off =
      parse_config("policy: p\ndirectory: {path: u}\ndaemon: {socket: \"\"}\n", "c.yaml", "/base");
  REQUIRE_MESSAGE(off.config, off.error);
  CHECK(off.config->daemon.socket.empty());
  // The range ends are accepted.
  for (const char *t : {"50", "10000"}) {
    auto b = parse_config(std::string("policy: p\ndirectory: {path: u}\ndaemon: {timeout_ms: ") +
                              t + "}\n",
                          "c.yaml", "/");
    REQUIRE_MESSAGE(b.config, b.error);
    CHECK(b.config->daemon.timeout_ms == std::stoll(t));
  }
}

TEST_CASE("config: daemon section errors") {
  struct Case {
    const char *daemon, *expect;
  } cases[] = {
      {"{sockett: /x}", "unknown key 'sockett'"},
      {"{timeout_ms: 10}", "daemon.timeout_ms"},
      {"{timeout_ms: 49}", "daemon.timeout_ms"},
      {"{timeout_ms: 10001}", "daemon.timeout_ms"},
      {"{timeout_ms: soon}", "daemon.timeout_ms"},
      {"{lookup_threads: 0}", "daemon.lookup_threads"},
      {"{lookup_threads: 65}", "daemon.lookup_threads"},
      {"{max_pending: 0}", "daemon.max_pending"},
      {"{socket: [a]}", "daemon.socket"},
      {"[a]", "'daemon' must be a mapping"},
      {"/var/run/docker.sock", "'daemon' must be a mapping"},
  };
  for (const auto &c : cases) {
    std::string text = std::string("policy: p\ndirectory: {path: u}\ndaemon: ") + c.daemon + "\n";
    CAPTURE(text);
    auto r = parse_config(text, "c.yaml", "/");
    CHECK_FALSE(r.config.has_value());
    CHECK_MESSAGE(r.error.find(c.expect) != std::string::npos, r.error);
  }
}
