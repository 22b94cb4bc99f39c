// libFuzzer target: the normalizer (plugin/normalize.hpp), and the decision it leads to.
//
// Input, two forms (see fuzz/corpus/normalize):
//   * starting with '{': a whole AuthZReq call of the daemon, decoded with decode_authz_request
//     and its method, URI, body and headers normalized (the plugin's own path);
//   * anything else: an API request written like HTTP (fuzz_util.hpp, parse_http_like), so that
//     the fuzzer mutates the URI, headers and body directly.
// Host paths are resolved through a fixed fake symlink table (fuzz_util.hpp, fake_resolve); the
// real resolver is also run on the resulting mount paths (lstat/readlink only).
//
// Checks, besides "no crash, leak or UB": normalize() never throws; a request that names a body
// action has its facts or is invalid; and under a fixed policy (kPolicy below) an invalid request
// is never allowed, a caller without roles is never allowed, and a developer is allowed only what
// that role's rules permit (the facts are checked against the rule by hand, so a fact the
// normalizer or the evaluator mishandles shows up as a wrong "allow").
#include "fuzz/fuzz_util.hpp"
#include "plugin/codec.hpp"
#include "plugin/normalize.hpp"
#include "policy/policy.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

using namespace portcullis;

namespace {

constexpr const char *kPolicy = R"(version: 1
roles:
  developer:
    rules:
      - name: dev-system
        actions: [system.ping, system.version]
      - name: dev-read
        actions: [container.list, container.inspect]
      - name: dev-run
        actions: [container.create, container.start]
        when:
          privileged: false
          capabilities: [NET_BIND_SERVICE]
          host_paths:
            allow: ["/srv/projects/**"]
            deny: ["/srv/projects/.credentials"]
            read_only: true
          image_registries: [docker.io, registry.example.internal]
          run_as_root: true
          host_namespaces: []
          devices: false
          unsafe_settings: false
      - name: dev-images
        actions: [image.pull]
        when:
          image_registries: [docker.io, registry.example.internal]
  admin:
    rules:
      - name: admin-everything
        actions: ["*"]
        when:
          privileged: true
          capabilities: [ALL]
          host_paths: {allow: ["/**"]}
          run_as_root: true
          host_namespaces: [pid, network, ipc, uts, userns, cgroupns]
          devices: true
          unsafe_settings: true
guardrails:
  - name: no-docker-socket
    actions: [container.create, volume.create]
    when:
      host_paths: [/var/run/docker.sock, /run/docker.sock, /etc/docker]
    except_roles: [admin]
  - name: no-privileged-exec
    actions: [container.exec]
    when:
      privileged: true
    except_roles: [admin]
bindings:
  - role: developer
    groups: [developers]
  - role: admin
    users: [local]
)";

const std::set<std::string> kDeveloperActions = {
    "system.ping",      "system.version",  "container.list", "container.inspect",
    "container.create", "container.start", "image.pull"};
const std::set<std::string> kRegistries = {"docker.io", "registry.example.internal"};

[[noreturn]] void fail(const char *what, const Request &r) {
  std::fprintf(stderr, "fuzz_normalize: invariant violated: %s (method %s, action %s, path %s)\n",
               what, r.method.c_str(), r.action.c_str(), r.path.c_str());
  std::abort();
}

const CompiledPolicy &policy() {
  static const std::shared_ptr<const CompiledPolicy> p = [] {
    CompileResult c = compile_policy(kPolicy, "fuzz_normalize.cpp");
    if (!c.policy) {
      for (const auto &d : c.errors)
        std::fprintf(stderr, "%s\n", d.to_string().c_str());
      std::abort();
    }
    return c.policy;
  }();
  return *p;
}

