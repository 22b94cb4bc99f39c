#include "plugin/routes.hpp"
#include "policy/actions.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <set>

using namespace portcullis;

namespace {
RouteMatch route(std::string_view method, std::string_view path, std::string_view query = "",
                 bool versioned = false) {
  QueryParams q;
  std::string err;
  REQUIRE(parse_go_query(query, q, err));
  return match_route(method, path, versioned, q);
}
void expect(std::string_view method, std::string_view path, std::string_view action,
            std::string_view object = "", std::string_view query = "") {
  RouteMatch m = route(method, path, query);
  INFO(std::string(method), " ", std::string(path), "?", std::string(query));
  CHECK_FALSE(m.invalid.has_value());
  CHECK(m.action == action);
  CHECK(m.object == object);
}
} // namespace

TEST_CASE("routes: every table action is in the catalog and every catalog action is routed") {
  auto produced = route_table_actions();
  REQUIRE_FALSE(produced.empty());
  for (const auto &a : produced) {
    INFO("action produced by the route table: ", a);
    CHECK(is_known_action(a));
  }
  std::set<std::string> p(produced.begin(), produced.end());
  for (auto a : known_actions()) {
    if (a == "unknown") continue;
    INFO("catalog action never produced by a route: ", std::string(a));
    CHECK(p.count(std::string(a)) == 1);
  }
  CHECK(p.count("unknown") == 0);
  CHECK(p.count("image.create") == 0); // pseudo action is always resolved
}

TEST_CASE("routes: containers") {
  expect("GET", "/containers/json", "container.list");
  expect("POST", "/containers/create", "container.create", "web", "name=web");
  expect("POST", "/containers/create", "container.create", "");
  expect("GET", "/containers/abc/json", "container.inspect", "abc");
  expect("GET", "/containers/abc/top", "container.top", "abc");
  expect("GET", "/containers/abc/logs", "container.logs", "abc");
  expect("GET", "/containers/abc/changes", "container.changes", "abc");
  expect("GET", "/containers/abc/export", "container.export", "abc");
  expect("GET", "/containers/abc/stats", "container.stats", "abc");
  for (auto verb : {"start", "stop", "restart", "kill", "pause", "unpause", "wait", "rename",
                    "resize", "update", "attach"})
    expect("POST", std::string("/containers/abc/") + verb, std::string("container.") + verb, "abc");
  expect("GET", "/containers/abc/attach/ws", "container.attach.ws", "abc");
  expect("GET", "/containers/abc/archive", "container.archive.get", "abc");
  expect("HEAD", "/containers/abc/archive", "container.archive.head", "abc");
  expect("PUT", "/containers/abc/archive", "container.archive.put", "abc");
  expect("DELETE", "/containers/abc", "container.remove", "abc");
  expect("POST", "/containers/prune", "container.prune");
  expect("POST", "/commit", "container.commit", "abc", "container=abc&repo=x");
  expect("GET", "/containers/abc/checkpoints", "container.checkpoint.list", "abc");
  expect("POST", "/containers/abc/checkpoints", "container.checkpoint.create", "abc");
  expect("DELETE", "/containers/abc/checkpoints/cp1", "container.checkpoint.remove", "abc");
  // the {name:.*} variable may hold '/': "a/b" is the name
  expect("GET", "/containers/a/b/json", "container.inspect", "a/b");
  expect("DELETE", "/containers/a/b", "container.remove", "a/b");
}

TEST_CASE("routes: exec") {
  expect("POST", "/containers/abc/exec", "container.exec", "abc");
  // a naive prefix match would call this container.create
  expect("POST", "/containers/create/exec", "container.exec", "create");
  expect("POST", "/exec/e1/start", "exec.start", "e1");
  expect("POST", "/exec/e1/resize", "exec.resize", "e1");
  expect("GET", "/exec/e1/json", "exec.inspect", "e1");
}

TEST_CASE("routes: query text never changes the route") {
  expect("POST", "/containers/aa/pause", "container.pause", "aa", "aaa=/start");
  expect("POST", "/containers/aa/pause", "container.pause", "aa", "x=/containers/create");
}

