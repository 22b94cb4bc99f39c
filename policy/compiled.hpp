// Internal: the immutable, action-indexed form of a policy that CompiledPolicy::evaluate walks.
// Built once by policy/compiler.cpp; evaluated by policy/evaluator.cpp.
#pragma once

#include "policy/ast.hpp"
#include "policy/policy.hpp"

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace portcullis::policy_detail {

struct CompiledAllowRule {
  std::string name;
  std::size_t role = 0; // index into PolicyImpl::role_names
  Limits limits;
};

struct CompiledGuardrail {
  std::string name;
  Matchers when;
  std::vector<std::size_t> except_roles; // role indices, sorted
  std::string message;
};

// Rules that name one action, each list in file order.
struct ActionRules {
  std::vector<const CompiledGuardrail *> guardrails;
  std::vector<const CompiledAllowRule *> allow;
};

class PolicyImpl final : public CompiledPolicy {
public:
  std::vector<std::string> role_names;        // file order; a role's index is its position
  std::vector<CompiledAllowRule> allow_rules; // never resized after the index is built
  std::vector<CompiledGuardrail> guardrails;  // never resized after the index is built
  std::unordered_map<std::string, ActionRules> by_action;
  std::unordered_map<std::string, std::vector<std::size_t>> user_roles;  // sorted indices
  std::unordered_map<std::string, std::vector<std::size_t>> group_roles; // sorted indices
  // key -> (role index, the group as written in that binding), for role_grants()
  std::unordered_map<std::string, std::vector<std::pair<std::size_t, std::string>>> group_written;
  std::optional<ImageTrustSpec> trust;
  std::vector<bool> role_signed; // per role: require_signed_images in effect

  std::vector<std::string> roles_for(const Principal &who) const override;
  std::vector<RoleGrant> role_grants(const Principal &who) const override;
  Decision evaluate(const Principal &who, const Request &req) const override;
  const ImageTrustSpec *image_trust() const override { return trust ? &*trust : nullptr; }
  bool requires_signed_images(const Principal &who) const override;
  std::size_t role_count() const override { return role_names.size(); }
  std::size_t rule_count() const override { return allow_rules.size() + guardrails.size(); }

private:
  // Role indices of the caller, sorted and unique.
  std::vector<std::size_t> role_indices(const Principal &who) const;
  Decision decide(const Principal &who, const Request &req) const;
};

} // namespace portcullis::policy_detail
