#include "plugin/routes.hpp"

#include "policy/actions.hpp"

#include <algorithm>
#include <cstdlib>
#include <set>

namespace portcullis {

namespace {

// Registration order of moby's routers: checkpoint, container, image, system, volume, build,
// session, swarm, plugin, distribution, network, grpc; then the debug router (no method, no
// version prefix).
const std::vector<Route> kRoutes = {
    // --- checkpoint (experimental) --------------------------------------------------------
    {"GET", "/containers/{name:.*}/checkpoints", "container.checkpoint.list", "name"},
    {"POST", "/containers/{name:.*}/checkpoints", "container.checkpoint.create", "name"},
    {"DELETE", "/containers/{name}/checkpoints/{checkpoint}", "container.checkpoint.remove", "name",
     /*first_wins=*/true},
    // --- container -------------------------------------------------------------------------
    {"HEAD", "/containers/{name:.*}/archive", "container.archive.head", "name"},
    {"GET", "/containers/json", "container.list", ""},
    {"GET", "/containers/{name:.*}/export", "container.export", "name"},
    {"GET", "/containers/{name:.*}/changes", "container.changes", "name"},
    {"GET", "/containers/{name:.*}/json", "container.inspect", "name"},
    {"GET", "/containers/{name:.*}/top", "container.top", "name"},
    {"GET", "/containers/{name:.*}/logs", "container.logs", "name"},
    {"GET", "/containers/{name:.*}/stats", "container.stats", "name"},
    {"GET", "/containers/{name:.*}/attach/ws", "container.attach.ws", "name"},
    {"GET", "/exec/{id:.*}/json", "exec.inspect", "id"},
    {"GET", "/containers/{name:.*}/archive", "container.archive.get", "name"},
    {"POST", "/containers/create", "container.create", "?name"},
    {"POST", "/containers/{name:.*}/kill", "container.kill", "name"},
    {"POST", "/containers/{name:.*}/pause", "container.pause", "name"},
    {"POST", "/containers/{name:.*}/unpause", "container.unpause", "name"},
    {"POST", "/containers/{name:.*}/restart", "container.restart", "name"},
    {"POST", "/containers/{name:.*}/start", "container.start", "name"},
    {"POST", "/containers/{name:.*}/stop", "container.stop", "name"},
    {"POST", "/containers/{name:.*}/wait", "container.wait", "name"},
    {"POST", "/containers/{name:.*}/resize", "container.resize", "name"},
    {"POST", "/containers/{name:.*}/attach", "container.attach", "name"},
    // Registered until moby v26 (API < 1.24 removed, moby#47155); answers only /v1.23 and older.
    {"POST", "/containers/{name:.*}/copy", "container.copy", "name"},
    {"POST", "/containers/{name:.*}/exec", "container.exec", "name"},
    {"POST", "/exec/{name:.*}/start", "exec.start", "name"},
    {"POST", "/exec/{name:.*}/resize", "exec.resize", "name"},
    {"POST", "/containers/{name:.*}/rename", "container.rename", "name"},
    {"POST", "/containers/{name:.*}/update", "container.update", "name"},
    {"POST", "/containers/prune", "container.prune", ""},
    {"POST", "/commit", "container.commit", "?container"},
    {"PUT", "/containers/{name:.*}/archive", "container.archive.put", "name"},
    {"DELETE", "/containers/{name:.*}", "container.remove", "name"},
    // --- image -----------------------------------------------------------------------------
    {"GET", "/images/json", "image.list", ""},
    {"GET", "/images/search", "image.search", "?term"},
    {"GET", "/images/get", "image.export", ""},
    {"GET", "/images/{name:.*}/get", "image.export", "name"},
    {"GET", "/images/{name:.*}/history", "image.history", "name"},
    {"GET", "/images/{name:.*}/json", "image.inspect", "name"},
    {"GET", "/images/{name:.*}/attestations", "image.attestations", "name"},
    {"POST", "/images/load", "image.load", ""},
    {"POST", "/images/create", "image.create", ""}, // -> image.pull / image.import
    {"POST", "/images/{name:.*}/push", "image.push", "name"},
    {"POST", "/images/{name:.*}/tag", "image.tag", "name"},
    {"POST", "/images/prune", "image.prune", ""},
    {"DELETE", "/images/{name:.*}", "image.remove", "name"},
    // --- system ----------------------------------------------------------------------------
    {"OPTIONS", "/{anyroute:.*}", "api.options", ""},
    {"GET|HEAD", "/_ping", "system.ping", ""},
    {"GET", "/events", "system.events", ""},
    {"GET", "/info", "system.info", ""},
    {"GET", "/version", "system.version", ""},
    {"GET", "/system/df", "system.df", ""},
    {"POST", "/auth", "system.auth", ""},
    // --- volume ----------------------------------------------------------------------------
    {"GET", "/volumes", "volume.list", ""},
    {"GET", "/volumes/{name:.*}", "volume.inspect", "name"},
    {"POST", "/volumes/create", "volume.create", ""},
    {"POST", "/volumes/prune", "volume.prune", ""},
    {"PUT", "/volumes/{name:.*}", "volume.update", "name"},
    {"DELETE", "/volumes/{name:.*}", "volume.remove", "name"},
    // --- build / session -------------------------------------------------------------------
    {"POST", "/build", "build", ""},
    {"POST", "/build/prune", "build.prune", ""},
    {"POST", "/build/cancel", "build.cancel", "?id"},
    {"POST", "/session", "session", ""},
    // --- swarm (mux default variables: no '/') ---------------------------------------------
    {"POST", "/swarm/init", "swarm.init", ""},
    {"POST", "/swarm/join", "swarm.join", ""},
    {"POST", "/swarm/leave", "swarm.leave", ""},
    {"GET", "/swarm", "swarm.inspect", ""},
    {"GET", "/swarm/unlockkey", "swarm.unlockkey", ""},
    {"POST", "/swarm/update", "swarm.update", ""},
    {"POST", "/swarm/unlock", "swarm.unlock", ""},
    {"GET", "/services", "service.list", ""},
    {"GET", "/services/{id}", "service.inspect", "id"},
    {"POST", "/services/create", "service.create", ""},
    {"POST", "/services/{id}/update", "service.update", "id"},
    {"DELETE", "/services/{id}", "service.remove", "id"},
    {"GET", "/services/{id}/logs", "service.logs", "id"},
    {"GET", "/nodes", "node.list", ""},
    {"GET", "/nodes/{id}", "node.inspect", "id"},
    {"DELETE", "/nodes/{id}", "node.remove", "id"},
    {"POST", "/nodes/{id}/update", "node.update", "id"},
    {"GET", "/tasks", "task.list", ""},
    {"GET", "/tasks/{id}", "task.inspect", "id"},
    {"GET", "/tasks/{id}/logs", "task.logs", "id"},
    {"GET", "/secrets", "secret.list", ""},
    {"POST", "/secrets/create", "secret.create", ""},
    {"DELETE", "/secrets/{id}", "secret.remove", "id"},
    {"GET", "/secrets/{id}", "secret.inspect", "id"},
    {"POST", "/secrets/{id}/update", "secret.update", "id"},
    {"GET", "/configs", "config.list", ""},
    {"POST", "/configs/create", "config.create", ""},
    {"DELETE", "/configs/{id}", "config.remove", "id"},
    {"GET", "/configs/{id}", "config.inspect", "id"},
    {"POST", "/configs/{id}/update", "config.update", "id"},
    // --- plugin ----------------------------------------------------------------------------
    {"GET", "/plugins", "plugin.list", ""},
    {"GET", "/plugins/{name:.*}/json", "plugin.inspect", "name"},
    {"GET", "/plugins/privileges", "plugin.privileges", "?remote"},
    {"DELETE", "/plugins/{name:.*}", "plugin.remove", "name"},
    {"POST", "/plugins/{name:.*}/enable", "plugin.enable", "name"},
    {"POST", "/plugins/{name:.*}/disable", "plugin.disable", "name"},
    {"POST", "/plugins/pull", "plugin.install", "?remote"},
    {"POST", "/plugins/{name:.*}/push", "plugin.push", "name"},
    {"POST", "/plugins/{name:.*}/upgrade", "plugin.upgrade", "name"},
    {"POST", "/plugins/{name:.*}/set", "plugin.set", "name"},
    {"POST", "/plugins/create", "plugin.create", "?name"},
    // --- distribution ----------------------------------------------------------------------
    {"GET", "/distribution/{name:.*}/json", "distribution.inspect", "name"},
    // --- network ---------------------------------------------------------------------------
    {"GET", "/networks", "network.list", ""},
    {"GET", "/networks/", "network.list", ""},
    {"GET", "/networks/{id:.+}", "network.inspect", "id"},
    {"POST", "/networks/create", "network.create", ""},
    {"POST", "/networks/{id:.*}/connect", "network.connect", "id"},
    {"POST", "/networks/{id:.*}/disconnect", "network.disconnect", "id"},
    {"POST", "/networks/prune", "network.prune", ""},
    {"DELETE", "/networks/{id:.*}", "network.remove", "id"},
    // --- grpc ------------------------------------------------------------------------------
    {"POST", "/grpc", "grpc", ""},
    // --- debug: registered as m.Path("/debug" + path) with no method and no version ----------
    {"*", "/debug/vars", "debug.vars", "", false, true},
    {"*", "/debug/pprof/", "debug.pprof", "", false, true},
    {"*", "/debug/pprof/cmdline", "debug.pprof", "", false, true},
    {"*", "/debug/pprof/profile", "debug.pprof", "", false, true},
    {"*", "/debug/pprof/symbol", "debug.pprof", "", false, true},
    {"*", "/debug/pprof/trace", "debug.pprof", "", false, true},
    {"*", "/debug/pprof/{name}", "debug.pprof", "name", false, true},
};

enum class VarKind { NoSlash, Any, NonEmpty };

struct Token {
  bool is_var = false;
  std::string_view text; // literal text, or the variable name
  VarKind kind = VarKind::NoSlash;
};

std::vector<Token> tokenize(std::string_view pattern) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < pattern.size()) {
    std::size_t open = pattern.find('{', i);
    if (open != i) {
      out.push_back({false, pattern.substr(i, open - i), VarKind::NoSlash});
      if (open == std::string_view::npos) break;
    }
    std::size_t close = pattern.find('}', open);
    std::string_view inner = pattern.substr(open + 1, close - open - 1);
    Token t;
    t.is_var = true;
    std::size_t colon = inner.find(':');
    t.text = inner.substr(0, colon);
    std::string_view re = colon == std::string_view::npos ? "" : inner.substr(colon + 1);
    t.kind = re == ".*" ? VarKind::Any : re == ".+" ? VarKind::NonEmpty : VarKind::NoSlash;
    out.push_back(t);
    i = close + 1;
  }
  return out;
}

