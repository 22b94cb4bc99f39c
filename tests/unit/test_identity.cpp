// Identity: certificate parsing (plugin/crypto) and the mapping from the daemon's request and the
// client certificate to a principal (plugin/identity), with real certificates made at test time.
#include "cert_support.hpp"
#include "plugin/crypto.hpp"
#include "plugin/identity.hpp"

#include <atomic>
#include <doctest/doctest.h>
#include <openssl/x509v3.h>
#include <stdexcept>

using namespace portcullis;

namespace {

// A self-signed Ed25519 certificate with the given subject (attribute name as OpenSSL's txt
// form: "CN", "UID", "OU", or a dotted OID) and subjectAltName entries.
struct CertSpec {
  std::vector<std::pair<std::string, std::string>> subject;
  std::vector<std::string> emails;
  std::vector<std::string> uris;
  bool duplicate_san = false;
  // A subject attribute whose value is a BIT STRING (not text): (OID, bytes).
  std::optional<std::pair<std::string, std::string>> binary_attribute;
};

std::string make_cert(const CertSpec &spec) {
  EVP_PKEY *key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  REQUIRE(key);
  X509 *x = X509_new();
  REQUIRE(x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME *name = X509_get_subject_name(x);
  for (const auto &[field, value] : spec.subject)
    REQUIRE(X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char *>(value.data()),
                                       static_cast<int>(value.size()), -1, 0) == 1);
  if (spec.binary_attribute)
    REQUIRE(X509_NAME_add_entry_by_txt(
                name, spec.binary_attribute->first.c_str(), V_ASN1_BIT_STRING,
                reinterpret_cast<const unsigned char *>(spec.binary_attribute->second.data()),
                static_cast<int>(spec.binary_attribute->second.size()), -1, 0) == 1);
  X509_set_issuer_name(x, name);
  std::string san;
  for (const auto &e : spec.emails)
    san += (san.empty() ? "" : ",") + std::string("email:") + e;
  for (const auto &u : spec.uris)
    san += (san.empty() ? "" : ",") + std::string("URI:") + u;
  if (!san.empty()) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    for (int i = 0; i < (spec.duplicate_san ? 2 : 1); ++i) {
      X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
      REQUIRE(ext);
      REQUIRE(X509_add_ext(x, ext, -1) == 1);
      X509_EXTENSION_free(ext);
    }
  }
  REQUIRE(X509_sign(x, key, nullptr) > 0);
  return test::pem_and_free(x, key);
}

std::string der_sha256(const std::string &pem) {
  BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509 *x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  REQUIRE(x);
  unsigned char *der = nullptr;
  int n = i2d_X509(x, &der);
  REQUIRE(n > 0);
  std::string out = sha256_hex(std::string(reinterpret_cast<char *>(der), n));
  OPENSSL_free(der);
  X509_free(x);
  BIO_free(bio);
  return out;
}

std::unique_ptr<FileDirectory> dir() {
  std::string err;
  auto d = FileDirectory::parse("users:\n  alice: [developers, devs2, developers]\n"
                                "  nobody:\n  alice@example.com: [mail-users]\n",
                                "users.yaml", err);
  REQUIRE_MESSAGE(d, err);
  return d;
}

AuthzRequest tls_pem(const std::string &user, const std::string &pem) {
  AuthzRequest r;
  r.method = "GET";
  r.uri = "/_ping";
  r.user = user;
  r.auth_method = "TLS";
  r.peer_certificates.push_back(pem);
  return r;
}
AuthzRequest tls(const std::string &user, const std::string &cert_cn) {
  return tls_pem(user, test::make_cert_pem(cert_cn));
}
// The request dockerd sends for a certificate: User is the leaf's CN.
AuthzRequest tls_spec(const std::string &user, const CertSpec &spec) {
  return tls_pem(user, make_cert(spec));
}

IdentityConfig source(const std::string &s, const std::string &strip = "",
                      const std::string &attr = "") {
  IdentityConfig c;
  c.source = s;
  c.strip = strip;
  c.dn_attribute = attr;
  return c;
}

