// Bindings through a directory's group keys (LDAP DNs) and the role-grant explanation.
#include "policy/policy.hpp"

#include <algorithm>
#include <cctype>
#include <doctest/doctest.h>
#include <string>

using namespace portcullis;

namespace {

const char *kPolicy = R"(version: 1
roles:
  admin:
    rules:
      - name: admin-all
        actions: ["*"]
  reader:
    rules:
      - name: read
        actions: [system.ping]
bindings:
  - role: admin
    groups: ["CN=Docker Admins, OU=Groups, DC=Example, DC=Test"]
    users: [carol]
  - role: reader
    groups: ["cn=docker admins,ou=groups,dc=example,dc=test", readers]
)";

// A stand-in for the LDAP canonicaliser: DNs are lower-cased with the blanks after commas
// removed; bare names are refused.
std::optional<std::string> fake_key(const std::string &g, std::string &error) {
  if (g.find('=') == std::string::npos) {
    error = "group '" + g + "' is not a DN";
    return std::nullopt;
  }
  std::string out;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (g[i] == ' ' && i > 0 && g[i - 1] == ',') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(g[i])));
  }
  return out;
}

} // namespace

TEST_CASE("bindings: a refused group is a compile error at its own position") {
  CompileOptions opts;
  opts.group_key = fake_key;
  auto r = compile_policy(kPolicy, "p.yaml", opts);
  CHECK_FALSE(r.policy);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].line == 16);
  CHECK(r.errors[0].message.find("group 'readers' is not a DN") != std::string::npos);
  CHECK(r.errors[0].message.find("reader") != std::string::npos);
}

TEST_CASE("bindings: group keys come from the directory's canonical form") {
  const std::string full = kPolicy;
  const auto cut = full.find(", readers]");
  const std::string text = full.substr(0, cut) + "]" + full.substr(cut + 10);
  CompileOptions opts;
  opts.group_key = fake_key;
  auto r = compile_policy(text, "p.yaml", opts);
  REQUIRE(r.policy);
  Principal dave{"dave", "TLS", {"cn=docker admins,ou=groups,dc=example,dc=test"}};
  CHECK(r.policy->roles_for(dave) == std::vector<std::string>{"admin", "reader"});
  auto grants = r.policy->role_grants(dave);
  REQUIRE(grants.size() == 2);
  CHECK(grants[0].role == "admin");
  CHECK(grants[0].via == "group CN=Docker Admins, OU=Groups, DC=Example, DC=Test");
  CHECK(grants[1].role == "reader");
  CHECK(grants[1].via == "group cn=docker admins,ou=groups,dc=example,dc=test");
  // The written (non-canonical) form is not a key any more.
  Principal eve{"eve", "TLS", {"CN=Docker Admins, OU=Groups, DC=Example, DC=Test"}};
  CHECK(r.policy->roles_for(eve).empty());
  // A group with the same CN elsewhere gets nothing.
  Principal fin{"fin", "TLS", {"cn=docker admins,ou=finance,dc=example,dc=test"}};
  CHECK(r.policy->roles_for(fin).empty());
}

TEST_CASE("bindings: without a directory hook, groups match as written; user grants named") {
  auto r = compile_policy(kPolicy, "p.yaml");
  REQUIRE(r.policy);
  Principal carol{"carol", "TLS", {"readers"}};
  auto grants = r.policy->role_grants(carol);
  REQUIRE(grants.size() == 2);
  CHECK(grants[0].role == "admin");
  CHECK(grants[0].via == "user carol");
  CHECK(grants[1].role == "reader");
  CHECK(grants[1].via == "group readers");
  // A certificate named "local" never gets the unix-socket caller's user bindings.
  Principal fake_local{"local", "TLS", {}};
  CHECK(r.policy->role_grants(fake_local).empty());
}
