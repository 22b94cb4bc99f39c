// Evaluation of a compiled policy: invalid request -> guardrails -> allow rules -> default deny.
// Never throws; an unexpected exception becomes a deny with rule "internal-error".
#include "policy/compiled.hpp"
#include "policy/text.hpp"

#include <algorithm>
#include <cctype>
#include <tuple>

namespace portcullis::policy_detail {

namespace {

constexpr std::size_t kMaxShown = 200;

// Request-controlled text for a reason: quoted, control characters replaced, length capped.
std::string shown(std::string_view s) {
  return "\"" + escape_for_message(s.substr(0, kMaxShown)) + (s.size() > kMaxShown ? "..." : "") +
         "\"";
}

// Like shown(), without the quotes: for normalized paths, which read better bare.
std::string bare(std::string_view s) {
  return escape_for_message(s.substr(0, kMaxShown)) + (s.size() > kMaxShown ? "..." : "");
}

const ImageRef *image_fact(const Request &req) {
  if (req.container && req.container->image) return &*req.container->image;
  if (req.image) return &*req.image;
  return nullptr;
}

std::string normalized_registry(std::string_view r) {
  std::string out(r);
  for (auto &c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (out == "index.docker.io") out = "docker.io";
  return out;
}

bool contains(const std::vector<std::string> &sorted, std::string_view v) {
  return std::binary_search(sorted.begin(), sorted.end(), v);
}

bool listed(const std::vector<std::string> &list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

// A published binding whose host port the daemon picks (HostPort empty or 0, PublishAllPorts).
bool is_random(const PublishedPort &p) {
  return p.first == 0 && p.last == 0;
}

// A binding with a usable host port range. Anything else (and not random) is a normalizer bug:
// limits refuse it and guardrails match it (fail closed).
bool is_valid_range(const PublishedPort &p) {
  return p.first >= 1 && p.first <= p.last && p.last <= 65535;
}

// "host port 80", "host ports 8000-8999", "a random host port", "host port range 0-7"; then the
// container port, e.g. " (container port 80/tcp)", or " (every exposed container port)" for
// publish-all.
std::string describe_port(const PublishedPort &p) {
  std::string out;
  if (is_random(p))
    out = "a random host port";
  else if (!is_valid_range(p))
    out = "host port range " + std::to_string(p.first) + "-" + std::to_string(p.last);
  else if (p.first == p.last)
    out = "host port " + std::to_string(p.first);
  else
    out = "host ports " + std::to_string(p.first) + "-" + std::to_string(p.last);
  if (p.container_port == "*") return out + " (every exposed container port)";
  return out + " (container port " + bare(p.container_port) + ")";
}

std::string role_list(const std::vector<std::string> &roles) {
  std::string out;
  for (const auto &r : roles)
    out += (out.empty() ? "" : ", ") + r;
  return out;
}

// "" when every limit of `r` holds for `req`; otherwise why not.
// A glob with {user} is bound to the caller first. A name that cannot be bound fails closed: an
// allow pattern matches nothing, a deny pattern or guardrail overlaps everything.
bool matches_for(const PathGlob &g, std::string_view path, std::string_view user) {
  if (!g.has_user_template()) return g.matches(path);
  auto bound = g.bind_user(user);
  return bound && bound->matches(path);
}
bool overlaps_for(const PathGlob &g, std::string_view path, std::string_view user) {
  if (!g.has_user_template()) return g.overlaps(path);
  auto bound = g.bind_user(user);
  return !bound || bound->overlaps(path);
}

std::string limit_failure(const CompiledAllowRule &r, const Request &req, std::string_view user) {
  const Limits &L = r.limits;
  auto pre = [&] { return "rule " + r.name; };
  if (req.container) {
    const ContainerFacts &c = *req.container;
    if (c.privileged && !L.privileged) return pre() + " does not permit privileged containers";
    if (!L.any_capability) {
      for (const auto &cap : c.capabilities) {
        std::string n = normalize_capability(cap);
        if (n.empty() || !contains(L.capabilities, n))
          return pre() + " does not permit adding capability " + (n.empty() ? shown(cap) : n);
      }
    }
    for (const auto &m : c.host_mounts) {
      if (!is_normalized_absolute_path(m.path))
        return pre() + ": host path " + shown(m.path) + " is not a normalized absolute path";
      bool allowed = std::any_of(L.host_allow.begin(), L.host_allow.end(),
                                 [&](const PathGlob &g) { return matches_for(g, m.path, user); });
      if (!allowed) {
        if (L.host_allow.empty())
          return pre() + " does not permit host mounts (host path " + bare(m.path) + ")";
        return pre() + ": host path " + bare(m.path) + " is not under an allowed path";
      }
      for (const auto &g : L.host_deny)
        if (overlaps_for(g, m.path, user))
          return pre() + ": host path " + bare(m.path) + " is at, under or above the denied path " +
                 g.text();
      if (L.host_read_only && !m.read_only)
        return pre() + " requires read-only host mounts, but host path " + bare(m.path) +
               " is mounted read-write";
    }
    if (c.user_is_root && !L.run_as_root)
      return pre() + " does not permit running as root (user " +
             (c.user.empty() ? std::string("is the image default") : shown(c.user)) + ")";
    for (const auto &ns : c.host_namespaces)
      if (!contains(L.host_namespaces, ns))
        return pre() + " does not permit sharing the host " + shown(ns) + " namespace";
    if (L.host_ports) {
      for (const auto &p : c.published_ports) {
        if (is_random(p) ? L.host_ports->random
                         : is_valid_range(p) && L.host_ports->covers(p.first, p.last))
          continue;
        if (!is_random(p) && !is_valid_range(p))
          return pre() + ": " + describe_port(p) + " is not a valid port range";
        return pre() + " does not permit publishing " + describe_port(p);
      }
    }
    if (!c.devices.empty() && !L.devices)
      return pre() + " does not permit host devices (" + shown(c.devices.front()) + ")";
    if (!c.unsafe.empty() && !L.unsafe_settings)
      return pre() + " does not permit unsafe settings (" + shown(c.unsafe.front()) + ")";
  }
  if (L.signed_images) {
    if (is_image_producing_action(req.action))
      return pre() + " belongs to a role that runs signed images only, and " + req.action +
             " makes images no trusted key has signed";
    if (is_signature_gated_action(req.action)) {
      if (!req.signature)
        return pre() + " belongs to a role that runs signed images only, and the image's "
                       "signature was not checked";
      if (!req.signature->ok)
        return pre() + " belongs to a role that runs signed images only: " +
               escape_for_message(req.signature->detail.substr(0, 600));
    }
  }
  if (L.registries_set) {
    if (const ImageRef *img = image_fact(req)) {
      if (img->is_id)
        return pre() + " only permits images from listed registries, but image " + shown(img->raw) +
               " is referenced by ID";
      std::string reg = normalized_registry(img->registry);
      if (reg.empty())
        return pre() + " only permits images from listed registries, but the registry of image " +
               shown(img->raw) + " is unknown";
      if (!listed(L.registries, reg))
        return pre() + " does not permit images from registry " + shown(reg) + " (image " +
               shown(img->raw) + ")";
    }
  }
  return {};
}

// True when every matcher of `w` holds. When `detail` is set, describes what matched.
bool matchers_hold(const Matchers &w, const Request &req, std::string *detail,
                   std::string_view user) {
  const ContainerFacts *c = req.container ? &*req.container : nullptr;
  auto note = [&](const std::string &s) {
    if (detail) *detail += (detail->empty() ? "" : ", ") + s;
  };
  if (w.privileged) {
    if (!c || c->privileged != *w.privileged) return false;
    note(*w.privileged ? "privileged" : "not privileged");
  }
  if (w.capabilities) {
    if (!c) return false;
    const auto &list = *w.capabilities;
    bool hit = false;
    if (c->privileged) {
      hit = true; // a privileged container has every capability
      note("privileged (all capabilities)");
    }
    for (const auto &cap : c->capabilities) {
      if (hit) break;
      std::string n = normalize_capability(cap);
      // "ALL", and anything we cannot recognise, matches any list (fail closed).
      if (n.empty() || n == "ALL" || !is_known_capability(n) || listed(list, n)) {
        hit = true;
        note("capability " + (n.empty() ? shown(cap) : n));
      }
    }
    if (!hit) return false;
  }
  if (w.host_paths) {
    if (!c) return false;
    bool hit = false;
    for (const auto &m : c->host_mounts) {
      for (const auto &g : *w.host_paths)
        if (overlaps_for(g, m.path, user)) {
          hit = true;
          note("host path " + bare(m.path) + " (matches " + g.text() + ")");
          break;
        }
      if (hit) break;
    }
    if (!hit) return false;
  }
  if (w.registries) {
    const ImageRef *img = image_fact(req);
    if (!img || img->is_id) return false; // an image ID names no registry
    std::string reg = normalized_registry(img->registry);
    // A name whose registry is unknown matches (fail closed).
    if (!reg.empty() && !listed(*w.registries, reg)) return false;
    note("image " + shown(img->raw) + " from registry " + shown(reg));
  }
  if (w.run_as_root) {
    if (!c || c->user_is_root != *w.run_as_root) return false;
    note(*w.run_as_root ? "runs as root" : "does not run as root");
  }
  if (w.host_namespaces) {
    if (!c) return false;
    bool hit = false;
    for (const auto &ns : c->host_namespaces)
      if (!is_known_namespace(ns) || listed(*w.host_namespaces, ns)) {
        hit = true;
        note("host " + shown(ns) + " namespace");
        break;
      }
    if (!hit) return false;
  }
  if (w.host_ports) {
    if (!c) return false;
    bool hit = false;
    for (const auto &p : c->published_ports) {
      if (is_random(p) ? w.host_ports->random
                       : !is_valid_range(p) || w.host_ports->overlaps(p.first, p.last)) {
        hit = true;
        note(describe_port(p));
        break;
      }
    }
    if (!hit) return false;
  }
  if (w.devices) {
    if (!c) return false;
    bool has = !c->devices.empty() || c->privileged; // privileged maps every device
    if (has != *w.devices) return false;
    note(has ? "host devices" : "no host devices");
  }
  if (w.unsafe_settings) {
    if (!c) return false;
    bool has = !c->unsafe.empty();
    if (has != *w.unsafe_settings) return false;
    note(has ? "unsafe setting " + shown(c->unsafe.front()) : "no unsafe settings");
  }
  return true;
}

bool intersects(const std::vector<std::size_t> &a, const std::vector<std::size_t> &b) {
  auto i = a.begin();
  auto j = b.begin();
  while (i != a.end() && j != b.end()) {
    if (*i == *j) return true;
    if (*i < *j)
      ++i;
    else
      ++j;
  }
  return false;
}

} // namespace

std::vector<std::size_t> PolicyImpl::role_indices(const Principal &who) const {
  std::vector<std::size_t> out;
  // A certificate whose CN is "local" must not pass for the unix-socket caller.
  bool name_usable =
      !who.name.empty() && !(who.name == kLocalPrincipal && who.auth_method == "TLS");
  if (name_usable) {
    auto it = user_roles.find(who.name);
    if (it != user_roles.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  for (const auto &g : who.groups) {
    auto it = group_roles.find(g);
    if (it != group_roles.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<RoleGrant> PolicyImpl::role_grants(const Principal &who) const {
  std::vector<RoleGrant> out;
  bool name_usable =
      !who.name.empty() && !(who.name == kLocalPrincipal && who.auth_method == "TLS");
  if (name_usable)
    if (auto it = user_roles.find(who.name); it != user_roles.end())
      for (auto i : it->second)
        out.push_back({role_names[i], "user " + who.name});
  for (const auto &g : who.groups)
    if (auto it = group_written.find(g); it != group_written.end())
      for (const auto &[i, written] : it->second)
        out.push_back({role_names[i], "group " + written});
  std::sort(out.begin(), out.end(), [](const RoleGrant &a, const RoleGrant &b) {
    return std::tie(a.role, a.via) < std::tie(b.role, b.via);
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const RoleGrant &a, const RoleGrant &b) {
                          return a.role == b.role && a.via == b.via;
                        }),
            out.end());
  return out;
}

bool PolicyImpl::requires_signed_images(const Principal &who) const {
  for (auto i : role_indices(who))
    if (i < role_signed.size() && role_signed[i]) return true;
  return false;
}

std::vector<std::string> PolicyImpl::roles_for(const Principal &who) const {
  std::vector<std::string> names;
  for (auto i : role_indices(who))
    names.push_back(role_names[i]);
  std::sort(names.begin(), names.end());
  return names;
}

Decision PolicyImpl::decide(const Principal &who, const Request &req) const {
  Decision d;
  const std::vector<std::size_t> roles = role_indices(who);
  for (auto i : roles)
    d.roles.push_back(role_names[i]);
  std::sort(d.roles.begin(), d.roles.end());

  if (req.invalid) {
    d.rule = "invalid-request";
    d.reason = req.invalid->empty() ? std::string("invalid request") : *req.invalid;
    return d;
  }

  auto caller = [&] {
    std::string s = "caller " + shown(who.name);
    if (d.roles.empty()) return s + " has no roles";
    return s + " has role" + (d.roles.size() > 1 ? "s " : " ") + role_list(d.roles);
  };

  auto it = by_action.find(req.action);
  if (it != by_action.end()) {
    for (const CompiledGuardrail *g : it->second.guardrails) {
      if (!matchers_hold(g->when, req, nullptr, who.name)) continue;
      if (intersects(g->except_roles, roles)) continue;
      std::string detail;
      matchers_hold(g->when, req, &detail, who.name);
      d.rule = g->name;
      d.reason = (g->message.empty() ? "denied by guardrail " + g->name : g->message) +
                 " (guardrail " + g->name + (detail.empty() ? "" : ": " + detail) + ")";
      return d;
    }
    const CompiledAllowRule *failed = nullptr;
    std::string failure;
    for (const CompiledAllowRule *r : it->second.allow) {
      if (!std::binary_search(roles.begin(), roles.end(), r->role)) continue;
      std::string why = limit_failure(*r, req, who.name);
      if (why.empty()) {
        d.allow = true;
        d.rule = r->name;
        d.reason = "allowed by rule " + r->name + " of role " + role_names[r->role];
        return d;
      }
      if (!failed) {
        failed = r;
        failure = std::move(why);
      }
    }
    if (failed) {
      d.rule = failed->name;
      d.reason = failure + "; " + caller();
      return d;
    }
  }
  d.rule = "default-deny";
  d.reason = "no rule permits " + shown(req.action) + " for this caller; " + caller();
  return d;
}

Decision PolicyImpl::evaluate(const Principal &who, const Request &req) const {
  try {
    return decide(who, req);
  } catch (...) {
    Decision d;
    d.allow = false;
    d.rule = "internal-error";
    d.reason = "internal error while evaluating the policy; denied";
    return d;
  }
}

} // namespace portcullis::policy_detail
