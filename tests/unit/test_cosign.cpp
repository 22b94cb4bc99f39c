// cosign legacy signatures: a real signature made by cosign (the Dangerzone image, from
// ../shared/research/image-signing.md §1.2, checked there with OpenSSL) verifies; any change
// fails. Keys of the other accepted types are made here with OpenSSL.
#include "plugin/cosign.hpp"
#include "plugin/crypto.hpp"

#include <doctest/doctest.h>
#include <memory>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string>

using namespace portcullis;

namespace {

const char *kKey = "-----BEGIN PUBLIC KEY-----\n"
                   "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3CUlnwh825Z5wQAJV6TekEi6bCK2\n"
                   "YvAg7A+aeerM5hvc4CCCJFBae5AjnsjGHv4V/3xzssck6e51W+b0jU4qVw==\n"
                   "-----END PUBLIC KEY-----\n";
const std::string kPayload =
    R"({"critical":{"identity":{"docker-reference":"ghcr.io/freedomofpress/dangerzone/v1"},)"
    R"("image":{"docker-manifest-digest":"sha256:7396780b5862cf8b37527854a2a2331e5c746b6a71aa1f)"
    R"(424258c3bfaf3a1bd7"},"type":"cosign container image signature"},"optional":null})";
const char *kSignature = "MEQCIAQScnT03MVfmxjYyW5qAmvQ6TSoukPuw0HmSVlMBwYEAiAzGb76cvDb4CHJ+H6tD00bW"
                         "1Sh1CK6opaRmI2ist4p2A==";
const char *kDigest = "sha256:7396780b5862cf8b37527854a2a2331e5c746b6a71aa1f424258c3bfaf3a1bd7";
const char *kRepo = "ghcr.io/freedomofpress/dangerzone/v1";

PublicKey key(const std::string &pem) {
  std::string err;
  auto k = PublicKey::from_pem(pem, &err);
  REQUIRE_MESSAGE(k, err);
  return *k;
}

// A fresh key pair: the public key's PEM and a signer.
struct TestKey {
  std::shared_ptr<EVP_PKEY> pkey;
  std::string public_pem() const {
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pkey.get());
    char *data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    return pem;
  }
  std::string sign(const std::string &data, const EVP_MD *md) const {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    REQUIRE(EVP_DigestSignInit(ctx, nullptr, md, nullptr, pkey.get()) == 1);
    std::size_t len = 0;
    REQUIRE(EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char *>(data.data()),
                           data.size()) == 1);
    std::string sig(len, '\0');
    REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char *>(sig.data()), &len,
                           reinterpret_cast<const unsigned char *>(data.data()), data.size()) == 1);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    return sig;
  }
};

TestKey make_key(const char *type, const char *param = nullptr, std::size_t bits = 0) {
  EVP_PKEY *k = nullptr;
  if (param)
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, type, param);
  else if (bits)
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, type, bits);
  else
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  REQUIRE(k);
  return TestKey{std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free)};
}

std::string payload_for(const std::string &repo, const std::string &digest) {
  return R"({"critical":{"identity":{"docker-reference":")" + repo +
         R"("},"image":{"docker-manifest-digest":")" + digest +
         R"("},"type":"cosign container image signature"},"optional":null})";
}

} // namespace

TEST_CASE("cosign: a real cosign signature verifies, by digest and repository") {
  CHECK(kPayload.size() == 252);
  CHECK("sha256:" + sha256_hex(kPayload) ==
        "sha256:88b8a2ac5b829f47bd25a5a4d9c2ccb0fccff7f53a17477b6d9b5680436aa80f");
  PublicKey k = key(kKey);
  CHECK(k.algorithm() == "ecdsa-p256");
  CHECK(k.fingerprint().rfind("sha256:", 0) == 0);
  auto r = verify_simple_signing(k, kPayload, kSignature, kDigest, std::string_view(kRepo));
  CHECK_MESSAGE(r.ok, r.reason);
  REQUIRE(r.payload);
  CHECK(r.payload->docker_reference == kRepo);
  CHECK(r.payload->manifest_digest == kDigest);
}

TEST_CASE("cosign: one flipped byte anywhere fails") {
  PublicKey k = key(kKey);
  for (std::size_t i = 0; i < kPayload.size(); i += 7) {
    std::string p = kPayload;
    p[i] = static_cast<char>(p[i] ^ 0x01);
    CAPTURE(i);
    CHECK_FALSE(verify_simple_signing(k, p, kSignature, kDigest).ok);
  }
  auto sig = *base64_decode(kSignature);
  for (std::size_t i = 0; i < sig.size(); ++i) {
    std::string s = sig;
    s[i] = static_cast<char>(s[i] ^ 0x80);
    CAPTURE(i);
    auto r = verify_simple_signing(k, kPayload, base64_encode(s), kDigest);
    CHECK_FALSE(r.ok);
  }
  CHECK_FALSE(verify_simple_signing(k, kPayload, "not base64!", kDigest).ok);
  CHECK_FALSE(verify_simple_signing(k, kPayload, "", kDigest).ok);
}

