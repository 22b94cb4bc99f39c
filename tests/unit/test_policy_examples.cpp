// examples/policy.yaml compiles and decides typical requests as documented.
#include "policy/policy.hpp"

#include <doctest/doctest.h>
#include <fstream>
#include <sstream>
#include <string>

using namespace portcullis;

namespace {

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open ", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// examples/<file>, compiled; the test stops with the compiler's messages when it does not.
std::shared_ptr<const CompiledPolicy> load_example(const std::string &file) {
  const std::string path = std::string(PORTCULLIS_SOURCE_DIR) + "/examples/" + file;
  auto r = compile_policy(read_file(path), path);
  std::string errs;
  for (const auto &e : r.errors)
    errs += e.to_string() + "\n";
  REQUIRE_MESSAGE(r.policy, errs);
  return r.policy;
}

std::shared_ptr<const CompiledPolicy> example() {
  return load_example("policy.yaml");
}

// Groups as examples/users.yaml assigns them.
Principal alice() {
  return {"alice", "TLS", {"developers"}};
}
Principal bob() {
  return {"bob", "TLS", {"operators"}};
}
Principal carol() {
  return {"carol", "TLS", {"admins"}};
}
Principal local() {
  return {"local", "none", {}};
}

Request act(const std::string &a) {
  Request r;
  r.method = "POST";
  r.action = a;
  return r;
}

Request create(const std::string &registry = "docker.io") {
  Request r = act("container.create");
  ContainerFacts c;
  ImageRef img;
  img.raw = registry == "docker.io" ? "busybox" : registry + "/app:1";
  img.registry = registry;
  img.repository = registry == "docker.io" ? "library/busybox" : "app";
  img.tag = registry == "docker.io" ? "latest" : "1";
  c.image = img;
  r.container = c;
  return r;
}

Request mount(Request r, const std::string &path, bool ro) {
  r.container->host_mounts.push_back(
      HostMount{path + ":/mnt" + (ro ? ":ro" : ""), path, ro, "Binds"});
  return r;
}

} // namespace

TEST_CASE("examples/policy.yaml compiles") {
  auto p = example();
  CHECK(p->role_count() == 3);
  CHECK(p->rule_count() > 10);
  CHECK(p->roles_for(alice()) == std::vector<std::string>{"developer"});
  CHECK(p->roles_for(bob()) == std::vector<std::string>{"operator"});
  CHECK(p->roles_for(carol()) == std::vector<std::string>{"admin"});
  CHECK(p->roles_for(local()) == std::vector<std::string>{"admin"});
}

TEST_CASE("examples/policy.yaml: developer") {
  auto p = example();
  CHECK(p->evaluate(alice(), act("system.ping")).allow);
  CHECK(p->evaluate(alice(), act("container.list")).allow);

  auto d = p->evaluate(alice(), create());
  CHECK(d.allow);
  CHECK(d.rule == "dev-run-containers");

  d = p->evaluate(alice(), mount(create(), "/srv/projects/x", true));
  CHECK_MESSAGE(d.allow, d.reason);

  d = p->evaluate(alice(), mount(create(), "/srv/projects/x", false));
  CHECK_FALSE(d.allow);
  CHECK(d.reason.find("requires read-only host mounts") != std::string::npos);

  // /etc contains /etc/docker, so the guardrail refuses it before the role's limits do.
  d = p->evaluate(alice(), mount(create(), "/etc", true));
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "no-docker-socket");
  d = p->evaluate(alice(), mount(create(), "/opt/tools", true));
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "dev-run-containers");
  CHECK(d.reason.find("host path /opt/tools is not under an allowed path") != std::string::npos);

  d = p->evaluate(alice(), mount(create(), "/srv/projects/.credentials/aws", true));
  CHECK_FALSE(d.allow);

  auto priv = create();
  priv.container->privileged = true;
  d = p->evaluate(alice(), priv);
  CHECK_FALSE(d.allow);
  CHECK(d.reason.find("does not permit privileged containers") != std::string::npos);

  auto cap = create();
  cap.container->capabilities = {"CAP_NET_BIND_SERVICE"};
  CHECK(p->evaluate(alice(), cap).allow);
  cap.container->capabilities = {"CAP_SYS_ADMIN"};
  CHECK_FALSE(p->evaluate(alice(), cap).allow);

  CHECK(p->evaluate(alice(), create("registry.example.internal")).allow);
  CHECK_FALSE(p->evaluate(alice(), create("evil.example.com")).allow);

  auto hostnet = create();
  hostnet.container->host_namespaces = {"network"};
  CHECK_FALSE(p->evaluate(alice(), hostnet).allow);

  // Actions outside the role.
  d = p->evaluate(alice(), act("container.exec"));
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "default-deny");
  CHECK(d.reason.find("has role developer") != std::string::npos);
  CHECK(p->evaluate(alice(), act("container.start")).allow); // no facts on start
  d = p->evaluate(alice(), act("plugin.disable"));
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "no-plugin-management");
  CHECK(p->evaluate(alice(), mount(create(), "/var/run/docker.sock", false)).rule ==
        "no-docker-socket");
}

