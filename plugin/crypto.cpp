#include "plugin/crypto.hpp"

#include <memory>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
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
bool is_b64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}
} // namespace

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  if (in.empty()) return std::string();
  std::size_t pad = 0;
  if (in.back() == '=') pad = (in.size() >= 2 && in[in.size() - 2] == '=') ? 2 : 1;
  for (std::size_t i = 0; i < in.size() - pad; ++i)
    if (!is_b64_char(static_cast<unsigned char>(in[i]))) return std::nullopt;
  if (in.size() > static_cast<std::size_t>(INT32_MAX)) return std::nullopt;
  std::vector<unsigned char> out(in.size() / 4 * 3 + 1);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char *>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0 || static_cast<std::size_t>(n) < pad) return std::nullopt;
  return std::string(reinterpret_cast<const char *>(out.data()), static_cast<std::size_t>(n) - pad);
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

std::optional<CertificateInfo> parse_certificate_pem(std::string_view pem) {
  if (pem.size() > (1u << 20)) return std::nullopt;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return std::nullopt;
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) return std::nullopt;
  CertificateInfo info;
  X509_NAME *subject = X509_get_subject_name(cert.get());
  int idx = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
  if (idx >= 0) {
    X509_NAME_ENTRY *e = X509_NAME_get_entry(subject, idx);
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(e);
    unsigned char *utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) return std::nullopt;
    info.subject_cn.assign(reinterpret_cast<char *>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &mdlen) != 1) return std::nullopt;
  info.sha256_fingerprint = to_hex(md, mdlen);
  return info;
}

} // namespace portcullis
