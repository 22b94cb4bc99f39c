// Loads a policy document (YAML, or JSON which is a subset) with yaml-cpp and validates every
// key and value, collecting all problems with their 1-based line:column.
#include "policy/actions.hpp"
#include "policy/ast.hpp"
#include "policy/text.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

namespace portcullis::policy_detail {

namespace {

constexpr std::size_t kMaxPolicyBytes = 4u << 20;
constexpr std::size_t kMaxNameLength = 128;

constexpr std::array<std::string_view, 41> kCapabilities = {
    "CAP_AUDIT_CONTROL",   "CAP_AUDIT_READ",   "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",   "CAP_BPF",          "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",           "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",          "CAP_FSETID",       "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",       "CAP_KILL",         "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE", "CAP_MAC_ADMIN",    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",           "CAP_NET_ADMIN",    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",   "CAP_NET_RAW",      "CAP_PERFMON",
    "CAP_SETFCAP",         "CAP_SETGID",       "CAP_SETPCAP",
    "CAP_SETUID",          "CAP_SYS_ADMIN",    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",      "CAP_SYS_MODULE",   "CAP_SYS_NICE",
    "CAP_SYS_PACCT",       "CAP_SYS_PTRACE",   "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",    "CAP_SYS_TIME",     "CAP_SYS_TTY_CONFIG",
    "CAP_SYSLOG",          "CAP_WAKE_ALARM",
};

constexpr std::array<std::string_view, 6> kNamespaces = {"pid", "network", "ipc",
                                                         "uts", "userns",  "cgroupns"};

constexpr std::array<std::string_view, 3> kReservedRuleNames = {"default-deny", "invalid-request",
                                                                "internal-error"};

std::string join(std::initializer_list<std::string_view> items) {
  std::string out;
  for (auto s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

std::string quote(std::string_view s) {
  std::string out = "\"" + escape_for_message(s);
  if (out.size() > 80) out = out.substr(0, 77) + "...";
  out += '"';
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool valid_name(std::string_view s, bool allow_upper) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  auto ok_first = [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (allow_upper && c >= 'A' && c <= 'Z');
  };
  if (!ok_first(s[0])) return false;
  for (char c : s)
    if (!ok_first(c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

const char *type_name(const YAML::Node &n) {
  switch (n.Type()) {
  case YAML::NodeType::Null:
    return "null";
  case YAML::NodeType::Scalar:
    return "a scalar";
  case YAML::NodeType::Sequence:
    return "a list";
  case YAML::NodeType::Map:
    return "a mapping";
  default:
    return "nothing";
  }
}

class Loader {
public:
  Loader(std::string_view filename, std::vector<Diagnostic> &errors)
      : file_(filename), errors_(errors) {}

  PolicyAst load(std::string_view text);

private:
  std::string file_;
  std::vector<Diagnostic> &errors_;

  static SourceMark mark_of(const YAML::Node &n, SourceMark fallback = {}) {
    if (!n.IsDefined()) return fallback;
    YAML::Mark m = n.Mark();
    if (m.is_null() || m.line < 0 || m.column < 0) return fallback;
    return SourceMark{m.line + 1, m.column + 1};
  }

  void error(SourceMark m, std::string msg) {
    Diagnostic d;
    d.file = file_;
    d.line = m.line;
    d.column = m.column;
    d.message = std::move(msg);
    errors_.push_back(std::move(d));
  }

  // Iterates a mapping, rejecting non-scalar, duplicate and unknown keys. `f(key, value, mark)`
  // is called for each allowed key. Returns false when `map` is not a mapping.
  bool
  for_each_key(const YAML::Node &map, const std::string &where,
               std::initializer_list<std::string_view> allowed,
               const std::function<void(const std::string &, const YAML::Node &, SourceMark)> &f,
               SourceMark fallback) {
    if (!map.IsMap()) {
      error(mark_of(map, fallback), where + ": expected a mapping with keys " + join(allowed) +
                                        ", found " + type_name(map));
      return false;
    }
    std::vector<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const auto kv = *it; // iterator_value by value: it->first would dangle
      const YAML::Node &k = kv.first;
      SourceMark km = mark_of(k, mark_of(map, fallback));
      if (!k.IsScalar()) {
        error(km, where + ": expected a plain key (one of " + join(allowed) + "), found " +
                      type_name(k));
        continue;
      }
      const std::string &key = k.Scalar();
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        error(km, where + ": duplicate key " + quote(key) + "; each key may appear only once");
        continue;
      }
      seen.push_back(key);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        error(km, where + ": unknown key " + quote(key) + "; allowed keys: " + join(allowed));
        continue;
      }
      f(key, kv.second, mark_of(kv.second, km));
    }
    return true;
  }

  // Like for_each_key, but the keys are free-form names (roles).
  bool for_each_entry(
      const YAML::Node &map, const std::string &where, const std::string &expected,
      const std::function<void(const std::string &, SourceMark, const YAML::Node &, SourceMark)> &f,
      SourceMark fallback) {
    if (!map.IsMap()) {
      error(mark_of(map, fallback),
            where + ": expected a mapping of " + expected + ", found " + type_name(map));
      return false;
    }
    std::vector<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const auto kv = *it; // iterator_value by value: it->first would dangle
      const YAML::Node &k = kv.first;
      SourceMark km = mark_of(k, mark_of(map, fallback));
      if (!k.IsScalar()) {
        error(km, where + ": expected a name as key, found " + std::string(type_name(k)));
        continue;
      }
      const std::string &key = k.Scalar();
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        error(km, where + ": duplicate key " + quote(key) + "; each name may appear only once");
        continue;
      }
      seen.push_back(key);
      f(key, km, kv.second, mark_of(kv.second, km));
    }
    return true;
  }

  std::optional<bool> get_bool(const YAML::Node &n, const std::string &where, SourceMark m) {
    if (n.IsScalar() && n.Tag() == "?") {
      const std::string &s = n.Scalar();
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
    }
    std::string found = n.IsScalar() ? (n.Tag() == "?" ? quote(n.Scalar())
                                                       : "the quoted string " + quote(n.Scalar()))
                                     : type_name(n);
    error(m, where + ": expected a boolean (true or false), found " + found);
    return std::nullopt;
  }

  std::optional<std::string> get_string(const YAML::Node &n, const std::string &where,
                                        SourceMark m) {
    if (n.IsScalar()) return n.Scalar();
    error(m, where + ": expected a string, found " + type_name(n));
    return std::nullopt;
  }

  // A list of strings, each with its mark. Returns nullopt (after reporting) on a type error.
  std::optional<std::vector<std::pair<std::string, SourceMark>>>
  get_string_list(const YAML::Node &n, const std::string &where, SourceMark m) {
    if (!n.IsSequence()) {
      error(m, where + ": expected a list of strings, found " + type_name(n));
      return std::nullopt;
    }
    std::vector<std::pair<std::string, SourceMark>> out;
    bool ok = true;
    std::size_t i = 0;
    for (const auto &item : n) {
      SourceMark im = mark_of(item, m);
      if (!item.IsScalar()) {
        error(im,
              where + "[" + std::to_string(i) + "]: expected a string, found " + type_name(item));
        ok = false;
      } else {
        out.emplace_back(item.Scalar(), im);
      }
      ++i;
    }
    if (!ok) return std::nullopt;
    return out;
  }

  std::vector<std::string> actions(const YAML::Node &n, const std::string &where, SourceMark m);
  std::optional<std::vector<std::string>> capabilities(const YAML::Node &n,
                                                       const std::string &where, SourceMark m);
  std::optional<std::vector<std::string>> namespaces(const YAML::Node &n, const std::string &where,
                                                     SourceMark m);
  std::optional<std::vector<std::string>> registries(const YAML::Node &n, const std::string &where,
                                                     SourceMark m);
  std::optional<std::vector<PathGlob>> globs(const YAML::Node &n, const std::string &where,
                                             SourceMark m);
  std::optional<HostPortSet> host_ports(const YAML::Node &n, const std::string &where,
                                        SourceMark m);
  void rule_name(const YAML::Node &n, const std::string &where, SourceMark m, std::string &out);

  void limits(const YAML::Node &n, const std::string &where, SourceMark m, Limits &out);
  void matchers(const YAML::Node &n, const std::string &where, SourceMark m, Matchers &out);
  void role(const std::string &name, SourceMark name_mark, const YAML::Node &n, SourceMark m,
            PolicyAst &ast);
  void allow_rule(const YAML::Node &n, const std::string &where, SourceMark m, RoleAst &role);
  void guardrail(const YAML::Node &n, const std::string &where, SourceMark m, PolicyAst &ast);
  void binding(const YAML::Node &n, const std::string &where, SourceMark m, PolicyAst &ast);
  void image_trust(const YAML::Node &n, SourceMark m, PolicyAst &ast);
  void trust_rule(const YAML::Node &n, const std::string &where, SourceMark m,
                  ImageTrustSpec &spec);
};

std::vector<std::string> Loader::actions(const YAML::Node &n, const std::string &where,
                                         SourceMark m) {
  std::vector<std::string> out;
  auto list = get_string_list(n, where, m);
  if (!list) return out;
  if (list->empty()) {
    error(m, where + ": the list is empty; expected at least one action name, \"prefix.*\", "
                     "\"*.read\" or \"*\"");
    return out;
  }
  for (const auto &[a, am] : *list) {
    if (!action_pattern_is_valid(a)) {
      std::string msg = where + ": unknown action " + quote(a) +
                        "; expected an action name such as container.create, a pattern such as "
                        "container.*, *.read or *";
      std::string_view best;
      std::size_t best_d = 3;
      for (auto k : known_actions()) {
        std::size_t d = edit_distance(a, k);
        if (d < best_d) {
          best_d = d;
          best = k;
        }
      }
      if (!best.empty()) msg += " (did you mean " + std::string(best) + "?)";
      error(am, msg);
      continue;
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  return out;
}

std::optional<std::vector<std::string>>
Loader::capabilities(const YAML::Node &n, const std::string &where, SourceMark m) {
  auto list = get_string_list(n, where, m);
  if (!list) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (const auto &[c, cm] : *list) {
    std::string norm = normalize_capability(c);
    if (norm != "ALL" && !is_known_capability(norm)) {
      error(cm, where + ": unknown capability " + quote(c) +
                    "; expected a Linux capability such as NET_BIND_SERVICE or CAP_CHOWN, or ALL");
      ok = false;
      continue;
    }
    if (std::find(out.begin(), out.end(), norm) == out.end()) out.push_back(norm);
  }
  if (!ok) return std::nullopt;
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<std::vector<std::string>> Loader::namespaces(const YAML::Node &n,
                                                           const std::string &where, SourceMark m) {
  auto list = get_string_list(n, where, m);
  if (!list) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (const auto &[s, sm] : *list) {
    if (!is_known_namespace(s)) {
      error(sm, where + ": unknown namespace " + quote(s) +
                    "; expected one of pid, network, ipc, uts, userns, cgroupns");
      ok = false;
      continue;
    }
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  if (!ok) return std::nullopt;
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<std::vector<std::string>> Loader::registries(const YAML::Node &n,
                                                           const std::string &where, SourceMark m) {
  auto list = get_string_list(n, where, m);
  if (!list) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (const auto &[r, rm] : *list) {
    std::string low;
    bool bad = r.empty();
    for (char c : r) {
      char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '.' || l == '-' || l == ':' ||
            l == '[' || l == ']'))
        bad = true;
      low += l;
    }
    if (bad || low.find("://") != std::string::npos) {
      error(rm, where + ": invalid registry " + quote(r) +
                    "; expected a registry host[:port] such as docker.io or "
                    "registry.example.com:5000 (no scheme, no path)");
      ok = false;
      continue;
    }
    if (low == "index.docker.io") low = "docker.io"; // the daemon's own alias
    if (std::find(out.begin(), out.end(), low) == out.end()) out.push_back(low);
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<PathGlob>> Loader::globs(const YAML::Node &n, const std::string &where,
                                                   SourceMark m) {
  auto list = get_string_list(n, where, m);
  if (!list) return std::nullopt;
  std::vector<PathGlob> out;
  bool ok = true;
  for (const auto &[g, gm] : *list) {
    std::string why;
    auto compiled = PathGlob::compile(g, &why);
    if (!compiled) {
      error(gm, where + ": " + why);
      ok = false;
      continue;
    }
    out.push_back(std::move(*compiled));
  }
  if (!ok) return std::nullopt;
  return out;
}

// A port number as written in a `host_ports` entry: ASCII digits only (no sign, no spaces, no
// YAML hex or octal forms). Returns -1 for anything else and 0 for values above 65535 (and for 0
// itself), so the caller can tell "not a number" from "out of range".
int parse_port_number(std::string_view s) {
  if (s.empty()) return -1;
  long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
    if (v > 65535) v = 65536; // saturate; keeps long digit strings from overflowing
  }
  return v > 65535 ? 0 : static_cast<int>(v);
}

std::optional<HostPortSet> Loader::host_ports(const YAML::Node &n, const std::string &where,
                                              SourceMark m) {
  if (!n.IsSequence()) {
    error(m, where +
                 ": expected a list of host ports (such as [8080, \"8000-8999\", random]), "
                 "found " +
                 type_name(n));
    return std::nullopt;
  }
  HostPortSet out;
  bool ok = true;
  std::size_t i = 0;
  for (const auto &item : n) {
    SourceMark im = mark_of(item, m);
    std::string wi = where + "[" + std::to_string(i++) + "]";
    if (!item.IsScalar()) {
      error(im, wi + ": expected a port number, a range \"first-last\" or random, found " +
                    type_name(item));
      ok = false;
      continue;
    }
    const std::string &s = item.Scalar();
    if (s == "random") {
      out.random = true;
      continue;
    }
    auto dash = s.find('-');
    int first = parse_port_number(std::string_view(s).substr(0, dash));
    int last =
        dash == std::string::npos ? first : parse_port_number(std::string_view(s).substr(dash + 1));
    if (first < 0 || last < 0) {
      error(im, where + ": invalid host port " + quote(s) +
                    "; expected a port number such as 8080, a range such as \"8000-8999\", or "
                    "random (a port the daemon picks)");
      ok = false;
      continue;
    }
    if (first == 0 || last == 0) {
      error(im, where + ": host port " + quote(s) +
                    " is out of range; ports are 1-65535 (write random for a port the daemon "
                    "picks)");
      ok = false;
      continue;
    }
    if (first > last) {
      error(im, where + ": host port range " + quote(s) +
                    " is reversed; expected first <= last, e.g. \"" + std::to_string(last) + "-" +
                    std::to_string(first) + "\"");
      ok = false;
      continue;
    }
    out.ranges.push_back({first, last});
  }
  if (!ok) return std::nullopt;
  // Sort, then merge overlapping and adjacent ranges (see HostPortSet).
  std::sort(out.ranges.begin(), out.ranges.end(),
            [](const PortRange &a, const PortRange &b) { return a.first < b.first; });
  std::vector<PortRange> merged;
  for (const auto &r : out.ranges) {
    if (!merged.empty() && r.first <= merged.back().last + 1)
      merged.back().last = std::max(merged.back().last, r.last);
    else
      merged.push_back(r);
  }
  out.ranges = std::move(merged);
  return out;
}

void Loader::rule_name(const YAML::Node &n, const std::string &where, SourceMark m,
                       std::string &out) {
  auto s = get_string(n, where, m);
  if (!s) return;
  if (!valid_name(*s, false)) {
    error(m, where + ": invalid rule name " + quote(*s) +
                 "; expected lower-case letters, digits, '.', '_' or '-', starting with a letter "
                 "or digit (at most 128 characters)");
    return;
  }
  if (std::find(kReservedRuleNames.begin(), kReservedRuleNames.end(), *s) !=
      kReservedRuleNames.end()) {
    error(m, where + ": rule name " + quote(*s) +
                 " is reserved for decisions the engine makes itself; choose another name");
    return;
  }
  out = *s;
}

void Loader::limits(const YAML::Node &n, const std::string &where, SourceMark m, Limits &out) {
  if (n.IsNull()) return; // `when:` with nothing: all safe defaults
  for_each_key(
      n, where,
      {"privileged", "capabilities", "host_paths", "image_registries", "run_as_root",
       "host_namespaces", "host_ports", "devices", "unsafe_settings"},
      [&](const std::string &key, const YAML::Node &v, SourceMark vm) {
        std::string w = where + "." + key;
        if (key == "privileged") {
          if (auto b = get_bool(v, w, vm)) out.privileged = *b;
        } else if (key == "capabilities") {
          if (auto caps = capabilities(v, w, vm)) {
            for (auto &c : *caps) {
              if (c == "ALL")
                out.any_capability = true;
              else
                out.capabilities.push_back(c);
            }
          }
        } else if (key == "host_paths") {
          for_each_key(
              v, w, {"allow", "deny", "read_only"},
              [&](const std::string &k2, const YAML::Node &v2, SourceMark vm2) {
                std::string w2 = w + "." + k2;
                if (k2 == "allow") {
                  if (auto g = globs(v2, w2, vm2)) out.host_allow = std::move(*g);
                } else if (k2 == "deny") {
                  if (auto g = globs(v2, w2, vm2)) out.host_deny = std::move(*g);
                } else if (auto b = get_bool(v2, w2, vm2)) {
                  out.host_read_only = *b;
                }
              },
              vm);
        } else if (key == "image_registries") {
          if (auto r = registries(v, w, vm)) {
            out.registries_set = true;
            out.registries = std::move(*r);
          }
        } else if (key == "run_as_root") {
          if (auto b = get_bool(v, w, vm)) out.run_as_root = *b;
        } else if (key == "host_namespaces") {
          if (auto ns = namespaces(v, w, vm)) out.host_namespaces = std::move(*ns);
        } else if (key == "host_ports") {
          out.host_ports = host_ports(v, w, vm); // [] is valid: nothing may be published
        } else if (key == "devices") {
          if (auto b = get_bool(v, w, vm)) out.devices = *b;
        } else if (key == "unsafe_settings") {
          if (auto b = get_bool(v, w, vm)) out.unsafe_settings = *b;
        }
      },
      m);
}

void Loader::matchers(const YAML::Node &n, const std::string &where, SourceMark m, Matchers &out) {
  if (n.IsNull()) return; // `when:` with nothing: matches every request of the actions
  for_each_key(
      n, where,
      {"privileged", "capabilities", "host_paths", "image_registries", "run_as_root",
       "host_namespaces", "host_ports", "devices", "unsafe_settings"},
      [&](const std::string &key, const YAML::Node &v, SourceMark vm) {
        std::string w = where + "." + key;
        auto nonempty = [&](bool empty) {
          if (empty)
            error(vm, w + ": the list is empty, so this matcher could never match; list at least "
                          "one value or remove the key");
          return !empty;
        };
        if (key == "privileged") {
          out.privileged = get_bool(v, w, vm);
        } else if (key == "capabilities") {
          auto c = capabilities(v, w, vm);
          if (c && nonempty(c->empty())) out.capabilities = std::move(c);
        } else if (key == "host_paths") {
          auto g = globs(v, w, vm);
          if (g && nonempty(g->empty())) out.host_paths = std::move(g);
        } else if (key == "image_registries") {
          auto r = registries(v, w, vm);
          if (r && nonempty(r->empty())) out.registries = std::move(r);
        } else if (key == "run_as_root") {
          out.run_as_root = get_bool(v, w, vm);
        } else if (key == "host_namespaces") {
          auto ns = namespaces(v, w, vm);
          if (ns && nonempty(ns->empty())) out.host_namespaces = std::move(ns);
        } else if (key == "host_ports") {
          auto hp = host_ports(v, w, vm);
          if (hp && nonempty(!hp->random && hp->ranges.empty())) out.host_ports = std::move(hp);
        } else if (key == "devices") {
          out.devices = get_bool(v, w, vm);
        } else if (key == "unsafe_settings") {
          out.unsafe_settings = get_bool(v, w, vm);
        }
      },
      m);
}

void Loader::allow_rule(const YAML::Node &n, const std::string &where, SourceMark m,
                        RoleAst &role) {
  AllowRuleAst rule;
  rule.mark = m;
  bool has_name = false, has_actions = false;
  bool is_map = for_each_key(
      n, where, {"name", "description", "actions", "when"},
      [&](const std::string &key, const YAML::Node &v, SourceMark vm) {
        if (key == "name") {
          has_name = true;
          rule.mark = vm;
          rule_name(v, where + ".name", vm, rule.name);
        } else if (key == "description") {
          get_string(v, where + ".description", vm);
        } else if (key == "actions") {
          has_actions = true;
          rule.actions = actions(v, where + ".actions", vm);
        } else if (key == "when") {
          limits(v, where + ".when", vm, rule.limits);
        }
      },
      m);
  if (!is_map) return;
  if (!has_name) error(m, where + ": missing required key \"name\" (a unique rule name)");
  if (!has_actions) error(m, where + ": missing required key \"actions\" (a list of actions)");
  role.rules.push_back(std::move(rule));
}

void Loader::role(const std::string &name, SourceMark name_mark, const YAML::Node &n, SourceMark m,
                  PolicyAst &ast) {
  std::string where = "roles." + name;
  if (!valid_name(name, true))
    error(name_mark, "roles: invalid role name " + quote(name) +
                         "; expected letters, digits, '.', '_' or '-', starting with a letter or "
                         "digit (at most 128 characters)");
  RoleAst role;
  role.name = name;
  role.mark = name_mark;
  if (n.IsNull()) { // `name:` with nothing: a role without rules
    ast.roles.push_back(std::move(role));
    return;
  }
  for_each_key(
      n, where, {"description", "rules", "require_signed_images"},
      [&](const std::string &key, const YAML::Node &v, SourceMark vm) {
        if (key == "description") {
          if (auto s = get_string(v, where + ".description", vm)) role.description = *s;
        } else if (key == "require_signed_images") {
          role.require_mark = vm;
          if (auto b = get_bool(v, where + ".require_signed_images", vm))
            role.require_signed_images = *b;
        } else if (key == "rules") {
          if (v.IsNull()) return; // a role without rules
          if (!v.IsSequence()) {
            error(vm, where + ".rules: expected a list of rules, found " + type_name(v));
            return;
          }
          std::size_t i = 0;
          for (const auto &r : v) {
            allow_rule(r, where + ".rules[" + std::to_string(i) + "]", mark_of(r, vm), role);
            ++i;
          }
        }
      },
      m);
  ast.roles.push_back(std::move(role));
}

void Loader::guardrail(const YAML::Node &n, const std::string &where, SourceMark m,
                       PolicyAst &ast) {
  GuardrailAst g;
  g.mark = m;
  bool has_name = false, has_actions = false;
  bool is_map = for_each_key(
      n, where, {"name", "description", "actions", "when", "except_roles", "message"},
      [&](const std::string &key, const YAML::Node &v, SourceMark vm) {
        if (key == "name") {
          has_name = true;
          g.mark = vm;
          rule_name(v, where + ".name", vm, g.name);
        } else if (key == "description") {
          get_string(v, where + ".description", vm);
        } else if (key == "actions") {
          has_actions = true;
          g.actions = actions(v, where + ".actions", vm);
        } else if (key == "when") {
          matchers(v, where + ".when", vm, g.when);
        } else if (key == "except_roles") {
          if (auto l = get_string_list(v, where + ".except_roles", vm)) g.except_roles = *l;
        } else if (key == "message") {
          if (auto s = get_string(v, where + ".message", vm)) g.message = *s;
        }
      },
      m);
  if (!is_map) return;
  if (!has_name) error(m, where + ": missing required key \"name\" (a unique rule name)");
  if (!has_actions) error(m, where + ": missing required key \"actions\" (a list of actions)");
  ast.guardrails.push_back(std::move(g));
}

void Loader::binding(const YAML::Node &n, const std::string &where, SourceMark m, PolicyAst &ast) {
  BindingAst b;
  b.role_mark = m;
  bool has_role = false;
  auto names = [&](const YAML::Node &v, const std::string &w, SourceMark vm,
                   std::vector<std::string> &out, std::vector<SourceMark> *marks) {
    auto l = get_string_list(v, w, vm);
    if (!l) return;
    for (const auto &[s, sm] : *l) {
      if (s.empty()) {
        error(sm, w + ": empty name; expected a non-empty name");
        continue;
      }
      out.push_back(s);
      if (marks) marks->push_back(sm);
    }
  };
  bool is_map = for_each_key(
      n, where, {"role", "groups", "users"},
      [&](const std::string &key, const YAML::Node &v, SourceMark vm) {
        if (key == "role") {
          has_role = true;
          b.role_mark = vm;
          if (auto s = get_string(v, where + ".role", vm)) {
            if (s->empty())
              error(vm, where + ".role: empty role name; expected the name of a role");
            b.role = *s;
          }
        } else if (key == "groups") {
          names(v, where + ".groups", vm, b.groups, &b.group_marks);
        } else if (key == "users") {
          names(v, where + ".users", vm, b.users, nullptr);
        }
      },
      m);
  if (!is_map) return;
  if (!has_role) error(m, where + ": missing required key \"role\" (the role to grant)");
  ast.bindings.push_back(std::move(b));
}

} // namespace

std::optional<std::string> normalize_image_pattern(std::string_view pattern, std::string *error) {
  auto fail = [&](std::string msg) -> std::optional<std::string> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  if (pattern.empty()) return fail("empty image pattern");
  if (pattern.size() > 512) return fail("image pattern longer than 512 characters");
  std::string p;
  for (char c : pattern) {
    auto u = static_cast<unsigned char>(c);
    char l = static_cast<char>(std::tolower(u));
    bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '.' || l == '_' ||
              l == '-' || l == ':' || l == '/' || l == '*' || l == '?' || l == '[' || l == ']';
    if (!ok)
      return fail("image pattern " + quote(pattern) +
                  " may only contain letters, digits, '.', '_', '-', ':', '/', '[', ']' and the "
                  "wildcards '*' and '?'");
    p.push_back(l);
  }
  if (p == "**") return p;
  std::vector<std::string> segs;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = p.find('/', start);
    segs.push_back(p.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  for (const auto &seg : segs)
    if (seg.empty() || seg == "." || seg == "..")
      return fail("image pattern " + quote(pattern) +
                  " has an empty, \".\" or \"..\" segment; expected registry/repository, e.g. "
                  "\"registry.example.com/team/**\"");
  const std::string &reg = segs.front();
  bool wild = reg.find_first_of("*?") != std::string::npos;
  if (segs.size() < 2 ||
      (!wild && reg.find_first_of(".:") == std::string::npos && reg != "localhost"))
    return fail("image pattern " + quote(pattern) +
                " must start with a registry host, e.g. \"docker.io/library/alpine\" or "
                "\"registry.example.com:5000/team/**\" (short Docker Hub names are not "
                "expanded here)");
  if (reg == "index.docker.io") segs.front() = "docker.io";
  std::string out;
  for (const auto &seg : segs)
    out += (out.empty() ? "" : "/") + seg;
  return out;
}

namespace {

void Loader::trust_rule(const YAML::Node &n, const std::string &where, SourceMark m,
                        ImageTrustSpec &spec) {
  TrustRuleSpec r;
  r.line = m.line;
  r.column = m.column;
  bool has_name = false, has_images = false, has_keys = false;
  bool is_map = for_each_key(
      n, where,
      {"name", "description", "images", "keys", "threshold", "check_reference",
       "signature_repository", "mode", "formats"},
      [&](const std::string &key, const YAML::Node &v, SourceMark vm) {
        if (key == "name") {
          has_name = true;
          r.line = vm.line;
          r.column = vm.column;
          rule_name(v, where + ".name", vm, r.name);
        } else if (key == "description") {
          get_string(v, where + ".description", vm);
        } else if (key == "images") {
          has_images = true;
          auto l = get_string_list(v, where + ".images", vm);
          if (!l) return;
          if (l->empty()) error(vm, where + ".images: expected at least one image pattern");
          for (const auto &[s, sm] : *l) {
            std::string why;
            if (auto norm = normalize_image_pattern(s, &why))
              r.images.push_back(*norm);
            else
              error(sm, where + ".images: " + why);
          }
        } else if (key == "keys") {
          has_keys = true;
          auto l = get_string_list(v, where + ".keys", vm);
          if (!l) return;
          if (l->empty()) error(vm, where + ".keys: expected at least one key name");
          for (const auto &[s, sm] : *l) {
            if (std::find(r.keys.begin(), r.keys.end(), s) != r.keys.end()) {
              error(sm, where + ".keys: key " + quote(s) + " is listed twice");
              continue;
            }
            r.keys.push_back(s);
          }
        } else if (key == "threshold") {
          if (v.IsScalar() && v.Tag() == "?" && !v.Scalar().empty() && v.Scalar().size() <= 3 &&
              std::all_of(v.Scalar().begin(), v.Scalar().end(),
                          [](char c) { return c >= '0' && c <= '9'; }) &&
              std::stoi(v.Scalar()) >= 1)
            r.threshold = std::stoi(v.Scalar());
          else
            error(vm, where + ".threshold: expected a whole number of keys, at least 1");
        } else if (key == "check_reference") {
          if (auto b = get_bool(v, where + ".check_reference", vm)) r.check_reference = *b;
        } else if (key == "signature_repository") {
          auto s = get_string(v, where + ".signature_repository", vm);
          if (!s) return;
          std::string why;
          auto norm = normalize_image_pattern(*s, &why);
          if (!norm || norm->find_first_of("*?[]") != std::string::npos || *norm == "**")
            error(vm, where +
                          ".signature_repository: expected registry/repository without "
                          "wildcards, e.g. \"registry.example.com/signatures\"" +
                          (why.empty() ? "" : " (" + why + ")"));
          else
            r.signature_repository = *norm;
        } else if (key == "mode") {
          auto s = get_string(v, where + ".mode", vm);
          if (!s) return;
          if (*s == "enforce")
            r.warn = false;
          else if (*s == "warn")
            r.warn = true;
          else
            error(vm, where + ".mode: expected \"enforce\" or \"warn\", found " + quote(*s));
        } else if (key == "formats") {
          auto l = get_string_list(v, where + ".formats", vm);
          if (!l) return;
          r.legacy = r.bundle = false;
          for (const auto &[s, sm] : *l) {
            if (s == "legacy")
              r.legacy = true;
            else if (s == "bundle")
              r.bundle = true;
            else
              error(sm, where + ".formats: expected \"legacy\" or \"bundle\", found " + quote(s));
          }
          if (!r.legacy && !r.bundle)
            error(vm, where + ".formats: expected at least one of \"legacy\", \"bundle\"");
        }
      },
      m);
  if (!is_map) return;
  if (!has_name) error(m, where + ": missing required key \"name\" (a unique rule name)");
  if (!has_images)
    error(m, where + ": missing required key \"images\" (registry/repository patterns)");
  if (!has_keys) error(m, where + ": missing required key \"keys\" (names of trusted keys)");
  if (has_keys && r.threshold > static_cast<int>(r.keys.size()) && !r.keys.empty())
    error(m, where + ": threshold " + std::to_string(r.threshold) + " needs at least that many " +
                 "keys, but the rule lists " + std::to_string(r.keys.size()));
  spec.rules.push_back(std::move(r));
}

void Loader::image_trust(const YAML::Node &n, SourceMark m, PolicyAst &ast) {
  ImageTrustSpec spec;
  ast.image_trust_mark = m;
  bool has_keys = false, has_rules = false;
  bool is_map = for_each_key(
      n, "image_trust", {"keys", "rules"},
      [&](const std::string &key, const YAML::Node &v, SourceMark vm) {
        if (key == "keys") {
          has_keys = true;
          for_each_entry(
              v, "image_trust.keys", "key names to {file: PATH} or {pem: TEXT}",
              [&](const std::string &name, SourceMark nm, const YAML::Node &kv, SourceMark km) {
                std::string w = "image_trust.keys." + name;
                if (!valid_name(name, true))
                  error(nm, "image_trust.keys: invalid key name " + quote(name) +
                                "; expected letters, digits, '.', '_' or '-'");
                TrustKeySpec k;
                k.name = name;
                k.line = nm.line;
                k.column = nm.column;
                bool ok = for_each_key(
                    kv, w, {"file", "pem", "description"},
                    [&](const std::string &kk, const YAML::Node &val, SourceMark valm) {
                      if (kk == "description") {
                        get_string(val, w + ".description", valm);
                        return;
                      }
                      auto s = get_string(val, w + "." + kk, valm);
                      if (!s) return;
                      if (s->empty()) error(valm, w + "." + kk + ": expected a non-empty string");
                      (kk == "file" ? k.file : k.pem) = *s;
                    },
                    km);
                if (!ok) return;
                if (k.file.empty() == k.pem.empty())
                  error(km, w + ": expected exactly one of \"file\" (a PEM public key file) or "
                                "\"pem\" (the key's PEM text)");
                spec.keys.push_back(std::move(k));
              },
              vm);
        } else if (key == "rules") {
          has_rules = true;
          if (!v.IsSequence()) {
            error(vm, "image_trust.rules: expected a list of rules, found " +
                          std::string(type_name(v)));
            return;
          }
          std::size_t i = 0;
          for (const auto &item : v) {
            trust_rule(item, "image_trust.rules[" + std::to_string(i) + "]", mark_of(item, vm),
                       spec);
            ++i;
          }
        }
      },
      m);
  if (!is_map) return;
  if (!has_keys) error(m, "image_trust: missing required key \"keys\"");
  if (!has_rules) error(m, "image_trust: missing required key \"rules\"");
  ast.image_trust = std::move(spec);
}

// Counts the YAML documents of a text, at most `limit`, and where each starts. yaml-cpp 0.7's
// LoadAll never returns on some malformed texts (a lone ",": jbeder/yaml-cpp#1040, fixed after
// Debian 12's 0.7.0): its parser reports an empty document again and again without consuming
// input, so LoadAll loops and allocates until memory runs out. Counting with a cap and then
// loading the single document with YAML::Load cannot loop.
class DocumentCounter : public YAML::EventHandler {
public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark &mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark &, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark &, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark &, const std::string &, YAML::anchor_t,
                const std::string &) override {}
  void OnSequenceStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

PolicyAst Loader::load(std::string_view text) {
  PolicyAst ast;
  if (text.size() > kMaxPolicyBytes) {
    error({}, "policy is larger than " + std::to_string(kMaxPolicyBytes) + " bytes");
    return ast;
  }
  std::vector<YAML::Node> docs;
  try {
    const std::string owned(text);
    std::istringstream in(owned);
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (counter.starts.size() < 3 && parser.HandleNextDocument(counter)) {}
    if (counter.starts.size() > 1) {
      const YAML::Mark &m = counter.starts[1];
      error({m.line + 1, m.column + 1},
            counter.starts.size() > 2
                ? "expected a single YAML document, found several (or a text the YAML parser "
                  "cannot make progress in)"
                : "expected a single YAML document, found 2");
      return ast;
    }
    if (!counter.starts.empty()) docs.push_back(YAML::Load(owned));
  } catch (const YAML::Exception &e) {
    SourceMark sm;
    if (!e.mark.is_null()) sm = {e.mark.line + 1, e.mark.column + 1};
    error(sm, "syntax error: " + e.msg);
    return ast;
  }
  if (docs.empty() || docs[0].IsNull()) {
    error({1, 1}, "the policy is empty; expected a mapping with \"version: 1\"");
    return ast;
  }
  const YAML::Node &root = docs[0];
  bool has_version = false;
  bool is_map = for_each_key(
      root, "policy", {"version", "roles", "guardrails", "bindings", "image_trust"},
      [&](const std::string &key, const YAML::Node &v, SourceMark vm) {
        if (key == "version") {
          has_version = true;
          if (!(v.IsScalar() && v.Tag() == "?" && v.Scalar() == "1"))
            error(vm, "version: unsupported policy version " +
                          (v.IsScalar() ? quote(v.Scalar()) : std::string(type_name(v))) +
                          "; expected the number 1");
        } else if (key == "roles") {
          if (v.IsNull()) return;
          for_each_entry(
              v, "roles", "role names to role definitions",
              [&](const std::string &name, SourceMark nm, const YAML::Node &rv, SourceMark rm) {
                role(name, nm, rv, rm, ast);
              },
              vm);
        } else if (key == "image_trust") {
          image_trust(v, vm, ast);
        } else if (key == "guardrails" || key == "bindings") {
          if (v.IsNull()) return;
          if (!v.IsSequence()) {
            error(vm, key + ": expected a list, found " + type_name(v));
            return;
          }
          std::size_t i = 0;
          for (const auto &item : v) {
            std::string w = key + "[" + std::to_string(i) + "]";
            if (key == "guardrails")
              guardrail(item, w, mark_of(item, vm), ast);
            else
              binding(item, w, mark_of(item, vm), ast);
            ++i;
          }
        }
      },
      {1, 1});
  if (is_map && !has_version)
    error(mark_of(root, {1, 1}),
          "policy: missing required key \"version\"; expected \"version: 1\" at the top");
  return ast;
}

} // namespace

std::string normalize_capability(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 4);
  for (char c : name) {
    auto uc = static_cast<unsigned char>(c);
    if (uc <= 0x20 || uc >= 0x7F) return "";
    out += static_cast<char>(std::toupper(uc));
  }
  if (out.empty()) return "";
  if (out == "ALL") return out;
  if (out.rfind("CAP_", 0) != 0) out.insert(0, "CAP_");
  return out;
}

bool is_known_capability(std::string_view normalized) {
  return std::find(kCapabilities.begin(), kCapabilities.end(), normalized) != kCapabilities.end();
}

bool is_known_namespace(std::string_view name) {
  return std::find(kNamespaces.begin(), kNamespaces.end(), name) != kNamespaces.end();
}

PolicyAst load_policy_ast(std::string_view text, std::string_view filename,
                          std::vector<Diagnostic> &errors) {
  try {
    Loader loader(filename, errors);
    return loader.load(text);
  } catch (const YAML::Exception &e) {
    Diagnostic d;
    d.file = std::string(filename);
    if (!e.mark.is_null()) {
      d.line = e.mark.line + 1;
      d.column = e.mark.column + 1;
    }
    d.message = "error while reading the policy: " + e.msg;
    errors.push_back(std::move(d));
  } catch (const std::exception &e) {
    Diagnostic d;
    d.file = std::string(filename);
    d.message = std::string("internal error while reading the policy: ") + e.what();
    errors.push_back(std::move(d));
  }
  return {};
}

} // namespace portcullis::policy_detail
