// cosign's legacy "simple signing" signatures (docs/research: image-signing.md §1.2-1.4): the
// payload format and the check of one signature against one image digest. No I/O: fetching
// signatures from registries is the registry client's job.
#pragma once

#include "plugin/crypto.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// What a simple-signing payload says (its `critical` part; `optional` is not trusted).
struct SimpleSigning {
  std::string docker_reference; // repository name, no tag or digest ("ghcr.io/org/app")
  std::string manifest_digest;  // "sha256:<64 lower-case hex>"
};

inline constexpr std::string_view kCosignSignatureType = "cosign container image signature";

// Parses a payload as cosign's verifier (Go encoding/json) would read it, strictly: a JSON
// object of at most 64 KiB with no duplicate keys or trailing data, `critical.type` equal to
// kCosignSignatureType, a non-empty `critical.identity.docker-reference` and a well-formed
// `critical.image.docker-manifest-digest`. nullopt and *error otherwise.
std::optional<SimpleSigning> parse_simple_signing(std::string_view payload, std::string *error);

struct SignatureCheck {
  bool ok = false;
  std::string reason; // why not, in words (no secrets: keys are named by fingerprint)
  std::optional<SimpleSigning> payload;
};

// One legacy signature: `signature_b64` (the layer annotation dev.cosignproject.cosign/signature,
// standard base64) must be `key`'s signature of the exact `payload` bytes; the payload must be a
// cosign container image signature for exactly `digest` and, when `reference` is given, name that
// repository. The signature is checked before the payload is read.
SignatureCheck verify_simple_signing(const PublicKey &key, std::string_view payload,
                                     std::string_view signature_b64, std::string_view digest,
                                     std::optional<std::string_view> reference = std::nullopt);

// "sha256:" + 64 lower-case hex digits.
bool is_sha256_digest(std::string_view d);

} // namespace portcullis