bool has(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

// A directory that answers what the test tells it to, and counts lookups.
class ScriptedDirectory final : public Directory {
public:
  DirectoryResult answer;
  bool entry_required = false;
  bool throws = false;
  mutable std::atomic<int> calls{0};
  mutable std::string last_user;
  DirectoryResult groups_for(const std::string &user) const override {
    ++calls;
    last_user = user;
    if (throws) throw std::runtime_error("boom");
    return answer;
  }
  std::string describe() const override { return "scripted"; }
  bool requires_entry() const override { return entry_required; }
};

} // namespace

TEST_CASE("file directory") {
  auto d = dir();
  CHECK(d->user_count() == 3);
  auto a = d->groups_for("alice");
  CHECK(a.ok);
  CHECK(a.found);
  CHECK(a.groups == std::vector<std::string>{"developers", "devs2"});
  auto u = d->groups_for("mallory");
  CHECK(u.ok);
  CHECK_FALSE(u.found);
  CHECK(u.groups.empty());
  CHECK(d->groups_for("nobody").groups.empty());
  CHECK_FALSE(d->requires_entry());
}

TEST_CASE("file directory errors carry file:line:col") {
  std::string err;
  CHECK_FALSE(FileDirectory::parse("users:\n  alice: developers\n", "u.yaml", err));
  CHECK(err.rfind("u.yaml:2:", 0) == 0);
  CHECK_FALSE(FileDirectory::parse("userz: {}\n", "u.yaml", err));
  CHECK(has(err, "unknown key 'userz'"));
  CHECK_FALSE(FileDirectory::parse("users: [a, b]\n", "u.yaml", err));
  CHECK_FALSE(FileDirectory::parse("users:\n  alice: [a\n", "u.yaml", err));
  CHECK_FALSE(FileDirectory::parse("users:\n  alice: [a]\n  alice: [b]\n", "u.yaml", err));
}

TEST_CASE("file directory refuses a user named 'local'") {
  std::string err;
  CHECK_FALSE(FileDirectory::parse("users:\n  alice: [a]\n  local: [root-users]\n", "u.yaml", err));
  CHECK(err.rfind("u.yaml:3:3: ", 0) == 0);
  CHECK(has(err, "'local' is the unix-socket caller; bind it in the policy with users: [local]"));
  // Only the exact reserved name.
  CHECK(FileDirectory::parse("users:\n  Local: [a]\n  localuser: [b]\n", "u.yaml", err));
}

TEST_CASE("unix socket caller is 'local' and is not looked up in the directory") {
  ScriptedDirectory d;
  d.answer.ok = true;
  d.answer.found = true;
  d.answer.groups = {"root-users"};
  d.entry_required = true; // even an LDAP-like directory: "local" never reaches it
  AuthzRequest r;
  r.method = "GET";
  r.uri = "/_ping";
  for (const auto &cfg : {IdentityConfig{}, source("san_email", "@.*$")}) {
    auto id = identify(r, d, cfg);
    REQUIRE(id.principal);
    CHECK(id.principal->name == "local");
    CHECK(id.principal->auth_method == "none");
    CHECK(id.principal->groups.empty());
    CHECK(id.cert_fingerprint.empty());
  }
  CHECK(d.calls == 0);
}

TEST_CASE("source cn: TLS caller with a matching certificate") {
  auto d = dir();
  const std::string pem = test::make_cert_pem("alice");
  auto id = identify(tls_pem("alice", pem), *d);
  REQUIRE(id.principal);
  CHECK(id.principal->name == "alice");
  CHECK(id.principal->auth_method == "TLS");
  CHECK(id.principal->groups == std::vector<std::string>{"developers", "devs2"});
  CHECK(id.cert_fingerprint == der_sha256(pem));
  CHECK(id.mapped_from == "alice");
  REQUIRE(id.memberships.size() == 2);
  CHECK(id.memberships[0].key == "developers");
  CHECK(id.memberships[0].source == "file");

  // The certificate is optional with source cn (the daemon's User is the CN).
  AuthzRequest nocert = tls_pem("alice", pem);
  nocert.peer_certificates.clear();
  auto id2 = identify(nocert, *d);
  REQUIRE(id2.principal);
  CHECK(id2.principal->name == "alice");
  CHECK(id2.cert_fingerprint.empty());

  // A user the file directory does not know is identified, with no groups.
  auto id3 = identify(tls("mallory", "mallory"), *d);
  REQUIRE(id3.principal);
  CHECK(id3.principal->groups.empty());
}