// The values of a pattern's variables, by position (patterns have at most two; checked when the
// table is compiled).
struct Vars {
  static constexpr std::size_t kMax = 4;
  std::string_view value[kMax];
};

struct CompiledRoute {
  const Route *route;
  std::vector<Token> tokens;
  std::size_t object_var; // position of the variable that names the object; kMax when none
};

// False when a pattern has more variables than Vars holds.
bool compile_table(const std::vector<Route> &table, std::vector<CompiledRoute> &v) {
  v.reserve(table.size());
  for (const auto &r : table) {
    CompiledRoute cr{&r, tokenize(r.pattern), Vars::kMax};
    std::size_t n = 0;
    for (const auto &t : cr.tokens) {
      if (!t.is_var) continue;
      if (t.text == r.object) cr.object_var = n;
      ++n;
    }
    if (n > Vars::kMax) return false;
    v.push_back(std::move(cr));
  }
  return true;
}

const std::vector<CompiledRoute> &compiled_routes() {
  static const std::vector<CompiledRoute> compiled = [] {
    std::vector<CompiledRoute> v;
    if (!compile_table(kRoutes, v)) std::abort(); // a table edit beyond what Vars holds
    return v;
  }();
  return compiled;
}

bool var_accepts(VarKind kind, std::string_view value) {
  switch (kind) {
  case VarKind::Any:
    return true;
  case VarKind::NonEmpty:
    return !value.empty();
  case VarKind::NoSlash:
    return !value.empty() && value.find('/') == std::string_view::npos;
  }
  return false;
}

