#include "plugin/crypto.hpp"

#include <array>
#include <memory>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
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