TEST_CASE("source cn with strip") {
  auto d = dir();
  auto id = identify(tls("alice.corp", "alice.corp"), *d, source("cn", "\\.corp$"));
  REQUIRE(id.principal);
  CHECK(id.principal->name == "alice");
  CHECK(id.mapped_from == "alice.corp");
  CHECK(id.principal->groups.size() == 2);
  // Only the first match is removed.
  auto twice = identify(tls("a-x-b-x", "a-x-b-x"), *d, source("cn", "-x"));
  REQUIRE(twice.principal);
  CHECK(twice.principal->name == "a-b-x");
  // No match: unchanged.
  auto none = identify(tls("bob", "bob"), *d, source("cn", "\\.corp$"));
  REQUIRE(none.principal);
  CHECK(none.principal->name == "bob");
}

TEST_CASE("identity failures deny instead of falling back to 'local'") {
  auto d = dir();
  // A certificate whose CN is the reserved name must not become the unix-socket principal.
  auto reserved = identify(tls("local", "local"), *d);
  CHECK_FALSE(reserved.principal);
  CHECK(has(reserved.error, "reserved"));

  // TLS without a CN: dockerd omits User but still sends the method and the certificate.
  AuthzRequest nocn = tls("", "");
  nocn.user.reset();
  auto r1 = identify(nocn, *d);
  CHECK_FALSE(r1.principal);
  CHECK(has(r1.error, "no common name"));

  // Method without user and without certificates.
  AuthzRequest m;
  m.method = "GET";
  m.uri = "/";
  m.auth_method = "TLS";
  CHECK_FALSE(identify(m, *d).principal);

  // Certificates without a method or user.
  AuthzRequest certs_only = tls("alice", "alice");
  certs_only.user.reset();
  certs_only.auth_method.reset();
  CHECK_FALSE(identify(certs_only, *d).principal);

  // Unknown authentication method.
  AuthzRequest other = tls("alice", "alice");
  other.auth_method = "Basic";
  auto o = identify(other, *d);
  CHECK_FALSE(o.principal);
  CHECK(has(o.error, "unsupported authentication method 'Basic'"));

  // User field that disagrees with the certificate.
  auto mismatch = identify(tls("admin", "alice"), *d);
  CHECK_FALSE(mismatch.principal);
  CHECK(has(mismatch.error, "does not match"));

  // Garbage certificate.
  AuthzRequest garbage = tls("alice", "alice");
  garbage.peer_certificates[0] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  auto g = identify(garbage, *d);
  CHECK_FALSE(g.principal);
  CHECK(has(g.error, "could not be parsed"));
  AuthzRequest text = tls("alice", "alice");
  text.peer_certificates[0] = "not a certificate";
  CHECK_FALSE(identify(text, *d).principal);
  CHECK_FALSE(identify(text, *d, source("san_email")).principal);
}

TEST_CASE("a certificate with several common names is ambiguous") {
  auto d = dir();
  CertSpec spec;
  spec.subject = {{"CN", "alice"}, {"CN", "admin"}};
  auto info = parse_certificate_pem(make_cert(spec));
  REQUIRE(info);
  CHECK(info->subject_cn == "alice");
  CHECK(info->subject_cn_count == 2);
  // Go's crypto/x509 keeps the last CN, so dockerd would send User "admin".
  for (const char *user : {"alice", "admin"}) {
    auto id = identify(tls_spec(user, spec), *d);
    CHECK_FALSE(id.principal);
    CHECK(has(id.error, "several common names"));
  }
}

