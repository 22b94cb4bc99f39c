// The vocabulary every stage shares: a normalized request with its facts, the caller, and the
// decision. The normalizer produces Request; identity produces Principal; the compiled policy
// turns both into a Decision. Policy speaks these facts, never raw JSON paths.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace portcullis {

// A host path that a container would see, from HostConfig.Binds or HostConfig.Mounts (type bind).
struct HostMount {
  std::string source;     // host path exactly as the request gave it
  std::string path;       // lexically normalized absolute path ("..", "." and "//" resolved)
  bool read_only = false; // true only when the request asks for a read-only mount
  std::string origin;     // "Binds", "Mounts", "DriverOpts (local volume bind)", ...;
                          // "<origin> (symlink target)" for the resolved path of a symlinked one
};

// A Docker image reference, normalized the way the docker daemon does
// ("busybox" -> registry "docker.io", repository "library/busybox", tag "latest").
struct ImageRef {
  std::string raw;        // as given in the request
  std::string registry;   // "docker.io", "registry.example.com:5000"; empty when is_id
  std::string repository; // "library/busybox"
  std::string tag;        // may be empty when a digest is given
  std::string digest;     // "sha256:<hex>" or empty
  bool is_id = false;     // referenced by image ID (hex or sha256:hex), not by name
};

// A named volume a container mounts (HostConfig.Binds "name:/dst", Mounts type volume with a
// Source; a swarm service's named volumes are unsafe instead, see docs/DAEMON-LOOKUPS.md). What it
// gives the container depends on how the volume was created, so the plugin asks the daemon
// (plugin/daemon.hpp) and adds the volume's host path, if any, to host_mounts.
struct NamedVolume {
  std::string name;
  bool read_only = false; // the mount asks for read-only
  std::string origin;     // "HostConfig.Binds", "HostConfig.Mounts", ...
};

// A host port a container publishes (HostConfig.PortBindings, PublishAllPorts).
struct PublishedPort {
  std::string host_ip;        // "" = every address of the host
  int first = 0, last = 0;    // host port range; 0/0 = a random port the daemon picks
  std::string container_port; // "80/tcp"; "*" for PublishAllPorts
};

// Facts decoded from a container-create, exec-create or volume-create body (for a volume: the
// host paths, devices and unsafe settings it would mount; it runs no process).
struct ContainerFacts {
  bool privileged = false;
  std::vector<std::string>
      capabilities; // CapAdd as the daemon normalizes: "CAP_SYS_ADMIN", or "ALL"
  std::vector<HostMount> host_mounts;
  std::optional<ImageRef> image;
  std::string user;         // Config.User as given; "" means the image default
  bool user_is_root = true; // "", "root", "0", "root:*", "0:*" (image default is treated as root)
  std::vector<std::string> host_namespaces; // "pid","network","ipc","uts","userns","cgroupns"
                                            // (host mode or joining another container's namespace)
  std::vector<std::string> devices;         // host devices, device cgroup rules, device requests
  std::vector<PublishedPort> published_ports; // empty: nothing published on the host
  std::vector<NamedVolume> named_volumes;     // looked up on the daemon before the decision
  std::vector<std::string> unsafe;            // other dangerous settings the policy cannot yet
                                              // express (e.g. "SecurityOpt seccomp=unconfined");
                                              // allow rules refuse them unless they opt in
};

// Whether the image a request would run is signed by keys the policy trusts
// (docs/IMAGE-TRUST.md). Filled in by the plugin before the policy decides, for the actions of
// is_signature_gated_action when the caller's role requires signed images.
struct SignatureVerdict {
  bool ok = false;        // the policy may allow: verified, warn mode, or a pull by tag whose
                          // name a trust rule covers
  std::string status;     // "verified", "warn", "name-covered", "unsigned", "unmatched",
                          // "error", "no-such-image"
  std::string image;      // what was checked: "registry/repo@sha256:..." or the reference
  std::string trust_rule; // the image_trust rule that applied; "" when none
  std::vector<std::string> keys; // names of the trusted keys whose signatures verified
  std::string detail;            // in words, for the deny message and the log (no secrets)
  std::string cache;             // "hit" or "miss" (or "" when no registry was involved)
};

// One API request as dockerd will route and execute it.
struct Request {
  std::string method;      // "GET", "POST", ...
  std::string path;        // percent-decoded, API version prefix removed
  std::string api_version; // "1.41", or "" when the URI had no version prefix
  std::string action;      // "container.create", ... or "unknown"
  std::string object;      // container/image/exec/... name taken from the path, if any
  std::optional<ContainerFacts> container;   // container.create, container.exec, volume.create
  std::optional<ImageRef> image;             // image the action is about (pull, inspect, tag, ...)
  std::optional<SignatureVerdict> signature; // see SignatureVerdict
  // Set when the request cannot be judged safely (malformed URI or body, missing JSON body,
  // forbidden content type, ...). The policy denies such a request with rule "invalid-request".
  std::optional<std::string> invalid;
};

// Who is calling.
struct Principal {
  std::string name;        // certificate CN, or "local" for the unix socket
  std::string auth_method; // "TLS" or "none"
  std::vector<std::string> groups;
};

struct Decision {
  bool allow = false;
  std::string rule;               // deciding rule name, or "default-deny" / "invalid-request" / ...
  std::string reason;             // human-readable, no secrets
  std::vector<std::string> roles; // the caller's roles under the policy that decided
};

// Principal name used for callers on the unix socket (no TLS identity).
inline constexpr const char *kLocalPrincipal = "local";

} // namespace portcullis
