// One test per Engine API route: every entry of route_table() is matched from a concrete request
// synthesised from its pattern, plus negative cases, the catalog cross-checks and the generated
// docs/ROUTES.md.
#include "plugin/routes.hpp"
#include "policy/actions.hpp"
#include "policy/policy.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

using namespace portcullis;

namespace {

QueryParams parse_query(std::string_view query) {
  QueryParams q;
  std::string err;
  REQUIRE(parse_go_query(query, q, err));
  return q;
}

RouteMatch route(std::string_view method, std::string_view path, bool versioned = false,
                 std::string_view query = "") {
  return match_route(method, path, versioned, parse_query(query));
}

std::vector<std::string> methods_of(const Route &r) {
  if (r.methods == "*") return {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"};
  std::vector<std::string> out;
  std::string_view m = r.methods;
  while (true) {
    std::size_t bar = m.find('|');
    out.emplace_back(m.substr(0, bar));
    if (bar == std::string_view::npos) break;
    m.remove_prefix(bar + 1);
  }
  return out;
}

// A realistic value for a path variable. `slash` asks for a value with '/' (only for {x:.*} and
// {x:.+}, which accept one).
std::string sample_value(const Route &r, std::string_view var, bool slash) {
  std::string_view p = r.pattern;
  if (var == "anyroute") return slash ? "containers/json" : "_ping";
  if (var == "checkpoint") return "cp-2024";
  if (p.rfind("/debug/", 0) == 0) return "heap";
  if (p.rfind("/images/", 0) == 0 || p.rfind("/distribution/", 0) == 0)
    return slash ? "registry:5000/team/app:1.2" : "alpine:3.20";
  if (p.rfind("/plugins/", 0) == 0)
    return slash ? "registry:5000/team/sshfs:latest" : "vieux-sshfs";
  if (p.rfind("/exec/", 0) == 0) return slash ? "3f2a9c/7b1e" : "3f2a9c7b1e04";
  if (p.rfind("/networks/", 0) == 0) return slash ? "team/backend" : "backend";
  if (p.rfind("/volumes/", 0) == 0) return slash ? "team/pgdata" : "pgdata";
  if (p.rfind("/containers/", 0) == 0) return slash ? "team/web-1" : "web-1";
  return "x7k2p9q1"; // swarm object ids
}

struct Sample {
  std::string path;
  std::string object; // the expected object
};

// Substitutes every variable of the pattern; the object is the value of the route's object
// variable, if it has one.
Sample synthesise(const Route &r, bool slash) {
  Sample s;
  std::string_view p = r.pattern;
  for (std::size_t i = 0; i < p.size();) {
    if (p[i] != '{') {
      s.path += p[i++];
      continue;
    }
    std::size_t close = p.find('}', i);
    REQUIRE(close != std::string_view::npos);
    std::string_view inner = p.substr(i + 1, close - i - 1);
    std::string_view name = inner.substr(0, inner.find(':'));
    const bool may_slash = inner.find(':') != std::string_view::npos;
    std::string value = sample_value(r, name, slash && may_slash);
    if (name == r.object) s.object = value;
    s.path += value;
    i = close + 1;
  }
  return s;
}

bool has_any_slash_variable(const Route &r) {
  return r.pattern.find(":.*}") != std::string_view::npos ||
         r.pattern.find(":.+}") != std::string_view::npos;
}

// The query a request to this route carries, and the object it names when the object is a query
// parameter.
std::string query_for(const Route &r, std::string &object) {
  if (r.object.empty() || r.object.front() != '?') return "";
  std::string key(r.object.substr(1));
  std::string value = key == "term"        ? "nginx"
                      : key == "remote"    ? "registry:5000/team/sshfs:latest"
                      : key == "container" ? "web-1"
                      : key == "id"        ? "build-7"
                                           : "web";
  object = value;
  return key + "=" + value;
}

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST_CASE("route table: every route matches its own action and object") {
  const auto &table = route_table();
  REQUIRE(table.size() > 100);
  std::size_t checked = 0;
  for (const auto &r : table) {
    if (r.action == "image.create") continue; // below
    for (bool slash : {false, true}) {
      if (slash && !has_any_slash_variable(r)) continue;
      Sample s = synthesise(r, slash);
      std::string query_object;
      std::string query = query_for(r, query_object);
      std::string object = r.object.empty()          ? ""
                           : r.object.front() == '?' ? query_object
                                                     : s.object;
      for (const auto &method : methods_of(r)) {
        for (bool versioned : {false, true}) {
          INFO(method, " ", (versioned ? "/v1.47" : ""), s.path, "?", query, "  (route ",
               std::string(r.methods), " ", std::string(r.pattern), ")");
          RouteMatch m = route(method, s.path, versioned, query);
          if (versioned && r.unversioned_only) {
            // mux registers the debug routes without the /vX.Y prefix only
            CHECK(m.action == "unknown");
            CHECK(m.route == nullptr);
            continue;
          }
          CHECK_FALSE(m.invalid.has_value());
          CHECK(m.route == &r);
          CHECK(m.action == r.action);
          CHECK(m.object == object);
          ++checked;
        }
      }
    }
  }
  CHECK(checked > 200);
}

TEST_CASE("route table: image.create resolves to pull or import") {
  const Route *create = nullptr;
  for (const auto &r : route_table())
    if (r.action == "image.create") create = &r;
  REQUIRE(create != nullptr);
  for (bool versioned : {false, true}) {
    auto pull = route("POST", "/images/create", versioned,
                      "fromImage=registry%3A5000%2Fteam%2Fapp&tag=1.2&platform=linux%2Famd64");
    CHECK_FALSE(pull.invalid.has_value());
    CHECK(pull.route == create);
    CHECK(pull.action == "image.pull");
    CHECK(pull.object == "registry:5000/team/app");

    auto import = route("POST", "/images/create", versioned, "fromSrc=-&repo=team%2Fimported");
    CHECK_FALSE(import.invalid.has_value());
    CHECK(import.action == "image.import");
    CHECK(import.object == "-");

    for (std::string_view q : {"", "fromImage=&fromSrc=", "fromImage=a&fromSrc=-", "repo=x"}) {
      INFO("query: ", std::string(q));
      auto bad = route("POST", "/images/create", versioned, q);
      CHECK(bad.invalid.has_value());
      CHECK(bad.action == "unknown");
    }
  }
}

TEST_CASE("route table: unknown routes and wrong methods are 'unknown'") {
  for (std::string_view path :
       {"/", "/nonexistent", "/containers", "/Containers/json", "/containers/json/", "/images",
        "/v1.47/containers/json", "/swarm/nodes", "/services/a/b", "/debug/pprof/a/b",
        "/plugins/x/enable/now", "/system/info", "/session/x"}) {
    for (std::string_view method : {"GET", "POST"}) {
      INFO(std::string(method), " ", std::string(path));
      auto m = route(method, path);
      CHECK(m.action == "unknown");
      CHECK(m.route == nullptr);
      CHECK_FALSE(m.invalid.has_value());
    }
  }
  // A method no route registers (the debug routes take any method but OPTIONS).
  for (const auto &r : route_table()) {
    if (r.methods == "*") continue;
    Sample s = synthesise(r, false);
    INFO("PATCH ", s.path);
    CHECK(route("PATCH", s.path).action == "unknown");
  }
  // Every other registered method: never this route.
  for (const auto &r : route_table()) {
    auto mine = methods_of(r);
    Sample s = synthesise(r, false);
    for (std::string m : {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"}) {
      if (std::find(mine.begin(), mine.end(), m) != mine.end()) continue;
      if (r.methods == "*" && m == "OPTIONS") {
        CHECK(route(m, s.path).action == "api.options");
        continue;
      }
      INFO(m, " ", s.path, " must not match ", std::string(r.methods), " ", std::string(r.pattern));
      CHECK(route(m, s.path).route != &r);
    }
  }
  // A few concrete wrong methods.
  CHECK(route("POST", "/containers/json").action == "unknown");
  CHECK(route("GET", "/containers/create").action == "unknown");
  CHECK(route("PUT", "/_ping").action == "unknown");
  CHECK(route("GET", "/build").action == "unknown");
  CHECK(route("DELETE", "/swarm").action == "unknown");
  CHECK(route("GET", "/containers/web-1/start").action == "unknown");
  CHECK(route("POST", "/images/json").action == "unknown");
}

TEST_CASE("route table: ambiguous matches are invalid unless the first route wins") {
  // The real table's only overlap is marked first_wins (checked route by route above); the
  // rule itself is checked on small tables.
  const std::vector<Route> overlap = {
      {"DELETE", "/containers/{name}/checkpoints/{checkpoint}", "container.checkpoint.remove",
       "name"},
      {"DELETE", "/containers/{name:.*}", "container.remove", "name"},
  };
  QueryParams none;
  auto amb = match_route_in(overlap, "DELETE", "/containers/web-1/checkpoints/cp", false, none);
  REQUIRE(amb.invalid.has_value());
  CHECK(amb.invalid->find("more than one") != std::string::npos);
  CHECK(amb.action == "unknown");
  // the same path with only one candidate is fine
  auto one = match_route_in(overlap, "DELETE", "/containers/web-1", false, none);
  CHECK_FALSE(one.invalid.has_value());
  CHECK(one.action == "container.remove");

  std::vector<Route> marked = overlap;
  marked[0].first_wins = true;
  auto first = match_route_in(marked, "DELETE", "/containers/web-1/checkpoints/cp", false, none);
  CHECK_FALSE(first.invalid.has_value());
  CHECK(first.action == "container.checkpoint.remove");
  CHECK(first.object == "web-1");

  // Two routes with the same action are not ambiguous (GET /networks and /networks/ style).
  const std::vector<Route> same = {
      {"GET", "/debug/pprof/{name}", "debug.pprof", "name"},
      {"GET", "/debug/pprof/heap", "debug.pprof", ""},
  };
  auto s = match_route_in(same, "GET", "/debug/pprof/heap", false, none);
  CHECK_FALSE(s.invalid.has_value());
  CHECK(s.action == "debug.pprof");
  CHECK(s.object == "heap");

  // And in the real table the marked overlap resolves to the checkpoint route.
  auto real = route("DELETE", "/containers/web-1/checkpoints/cp-2024", true);
  CHECK_FALSE(real.invalid.has_value());
  CHECK(real.action == "container.checkpoint.remove");
  CHECK(real.object == "web-1");
  // A repeated object key is refused too.
  auto dup = route("POST", "/commit", false, "container=a&container=b");
  CHECK(dup.invalid.has_value());
}

TEST_CASE("route table: actions are in the catalog, read actions are GET/HEAD only") {
  for (const auto &a : route_table_actions()) {
    INFO("action produced by the route table: ", a);
    CHECK(is_known_action(a));
  }
  // The new route for old daemons.
  CHECK(route("POST", "/containers/web-1/copy", true).action == "container.copy");

  const auto &reads = read_actions();
  REQUIRE_FALSE(reads.empty());
  CHECK(std::is_sorted(reads.begin(), reads.end()));
  CHECK(std::adjacent_find(reads.begin(), reads.end()) == reads.end());
  for (auto a : reads) {
    INFO("read action: ", std::string(a));
    CHECK(is_known_action(a));
    CHECK(action_pattern_matches("*.read", a));
    std::size_t routes = 0;
    for (const auto &r : route_table()) {
      if (r.action != a) continue;
      ++routes;
      CHECK((r.methods == "GET" || r.methods == "HEAD" || r.methods == "GET|HEAD"));
    }
    CHECK(routes > 0);
  }
  // Conservative choices that must not slip into the group.
  for (std::string_view a :
       {"container.logs", "container.export", "container.archive.get", "container.archive.head",
        "container.attach.ws", "container.inspect", "image.export", "swarm.inspect",
        "swarm.unlockkey", "volume.inspect", "volume.list", "service.logs", "task.logs",
        "debug.vars", "debug.pprof", "container.create", "unknown", "api.options"}) {
    INFO(std::string(a));
    CHECK_FALSE(is_read_action(a));
    CHECK_FALSE(action_pattern_matches("*.read", a));
  }
  CHECK(action_pattern_is_valid("*.read"));
  CHECK_FALSE(action_pattern_is_valid("*.write"));
  CHECK_FALSE(action_pattern_is_valid("container.read"));
}

TEST_CASE("route table: docs/ROUTES.md is the generated table") {
  const std::string path = std::string(PORTCULLIS_SOURCE_DIR) + "/docs/ROUTES.md";
  const std::string generated = route_table_markdown();
  // one table row per route
  std::size_t rows = 0;
  for (std::size_t i = generated.find("\n| "); i != std::string::npos;
       i = generated.find("\n| ", i + 1))
    ++rows;
  CHECK(rows == route_table().size() + 1); // + the header row
  CHECK(generated.find("`/containers/{name:.*}/copy` | `container.copy`") != std::string::npos);

  const std::string on_disk = read_file(path);
  if (on_disk != generated) {
    std::size_t at = 0;
    while (at < on_disk.size() && at < generated.size() && on_disk[at] == generated[at])
      ++at;
    std::size_t line = 1 + static_cast<std::size_t>(std::count(
                               generated.begin(), generated.begin() + static_cast<long>(at), '\n'));
    FAIL_CHECK("docs/ROUTES.md differs from the route table in plugin/routes.cpp (first "
               "difference at line ",
               line,
               "). Regenerate it from the repository root with:\n    ./build/portcullis "
               "routes > docs/ROUTES.md\n(use your build directory's portcullis binary)");
  }
}

TEST_CASE("route table: a policy rule with actions ['*.read'] allows exactly the read actions") {
  auto compiled = compile_policy("version: 1\nroles:\n  viewer:\n    rules:\n"
                                 "      - {name: look, actions: ['*.read']}\n"
                                 "bindings:\n  - {role: viewer, users: [alice]}\n",
                                 "read.yaml");
  REQUIRE(compiled.policy);
  Principal alice{"alice", "TLS", {}};
  std::size_t allowed = 0;
  for (auto a : known_actions()) {
    Request r;
    r.method = "GET";
    r.path = "/_ping";
    r.action = std::string(a);
    auto d = compiled.policy->evaluate(alice, r);
    INFO("action ", std::string(a), ": ", d.reason);
    CHECK(d.allow == is_read_action(a));
    if (d.allow) {
      CHECK(d.rule == "look");
      ++allowed;
    }
  }
  CHECK(allowed == read_actions().size());
  // Through the router: a read route is allowed, its writing neighbour is not.
  for (auto [method, path, allow] :
       {std::tuple{"GET", "/containers/json", true}, std::tuple{"GET", "/images/alpine/json", true},
        std::tuple{"GET", "/containers/web-1/json", false},
        std::tuple{"GET", "/containers/web-1/logs", false},
        std::tuple{"POST", "/containers/web-1/stop", false}, std::tuple{"GET", "/swarm", false}}) {
    Request r;
    r.method = method;
    r.path = path;
    r.action = route(method, path).action;
    INFO(method, " ", path, " -> ", r.action);
    CHECK(compiled.policy->evaluate(alice, r).allow == allow);
  }
}