bool under(const std::string &path, std::string_view dir) { // strictly below dir
  return path.size() > dir.size() + 1 && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

// Registries compare as host names do, case-insensitively; index.docker.io is docker.io.
bool registry_ok(const ImageRef &i) {
  std::string reg = i.registry;
  for (auto &c : reg)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  if (reg == "index.docker.io") reg = "docker.io";
  return !i.is_id && kRegistries.count(reg) > 0;
}

// What the developer role may do, restated from kPolicy.
void check_developer_allow(const Request &r) {
  if (!kDeveloperActions.count(r.action)) fail("developer allowed an action outside its rules", r);
  if (r.action == "image.pull" && (!r.image || !registry_ok(*r.image)))
    fail("developer pulled from a registry not listed", r);
  if (r.action != "container.create" || !r.container) return;
  const ContainerFacts &f = *r.container;
  if (f.privileged) fail("developer created a privileged container", r);
  for (const auto &c : f.capabilities)
    if (c != "CAP_NET_BIND_SERVICE") fail("developer added a capability not listed", r);
  if (!f.host_namespaces.empty()) fail("developer shared a host namespace", r);
  if (!f.devices.empty()) fail("developer used a host device", r);
  if (!f.unsafe.empty()) fail("developer used an unsafe setting", r);
  if (f.image && !registry_ok(*f.image)) fail("developer ran an image of a registry not listed", r);
  for (const auto &m : f.host_mounts) {
    if (!under(m.path, "/srv/projects")) fail("developer mounted a path outside the allow glob", r);
    if (!m.read_only) fail("developer mounted a host path read-write", r);
    if (m.path == "/srv/projects/.credentials" || under(m.path, "/srv/projects/.credentials"))
      fail("developer mounted a denied path", r);
  }
}

void check(const Request &r) {
  static const Principal developer{"alice", "TLS", {"developers"}};
  static const Principal stranger{"mallory", "TLS", {"nobody", "developer", "admin", "local"}};
  static const Principal local{kLocalPrincipal, "none", {}};

  if (r.action.empty()) fail("empty action", r);
  const bool body_action =
      r.action == "container.create" || r.action == "container.exec" || r.action == "volume.create";
  if (body_action && !r.invalid && !r.container) fail("body action without facts", r);

  const CompiledPolicy &p = policy();
  Decision d = p.evaluate(developer, r);
  if (d.allow) {
    if (r.invalid) fail("invalid request allowed (developer)", r);
    check_developer_allow(r);
  }
  if (p.evaluate(stranger, r).allow) fail("caller without roles allowed", r);
  Decision a = p.evaluate(local, r);
  if (a.allow && r.invalid) fail("invalid request allowed (admin)", r);
}

// Volumes "etc*" are local bind volumes of /etc, "proj*" of /srv/projects/app (read-write
// options), "drv*" belong to a third-party driver, "gone*" do not exist; execs "p*" are
// privileged, "r*" run as root, "c*" run in a privileged container; containers below; anything
// else is a daemon error.
DaemonAnswer fake_daemon(const std::string &path) {
  DaemonAnswer a;
  auto found = [&](nlohmann::json body) {
    a.status = DaemonAnswer::Status::found;
    a.body = std::move(body);
    return a;
  };
  auto bind = [](const char *device) {
    return nlohmann::json{{"Driver", "local"},
                          {"Options", {{"type", "none"}, {"o", "bind"}, {"device", device}}}};
  };
  if (path.rfind("/volumes/etc", 0) == 0) return found(bind("/etc"));
  if (path.rfind("/volumes/proj", 0) == 0) return found(bind("/srv/projects/app"));
  if (path.rfind("/volumes/drv", 0) == 0)
    return found({{"Driver", "x"}, {"Options", nlohmann::json::object()}});
  if (path.rfind("/volumes/gone", 0) == 0 || path.rfind("/exec/gone", 0) == 0) {
    a.status = DaemonAnswer::Status::not_found;
    return a;
  }
  if (path.rfind("/exec/p", 0) == 0)
    return found(
        {{"ContainerID", "plain"}, {"ProcessConfig", {{"privileged", true}, {"user", "1000"}}}});
  if (path.rfind("/exec/r", 0) == 0)
    return found(
        {{"ContainerID", "plain"}, {"ProcessConfig", {{"privileged", false}, {"user", ""}}}});
  if (path.rfind("/exec/c", 0) == 0) // an unprivileged exec in a privileged container
    return found(
        {{"ContainerID", "priv"}, {"ProcessConfig", {{"privileged", false}, {"user", "1000"}}}});
  // Containers: "priv*" privileged, "etc*" with the host's /etc and the volume etc-data mounted,
  // anything else plain.
  if (path.rfind("/containers/priv", 0) == 0)
    return found({{"HostConfig", {{"Privileged", true}}}, {"Mounts", nlohmann::json::array()}});
  if (path.rfind("/containers/etc", 0) == 0)
    return found({{"HostConfig", nlohmann::json::object()},
                  {"Mounts",
                   {{{"Type", "bind"}, {"Source", "/etc"}, {"RW", false}},
                    {{"Type", "volume"}, {"Name", "etc-data"}, {"RW", true}}}}});
  if (path.rfind("/containers/", 0) == 0)
    return found({{"HostConfig", nlohmann::json::object()}, {"Mounts", nlohmann::json::array()}});
  a.error = "fake daemon error";
  return a;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  NormalizeOptions opts;
  opts.json.max_depth = 32;
  opts.resolve_host_path = fuzz::fake_resolve;

  RawHttpRequest raw;
  if (!text.empty() && text.front() == '{') {
    DecodeResult call = decode_authz_request(text, opts.json);
    if (!call.request) return 0;
    raw.method = std::move(call.request->method);
    raw.uri = std::move(call.request->uri);
    raw.body = std::move(call.request->body);
    raw.headers = std::move(call.request->headers);
  } else {
    raw = fuzz::parse_http_like(text);
  }

  Request r = normalize(raw, opts);
  check(r);
  if (needs_daemon_facts(r)) {
    // The service asks the daemon next; a fixed fake daemon answers, and the facts it implies
    // must be judged as strictly as facts from the request itself.
    opts.daemon_get = fake_daemon;
    if (!add_daemon_facts(r, opts)) check(r);
  }

  if (r.container) {
    std::size_t n = 0;
    for (const auto &m : r.container->host_mounts) {
      if (++n > 4) break;
      auto resolved = resolve_host_path_on_host(m.path);
      if (resolved && (resolved->empty() || resolved->front() != '/'))
        fail("the host resolver returned a relative path", r);
    }
  }
  return 0;
}