TEST_CASE("examples/policy.yaml: each developer mounts only their own home") {
  auto p = example();
  CHECK(p->evaluate(alice(), mount(create(), "/home/alice/src", true)).allow);
  auto bobs = p->evaluate(alice(), mount(create(), "/home/bob/src", true));
  CHECK_FALSE(bobs.allow);
  CHECK(bobs.rule == "dev-run-containers");
  CHECK_FALSE(p->evaluate(alice(), mount(create(), "/home/alice/src", false)).allow); // read-only
  CHECK_FALSE(p->evaluate(alice(), mount(create(), "/home", true)).allow);
}

TEST_CASE("examples/policy.yaml: operator") {
  auto p = example();
  auto d = p->evaluate(bob(), mount(create(), "/var/run/docker.sock", false));
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "no-docker-socket");
  CHECK(d.reason.find("hands out root on the host") != std::string::npos);
  CHECK(p->evaluate(bob(), mount(create(), "/run", true)).rule == "no-docker-socket");
  CHECK(p->evaluate(bob(), mount(create(), "/etc/docker/daemon.json", true)).rule ==
        "no-docker-socket");

  auto exec = act("container.exec");
  exec.container = ContainerFacts{};
  exec.container->user = "app";
  exec.container->user_is_root = false;
  d = p->evaluate(bob(), exec);
  CHECK(d.allow);
  CHECK(d.rule == "ops-exec");
  exec.container->privileged = true;
  d = p->evaluate(bob(), exec);
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "no-privileged-exec");
  CHECK(p->evaluate(bob(), act("exec.start")).allow);
  CHECK(p->evaluate(bob(), act("image.tag")).allow);
  CHECK(p->evaluate(bob(), act("volume.list")).allow);
  CHECK_FALSE(p->evaluate(bob(), act("volume.create")).allow);
  CHECK(p->evaluate(bob(), act("swarm.join")).rule == "no-swarm-membership");
  CHECK(p->evaluate(bob(), act("debug.pprof")).rule == "no-debug-endpoints");
}

TEST_CASE("examples/policy.yaml: admin and local") {
  auto p = example();
  auto priv = mount(create("anything.example"), "/", false);
  priv.container->privileged = true;
  priv.container->capabilities = {"ALL"};
  priv.container->host_namespaces = {"pid", "network"};
  auto d = p->evaluate(carol(), priv);
  CHECK_MESSAGE(d.allow, d.reason);
  CHECK(d.rule == "admin-everything");
  CHECK(p->evaluate(carol(), mount(create(), "/var/run/docker.sock", false)).allow);
  CHECK(p->evaluate(carol(), act("plugin.disable")).allow);
  CHECK(p->evaluate(local(), priv).allow);
  // A certificate with CN "local" is not the unix-socket caller.
  d = p->evaluate(Principal{"local", "TLS", {}}, act("system.ping"));
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "default-deny");
  // Even admins cannot get an invalid request through.
  auto bad = act("container.create");
  bad.invalid = "missing JSON body";
  d = p->evaluate(carol(), bad);
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "invalid-request");
  // Strangers get nothing.
  d = p->evaluate(Principal{"mallory", "TLS", {"visitors"}}, act("system.ping"));
  CHECK_FALSE(d.allow);
  CHECK(d.reason.find("has no roles") != std::string::npos);
}

