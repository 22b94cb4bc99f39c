// Every OpenSSL call of the plugin lives behind this header (base64, hashes, randomness, X.509).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

// Strict standard-alphabet base64 with padding, as Go's encoding/json writes []byte.
// Returns nullopt for any other input (bad characters, bad length, bad padding).
std::optional<std::string> base64_decode(std::string_view in);
std::string base64_encode(std::string_view in);

std::string sha256_hex(std::string_view data);

// Lower-case hex of n cryptographically random bytes.
std::string random_hex(std::size_t n);

// One attribute of the subject DN, e.g. {"UID", "userId", "0.9.2342.19200300.100.1.1", "alice"}.
struct DnAttribute {
  std::string short_name; // OpenSSL's short name ("CN", "UID"); the dotted OID when it has none
  std::string long_name;  // OpenSSL's long name ("commonName"); the dotted OID when it has none
  std::string oid;        // dotted OID
  std::string value;      // UTF-8 (empty when !decoded)
  bool decoded = false;   // false when the value is not a string type OpenSSL can convert
};

struct CertificateInfo {
  std::string subject_cn;              // first common name; "" when the subject has none
  std::size_t subject_cn_count = 0;    // how many CN attributes the subject has
  std::vector<DnAttribute> subject;    // every attribute of the subject DN, in certificate order
  std::vector<std::string> san_emails; // subjectAltName rfc822Name values, in order
  std::vector<std::string> san_uris;   // subjectAltName uniformResourceIdentifier values
  std::string sha256_fingerprint;      // hex of the DER's SHA-256
};

// Parses the first certificate of a PEM text. nullopt when it is not a valid certificate, or when
// it is one that Go's crypto/x509 (hence dockerd) would refuse for the parts read here: a
// duplicated or undecodable subjectAltName extension, a non-ASCII email or URI, a common name that
// is not a string.
std::optional<CertificateInfo> parse_certificate_pem(std::string_view pem);

} // namespace portcullis
