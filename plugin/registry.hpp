// OCI distribution client for signature checks (docs/IMAGE-TRUST.md): manifests, blobs,
// referrers, and the pushes `portcullis image sign` needs. Boost.Beast over OpenSSL. Bearer
// tokens (anonymous, or with credentials portcullis holds per registry — never the user's) and
// Basic auth; tokens never follow a redirect to another host; every call bounded by a deadline
// and a size limit; plain HTTP only for loopback hosts and hosts explicitly marked insecure.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

namespace portcullis {

using RegistryDeadline = std::chrono::steady_clock::time_point;

// Manifest media types the client asks for (Accept) and accepts.
inline constexpr const char *kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char *kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char *kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char *kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";

// What portcullis holds for one registry.
struct RegistryHostConfig {
  bool insecure_http = false; // talk plain HTTP (loopback hosts always do)
  std::string username;       // Basic credentials for the token server or registry; "" = anonymous
  std::string password;       // never logged, never in error messages
};

struct RegistryOptions {
  // Keyed by the registry as image references name it, lower case: "docker.io",
  // "registry.example.com:5000", "127.0.0.1:5099".
  std::map<std::string, RegistryHostConfig> hosts;
  std::string ca_file;                       // "" = the system's CA store
  std::size_t max_manifest_bytes = 4u << 20; // manifests, indexes, referrer lists
  std::size_t max_token_bytes = 64u << 10;   // token server answers
  int max_redirects = 3;
};

struct RegistryResult {
  enum class Status { ok, not_found, error };
  Status status = Status::error;
  std::string error;      // for Status::error: what went wrong, in words, no secrets
  int http_status = 0;    // last HTTP status seen (0 when none)
  std::string body;       // raw bytes (ok)
  std::string media_type; // Content-Type without parameters (ok)
  std::string digest;     // "sha256:<hex>" of body, computed here (ok)
  std::string location;   // put_blob/put_manifest: where the registry stored it
};

// The interface the verifier uses; tests substitute an in-memory registry.
class Registry {
public:
  virtual ~Registry() = default;
  // GET /v2/<repo>/manifests/<reference> (tag or "sha256:<hex>") with Accept listing the four
  // types above. ok only for one of those media types; when `reference` is a digest the body's
  // sha256 must equal it (else error). 404 -> not_found.
  virtual RegistryResult get_manifest(const std::string &registry, const std::string &repo,
                                      const std::string &reference, RegistryDeadline deadline) = 0;
  // GET /v2/<repo>/blobs/<digest>; the body must hash to `digest` and be at most max_bytes
  // (larger -> error, without reading all of it). 404 -> not_found.
  virtual RegistryResult get_blob(const std::string &registry, const std::string &repo,
                                  const std::string &digest, std::size_t max_bytes,
                                  RegistryDeadline deadline) = 0;
  // GET /v2/<repo>/referrers/<digest>?artifactType=<artifact_type> (OCI 1.1). not_found when the
  // registry lacks the API (404); ok with an image index otherwise.
  virtual RegistryResult get_referrers(const std::string &registry, const std::string &repo,
                                       const std::string &digest, const std::string &artifact_type,
                                       RegistryDeadline deadline) = 0;
  // Monolithic blob upload (POST uploads/, then PUT ?digest=); skipped when HEAD says the blob
  // exists. ok with digest set.
  virtual RegistryResult put_blob(const std::string &registry, const std::string &repo,
                                  const std::string &bytes, RegistryDeadline deadline) = 0;
  // PUT /v2/<repo>/manifests/<reference> with Content-Type media_type. ok with digest set.
  virtual RegistryResult put_manifest(const std::string &registry, const std::string &repo,
                                      const std::string &reference, const std::string &media_type,
                                      const std::string &bytes, RegistryDeadline deadline) = 0;
  // HTTP requests sent so far (round trips, token fetches and redirects included).
  virtual unsigned long requests() const = 0;
};

// The real client. Thread-safe: the plugin's lookup threads share one.
std::unique_ptr<Registry> make_http_registry(RegistryOptions options);

// "docker.io" -> "registry-1.docker.io"; anything else unchanged.
std::string registry_api_host(const std::string &registry);

// True for "localhost", "127.x.x.x", "[::1]" (with or without a port).
bool is_loopback_registry(const std::string &registry);

} // namespace portcullis