TEST_CASE("routes: images") {
  expect("GET", "/images/json", "image.list");
  expect("GET", "/images/search", "image.search", "busybox", "term=busybox");
  expect("GET", "/images/get", "image.export", "", "names=a&names=b");
  expect("GET", "/images/busybox/get", "image.export", "busybox");
  expect("GET", "/images/busybox/history", "image.history", "busybox");
  expect("GET", "/images/docker.io/library/busybox:latest/json", "image.inspect",
         "docker.io/library/busybox:latest");
  expect("GET", "/images/busybox/attestations", "image.attestations", "busybox");
  expect("POST", "/images/load", "image.load");
  expect("POST", "/images/busybox/push", "image.push", "busybox", "tag=1");
  expect("POST", "/images/busybox/tag", "image.tag", "busybox", "repo=x&tag=y");
  expect("POST", "/images/prune", "image.prune");
  expect("DELETE", "/images/busybox:1", "image.remove", "busybox:1");
  expect("POST", "/images/create", "image.pull", "busybox", "fromImage=busybox&tag=latest");
  expect("POST", "/images/create", "image.import", "-", "fromSrc=-&repo=x");

  auto both = route("POST", "/images/create", "fromImage=a&fromSrc=-");
  CHECK(both.invalid.has_value());
  auto neither = route("POST", "/images/create", "repo=a");
  CHECK(neither.invalid.has_value());
  auto empty = route("POST", "/images/create", "fromImage=&fromSrc=");
  CHECK(empty.invalid.has_value());
  auto twice = route("POST", "/images/create", "fromImage=allowed&fromImage=evil");
  CHECK(twice.invalid.has_value());
}

TEST_CASE("routes: build, session, grpc") {
  expect("POST", "/build", "build");
  expect("POST", "/build/prune", "build.prune");
  expect("POST", "/build/cancel", "build.cancel", "b1", "id=b1");
  expect("POST", "/session", "session");
  expect("POST", "/grpc", "grpc");
}

TEST_CASE("routes: volumes and networks") {
  expect("GET", "/volumes", "volume.list");
  expect("GET", "/volumes/v1", "volume.inspect", "v1");
  expect("POST", "/volumes/create", "volume.create");
  expect("POST", "/volumes/prune", "volume.prune");
  expect("PUT", "/volumes/v1", "volume.update", "v1");
  expect("DELETE", "/volumes/v1", "volume.remove", "v1");
  expect("GET", "/networks", "network.list");
  expect("GET", "/networks/", "network.list");
  expect("GET", "/networks/n1", "network.inspect", "n1");
  expect("POST", "/networks/create", "network.create");
  expect("POST", "/networks/n1/connect", "network.connect", "n1");
  expect("POST", "/networks/n1/disconnect", "network.disconnect", "n1");
  expect("POST", "/networks/prune", "network.prune");
  expect("DELETE", "/networks/n1", "network.remove", "n1");
}

TEST_CASE("routes: plugins") {
  expect("GET", "/plugins", "plugin.list");
  expect("GET", "/plugins/privileges", "plugin.privileges", "vieux/sshfs", "remote=vieux/sshfs");
  expect("GET", "/plugins/vieux/sshfs:latest/json", "plugin.inspect", "vieux/sshfs:latest");
  expect("POST", "/plugins/pull", "plugin.install", "vieux/sshfs", "remote=vieux/sshfs&name=s");
  expect("POST", "/plugins/create", "plugin.create", "p", "name=p");
  expect("POST", "/plugins/p/enable", "plugin.enable", "p");
  expect("POST", "/plugins/p/disable", "plugin.disable", "p");
  expect("POST", "/plugins/p/push", "plugin.push", "p");
  expect("POST", "/plugins/p/set", "plugin.set", "p");
  expect("POST", "/plugins/p/upgrade", "plugin.upgrade", "p");
  expect("DELETE", "/plugins/p", "plugin.remove", "p");
}

