// Every OpenSSL call of the plugin lives behind this header (base64, hashes, randomness, X.509).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct evp_pkey_st; // OpenSSL's EVP_PKEY, kept out of this header

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

// A public key for signature checks: PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----"), as
// cosign writes them. Accepted: ECDSA P-256 (SHA-256) and P-384 (SHA-384), Ed25519, RSA of at
// least 2048 bits (PKCS#1 v1.5, SHA-256). Immutable and cheap to copy.
class PublicKey {
public:
  // nullopt and *error set when the text is not exactly one such key.
  static std::optional<PublicKey> from_pem(std::string_view pem, std::string *error);
  // "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-<bits>"
  const std::string &algorithm() const { return algorithm_; }
  // "sha256:<hex>" of the DER SubjectPublicKeyInfo: names the key in logs and explanations.
  const std::string &fingerprint() const { return fingerprint_; }
  // True when `signature` (raw bytes: DER ECDSA-Sig-Value, 64-byte Ed25519, RSA PKCS#1 v1.5) is a
  // valid signature of `data` by this key. Never throws.
  bool verify(std::string_view data, std::string_view signature) const;

private:
  friend class PrivateKey;
  std::shared_ptr<::evp_pkey_st> key_;
  std::string algorithm_;
  std::string fingerprint_;
};

// A private signing key for `portcullis image sign`: unencrypted PEM ("BEGIN PRIVATE KEY" or
// "BEGIN EC PRIVATE KEY", as `openssl genpkey`/`ecparam -genkey` write them) of the types
// PublicKey accepts. (cosign's own encrypted key files are not OpenSSL formats.)
class PrivateKey {
public:
  static std::optional<PrivateKey> from_pem(std::string_view pem, std::string *error);
  // The signature of `data` in the form PublicKey::verify takes; "" on failure.
  std::string sign(std::string_view data) const;
  // The matching public key, and its PEM SubjectPublicKeyInfo text.
  const PublicKey &public_key() const { return public_; }
  const std::string &public_pem() const { return public_pem_; }

private:
  std::shared_ptr<::evp_pkey_st> key_;
  PublicKey public_;
  std::string public_pem_;
};

// Parses the first certificate of a PEM text. nullopt when it is not a valid certificate, or when
// it is one that Go's crypto/x509 (hence dockerd) would refuse for the parts read here: a
// duplicated or undecodable subjectAltName extension, a non-ASCII email or URI, a common name that
// is not a string.
std::optional<CertificateInfo> parse_certificate_pem(std::string_view pem);

} // namespace portcullis
