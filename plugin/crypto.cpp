#include "plugin/crypto.hpp"

#include <array>
#include <memory>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdexcept>
#include <vector>

namespace portcullis {

namespace {
std::string to_hex(const unsigned char *p, std::size_t n) {
  static const char *digits = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    s[2 * i] = digits[p[i] >> 4];
    s[2 * i + 1] = digits[p[i] & 0xf];
  }
  return s;
}
// 1 for the 64 characters of the standard alphabet, 0 for every other byte.
constexpr std::array<unsigned char, 256> kBase64Alphabet = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 'A'; c <= 'Z'; ++c)
    t[static_cast<std::size_t>(c)] = 1;
  for (int c = 'a'; c <= 'z'; ++c)
    t[static_cast<std::size_t>(c)] = 1;
  for (int c = '0'; c <= '9'; ++c)
    t[static_cast<std::size_t>(c)] = 1;
  t['+'] = 1;
  t['/'] = 1;
  return t;
}();
} // namespace

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  if (in.empty()) return std::string();
  if (in.size() > static_cast<std::size_t>(INT32_MAX)) return std::nullopt;
  std::size_t pad = 0;
  if (in.back() == '=') pad = in[in.size() - 2] == '=' ? 2 : 1;
  // EVP_DecodeBlock skips leading/trailing whitespace and accepts '=' in places Go does not, so
  // every character before the padding must be in the alphabet. One pass, no branch per byte.
  unsigned char all = 1;
  for (std::size_t i = 0; i < in.size() - pad; ++i)
    all &= kBase64Alphabet[static_cast<unsigned char>(in[i])];
  if (!all) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0'); // EVP_DecodeBlock writes exactly 3 bytes per 4
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                reinterpret_cast<const unsigned char *>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0 || static_cast<std::size_t>(n) != out.size()) return std::nullopt;
  out.resize(out.size() - pad);
  return out;
}

std::string base64_encode(std::string_view in) {
  std::vector<unsigned char> out(4 * ((in.size() + 2) / 3) + 1);
  int n = EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char *>(in.data()),
                          static_cast<int>(in.size()));
  return std::string(reinterpret_cast<const char *>(out.data()), static_cast<std::size_t>(n));
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("EVP_Digest failed");
  return to_hex(md, len);
}