TEST_CASE("cosign: the payload must name exactly the image's digest and repository") {
  PublicKey k = key(kKey);
  auto other = verify_simple_signing(
      k, kPayload, kSignature,
      "sha256:0000000000000000000000000000000000000000000000000000000000000000");
  CHECK_FALSE(other.ok);
  CHECK_MESSAGE(other.reason.find("is for digest") != std::string::npos, other.reason);
  // Upper-case hex is another string: the comparison is exact.
  CHECK_FALSE(verify_simple_signing(
                  k, kPayload, kSignature,
                  "sha256:7396780B5862CF8B37527854A2A2331E5C746B6A71AA1F424258C3BFAF3A1BD7")
                  .ok);
  auto repo = verify_simple_signing(k, kPayload, kSignature, kDigest,
                                    std::string_view("ghcr.io/freedomofpress/other"));
  CHECK_FALSE(repo.ok);
  CHECK_MESSAGE(repo.reason.find("names repository") != std::string::npos, repo.reason);
}

TEST_CASE("cosign: another key does not verify, whatever its type") {
  PublicKey mine = key(make_key("EC", "P-256").public_pem());
  auto r = verify_simple_signing(mine, kPayload, kSignature, kDigest);
  CHECK_FALSE(r.ok);
  CHECK_MESSAGE(r.reason.find(mine.fingerprint()) != std::string::npos, r.reason);
}

TEST_CASE("cosign: P-384, Ed25519 and RSA keys sign and verify; weak or odd keys are refused") {
  const std::string digest = "sha256:" + std::string(64, 'a');
  const std::string p = payload_for("registry.example.internal/team/app", digest);
  struct Case {
    TestKey k;
    const EVP_MD *md;
    const char *algorithm;
  } cases[] = {{make_key("EC", "P-384"), EVP_sha384(), "ecdsa-p384"},
               {make_key("ED25519"), nullptr, "ed25519"},
               {make_key("RSA", nullptr, 2048), EVP_sha256(), "rsa-2048"}};
  for (auto &c : cases) {
    CAPTURE(c.algorithm);
    PublicKey k = key(c.k.public_pem());
    CHECK(k.algorithm() == c.algorithm);
    const std::string sig = c.k.sign(p, c.md);
    CHECK(verify_simple_signing(k, p, base64_encode(sig), digest).ok);
    CHECK_FALSE(verify_simple_signing(k, p + " ", base64_encode(sig), digest).ok);
  }
  std::string err;
  CHECK_FALSE(PublicKey::from_pem(make_key("RSA", nullptr, 1024).public_pem(), &err));
  CHECK_MESSAGE(err.find("2048") != std::string::npos, err);
  CHECK_FALSE(PublicKey::from_pem(make_key("EC", "secp256k1").public_pem(), &err));
  CHECK_FALSE(PublicKey::from_pem("not a key", &err));
  CHECK_FALSE(PublicKey::from_pem(std::string(kKey) + kKey, &err)); // two keys: ambiguous
  CHECK_MESSAGE(err.find("more than one") != std::string::npos, err);
}

TEST_CASE("cosign: simple-signing payloads are parsed strictly") {
  const std::string d = "sha256:" + std::string(64, 'b');
  std::string err;
  auto ok = parse_simple_signing(payload_for("r.example/a", d), &err);
  REQUIRE_MESSAGE(ok, err);
  CHECK(ok->docker_reference == "r.example/a");
  const std::string bad[] = {
      "",
      "[]",
      R"({"critical":{}})",
      R"({"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":")" +
          d + R"("},"type":"atomic container signature"}})",
      R"({"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":")" + d +
          R"("},"type":"cosign container image signature"}})",
      R"({"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":)"
      R"("sha256:abc"},"type":"cosign container image signature"}})",
      payload_for("r/a", d) + "x",                           // trailing data
      R"({"critical":1,)" + payload_for("r/a", d).substr(1), // duplicate key
      std::string(70 * 1024, ' ') + payload_for("r/a", d),   // too large
  };
  for (const auto &b : bad) {
    CAPTURE(b.substr(0, 120));
    CHECK_FALSE(parse_simple_signing(b, &err));
  }
}