TEST_CASE("certificate parsing: subject, SANs, fingerprint") {
  CertSpec spec;
  spec.subject = {{"C", "DE"},    {"O", "Example"}, {"OU", "eng"},
                  {"UID", "al1"}, {"CN", "alice"},  {"1.3.6.1.4.1.99999.1", "custom"}};
  spec.emails = {"alice@example.com", "a@corp.example"};
  spec.uris = {"spiffe://corp/user/alice"};
  const std::string pem = make_cert(spec);
  auto info = parse_certificate_pem(pem);
  REQUIRE(info);
  CHECK(info->subject_cn == "alice");
  CHECK(info->subject_cn_count == 1);
  CHECK(info->san_emails == std::vector<std::string>{"alice@example.com", "a@corp.example"});
  CHECK(info->san_uris == std::vector<std::string>{"spiffe://corp/user/alice"});
  CHECK(info->sha256_fingerprint == der_sha256(pem));
  REQUIRE(info->subject.size() == 6);
  CHECK(info->subject[0].short_name == "C");
  CHECK(info->subject[0].value == "DE");
  CHECK(info->subject[2].short_name == "OU");
  CHECK(info->subject[2].long_name == "organizationalUnitName");
  CHECK(info->subject[2].oid == "2.5.4.11");
  CHECK(info->subject[3].short_name == "UID");
  CHECK(info->subject[3].long_name == "userId");
  CHECK(info->subject[3].oid == "0.9.2342.19200300.100.1.1");
  CHECK(info->subject[3].value == "al1");
  CHECK(info->subject[4].short_name == "CN");
  // An OID OpenSSL has no name for is named by its OID.
  CHECK(info->subject[5].short_name == "1.3.6.1.4.1.99999.1");
  CHECK(info->subject[5].long_name == "1.3.6.1.4.1.99999.1");
  CHECK(info->subject[5].value == "custom");
  for (const auto &a : info->subject)
    CHECK(a.decoded);

  // UTF-8 values survive.
  CertSpec utf8;
  utf8.subject = {{"CN", "Jos\xc3\xa9"}};
  auto u = parse_certificate_pem(make_cert(utf8));
  REQUIRE(u);
  CHECK(u->subject_cn == "Jos\xc3\xa9");
  CHECK(u->san_emails.empty());
  CHECK(u->san_uris.empty());

  CHECK(parse_certificate_pem(test::make_cert_pem("bob"))->subject_cn == "bob");
  CHECK_FALSE(parse_certificate_pem("not a cert").has_value());
  CHECK_FALSE(parse_certificate_pem("").has_value());
}

TEST_CASE("certificate parsing refuses what Go would refuse") {
  CertSpec dup;
  dup.subject = {{"CN", "alice"}};
  dup.emails = {"alice@example.com"};
  dup.duplicate_san = true;
  CHECK_FALSE(parse_certificate_pem(make_cert(dup)).has_value());

  CertSpec nonascii;
  nonascii.subject = {{"CN", "alice"}};
  nonascii.emails = {"al\xc3\xa9@example.com"};
  CHECK_FALSE(parse_certificate_pem(make_cert(nonascii)).has_value());
}

TEST_CASE("source san_email") {
  auto d = dir();
  CertSpec spec;
  spec.subject = {{"CN", "Alice Example"}};
  spec.emails = {"alice@example.com"};
  spec.uris = {"spiffe://corp/user/x"};
  auto id = identify(tls_spec("Alice Example", spec), *d, source("san_email"));
  REQUIRE_MESSAGE(id.principal, id.error);
  CHECK(id.principal->name == "alice@example.com");
  CHECK(id.principal->groups == std::vector<std::string>{"mail-users"});
  CHECK(id.cert_fingerprint.size() == 64);

  auto stripped =
      identify(tls_spec("Alice Example", spec), *d, source("san_email", "@example\\.com$"));
  REQUIRE(stripped.principal);
  CHECK(stripped.principal->name == "alice");
  CHECK(stripped.mapped_from == "alice@example.com");
  CHECK(stripped.principal->groups == std::vector<std::string>{"developers", "devs2"});

  // The certificate must still carry the daemon's User as its CN.
  auto mismatch = identify(tls_spec("Bob", spec), *d, source("san_email"));
  CHECK_FALSE(mismatch.principal);
  CHECK(has(mismatch.error, "does not match"));

  CertSpec none;
  none.subject = {{"CN", "alice"}};
  none.uris = {"spiffe://corp/user/alice"};
  auto n = identify(tls_spec("alice", none), *d, source("san_email"));
  CHECK_FALSE(n.principal);
  CHECK(has(n.error, "no SAN email"));

  CertSpec two = none;
  two.emails = {"alice@example.com", "root@example.com"};
  auto t = identify(tls_spec("alice", two), *d, source("san_email"));
  CHECK_FALSE(t.principal);
  CHECK(has(t.error, "several SAN emails: ambiguous"));
}