std::string random_hex(std::size_t n) {
  std::vector<unsigned char> buf(n);
  if (RAND_bytes(buf.data(), static_cast<int>(n)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return to_hex(buf.data(), n);
}

namespace {
std::string oid_text(const ASN1_OBJECT *obj) {
  char buf[128];
  int n = OBJ_obj2txt(buf, sizeof buf, obj, 1);
  if (n <= 0) return std::string();
  if (static_cast<std::size_t>(n) < sizeof buf)
    return std::string(buf, static_cast<std::size_t>(n));
  std::string big(static_cast<std::size_t>(n) + 1, '\0');
  n = OBJ_obj2txt(big.data(), static_cast<int>(big.size()), obj, 1);
  if (n <= 0) return std::string();
  big.resize(static_cast<std::size_t>(n));
  return big;
}

std::optional<std::string> asn1_utf8(const ASN1_STRING *s) {
  unsigned char *utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, s);
  if (len < 0) return std::nullopt;
  std::string out(reinterpret_cast<char *>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

// An IA5String as Go accepts it in a SAN (every byte ASCII). nullopt otherwise.
std::optional<std::string> ia5(const ASN1_IA5STRING *s) {
  if (!s) return std::nullopt;
  const unsigned char *p = ASN1_STRING_get0_data(s);
  const int n = ASN1_STRING_length(s);
  if (n < 0 || (n > 0 && !p)) return std::nullopt;
  for (int i = 0; i < n; ++i)
    if (p[i] >= 0x80) return std::nullopt;
  return std::string(reinterpret_cast<const char *>(p), static_cast<std::size_t>(n));
}
} // namespace

std::optional<CertificateInfo> parse_certificate_pem(std::string_view pem) {
  if (pem.size() > (1u << 20)) return std::nullopt;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return std::nullopt;
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) return std::nullopt;
  CertificateInfo info;

  // Subject DN, attribute by attribute, in order (multi-valued RDNs flattened).
  if (const X509_NAME *subject = X509_get_subject_name(cert.get())) {
    const int n = X509_NAME_entry_count(subject);
    for (int i = 0; i < n; ++i) {
      const X509_NAME_ENTRY *e = X509_NAME_get_entry(subject, i);
      if (!e) return std::nullopt;
      const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
      if (!obj) return std::nullopt;
      DnAttribute a;
      a.oid = oid_text(obj);
      if (a.oid.empty()) return std::nullopt;
      const int nid = OBJ_obj2nid(obj);
      const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : nullptr;
      const char *ln = nid != NID_undef ? OBJ_nid2ln(nid) : nullptr;
      a.short_name = sn ? sn : a.oid;
      a.long_name = ln ? ln : a.oid;
      if (auto v = asn1_utf8(X509_NAME_ENTRY_get_data(e))) {
        a.value = std::move(*v);
        a.decoded = true;
      }
      if (nid == NID_commonName) {
        if (!a.decoded) return std::nullopt;
        if (info.subject_cn_count++ == 0) info.subject_cn = a.value;
      }
      info.subject.push_back(std::move(a));
    }
  }

  // subjectAltName: rfc822Name and URI values. A duplicated extension (crit == -2) or one that
  // does not decode makes the certificate unusable, as it is for Go.
  int crit = -1;
  std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)> sans(
      static_cast<GENERAL_NAMES *>(
          X509_get_ext_d2i(cert.get(), NID_subject_alt_name, &crit, nullptr)),
      &GENERAL_NAMES_free);
  if (!sans && crit != -1) return std::nullopt;
  if (sans) {
    const int n = sk_GENERAL_NAME_num(sans.get());
    for (int i = 0; i < n; ++i) {
      const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans.get(), i);
      if (!g) return std::nullopt;
      if (g->type == GEN_EMAIL || g->type == GEN_URI) {
        auto v = ia5(g->type == GEN_EMAIL ? g->d.rfc822Name : g->d.uniformResourceIdentifier);
        if (!v) return std::nullopt;
        (g->type == GEN_EMAIL ? info.san_emails : info.san_uris).push_back(std::move(*v));
      }
    }
  }

  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &mdlen) != 1) return std::nullopt;
  info.sha256_fingerprint = to_hex(md, mdlen);
  return info;
}

} // namespace portcullis

namespace portcullis {

std::optional<PublicKey> PublicKey::from_pem(std::string_view pem, std::string *error) {
  auto fail = [&](const char *why) -> std::optional<PublicKey> {
    if (error) *error = why;
    return std::nullopt;
  };
  if (pem.size() > 64 * 1024) return fail("the key file is larger than 64 KiB");
  if (pem.find("-----BEGIN PUBLIC KEY-----") == std::string_view::npos)
    return fail("not a PEM public key (expected \"-----BEGIN PUBLIC KEY-----\")");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return fail("out of memory");
  EVP_PKEY *raw = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (!raw) return fail("the PEM public key cannot be parsed");
  PublicKey k;
  k.key_ = std::shared_ptr<::evp_pkey_st>(raw, EVP_PKEY_free);
  if (EVP_PKEY *second = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr)) {
    EVP_PKEY_free(second);
    return fail("the file holds more than one public key");
  }
  ERR_clear_error(); // the failed read of a second key leaves an error on this thread's queue
  switch (EVP_PKEY_get_base_id(raw)) {
  case EVP_PKEY_EC: {
    char group[64] = {0};
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(raw, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1)
      return fail("the EC key has no named curve");
    const std::string g(group, len);
    if (g == "prime256v1" || g == "P-256")
      k.algorithm_ = "ecdsa-p256";
    else if (g == "secp384r1" || g == "P-384")
      k.algorithm_ = "ecdsa-p384";
    else
      return fail("EC keys must be on P-256 or P-384");
    break;
  }
  case EVP_PKEY_ED25519:
    k.algorithm_ = "ed25519";
    break;
  case EVP_PKEY_RSA: {
    const int bits = EVP_PKEY_get_bits(raw);
    if (bits < 2048) return fail("RSA keys must have at least 2048 bits");
    k.algorithm_ = "rsa-" + std::to_string(bits);
    break;
  }
  default:
    return fail("unsupported key type (expected ECDSA P-256/P-384, Ed25519 or RSA)");
  }
  unsigned char *der = nullptr;
  const int der_len = i2d_PUBKEY(raw, &der);
  if (der_len <= 0) return fail("the key cannot be encoded");
  k.fingerprint_ = "sha256:" + sha256_hex(std::string_view(reinterpret_cast<char *>(der),
                                                           static_cast<std::size_t>(der_len)));
  OPENSSL_free(der);
  return k;
}

