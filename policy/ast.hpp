// Internal: the policy document after loading and validation (policy/loader.cpp), before it is
// compiled into the evaluation structure (policy/compiler.cpp). Values are already normalized:
// capabilities in "CAP_X" form (or "ALL"), registries lower-case, globs compiled.
#pragma once

#include "policy/glob.hpp"
#include "policy/policy.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::policy_detail {

struct SourceMark {
  int line = 0;   // 1-based, 0 when unknown
  int column = 0; // 1-based, 0 when unknown
};

// An inclusive range of host ports, 1 <= first <= last <= 65535.
struct PortRange {
  int first = 0;
  int last = 0;
};

// The value of a `host_ports` limit or matcher: port ranges, plus "random" (bindings whose host
// port the daemon picks). `ranges` is sorted, disjoint and has no adjacent entries (the loader
// merges them), so a binding inside the union of the listed ranges lies inside one of them.
struct HostPortSet {
  bool random = false;
  std::vector<PortRange> ranges;

  // True when [first, last] lies entirely inside one range.
  bool covers(int first, int last) const {
    auto it = std::lower_bound(ranges.begin(), ranges.end(), first,
                               [](const PortRange &r, int port) { return r.last < port; });
    return it != ranges.end() && it->first <= first && last <= it->last;
  }
  // True when [first, last] shares at least one port with some range.
  bool overlaps(int first, int last) const {
    auto it = std::lower_bound(ranges.begin(), ranges.end(), first,
                               [](const PortRange &r, int port) { return r.last < port; });
    return it != ranges.end() && it->first <= last;
  }
};

// Allow-rule limits: what a request MAY contain. Defaults are the safe values.
struct Limits {
  bool privileged = false;
  bool any_capability = false;           // "ALL" was listed
  std::vector<std::string> capabilities; // sorted "CAP_X"
  std::vector<PathGlob> host_allow;      // empty: no host mount permitted
  std::vector<PathGlob> host_deny;
  bool host_read_only = false;
  bool registries_set = false;         // false: any registry
  std::vector<std::string> registries; // lower-case host[:port]
  bool run_as_root = true;
  std::vector<std::string> host_namespaces; // sorted subset of the known namespaces
  std::optional<HostPortSet> host_ports;    // nullopt: published ports are not limited
  bool devices = false;
  bool unsafe_settings = false;
  bool signed_images = false; // from the role's require_signed_images (set by the compiler)
};

// Guardrail matchers: every one that is set must hold for the guardrail to match.
struct Matchers {
  std::optional<bool> privileged;
  std::optional<std::vector<std::string>> capabilities; // "CAP_X" or "ALL"
  std::optional<std::vector<PathGlob>> host_paths;
  std::optional<std::vector<std::string>> registries;
  std::optional<bool> run_as_root;
  std::optional<std::vector<std::string>> host_namespaces;
  std::optional<HostPortSet> host_ports; // never empty (neither random nor a range)
  std::optional<bool> devices;
  std::optional<bool> unsafe_settings;
};

struct AllowRuleAst {
  std::string name;
  SourceMark mark;
  std::vector<std::string> actions; // validated patterns
  Limits limits;
};

struct RoleAst {
  std::string name;
  SourceMark mark;
  std::string description;
  std::vector<AllowRuleAst> rules;
  std::optional<bool> require_signed_images; // unset: true when the policy has image_trust
  SourceMark require_mark;
};

struct GuardrailAst {
  std::string name;
  SourceMark mark;
  std::vector<std::string> actions;
  Matchers when;
  std::vector<std::pair<std::string, SourceMark>> except_roles;
  std::string message;
};

struct BindingAst {
  std::string role;
  SourceMark role_mark;
  std::vector<std::string> groups;
  std::vector<SourceMark> group_marks; // parallel to groups
  std::vector<std::string> users;
};

struct PolicyAst {
  std::vector<RoleAst> roles; // file order
  std::vector<GuardrailAst> guardrails;
  std::vector<BindingAst> bindings;
  std::optional<ImageTrustSpec> image_trust;
  SourceMark image_trust_mark;
};

// Parses YAML or JSON text and validates its shape and values. Every problem found is appended
// to `errors` (with 1-based line:column); the returned AST is only meaningful when none was.
PolicyAst load_policy_ast(std::string_view text, std::string_view filename,
                          std::vector<Diagnostic> &errors);

// "registry/repository" glob of an image_trust rule, validated and normalized: lower case,
// registry first, "index.docker.io" -> "docker.io". nullopt and *error when invalid.
std::optional<std::string> normalize_image_pattern(std::string_view pattern, std::string *error);

// Capability names as the daemon normalizes them: ASCII upper case, "CAP_" prefix added unless
// the name is "ALL". Returns "" for names with non-ASCII or non-printable bytes.
std::string normalize_capability(std::string_view name);
// True for "CAP_X" names of the Linux capability list.
bool is_known_capability(std::string_view normalized);
// "pid", "network", "ipc", "uts", "userns", "cgroupns".
bool is_known_namespace(std::string_view name);

} // namespace portcullis::policy_detail