// --- volume.create carries host-path facts: limits and guardrails judge it ---------------------
#include "plugin/normalize.hpp"

TEST_CASE("examples: a local volume bound to a host path is judged like a bind mount") {
  const char *text = R"(
version: 1
roles:
  storage:
    rules:
      - name: storage-volumes
        actions: [volume.create]
        when:
          host_paths:
            allow: ["/srv/**"]
guardrails:
  - name: no-docker-socket
    actions: [container.create, volume.create]
    when:
      host_paths: [/run/docker, /var/lib/docker]
bindings:
  - role: storage
    users: [sam]
)";
  auto compiled = compile_policy(text, "inline.yaml");
  REQUIRE(compiled.policy);
  const Principal sam{"sam", "TLS", {}};
  auto decide = [&](const std::string &opts) {
    RawHttpRequest raw;
    raw.method = "POST";
    raw.uri = "/v1.41/volumes/create";
    raw.body = R"({"Name":"v","Driver":"local","DriverOpts":)" + opts + "}";
    raw.headers["Content-Type"] = "application/json";
    NormalizeOptions o;
    o.resolve_host_path = nullptr; // lexical: this machine's links must not change the outcome
    return compiled.policy->evaluate(sam, normalize(raw, o));
  };
  auto ok = decide(R"({"type":"none","o":"bind","device":"/srv/data"})");
  CHECK(ok.allow);
  CHECK(ok.rule == "storage-volumes");
  auto etc = decide(R"({"type":"none","o":"bind","device":"/etc"})");
  CHECK_FALSE(etc.allow);
  CHECK(etc.rule == "storage-volumes");
  CHECK(etc.reason.find("/etc") != std::string::npos);
  auto sock = decide(R"({"type":"none","o":"bind","device":"/run/docker/plugins"})");
  CHECK_FALSE(sock.allow);
  CHECK(sock.rule == "no-docker-socket");
  CHECK(decide(R"({"type":"none","o":"bind","device":"/srv/../run/docker"})").rule ==
        "invalid-request"); // not clean: mount(2) would resolve it physically
  auto nfs = decide(R"({"type":"nfs","o":"addr=10.0.0.1","device":":/export"})");
  CHECK_FALSE(nfs.allow); // unsafe settings are not permitted by the rule
  CHECK(nfs.rule == "storage-volumes");
  CHECK(decide(R"({})").allow); // a plain named volume
}

// --- examples/baseline.yaml: the shipped default-deny baseline ---------------------------------

namespace {
std::shared_ptr<const CompiledPolicy> baseline() {
  return load_example("baseline.yaml");
}

Request as_user(Request r, const std::string &user) {
  r.container->user = user;
  r.container->user_is_root = user.empty() || user == "root" || user == "0";
  return r;
}
} // namespace

