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

  // Counts, for logs and `policy check`.
  virtual std::size_t role_count() const = 0;
  virtual std::size_t rule_count() const = 0;
};

} // namespace portcullis
