// Policy pipeline: load (YAML or JSON text) -> validate -> compile into an immutable structure ->
// evaluate. No I/O here: callers read files and hand over the text.
#pragma once

#include "policy/model.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

struct Diagnostic {
  std::string file;
  int line = 0;                  // 1-based; 0 when unknown
  int column = 0;                // 1-based; 0 when unknown
  std::string message;           // says what was found and what was expected
  std::string to_string() const; // "file:line:col: error: message"
};

// The image-trust section of a policy (docs/IMAGE-TRUST.md), validated but not interpreted here:
// keys are PEM text or file names that the plugin reads and parses (policy/ does no I/O and no
// crypto). Patterns are "registry/repository" globs, registry lower-case, "docker.io" for Docker
// Hub; `*` and `?` stay within one '/'-separated segment, a `**` segment spans any number.
struct TrustKeySpec {
  std::string name;
  std::string pem;  // inline PEM, or ""
  std::string file; // file name as written (relative to the policy file's directory), or ""
  int line = 0, column = 0;
};

struct TrustRuleSpec {
  std::string name;
  int line = 0, column = 0;
  std::vector<std::string> images;  // patterns, normalized
  std::vector<std::string> keys;    // names of TrustKeySpec entries, unique
  int threshold = 1;                // distinct keys whose signature is needed
  bool check_reference = true;      // the signed docker-reference must name the repository
  std::string signature_repository; // "registry/repository" holding signatures; "" = the image's
  bool warn = false;                // mode warn: failures are logged, not enforced
  bool legacy = true;               // formats: legacy `.sig` tags
  bool bundle = true;               //          sigstore bundles (referrers or fallback tag)
};

struct ImageTrustSpec {
  std::vector<TrustKeySpec> keys;
  std::vector<TrustRuleSpec> rules; // file order
};

// Actions whose image needs a signature verdict (Request::signature) when the caller's role
// requires signed images, and actions that make images without a signature, which such roles
// may not use.
bool is_signature_gated_action(std::string_view action);
bool is_image_producing_action(std::string_view action);

class CompiledPolicy; // immutable, thread-safe to evaluate concurrently

struct CompileResult {
  std::shared_ptr<const CompiledPolicy> policy; // null when errors is non-empty
  std::vector<Diagnostic> errors;
};

struct CompileOptions {
  // Turns a group name written in a binding into the key the directory reports (e.g. a
  // canonical LDAP DN). nullopt + error rejects the binding with that message. Unset: as written.
  std::function<std::optional<std::string>(const std::string &group, std::string &error)> group_key;
};

// Parses, validates and compiles a policy document. `filename` is only used in diagnostics.
CompileResult compile_policy(std::string_view text, std::string_view filename,
                             const CompileOptions &options = {});

// Why a principal holds a role: "user <name>" or "group <as written in the policy>".
struct RoleGrant {
  std::string role;
  std::string via;
};

class CompiledPolicy {
public:
  virtual ~CompiledPolicy() = default;

  // Roles bound to this principal (by user name or by any of its groups), sorted, unique.
  virtual std::vector<std::string> roles_for(const Principal &who) const = 0;
  // The same roles with every binding that grants each one (for whoami and explain).
  virtual std::vector<RoleGrant> role_grants(const Principal &who) const = 0;

  // Decide. Never throws. Order: invalid request -> deny "invalid-request"; any matching
  // guardrail (deny rule) -> deny; any matching allow rule of one of the caller's roles -> allow;
  // otherwise deny "default-deny". Decision::roles is filled in.
  virtual Decision evaluate(const Principal &who, const Request &req) const = 0;

  // The image_trust section, or null when the policy has none.
  virtual const ImageTrustSpec *image_trust() const = 0;
  // True when any of the caller's roles requires signed images.
  virtual bool requires_signed_images(const Principal &who) const = 0;

  // Counts, for logs and `policy check`.
  virtual std::size_t role_count() const = 0;
  virtual std::size_t rule_count() const = 0;
};

} // namespace portcullis