TEST_CASE("examples/baseline.yaml: default deny, guardrails for every caller") {
  auto p = baseline();
  const std::string internal = "registry.example.internal";

  // developers: unprivileged, non-root, trusted registry, read-only project mounts
  auto ok = p->evaluate(alice(), mount(as_user(create(internal), "1000"), "/srv/projects/a", true));
  CHECK(ok.allow);
  CHECK(ok.rule == "dev-run");
  CHECK_FALSE(p->evaluate(alice(), as_user(create("docker.io"), "1000")).allow); // registry
  CHECK(p->evaluate(alice(), create(internal)).rule == "dev-run"); // image default user: root
  auto rw =
      p->evaluate(alice(), mount(as_user(create(internal), "1000"), "/srv/projects/a", false));
  CHECK_FALSE(rw.allow);

  auto priv = as_user(create(internal), "1000");
  priv.container->privileged = true;
  CHECK(p->evaluate(alice(), priv).rule == "no-privileged");
  CHECK(p->evaluate(carol(), priv).allow); // break-glass admin

  auto caps = as_user(create(internal), "1000");
  caps.container->capabilities = {"CAP_SYS_ADMIN"};
  CHECK(p->evaluate(bob(), caps).rule == "no-dangerous-capabilities");

  auto ns = as_user(create(internal), "1000");
  ns.container->host_namespaces = {"pid"};
  CHECK(p->evaluate(bob(), ns).rule == "no-host-namespaces");

  auto unsafe = as_user(create(internal), "1000");
  unsafe.container->unsafe = {"SecurityOpt seccomp=unconfined"};
  CHECK(p->evaluate(bob(), unsafe).rule == "no-unsafe-settings");

  // self-protection: nobody, admins and the unix socket included
  for (const auto &who : {alice(), bob(), carol(), local()}) {
    CAPTURE(who.name);
    auto d = p->evaluate(who, act("plugin.disable"));
    CHECK_FALSE(d.allow);
    CHECK(d.rule == "protect-authz-plugin");
    auto sock = p->evaluate(who, mount(create(internal), "/var/run/docker.sock", true));
    CHECK_FALSE(sock.allow);
    CHECK(sock.rule == "protect-daemon-files");
    CHECK(p->evaluate(who, mount(create(internal), "/", true)).rule == "protect-daemon-files");
  }

  // operators: exec never privileged nor as root; volumes only under /srv/data
  Request exec = act("container.exec");
  exec.container = ContainerFacts{};
  exec.container->user = "app";
  exec.container->user_is_root = false;
  CHECK(p->evaluate(bob(), exec).allow);
  Request exec_root = exec;
  exec_root.container->user = "root";
  exec_root.container->user_is_root = true;
  CHECK_FALSE(p->evaluate(bob(), exec_root).allow);
  Request exec_priv = exec;
  exec_priv.container->privileged = true;
  CHECK(p->evaluate(bob(), exec_priv).rule == "no-privileged-exec");
  // exec.start carries the facts of the exec instance it starts (looked up on the daemon).
  Request start_priv = exec_priv;
  start_priv.action = "exec.start";
  CHECK(p->evaluate(bob(), start_priv).rule == "no-privileged-exec");
  CHECK(p->evaluate(carol(), start_priv).allow);

  // CIS 5.8: privileged host ports for admins only; developers publish 1024+ or random ports.
  auto port = [&](int first, int last) {
    Request r = as_user(create(internal), "1000");
    r.container->published_ports.push_back(PublishedPort{"", first, last, "80/tcp"});
    return r;
  };
  CHECK(p->evaluate(alice(), port(8080, 8080)).allow);
  CHECK(p->evaluate(alice(), port(0, 0)).allow);
  CHECK(p->evaluate(alice(), port(80, 80)).rule == "no-privileged-ports");
  CHECK(p->evaluate(alice(), port(1000, 1100)).rule == "no-privileged-ports");
  CHECK(p->evaluate(carol(), port(80, 80)).allow);

  Request vol = act("volume.create");
  vol.container = ContainerFacts{};
  vol.container->user_is_root = false;
  vol.container->host_mounts.push_back(HostMount{"/boot", "/boot", false, "DriverOpts"});
  CHECK(p->evaluate(bob(), vol).rule == "no-host-system-mounts");
  vol.container->host_mounts[0] = HostMount{"/srv/data/x", "/srv/data/x", false, "DriverOpts"};
  CHECK(p->evaluate(bob(), vol).allow);

  // payloads the plugin cannot see: admins only
  CHECK(p->evaluate(bob(), act("build")).rule == "no-invisible-payloads");
  CHECK(p->evaluate(carol(), act("build")).allow);
  CHECK(p->evaluate(alice(), act("swarm.join")).rule == "no-swarm-membership");
  CHECK(p->evaluate(alice(), act("unknown")).rule == "default-deny");
}
