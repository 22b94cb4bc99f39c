// Turns the validated document into the immutable, action-indexed PolicyImpl: resolves role
// names, checks cross-references (unique rule names, bindings and exceptions to defined roles)
// and expands action patterns over the action catalog.
#include "policy/actions.hpp"
#include "policy/compiled.hpp"

#include <algorithm>
#include <map>

namespace portcullis {

std::string Diagnostic::to_string() const {
  std::string out = file.empty() ? std::string("<policy>") : file;
  if (line > 0) {
    out += ':' + std::to_string(line);
    if (column > 0) out += ':' + std::to_string(column);
  }
  out += ": error: ";
  out += message;
  return out;
}

namespace {

using namespace policy_detail;

void add_error(std::vector<Diagnostic> &errors, std::string_view file, SourceMark m,
               std::string msg) {
  Diagnostic d;
  d.file = std::string(file);
  d.line = m.line;
  d.column = m.column;
  d.message = std::move(msg);
  errors.push_back(std::move(d));
}

std::shared_ptr<const CompiledPolicy> build(PolicyAst &ast, std::string_view file,
                                            std::vector<Diagnostic> &errors,
                                            const CompileOptions &options) {
  auto p = std::make_shared<PolicyImpl>();
  std::map<std::string, std::size_t, std::less<>> role_index;
  for (const auto &r : ast.roles) {
    role_index.emplace(r.name, p->role_names.size());
    p->role_names.push_back(r.name);
  }

  // Rule names are unique across roles and guardrails.
  std::map<std::string, SourceMark, std::less<>> rule_names;
  auto claim = [&](const std::string &name, SourceMark m) {
    if (name.empty()) return; // already reported by the loader
    auto [it, inserted] = rule_names.emplace(name, m);
    if (!inserted)
      add_error(errors, file, m,
                "duplicate rule name \"" + name + "\" (first defined at line " +
                    std::to_string(it->second.line) + "); rule names must be unique");
  };
  for (const auto &r : ast.roles)
    for (const auto &rule : r.rules)
      claim(rule.name, rule.mark);
  for (const auto &g : ast.guardrails)
    claim(g.name, g.mark);

  auto resolve = [&](const std::string &role, SourceMark m,
                     const std::string &where) -> std::optional<std::size_t> {
    auto it = role_index.find(role);
    if (it != role_index.end()) return it->second;
    std::string known;
    for (const auto &n : p->role_names)
      known += (known.empty() ? "" : ", ") + n;
    add_error(errors, file, m,
              where + ": undefined role \"" + role +
                  "\"; defined roles: " + (known.empty() ? std::string("(none)") : known));
    return std::nullopt;
  };

  for (auto &g : ast.guardrails) {
    CompiledGuardrail cg;
    cg.name = g.name;
    cg.when = std::move(g.when);
    cg.message = g.message;
    for (const auto &[role, m] : g.except_roles)
      if (auto idx = resolve(role, m, "guardrail " + g.name + " except_roles"))
        cg.except_roles.push_back(*idx);
    std::sort(cg.except_roles.begin(), cg.except_roles.end());
    cg.except_roles.erase(std::unique(cg.except_roles.begin(), cg.except_roles.end()),
                          cg.except_roles.end());
    p->guardrails.push_back(std::move(cg));
  }
  // Image trust: rule names share the namespace above, keys must be defined, a pattern names one
  // rule only (most specific wins between different patterns, so an exact tie is ambiguous).
  if (ast.image_trust) {
    const ImageTrustSpec &t = *ast.image_trust;
    std::map<std::string, SourceMark, std::less<>> key_names;
    for (const auto &k : t.keys)
      key_names.emplace(k.name, SourceMark{k.line, k.column});
    std::map<std::string, std::string, std::less<>> pattern_rule;
    for (const auto &r : t.rules) {
      SourceMark m{r.line, r.column};
      claim(r.name, m);
      for (const auto &k : r.keys)
        if (!key_names.count(k)) {
          std::string known;
          for (const auto &[n, km] : key_names)
            known += (known.empty() ? "" : ", ") + n;
          add_error(errors, file, m,
                    "image_trust rule \"" + r.name + "\": undefined key \"" + k +
                        "\"; defined keys: " + (known.empty() ? std::string("(none)") : known));
        }
      for (const auto &pat : r.images) {
        auto [it, inserted] = pattern_rule.emplace(pat, r.name);
        if (!inserted)
          add_error(errors, file, m,
                    "image_trust rule \"" + r.name + "\": pattern \"" + pat +
                        "\" is already used by rule \"" + it->second +
                        "\"; a pattern may appear in one rule only");
      }
    }
    p->trust = *ast.image_trust;
  }
  p->role_signed.assign(ast.roles.size(), false);
  for (std::size_t ri = 0; ri < ast.roles.size(); ++ri) {
    const RoleAst &role = ast.roles[ri];
    if (role.require_signed_images && *role.require_signed_images && !ast.image_trust)
      add_error(errors, file, role.require_mark,
                "roles." + role.name +
                    ".require_signed_images: the policy has no image_trust section naming "
                    "trusted keys, so no image could ever be allowed; add one");
    // With an image_trust section every role requires signed images unless it says otherwise.
    p->role_signed[ri] = role.require_signed_images.value_or(ast.image_trust.has_value());
  }
  for (std::size_t ri = 0; ri < ast.roles.size(); ++ri) {
    for (auto &rule : ast.roles[ri].rules) {
      CompiledAllowRule cr;
      cr.name = rule.name;
      cr.role = ri;
      cr.limits = std::move(rule.limits);
      cr.limits.signed_images = p->role_signed[ri];
      p->allow_rules.push_back(std::move(cr));
    }
  }

  for (const auto &b : ast.bindings) {
    if (b.role.empty()) continue; // reported by the loader
    auto idx = resolve(b.role, b.role_mark, "binding");
    if (!idx) continue;
    for (const auto &u : b.users)
      p->user_roles[u].push_back(*idx);
    for (std::size_t gi = 0; gi < b.groups.size(); ++gi) {
      const std::string &g = b.groups[gi];
      std::string key = g;
      if (options.group_key) {
        std::string why;
        auto k = options.group_key(g, why);
        if (!k) {
          add_error(
              errors, file, gi < b.group_marks.size() ? b.group_marks[gi] : b.role_mark,
              "binding of role \"" + b.role + "\": " +
                  (why.empty() ? "group \"" + g + "\" is not valid for this directory" : why));
          continue;
        }
        key = std::move(*k);
      }
      p->group_roles[key].push_back(*idx);
      p->group_written[key].emplace_back(*idx, g);
    }
  }
  for (auto *m : {&p->user_roles, &p->group_roles})
    for (auto &[name, v] : *m) {
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
    }

  if (!errors.empty()) return nullptr;

  // Index by action. The rule vectors are complete, so the pointers stay valid.
  auto matches_any = [](const std::vector<std::string> &patterns, std::string_view action) {
    for (const auto &pat : patterns)
      if (action_pattern_matches(pat, action)) return true;
    return false;
  };
  for (auto action : known_actions()) {
    ActionRules ar;
    for (std::size_t i = 0; i < ast.guardrails.size(); ++i)
      if (matches_any(ast.guardrails[i].actions, action))
        ar.guardrails.push_back(&p->guardrails[i]);
    std::size_t k = 0;
    for (const auto &r : ast.roles)
      for (const auto &rule : r.rules) {
        if (matches_any(rule.actions, action)) ar.allow.push_back(&p->allow_rules[k]);
        ++k;
      }
    if (!ar.guardrails.empty() || !ar.allow.empty())
      p->by_action.emplace(std::string(action), std::move(ar));
  }
  return p;
}

} // namespace

CompileResult compile_policy(std::string_view text, std::string_view filename,
                             const CompileOptions &options) {
  CompileResult result;
  try {
    PolicyAst ast = load_policy_ast(text, filename, result.errors);
    // Cross-references are checked even after loader errors, so one run reports everything.
    result.policy = build(ast, filename, result.errors, options);
  } catch (const std::exception &e) {
    Diagnostic d;
    d.file = std::string(filename);
    d.message = std::string("internal error while compiling the policy: ") + e.what();
    result.errors.push_back(std::move(d));
  } catch (...) {
    Diagnostic d;
    d.file = std::string(filename);
    d.message = "internal error while compiling the policy";
    result.errors.push_back(std::move(d));
  }
  if (!result.errors.empty()) {
    result.policy = nullptr;
    std::stable_sort(result.errors.begin(), result.errors.end(),
                     [](const Diagnostic &a, const Diagnostic &b) {
                       return std::pair(a.line, a.column) < std::pair(b.line, b.column);
                     });
    constexpr std::size_t kMaxErrors = 100;
    if (result.errors.size() > kMaxErrors) {
      std::size_t more = result.errors.size() - kMaxErrors;
      result.errors.resize(kMaxErrors);
      Diagnostic d;
      d.file = std::string(filename);
      d.message = "too many errors; " + std::to_string(more) + " more not shown";
      result.errors.push_back(std::move(d));
    }
  }
  return result;
}

} // namespace portcullis