TEST_CASE("source san_uri") {
  auto d = dir();
  CertSpec spec;
  spec.subject = {{"CN", "svc"}};
  spec.uris = {"spiffe://corp/user/alice"};
  spec.emails = {"ops@example.com"};
  auto id = identify(tls_spec("svc", spec), *d, source("san_uri", "^spiffe://corp/user/"));
  REQUIRE_MESSAGE(id.principal, id.error);
  CHECK(id.principal->name == "alice");
  CHECK(id.principal->groups.size() == 2);

  auto raw = identify(tls_spec("svc", spec), *d, source("san_uri"));
  REQUIRE(raw.principal);
  CHECK(raw.principal->name == "spiffe://corp/user/alice");

  CertSpec none;
  none.subject = {{"CN", "svc"}};
  none.emails = {"ops@example.com"};
  auto n = identify(tls_spec("svc", none), *d, source("san_uri"));
  CHECK_FALSE(n.principal);
  CHECK(has(n.error, "no SAN URI"));

  CertSpec two = none;
  two.uris = {"spiffe://corp/user/alice", "spiffe://corp/user/root"};
  auto t = identify(tls_spec("svc", two), *d, source("san_uri"));
  CHECK_FALSE(t.principal);
  CHECK(has(t.error, "several SAN URIs: ambiguous"));
}

TEST_CASE("source dn_attribute: short name, long name and OID, any case") {
  auto d = dir();
  CertSpec spec;
  spec.subject = {{"O", "Example"}, {"UID", "alice"}, {"CN", "Alice Example"}};
  for (const char *attr : {"UID", "uid", "userId", "USERID", "0.9.2342.19200300.100.1.1"}) {
    CAPTURE(attr);
    auto id = identify(tls_spec("Alice Example", spec), *d, source("dn_attribute", "", attr));
    REQUIRE_MESSAGE(id.principal, id.error);
    CHECK(id.principal->name == "alice");
    CHECK(id.principal->groups.size() == 2);
  }
  // CN can be chosen as an attribute too, and an unnamed OID by its dotted form.
  auto cn = identify(tls_spec("Alice Example", spec), *d, source("dn_attribute", "", "commonName"));
  REQUIRE(cn.principal);
  CHECK(cn.principal->name == "Alice Example");
  CertSpec custom;
  custom.subject = {{"CN", "x"}, {"1.3.6.1.4.1.99999.7", "alice"}};
  auto c = identify(tls_spec("x", custom), *d, source("dn_attribute", "", "1.3.6.1.4.1.99999.7"));
  REQUIRE(c.principal);
  CHECK(c.principal->name == "alice");

  // Missing.
  auto missing = identify(tls_spec("Alice Example", spec), *d, source("dn_attribute", "", "OU"));
  CHECK_FALSE(missing.principal);
  CHECK(has(missing.error, "no 'OU' attribute"));
  // Several.
  CertSpec two;
  two.subject = {{"OU", "eng"}, {"OU", "admins"}, {"CN", "alice"}};
  auto t = identify(tls_spec("alice", two), *d, source("dn_attribute", "", "ou"));
  CHECK_FALSE(t.principal);
  CHECK(has(t.error, "several 'ou' attributes: ambiguous"));
  // Not text.
  CertSpec binary;
  binary.subject = {{"CN", "alice"}};
  binary.binary_attribute = std::make_pair(std::string("1.3.6.1.4.1.99999.9"), std::string("al"));
  auto info = parse_certificate_pem(make_cert(binary));
  REQUIRE(info);
  REQUIRE(info->subject.size() == 2);
  CHECK_FALSE(info->subject[1].decoded);
  auto b =
      identify(tls_spec("alice", binary), *d, source("dn_attribute", "", "1.3.6.1.4.1.99999.9"));
  CHECK_FALSE(b.principal);
  CHECK(has(b.error, "not a text value"));
  // The undecodable attribute does not matter when another one is used.
  auto by_cn = identify(tls_spec("alice", binary), *d, source("dn_attribute", "", "CN"));
  REQUIRE(by_cn.principal);
  CHECK(by_cn.principal->name == "alice");
}