// Anchored match of tokens[ti..] against path[pos..]; variables are greedy (longest first), as
// Go's regexp leftmost-first does for ".*". `var` counts the variables before tokens[ti].
bool match_tokens(const std::vector<Token> &tokens, std::size_t ti, std::string_view path,
                  std::size_t pos, std::size_t var, Vars &vars) {
  if (ti == tokens.size()) return pos == path.size();
  const Token &t = tokens[ti];
  if (!t.is_var) {
    if (path.substr(pos, t.text.size()) != t.text) return false;
    return match_tokens(tokens, ti + 1, path, pos + t.text.size(), var, vars);
  }
  std::size_t remaining = path.size() - pos;
  for (std::size_t len = remaining + 1; len-- > 0;) {
    std::string_view value = path.substr(pos, len);
    if (!var_accepts(t.kind, value)) continue;
    vars.value[var] = value;
    if (match_tokens(tokens, ti + 1, path, pos + len, var + 1, vars)) return true;
  }
  return false;
}

bool method_matches(std::string_view methods, std::string_view method) {
  if (methods == "*") return method != "OPTIONS";
  while (!methods.empty()) {
    std::size_t bar = methods.find('|');
    if (methods.substr(0, bar) == method) return true;
    if (bar == std::string_view::npos) break;
    methods.remove_prefix(bar + 1);
  }
  return false;
}

