// Signature checks of images against the policy's image_trust section (docs/IMAGE-TRUST.md):
// finding cosign signatures in a registry (legacy `.sig` tags; sigstore bundles through OCI 1.1
// referrers or the `sha256-<hex>` fallback tag), verifying them with the trusted keys, caching
// the results, and turning a request into the SignatureVerdict the policy decides on.
#pragma once

#include "plugin/normalize.hpp"
#include "plugin/registry.hpp"
#include "plugin/trust.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace portcullis {

inline constexpr const char *kSimpleSigningLayer =
    "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr const char *kCosignSignatureAnnotation = "dev.cosignproject.cosign/signature";
inline constexpr const char *kSigstoreBundleV03 = "application/vnd.dev.sigstore.bundle.v0.3+json";
inline constexpr const char *kInTotoPayloadType = "application/vnd.in-toto+json";
inline constexpr const char *kCosignSignPredicate = "https://sigstore.dev/cosign/sign/v1";

// The result of looking for trusted signatures of one (repository, digest) pair.
struct PairCheck {
  enum class Status { verified, unsigned_, error };
  Status status = Status::error;
  std::vector<std::string> keys;  // trusted keys whose signature verified (distinct, names)
  std::string detail;             // in words
  std::vector<std::string> trace; // one line per signature or lookup examined
  unsigned long requests = 0;     // registry round trips this check made
};

// Checks the signatures of `digest` in `registry`/`repository` (the image's own repository; the
// rule's signature_repository, when set, is where signatures are looked up). Verified when at
// least `threshold` distinct keys of the rule signed exactly this digest (and, with
// check_reference, named this repository). Never throws.
PairCheck check_signatures(const TrustPolicy &trust, const TrustRule &rule,
                           const std::string &registry, const std::string &repository,
                           const std::string &digest, Registry &reg, RegistryDeadline deadline);

// The DSSE pre-authentication encoding: "DSSEv1 <len type> <type> <len body> <body>".
std::string dsse_pae(std::string_view payload_type, std::string_view payload);

struct VerdictCacheOptions {
  std::chrono::seconds verified_ttl{3600};
  std::chrono::seconds unsigned_ttl{30};
  std::chrono::seconds error_ttl{5};
  std::size_t max_entries = 10000;
};

// Results of check_signatures keyed by (policy hash, repository, digest). Thread-safe.
class VerdictCache {
public:
  explicit VerdictCache(VerdictCacheOptions o = {}) : options_(o) {}
  // The cached result (shared, immutable), or null when absent or expired.
  std::shared_ptr<const PairCheck> get(const std::string &key) const;
  void put(const std::string &key, const PairCheck &check);
  void flush();
  std::size_t size() const;

private:
  struct Entry {
    std::shared_ptr<const PairCheck> check;
    std::chrono::steady_clock::time_point expires;
  };
  VerdictCacheOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

// What the gate needs to judge one request.
struct SignatureGate {
  const TrustPolicy *trust = nullptr;
  std::string policy_hash;
  Registry *registry = nullptr;
  VerdictCache *cache = nullptr;
  // GET of the daemon's API (as NormalizeOptions::daemon_get); empty: lookups disabled.
  std::function<DaemonAnswer(const std::string &path)> daemon_get;
  RegistryDeadline deadline;
};

// The SignatureVerdict for a request whose action is_signature_gated_action:
//  - container.create: the image the daemon has under that reference (GET /images/REF/json):
//    each RepoDigest (and the image id under the reference's repository, for the containerd
//    store) is a candidate (repository, digest) pair; one with trusted signatures verifies it.
//    An image the daemon does not have is checked in the registry (the CLI pulls it next).
//  - container.start: the same for the container's image (GET /containers/ID/json).
//  - image.pull: by digest, that digest; by tag, only that some trust rule covers the name.
//  - service.create/update: the reference resolved in the registry.
// Never throws; problems give a verdict that is not ok.
SignatureVerdict judge_signature(const Request &req, const SignatureGate &gate);

// Resolves a reference (tag or digest) to the manifest digest in the registry and checks it, for
// `portcullis image verify`. `trace` gets the explanation.
SignatureVerdict verify_reference(const ImageRef &ref, const SignatureGate &gate,
                                  std::vector<std::string> &trace);

struct SignResult {
  bool ok = false;
  std::string error;
  std::string digest;   // the image manifest digest that was signed
  std::string location; // where the signature went ("repo:sha256-<hex>.sig", ...)
};

// Signs an image in its registry with `key` the way cosign does with a key, so cosign and
// portcullis both verify it: `bundle` = false writes the legacy format (simple-signing payload,
// layer appended to the `sha256-<hex>.sig` manifest); true writes a sigstore bundle (DSSE
// envelope of an in-toto statement) as an OCI 1.1 referrer, plus the `sha256-<hex>` fallback
// index for registries without the referrers API.
SignResult sign_image(const ImageRef &ref, const PrivateKey &key, bool bundle, Registry &reg,
                      RegistryDeadline deadline);

} // namespace portcullis