TEST_CASE("certificate sources need the certificate") {
  auto d = dir();
  for (const auto &cfg :
       {source("san_email"), source("san_uri"), source("dn_attribute", "", "UID")}) {
    AuthzRequest r = tls("alice", "alice");
    r.peer_certificates.clear();
    auto id = identify(r, *d, cfg);
    CHECK_FALSE(id.principal);
    CHECK(id.error == "identity source " + cfg.source +
                          " needs the client certificate, and the daemon did not send one");
  }
}

TEST_CASE("the mapped name must be a usable principal name") {
  auto d = dir();
  const auto email = [](const std::string &e) {
    CertSpec s;
    s.subject = {{"CN", "c"}};
    s.emails = {e};
    return tls_spec("c", s);
  };
  const auto uid = [](const std::string &v) {
    CertSpec s;
    s.subject = {{"CN", "c"}, {"UID", v}};
    return tls_spec("c", s);
  };
  const auto uid_cfg = source("dn_attribute", "", "UID");

  // Reserved after strip.
  auto local = identify(email("local@example.com"), *d, source("san_email", "@.*$"));
  CHECK_FALSE(local.principal);
  CHECK(has(local.error, "reserved"));
  auto local_uid = identify(uid("local"), *d, uid_cfg);
  CHECK_FALSE(local_uid.principal);
  CHECK(has(local_uid.error, "reserved"));
  // Empty after strip.
  auto empty = identify(email("alice@example.com"), *d, source("san_email", "^.*$"));
  CHECK_FALSE(empty.principal);
  CHECK(has(empty.error, "empty"));
  // Control characters, in a DN value and in the daemon's User (source cn, no certificate).
  for (const std::string &bad :
       std::vector<std::string>{"al\nice", std::string("al\0ice", 6), "al\x7f", "al\xc2\x85x",
                                "al\xe2\x80\xaeice", "al\xe2\x80\x8bice"}) {
    CAPTURE(bad);
    auto r = identify(uid(bad), *d, uid_cfg);
    CHECK_FALSE(r.principal);
    CHECK(has(r.error, "control or invisible"));
    AuthzRequest nocert = tls("x", "x");
    nocert.peer_certificates.clear();
    nocert.user = bad;
    CHECK_FALSE(identify(nocert, *d).principal);
  }
  auto ctl_email = identify(email("al\x01@example.com"), *d, source("san_email"));
  CHECK_FALSE(ctl_email.principal);
  // Invalid UTF-8 in the daemon's User.
  AuthzRequest invalid = tls("x", "x");
  invalid.peer_certificates.clear();
  for (const std::string &bad :
       std::vector<std::string>{"al\xff", "\xc0\xae", "\xed\xa0\x80", "a\xe2\x82"}) {
    invalid.user = bad;
    auto r = identify(invalid, *d);
    CHECK_FALSE(r.principal);
    CHECK(has(r.error, "not valid UTF-8"));
  }
  // UTF-8 letters are fine.
  auto jose = identify(uid("Jos\xc3\xa9"), *d, uid_cfg);
  REQUIRE(jose.principal);
  CHECK(jose.principal->name == "Jos\xc3\xa9");

  // Length: at most 256 bytes after strip; raw values over 1024 bytes are refused outright.
  const std::string n256(256, 'a'), n257(257, 'a');
  CHECK(identify(uid(n256), *d, uid_cfg).principal);
  auto long_name = identify(uid(n257), *d, uid_cfg);
  CHECK_FALSE(long_name.principal);
  CHECK(has(long_name.error, "longer than 256 bytes"));
  auto shortened =
      identify(uid(std::string(100, 'x') + n256), *d, source("dn_attribute", "^x+", "UID"));
  REQUIRE(shortened.principal);
  CHECK(shortened.principal->name == n256);
  auto huge = identify(uid(std::string(1025, 'x')), *d, source("dn_attribute", "^x+", "UID"));
  CHECK_FALSE(huge.principal);
  CHECK(has(huge.error, "too long"));
}

TEST_CASE("a strip pattern that cannot be used is an error, not an exception") {
  auto d = dir();
  auto id = identify(tls("alice", "alice"), *d, source("cn", "("));
  CHECK_FALSE(id.principal);
  CHECK(has(id.error, "identity.strip"));
  // The next valid pattern on the same thread still works.
  auto ok = identify(tls("alice.x", "alice.x"), *d, source("cn", "\\.x$"));
  REQUIRE(ok.principal);
  CHECK(ok.principal->name == "alice");
  // An unknown source (configuration bypassed) is refused.
  auto unknown = identify(tls("alice", "alice"), *d, source("san_dns"));
  CHECK_FALSE(unknown.principal);
  CHECK(has(unknown.error, "unknown identity source"));
}