const std::vector<std::string_view> kQueryKeysThatMustBeUnique = {
    "name", "container", "repo", "tag", "fromImage", "fromSrc", "remote", "term", "id"};

} // namespace

const std::vector<Route> &route_table() {
  return kRoutes;
}

namespace {
RouteMatch match_compiled(const std::vector<CompiledRoute> &compiled, std::string_view method,
                          std::string_view path, bool versioned, const QueryParams &query) {
  RouteMatch m;
  const CompiledRoute *first = nullptr;
  Vars first_vars;
  for (const auto &cr : compiled) {
    if (versioned && cr.route->unversioned_only) continue;
    if (!method_matches(cr.route->methods, method)) continue;
    Vars vars;
    if (!match_tokens(cr.tokens, 0, path, 0, 0, vars)) continue;
    if (!first) {
      first = &cr;
      first_vars = vars;
      if (cr.route->first_wins) break;
      continue;
    }
    if (cr.route->action != first->route->action) {
      m.invalid = "The request path matches more than one API route.";
      return m;
    }
  }
  if (!first) return m;
  const Route &r = *first->route;
  m.route = &r;
  m.action = std::string(r.action);

  // The daemon reads the first value of a repeated query key; a repeated key that names the
  // object or the image is a sign of a confusion attempt, so refuse it.
  for (auto key : kQueryKeysThatMustBeUnique) {
    if (query.count(key) > 1) {
      m.invalid = "The query parameter '" + std::string(key) + "' is repeated.";
      return m;
    }
  }

  if (!r.object.empty()) {
    if (r.object.front() == '?') {
      m.object = query.first(r.object.substr(1)).value_or("");
    } else if (first->object_var < Vars::kMax) {
      m.object = std::string(first_vars.value[first->object_var]);
    }
  }

  if (r.action == "image.create") {
    bool pull = !query.first("fromImage").value_or("").empty();
    bool import = !query.first("fromSrc").value_or("").empty();
    if (pull == import) {
      m.action = "unknown";
      m.invalid = pull ? "POST /images/create has both fromImage and fromSrc."
                       : "POST /images/create has neither fromImage nor fromSrc.";
      return m;
    }
    m.action = pull ? "image.pull" : "image.import";
    m.object = *query.first(pull ? "fromImage" : "fromSrc");
  }
  return m;
}
} // namespace

