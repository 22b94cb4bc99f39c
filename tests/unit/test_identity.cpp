#include "cert_support.hpp"
#include "plugin/crypto.hpp"
#include "plugin/identity.hpp"

#include <doctest/doctest.h>

using namespace portcullis;

namespace {
std::unique_ptr<FileDirectory> dir() {
  std::string err;
  auto d = FileDirectory::parse(
      "users:\n  alice: [developers, devs2, developers]\n  local: [root-users]\n"
      "  nobody:\n",
      "users.yaml", err);
  REQUIRE_MESSAGE(d, err);
  return d;
}
AuthzRequest tls(const std::string &user, const std::string &cert_cn) {
  AuthzRequest r;
  r.method = "GET";
  r.uri = "/_ping";
  r.user = user;
  r.auth_method = "TLS";
  r.peer_certificates.push_back(test::make_cert_pem(cert_cn));
  return r;
}
} // namespace

TEST_CASE("file directory") {
  auto d = dir();
  CHECK(d->user_count() == 3);
  auto a = d->groups_for("alice");
  CHECK(a.ok);
  CHECK(a.groups == std::vector<std::string>{"developers", "devs2"});
  auto u = d->groups_for("mallory");
  CHECK(u.ok);
  CHECK(u.groups.empty());
  CHECK(d->groups_for("nobody").groups.empty());
}

TEST_CASE("file directory errors carry file:line:col") {
  std::string err;
  CHECK_FALSE(FileDirectory::parse("users:\n  alice: developers\n", "u.yaml", err));
  CHECK(err.rfind("u.yaml:2:", 0) == 0);
  CHECK_FALSE(FileDirectory::parse("userz: {}\n", "u.yaml", err));
  CHECK(err.find("unknown key 'userz'") != std::string::npos);
  CHECK_FALSE(FileDirectory::parse("users: [a, b]\n", "u.yaml", err));
  CHECK_FALSE(FileDirectory::parse("users:\n  alice: [a\n", "u.yaml", err));
  CHECK_FALSE(FileDirectory::parse("users:\n  alice: [a]\n  alice: [b]\n", "u.yaml", err));
}

TEST_CASE("unix socket caller is 'local'") {
  auto d = dir();
  AuthzRequest r;
  r.method = "GET";
  r.uri = "/_ping";
  auto id = identify(r, *d);
  REQUIRE(id.principal);
  CHECK(id.principal->name == "local");
  CHECK(id.principal->auth_method == "none");
  CHECK(id.principal->groups == std::vector<std::string>{"root-users"});
}

TEST_CASE("TLS caller with a matching certificate") {
  auto d = dir();
  auto id = identify(tls("alice", "alice"), *d);
  REQUIRE(id.principal);
  CHECK(id.principal->name == "alice");
  CHECK(id.principal->auth_method == "TLS");
  CHECK(id.principal->groups.size() == 2);
  CHECK(id.cert_fingerprint.size() == 64);
}

TEST_CASE("identity failures deny instead of falling back to 'local'") {
  auto d = dir();
  // A certificate whose CN is the reserved name must not become the unix-socket principal.
  auto reserved = identify(tls("local", "local"), *d);
  CHECK_FALSE(reserved.principal);
  CHECK(reserved.error.find("reserved") != std::string::npos);

  // TLS without a CN: dockerd omits User but still sends the method and the certificate.
  AuthzRequest nocn = tls("", "");
  nocn.user.reset();
  auto r1 = identify(nocn, *d);
  CHECK_FALSE(r1.principal);
  CHECK(r1.error.find("no common name") != std::string::npos);

  // Method without user and without certificates.
  AuthzRequest m;
  m.method = "GET";
  m.uri = "/";
  m.auth_method = "TLS";
  CHECK_FALSE(identify(m, *d).principal);

  // Unknown authentication method.
  AuthzRequest other = tls("alice", "alice");
  other.auth_method = "Basic";
  CHECK_FALSE(identify(other, *d).principal);

  // User field that disagrees with the certificate.
  auto mismatch = identify(tls("admin", "alice"), *d);
  CHECK_FALSE(mismatch.principal);

  // Garbage certificate.
  AuthzRequest garbage = tls("alice", "alice");
  garbage.peer_certificates[0] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  CHECK_FALSE(identify(garbage, *d).principal);
}

TEST_CASE("certificate parsing") {
  auto info = parse_certificate_pem(test::make_cert_pem("bob"));
  REQUIRE(info);
  CHECK(info->subject_cn == "bob");
  CHECK_FALSE(parse_certificate_pem("not a cert").has_value());
}