TEST_CASE("directory outcomes") {
  ScriptedDirectory d;
  d.answer.ok = true;
  d.answer.found = true;
  d.answer.groups = {"cn=devs,ou=groups,dc=example,dc=com"};
  d.answer.user_dn = "uid=alice,ou=people,dc=example,dc=com";
  d.answer.memberships = {{"cn=devs,ou=groups,dc=example,dc=com",
                           "cn=Devs,ou=Groups,dc=example,dc=com",
                           {"cn=team,ou=groups,dc=example,dc=com"},
                           "member"}};
  d.answer.cache = "hit";
  d.entry_required = true;

  SUBCASE("found: details carried for the audit log") {
    auto id = identify(tls("alice", "alice"), d);
    REQUIRE(id.principal);
    CHECK(d.last_user == "alice");
    CHECK(id.principal->groups == d.answer.groups);
    CHECK(id.user_dn == "uid=alice,ou=people,dc=example,dc=com");
    CHECK(id.directory_cache == "hit");
    REQUIRE(id.memberships.size() == 1);
    CHECK(id.memberships[0].via.size() == 1);
    CHECK(id.memberships[0].source == "member");
  }
  SUBCASE("the stripped name is what is looked up") {
    auto id = identify(tls("alice@corp", "alice@corp"), d, source("cn", "@corp$"));
    REQUIRE(id.principal);
    CHECK(d.last_user == "alice");
  }
  SUBCASE("unknown user, directory that requires an entry: denied") {
    d.answer = DirectoryResult{};
    d.answer.ok = true;
    d.answer.found = false;
    d.answer.cache = "miss";
    auto id = identify(tls("alice", "alice"), d);
    CHECK_FALSE(id.principal);
    CHECK(id.error == "user 'alice' is not in the directory");
    CHECK(id.directory_cache == "miss");
    // Without requires_entry the same answer identifies the user with no groups.
    d.entry_required = false;
    auto id2 = identify(tls("alice", "alice"), d);
    REQUIRE(id2.principal);
    CHECK(id2.principal->groups.empty());
  }
  SUBCASE("unreachable directory") {
    d.answer = DirectoryResult{};
    d.answer.ok = false;
    d.answer.unreachable = true;
    d.answer.error = "ldaps://ldap1:636: connect timed out";
    auto id = identify(tls("alice", "alice"), d);
    CHECK_FALSE(id.principal);
    CHECK(has(id.error, "directory unavailable: ldaps://ldap1:636: connect timed out"));
    CHECK(has(id.error, "unreachable"));
    // A message that already says so is kept as it is.
    d.answer.error = "directory unreachable (ldaps://ldap1:636: timeout); no cached entry";
    auto id2 = identify(tls("alice", "alice"), d);
    CHECK(id2.error == "directory unavailable: " + d.answer.error);
  }
  SUBCASE("failed directory") {
    d.answer = DirectoryResult{};
    d.answer.ok = false;
    d.answer.error = "two entries for uid=alice";
    auto id = identify(tls("alice", "alice"), d);
    CHECK_FALSE(id.principal);
    CHECK(id.error == "directory lookup failed: two entries for uid=alice");
  }
  SUBCASE("a directory that throws is an error, not a crash") {
    d.throws = true;
    auto id = identify(tls("alice", "alice"), d);
    CHECK_FALSE(id.principal);
    CHECK(has(id.error, "internal error"));
  }
}

TEST_CASE("the certificate cache returns the same answer for the same PEM") {
  auto d = dir();
  CertSpec spec;
  spec.subject = {{"CN", "c"}, {"UID", "alice"}};
  spec.emails = {"bob@example.com"};
  const auto req = tls_spec("c", spec);
  for (int i = 0; i < 3; ++i) {
    auto a = identify(req, *d, source("dn_attribute", "", "UID"));
    REQUIRE(a.principal);
    CHECK(a.principal->name == "alice");
    auto b = identify(req, *d, source("san_email", "@.*"));
    REQUIRE(b.principal);
    CHECK(b.principal->name == "bob");
  }
}