RouteMatch match_route(std::string_view method, std::string_view path, bool versioned,
                       const QueryParams &query) {
  return match_compiled(compiled_routes(), method, path, versioned, query);
}

RouteMatch match_route_in(const std::vector<Route> &table, std::string_view method,
                          std::string_view path, bool versioned, const QueryParams &query) {
  std::vector<CompiledRoute> compiled;
  if (!compile_table(table, compiled)) {
    RouteMatch m;
    m.invalid = "The route table has a pattern with too many variables.";
    return m;
  }
  return match_compiled(compiled, method, path, versioned, query);
}

std::vector<std::string> route_table_actions() {
  std::set<std::string> s;
  for (const auto &r : kRoutes) {
    if (r.action == "image.create") {
      s.insert("image.pull");
      s.insert("image.import");
    } else {
      s.insert(std::string(r.action));
    }
  }
  return {s.begin(), s.end()};
}

std::string route_table_markdown() {
  std::string out = R"(# Engine API routes

<!-- Generated by `portcullis routes` from plugin/routes.cpp. Do not edit by hand. -->

This page is generated from the route table in `plugin/routes.cpp` (`kRoutes`). After changing
the table, regenerate it from the repository root with

    ./build/portcullis routes > docs/ROUTES.md

(any build directory will do). A unit test fails while this page and the code differ.

How to read the table (see [NORMALIZATION.md](NORMALIZATION.md) for the decoding before it):

* Rows are in dockerd's registration order (moby's routers: checkpoint, container, image, system,
  volume, build, session, swarm, plugin, distribution, network, grpc, then debug). Every route is
  reachable with and without the `/vX.Y` prefix unless the notes say otherwise.
* `{name}` is one path segment (no `/`); `{name:.*}` is anything, `/` included, possibly empty;
  `{name:.+}` is anything non-empty. Matching is anchored and case-sensitive.
* A path that matches two rows with different actions is refused as ambiguous, unless the first
  of them is marked "first wins" (mux takes the route registered first).
* *Object* is where the request's object name comes from: a path variable or a query parameter.
* *Read* marks the actions the policy pattern `*.read` covers (see [POLICY.md](POLICY.md)).
* A request no row matches has the action `unknown`; only a rule naming `unknown` can allow it.

| # | Method | Path | Action | Object | Read | Notes |
|---|---|---|---|---|---|---|
)";
  std::size_t n = 0;
  for (const auto &r : kRoutes) {
    std::string methods;
    if (r.methods == "*") {
      methods = "any but OPTIONS";
    } else {
      for (char c : r.methods)
        methods += c == '|' ? std::string(", ") : std::string(1, c);
    }
    const bool create = r.action == "image.create";
    std::string action =
        create ? "`image.pull`, `image.import`" : "`" + std::string(r.action) + "`";
    std::string object = "-";
    if (create)
      object = "query `fromImage` / `fromSrc`";
    else if (!r.object.empty() && r.object.front() == '?')
      object = "query `" + std::string(r.object.substr(1)) + "`";
    else if (!r.object.empty())
      object = "path `" + std::string(r.object) + "`";
    const bool read = create ? false : is_read_action(r.action);
    std::string notes;
    auto note = [&notes](std::string_view text) {
      if (!notes.empty()) notes += "; ";
      notes += text;
    };
    if (create)
      note("`image.pull` when `fromImage` is set, `image.import` when `fromSrc` is set; both or "
           "neither: refused");
    if (r.first_wins) note("first wins");
    if (r.unversioned_only) note("unversioned only (no `/vX.Y` prefix)");
    out += "| " + std::to_string(++n) + " | " + methods + " | `" + std::string(r.pattern) + "` | " +
           action + " | " + object + " | " + (read ? "yes" : "") + " | " + notes + " |\n";
  }
  return out;
}

} // namespace portcullis