bool PublicKey::verify(std::string_view data, std::string_view signature) const {
  if (!key_ || signature.empty() || signature.size() > 4096) return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx) return false;
  const EVP_MD *md = nullptr; // Ed25519 hashes internally
  if (algorithm_ == "ecdsa-p384")
    md = EVP_sha384();
  else if (algorithm_ != "ed25519")
    md = EVP_sha256();
  EVP_PKEY_CTX *pctx = nullptr;
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key_.get()) != 1) return false;
  if (algorithm_.rfind("rsa-", 0) == 0 &&
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
    return false;
  const int r = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char *>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char *>(data.data()), data.size());
  return r == 1;
}

std::optional<PrivateKey> PrivateKey::from_pem(std::string_view pem, std::string *error) {
  auto fail = [&](std::string why) -> std::optional<PrivateKey> {
    if (error) *error = std::move(why);
    ERR_clear_error();
    return std::nullopt;
  };
  if (pem.size() > 64 * 1024) return fail("the key file is larger than 64 KiB");
  if (pem.find("ENCRYPTED") != std::string_view::npos)
    return fail("encrypted private keys are not supported (sign with cosign for cosign key "
                "files, or use an unencrypted PEM key from openssl)");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return fail("out of memory");
  // An empty passphrase callback result: never prompt on a terminal.
  auto no_pass = [](char *, int, int, void *) -> int { return 0; };
  EVP_PKEY *raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_pass, nullptr);
  if (!raw) return fail("the PEM private key cannot be parsed");
  PrivateKey k;
  k.key_ = std::shared_ptr<::evp_pkey_st>(raw, EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  if (!out || PEM_write_bio_PUBKEY(out.get(), raw) != 1)
    return fail("cannot encode the public key");
  char *data = nullptr;
  long len = BIO_get_mem_data(out.get(), &data);
  k.public_pem_.assign(data, static_cast<std::size_t>(len));
  std::string why;
  auto pub = PublicKey::from_pem(k.public_pem_, &why);
  if (!pub) return fail(why);
  k.public_ = std::move(*pub);
  ERR_clear_error();
  return k;
}

std::string PrivateKey::sign(std::string_view data) const {
  if (!key_) return {};
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx) return {};
  const std::string &alg = public_.algorithm();
  const EVP_MD *md = alg == "ed25519" ? nullptr : alg == "ecdsa-p384" ? EVP_sha384() : EVP_sha256();
  EVP_PKEY_CTX *pctx = nullptr;
  if (EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key_.get()) != 1) return {};
  if (alg.rfind("rsa-", 0) == 0 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
    return {};
  std::size_t len = 0;
  const auto *in = reinterpret_cast<const unsigned char *>(data.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) return {};
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char *>(sig.data()), &len, in,
                     data.size()) != 1)
    return {};
  sig.resize(len);
  return sig;
}

} // namespace portcullis
