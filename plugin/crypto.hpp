// Every OpenSSL call of the plugin lives behind this header (base64, hashes, randomness, X.509).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// Strict standard-alphabet base64 with padding, as Go's encoding/json writes []byte.
// Returns nullopt for any other input (bad characters, bad length, bad padding).
std::optional<std::string> base64_decode(std::string_view in);
std::string base64_encode(std::string_view in);

std::string sha256_hex(std::string_view data);

// Lower-case hex of n cryptographically random bytes.
std::string random_hex(std::size_t n);

struct CertificateInfo {
  std::string subject_cn;         // "" when the subject has no common name
  std::string sha256_fingerprint; // hex of the DER's SHA-256
};

// Parses the first certificate of a PEM text. nullopt when it is not a valid certificate.
std::optional<CertificateInfo> parse_certificate_pem(std::string_view pem);

} // namespace portcullis