TEST_CASE("routes: swarm, nodes, services, tasks, secrets, configs") {
  expect("GET", "/swarm", "swarm.inspect");
  for (auto verb : {"init", "join", "leave", "update", "unlock"})
    expect("POST", std::string("/swarm/") + verb, std::string("swarm.") + verb);
  expect("GET", "/swarm/unlockkey", "swarm.unlockkey");
  expect("GET", "/nodes", "node.list");
  expect("GET", "/nodes/n", "node.inspect", "n");
  expect("DELETE", "/nodes/n", "node.remove", "n");
  expect("POST", "/nodes/n/update", "node.update", "n");
  expect("GET", "/services", "service.list");
  expect("POST", "/services/create", "service.create");
  expect("GET", "/services/s", "service.inspect", "s");
  expect("POST", "/services/s/update", "service.update", "s");
  expect("DELETE", "/services/s", "service.remove", "s");
  expect("GET", "/services/s/logs", "service.logs", "s"); // {id} has no '/', so no ambiguity
  expect("GET", "/tasks", "task.list");
  expect("GET", "/tasks/t", "task.inspect", "t");
  expect("GET", "/tasks/t/logs", "task.logs", "t");
  for (std::string g : {"secret", "config"}) {
    expect("GET", "/" + g + "s", g + ".list");
    expect("POST", "/" + g + "s/create", g + ".create");
    expect("GET", "/" + g + "s/x", g + ".inspect", "x");
    expect("DELETE", "/" + g + "s/x", g + ".remove", "x");
    expect("POST", "/" + g + "s/x/update", g + ".update", "x");
  }
  // swarm ids cannot contain '/': no route
  expect("GET", "/services/a/b", "unknown");
}

TEST_CASE("routes: system, distribution, debug, options") {
  expect("GET", "/_ping", "system.ping");
  expect("HEAD", "/_ping", "system.ping");
  expect("GET", "/version", "system.version");
  expect("GET", "/info", "system.info");
  expect("GET", "/events", "system.events");
  expect("GET", "/system/df", "system.df");
  expect("POST", "/auth", "system.auth");
  expect("GET", "/distribution/busybox/json", "distribution.inspect", "busybox");
  expect("OPTIONS", "/containers/create", "api.options");
  expect("OPTIONS", "/anything/at/all", "api.options");
  expect("OPTIONS", "/debug/vars", "api.options");
  expect("GET", "/debug/vars", "debug.vars");
  expect("POST", "/debug/vars", "debug.vars"); // debug routes accept any method
  expect("GET", "/debug/pprof/", "debug.pprof");
  expect("GET", "/debug/pprof/profile", "debug.pprof");
  expect("GET", "/debug/pprof/heap", "debug.pprof", "heap");
  // the debug router is not registered under /vX.Y
  QueryParams q;
  CHECK(match_route("GET", "/debug/vars", true, q).action == "unknown");
  CHECK(match_route("GET", "/info", true, q).action == "system.info");
}

TEST_CASE("routes: unknown methods, paths and case") {
  expect("GET", "/Containers/json", "unknown"); // mux is case-sensitive
  expect("get", "/containers/json", "unknown");
  expect("HEAD", "/containers/json", "unknown"); // GET routes do not answer HEAD
  expect("POST", "/containers/json", "unknown");
  expect("GET", "/containers/create/", "unknown"); // no StrictSlash
  expect("GET", "/nope", "unknown");
  expect("GET", "/", "unknown");
  expect("PATCH", "/containers/x", "unknown");
}

TEST_CASE("routes: ambiguity and repeated object keys are invalid") {
  // DELETE /containers/{name}/checkpoints/{checkpoint} is registered before
  // DELETE /containers/{name:.*}; mux takes it, so it is not ambiguous.
  auto cp = route("DELETE", "/containers/c/checkpoints/x");
  CHECK_FALSE(cp.invalid.has_value());
  CHECK(cp.action == "container.checkpoint.remove");
  // ...but with a '/' in the checkpoint only the container route matches
  auto rm = route("DELETE", "/containers/c/checkpoints/x/y");
  CHECK(rm.action == "container.remove");
  CHECK(rm.object == "c/checkpoints/x/y");

  auto dup = route("POST", "/containers/create", "name=a&name=b");
  CHECK(dup.invalid.has_value());
}

TEST_CASE("routes: no two routes with different actions overlap unless marked") {
  // Probe each pattern with sample values and make sure the match is unambiguous.
  for (const auto &r : route_table()) {
    std::string path;
    std::string_view p = r.pattern;
    for (std::size_t i = 0; i < p.size();) {
      if (p[i] == '{') {
        path += "x1";
        i = p.find('}', i) + 1;
      } else {
        path += p[i++];
      }
    }
    std::string method(r.methods.substr(0, r.methods.find('|')));
    if (method == "*") method = "GET";
    QueryParams q;
    if (r.action == "image.create") q.items.push_back({"fromImage", "busybox"});
    RouteMatch m = match_route(method, path, false, q);
    INFO(method, " ", path);
    CHECK_FALSE(m.invalid.has_value());
    if (r.action != "image.create") CHECK(m.action == r.action);
  }
}
