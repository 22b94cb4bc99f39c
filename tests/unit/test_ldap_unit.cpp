// Unit tests for the LDAP provider's pure functions (plugin/ldap.hpp): RFC 4515 escaping, DN
// canonicalisation, filter composition, user-name checks, binding keys, and create() refusals
// that need no server.
#include "plugin/ldap.hpp"

#include <cstdio>
#include <doctest/doctest.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace portcullis;

TEST_CASE("ldap_escape_filter_value escapes the RFC 4515 specials, nothing is passed raw") {
  CHECK(ldap_escape_filter_value("alice") == "alice");
  CHECK(ldap_escape_filter_value("*") == "\\2A");
  CHECK(ldap_escape_filter_value("*)(uid=*") == "\\2A\\29\\28uid=\\2A");
  CHECK(ldap_escape_filter_value("a\\b") == "a\\5Cb");
  CHECK(ldap_escape_filter_value(std::string("x\0y", 3)) == "x\\00y");
  CHECK(ldap_escape_filter_value("a,b=c#+") == "a,b=c#+"); // DN specials are not filter specials
  CHECK(ldap_escape_filter_value("") == "");
  const std::string esc = ldap_escape_filter_value("uid=x)(cn=*,dc=z");
  CHECK(esc.find_first_of("()*") == std::string::npos);
}

TEST_CASE("canonical_dn: parsed, re-emitted, lower-cased; malformed is nullopt") {
  CHECK(canonical_dn("CN=Docker Admins, OU=Groups, DC=Example") ==
        std::optional<std::string>("cn=docker admins,ou=groups,dc=example"));
  CHECK(canonical_dn("cn=a\\,b,dc=x") == canonical_dn("cn=a\\2Cb,dc=x"));
  CHECK(canonical_dn("cn=A\\2cB,dc=X") == canonical_dn("cn=a\\,b,dc=x"));
  CHECK(canonical_dn("uid=star*(paren)\\5Cback,ou=people") ==
        std::optional<std::string>("uid=star*(paren)\\5cback,ou=people"));
  CHECK(canonical_dn("cn=admins,ou=groups") != canonical_dn("cn=admins,ou=finance,ou=groups"));
  CHECK_FALSE(canonical_dn(""));
  CHECK_FALSE(canonical_dn("cn=a,b"));
  CHECK_FALSE(canonical_dn("not a dn"));
  CHECK_FALSE(canonical_dn("cn=#foo"));
  CHECK_FALSE(canonical_dn("cn=#04024869")); // BER-encoded value: refused, not case-folded
  CHECK_FALSE(canonical_dn(std::string("cn=a\0b", 6)));
}

TEST_CASE("filter composition") {
  CHECK(ldap_and_filter("", "(uid=a)") == "(uid=a)");
  CHECK(ldap_and_filter("(objectClass=person)", "(uid=a)") == "(&(objectClass=person)(uid=a))");
  CHECK(ldap_equality_filter("uid", "*)(uid=*") == "(uid=\\2A\\29\\28uid=\\2A)");
  CHECK(ldap_member_filter({"member"}, "cn=x)(y,dc=z") == "(member=cn=x\\29\\28y,dc=z)");
  CHECK(ldap_member_filter({"member", "uniqueMember"}, "uid=a,dc=z") ==
        "(|(member=uid=a,dc=z)(uniqueMember=uid=a,dc=z))");
}

TEST_CASE("user names that are refused before any search") {
  CHECK(ldap_user_name_problem("alice").empty());
  CHECK(ldap_user_name_problem("star*(paren)\\back").empty()); // escaped later, not refused
  CHECK_FALSE(ldap_user_name_problem("").empty());
  CHECK_FALSE(ldap_user_name_problem(std::string(257, 'a')).empty());
  CHECK(ldap_user_name_problem(std::string(256, 'a')).empty());
  CHECK_FALSE(ldap_user_name_problem(std::string("a\0b", 3)).empty());
  CHECK_FALSE(ldap_user_name_problem("a\tb").empty());
  CHECK_FALSE(ldap_user_name_problem("a\x7f").empty());
  CHECK_FALSE(ldap_user_name_problem(" alice").empty());
  CHECK_FALSE(ldap_user_name_problem("alice ").empty());
}

TEST_CASE("binding keys: DNs canonical, bare CNs only with bind_by_cn") {
  std::string error;
  CHECK(ldap_binding_key("CN=Admins, OU=Groups,DC=Example,DC=Test", false, error) ==
        std::optional<std::string>("cn=admins,ou=groups,dc=example,dc=test"));
  CHECK_FALSE(ldap_binding_key("admins", false, error));
  CHECK(error == "group 'admins' is not a DN; bind LDAP groups by their full DN (or enable "
                 "ldap.groups.bind_by_cn)");
  CHECK(ldap_binding_key("Admins", true, error) == std::optional<std::string>("cn:admins"));
  CHECK(ldap_binding_key("cn=Admins,dc=x", true, error) ==
        std::optional<std::string>("cn=admins,dc=x"));
  error.clear();
  CHECK_FALSE(ldap_binding_key("cn=a,b", true, error)); // has '=' but is no DN: never a CN
  CHECK(error.find("not a valid LDAP DN") != std::string::npos);
  CHECK_FALSE(ldap_binding_key("", true, error));
}

TEST_CASE("LdapDirectory::create refuses an empty or unreadable password file") {
  ldap_global_init();
  char path[] = "/tmp/pl-ldap-unitXXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  LdapConfig c;
  c.urls = {"ldaps://127.0.0.1:1"};
  c.ca_file = path; // readable (content is only checked when connecting)
  c.bind_dn = "cn=svc,dc=x";
  c.user_base_dn = "dc=x";
  c.group_base_dn = "dc=x";
  c.bind_password_file = path;
  std::string error;
  CHECK(LdapDirectory::create(c, error) == nullptr);
  CHECK(error.find("is empty: portcullis refuses unauthenticated binds") != std::string::npos);
  std::ofstream(path) << "\n\n";
  CHECK(LdapDirectory::create(c, error) == nullptr);
  c.bind_password_file = "/nonexistent/password";
  CHECK(LdapDirectory::create(c, error) == nullptr);
  CHECK(error.find("cannot read") != std::string::npos);
  std::ofstream(path) << "s3cret\n";
  c.bind_password_file = path;
  for (const mode_t mode : {0640, 0604, 0660, 0620}) { // group/other bits, even without read
    CAPTURE(mode);
    REQUIRE(::chmod(path, mode) == 0);
    error.clear();
    CHECK(LdapDirectory::create(c, error) == nullptr);
    CHECK(error.find("must not be readable or writable by group or others") != std::string::npos);
  }
  REQUIRE(::chmod(path, 0600) == 0);
  c.bind_by_cn = true;
  c.group_base_dn.clear();
  CHECK(LdapDirectory::create(c, error) == nullptr);
  CHECK(error.find("bind_by_cn") != std::string::npos);
  std::remove(path);
  CHECK(std::getenv("LDAPNOINIT") != nullptr);
}
