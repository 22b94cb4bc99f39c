// Policy evaluation: every limit and matcher both ways, guardrail precedence, reasons.
#include "policy/policy.hpp"

#include <doctest/doctest.h>
#include <string>

using namespace portcullis;

namespace {

std::shared_ptr<const CompiledPolicy> must_compile(const std::string &text) {
  auto r = compile_policy(text, "test.yaml");
  std::string errs;
  for (const auto &e : r.errors)
    errs += e.to_string() + "\n";
  REQUIRE_MESSAGE(r.policy, errs);
  return r.policy;
}

Principal user(const std::string &name, std::vector<std::string> groups = {}) {
  return Principal{name, "TLS", std::move(groups)};
}

ImageRef image(const std::string &registry, const std::string &repo = "library/busybox") {
  ImageRef i;
  i.raw = registry + "/" + repo + ":1";
  i.registry = registry;
  i.repository = repo;
  i.tag = "1";
  return i;
}

ImageRef image_id() {
  ImageRef i;
  i.raw = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  i.digest = i.raw;
  i.is_id = true;
  return i;
}

// A harmless container-create: not privileged, no caps, no mounts, image from docker.io,
// runs as a non-root user.
Request create() {
  Request r;
  r.method = "POST";
  r.path = "/containers/create";
  r.api_version = "1.41";
  r.action = "container.create";
  ContainerFacts c;
  c.image = image("docker.io");
  c.user = "1000";
  c.user_is_root = false;
  r.container = c;
  return r;
}

Request with_mount(Request r, const std::string &path, bool ro) {
  r.container->host_mounts.push_back(HostMount{path + ":/x", path, ro, "Binds"});
  return r;
}

Request action(const std::string &a) {
  Request r;
  r.method = "POST";
  r.action = a;
  return r;
}

bool contains(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

const char *kLimitsPolicy = R"(
version: 1
roles:
  base:
    rules:
      - name: base-create
        actions: [container.create]
  loose:
    rules:
      - name: loose-create
        actions: [container.create]
        when:
          privileged: true
          capabilities: [net_bind_service, CAP_CHOWN]
          host_paths:
            allow: ["/srv/**", "/data/*/in"]
            deny: ["/srv/secret"]
            read_only: true
          image_registries: [docker.io, Registry.Example.com:5000]
          run_as_root: false
          host_namespaces: [pid]
          devices: true
          unsafe_settings: true
  anycap:
    rules:
      - name: anycap-create
        actions: [container.create]
        when: {capabilities: [ALL]}
  images:
    rules:
      - name: pull-trusted
        actions: [image.pull, image.inspect]
        when: {image_registries: [docker.io]}
bindings:
  - {role: base, users: [u-base]}
  - {role: loose, users: [u-loose]}
  - {role: anycap, users: [u-anycap]}
  - {role: images, users: [u-img]}
)";

} // namespace

TEST_CASE("policy eval: the safe defaults of an allow rule") {
  auto p = must_compile(kLimitsPolicy);
  auto base = user("u-base");

  auto d = p->evaluate(base, create());
  CHECK(d.allow);
  CHECK(d.rule == "base-create");
  CHECK(d.roles == std::vector<std::string>{"base"});

  auto root = create();
  root.container->user = "";
  root.container->user_is_root = true;
  CHECK(p->evaluate(base, root).allow); // run_as_root defaults to true

  auto any_registry = create();
  any_registry.container->image = image("evil.io");
  CHECK(p->evaluate(base, any_registry).allow); // image_registries defaults to any
  any_registry.container->image = image_id();
  CHECK(p->evaluate(base, any_registry).allow);

  auto priv = create();
  priv.container->privileged = true;
  d = p->evaluate(base, priv);
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "base-create");
  CHECK(contains(d.reason, "rule base-create does not permit privileged containers"));
  CHECK(contains(d.reason, "has role base"));

  auto cap = create();
  cap.container->capabilities = {"CAP_NET_BIND_SERVICE"};
  d = p->evaluate(base, cap);
  CHECK_FALSE(d.allow);
  CHECK(contains(d.reason, "does not permit adding capability CAP_NET_BIND_SERVICE"));

  d = p->evaluate(base, with_mount(create(), "/srv/x", true));
  CHECK_FALSE(d.allow);
  CHECK(contains(d.reason, "does not permit host mounts (host path /srv/x)"));

  auto ns = create();
  ns.container->host_namespaces = {"network"};
  d = p->evaluate(base, ns);
  CHECK_FALSE(d.allow);
  CHECK(contains(d.reason, "does not permit sharing the host \"network\" namespace"));

  auto dev = create();
  dev.container->devices = {"/dev/sda"};
  d = p->evaluate(base, dev);
  CHECK_FALSE(d.allow);
  CHECK(contains(d.reason, "does not permit host devices (\"/dev/sda\")"));

  auto unsafe = create();
  unsafe.container->unsafe = {"SecurityOpt seccomp=unconfined"};
  d = p->evaluate(base, unsafe);
  CHECK_FALSE(d.allow);
  CHECK(contains(d.reason, "does not permit unsafe settings (\"SecurityOpt seccomp=unconfined\")"));
}

TEST_CASE("policy eval: each limit, when lifted, permits exactly what it lists") {
  auto p = must_compile(kLimitsPolicy);
  auto loose = user("u-loose");

  auto all = with_mount(create(), "/srv/app", true);
  all.container->privileged = true;
  all.container->capabilities = {"CAP_NET_BIND_SERVICE", "chown"};
  all.container->host_namespaces = {"pid"};
  all.container->devices = {"/dev/fuse"};
  all.container->unsafe = {"SecurityOpt apparmor=unconfined"};
  all.container->image = image("registry.example.com:5000", "team/app");
  auto d = p->evaluate(loose, all);
  CHECK_MESSAGE(d.allow, d.reason);
  CHECK(d.rule == "loose-create");

  SUBCASE("capabilities outside the list") {
    auto r = all;
    r.container->capabilities = {"CAP_SYS_ADMIN"};
    CHECK(
        contains(p->evaluate(loose, r).reason, "does not permit adding capability CAP_SYS_ADMIN"));
    r.container->capabilities = {"ALL"};
    CHECK_FALSE(p->evaluate(loose, r).allow);
    r.container->capabilities = {"CAP_\xc5\xbfYS_ADMIN"}; // non-ASCII: never permitted
    CHECK_FALSE(p->evaluate(loose, r).allow);
  }
  SUBCASE("ALL permits any capability") {
    auto r = create();
    r.container->capabilities = {"ALL", "CAP_SYS_ADMIN"};
    CHECK(p->evaluate(user("u-anycap"), r).allow);
  }
  SUBCASE("host paths: allow globs, deny globs, read-only") {
    CHECK(p->evaluate(loose, with_mount(all, "/srv", true)).allow == false); // contains /srv/secret
    CHECK(p->evaluate(loose, with_mount(all, "/srv/a/b/c", true)).allow);
    CHECK(p->evaluate(loose, with_mount(all, "/data/team/in", true)).allow);
    d = p->evaluate(loose, with_mount(all, "/data/team/out", true));
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "rule loose-create: host path /data/team/out is not under an allowed "
                             "path"));
    d = p->evaluate(loose, with_mount(all, "/etc", true));
    CHECK(contains(d.reason, "host path /etc is not under an allowed path"));
    d = p->evaluate(loose, with_mount(all, "/srv/secret/key", true));
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "is at, under or above the denied path /srv/secret"));
    d = p->evaluate(loose, with_mount(all, "/srv/app2", false));
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "requires read-only host mounts, but host path /srv/app2 is mounted "
                             "read-write"));
    d = p->evaluate(loose, with_mount(all, "/srv/../etc", true)); // normalizer bug: fail closed
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "is not a normalized absolute path"));
  }
  SUBCASE("registries: listed, unlisted, ID, unknown, case-insensitive") {
    auto r = all;
    r.container->image = image("docker.io");
    CHECK(p->evaluate(loose, r).allow);
    r.container->image = image("REGISTRY.example.com:5000");
    CHECK(p->evaluate(loose, r).allow);
    r.container->image = image("registry.example.com"); // port differs
    d = p->evaluate(loose, r);
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "does not permit images from registry \"registry.example.com\""));
    r.container->image = image_id();
    d = p->evaluate(loose, r);
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "is referenced by ID"));
    r.container->image = image("");
    CHECK_FALSE(p->evaluate(loose, r).allow);
  }
  SUBCASE("run_as_root: false") {
    auto r = all;
    r.container->user = "0:0";
    r.container->user_is_root = true;
    d = p->evaluate(loose, r);
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "does not permit running as root (user \"0:0\")"));
    r.container->user = "";
    CHECK(contains(p->evaluate(loose, r).reason, "user is the image default"));
  }
  SUBCASE("namespaces outside the list") {
    auto r = all;
    r.container->host_namespaces = {"pid", "ipc"};
    CHECK(contains(p->evaluate(loose, r).reason, "host \"ipc\" namespace"));
    r.container->host_namespaces = {"PID"}; // not a name the normalizer produces
    CHECK_FALSE(p->evaluate(loose, r).allow);
  }
}

TEST_CASE("policy eval: facts that are absent hold trivially; image facts outside containers") {
  auto p = must_compile(kLimitsPolicy);
  auto img = user("u-img");
  auto pull = action("image.pull");
  pull.image = image("docker.io");
  CHECK(p->evaluate(img, pull).allow);
  pull.image = image("quay.io");
  auto d = p->evaluate(img, pull);
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "pull-trusted");
  pull.image = image_id();
  CHECK_FALSE(p->evaluate(img, pull).allow);
  // No image fact at all (e.g. image.inspect of a name the normalizer could not parse is
  // marked invalid instead): the limit holds trivially.
  CHECK(p->evaluate(img, action("image.inspect")).allow);
}

TEST_CASE("policy eval: default deny names the roles") {
  auto p = must_compile(kLimitsPolicy);
  auto d = p->evaluate(user("nobody"), create());
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "default-deny");
  CHECK(contains(d.reason, "caller \"nobody\" has no roles"));
  CHECK(d.roles.empty());

  d = p->evaluate(user("u-base"), action("container.exec"));
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "default-deny");
  CHECK(contains(d.reason, "no rule permits \"container.exec\""));
  CHECK(contains(d.reason, "has role base"));

  d = p->evaluate(user("u-base"), action("not-in-catalog"));
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "default-deny");
}

TEST_CASE("policy eval: invalid requests are denied before anything else") {
  auto p =
      must_compile("version: 1\nroles:\n  admin:\n    rules:\n      - {name: all, actions: ['*']}\n"
                   "bindings:\n  - {role: admin, users: [root]}\n");
  auto r = action("system.ping");
  CHECK(p->evaluate(user("root"), r).allow);
  r.invalid = "request body is not valid JSON";
  auto d = p->evaluate(user("root"), r);
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "invalid-request");
  CHECK(d.reason == "request body is not valid JSON");
  CHECK(d.roles == std::vector<std::string>{"admin"});
}

TEST_CASE("policy eval: roles from users and groups; local over TLS is not local") {
  auto p = must_compile(R"(
version: 1
roles:
  a: {}
  b: {}
  c: {}
bindings:
  - {role: b, groups: [devs, ops]}
  - {role: a, users: [alice, local]}
  - {role: c, groups: [Ops]}
)");
  CHECK(p->roles_for(user("alice")) == std::vector<std::string>{"a"});
  CHECK(p->roles_for(user("alice", {"ops"})) == std::vector<std::string>{"a", "b"});
  CHECK(p->roles_for(user("bob", {"ops", "devs", "Ops"})) == std::vector<std::string>{"b", "c"});
  CHECK(p->roles_for(user("ALICE")).empty()); // exact, case-sensitive
  CHECK(p->roles_for(Principal{"local", "none", {}}) == std::vector<std::string>{"a"});
  CHECK(p->roles_for(Principal{"local", "TLS", {}}).empty());
  CHECK(p->role_count() == 3);
}

namespace {
const char *kGuardPolicy = R"(
version: 1
roles:
  all:
    rules:
      - name: allow-all
        actions: ["*"]
        when:
          privileged: true
          capabilities: [ALL]
          host_paths: {allow: ["/**"]}
          host_namespaces: [pid, network, ipc, uts, userns, cgroupns]
          devices: true
          unsafe_settings: true
  boss: {}
guardrails:
  - name: g-priv
    actions: [container.create]
    when: {privileged: true}
    message: "no privileged containers"
  - name: g-caps
    actions: [container.exec]
    when: {capabilities: [SYS_ADMIN, net_raw]}
  - name: g-paths
    actions: [container.update]
    when: {host_paths: ["/etc", "/run/docker/**"]}
  - name: g-registry
    actions: [image.pull]
    when: {image_registries: [evil.io]}
  - name: g-root
    actions: [container.start]
    when: {run_as_root: true}
  - name: g-ns
    actions: [container.restart]
    when: {host_namespaces: [pid, network]}
  - name: g-dev
    actions: [container.pause]
    when: {devices: true}
  - name: g-unsafe
    actions: [container.unpause]
    when: {unsafe_settings: true}
  - name: g-both
    actions: [container.kill]
    when: {privileged: true, host_paths: ["/srv"]}
  - name: g-always
    actions: [plugin.*]
    except_roles: [boss]
  - name: g-first
    actions: [volume.create]
  - name: g-second
    actions: [volume.create]
    message: "never reached"
bindings:
  - {role: all, users: [u, b]}
  - {role: boss, users: [b]}
)";

Request facts(const std::string &act) {
  Request r = create();
  r.action = act;
  return r;
}
} // namespace

TEST_CASE("policy eval: each guardrail matcher both ways, guardrail beats allow") {
  auto p = must_compile(kGuardPolicy);
  auto u = user("u");
  auto expect = [&](const Request &r, bool allow, const std::string &rule) {
    auto d = p->evaluate(u, r);
    CHECK_MESSAGE(d.allow == allow, d.rule, ": ", d.reason);
    CHECK_MESSAGE(d.rule == rule, d.reason);
    return d;
  };

  auto r = facts("container.create");
  expect(r, true, "allow-all");
  r.container->privileged = true;
  auto d = expect(r, false, "g-priv");
  CHECK(d.reason == "no privileged containers (guardrail g-priv: privileged)");

  r = facts("container.exec");
  r.container->capabilities = {"CAP_CHOWN"};
  expect(r, true, "allow-all");
  r.container->capabilities = {"CAP_CHOWN", "sys_admin"};
  d = expect(r, false, "g-caps");
  CHECK(d.reason == "denied by guardrail g-caps (guardrail g-caps: capability CAP_SYS_ADMIN)");
  r.container->capabilities = {"ALL"};
  expect(r, false, "g-caps"); // ALL matches any non-empty list
  r.container->capabilities = {"CAP_NO_SUCH_THING"};
  expect(r, false, "g-caps"); // unrecognised: fail closed
  r.container->capabilities = {};
  r.container->privileged = true;
  expect(r, false, "g-caps"); // privileged has every capability

  r = facts("container.update");
  expect(with_mount(r, "/srv/x", false), true, "allow-all");
  expect(with_mount(r, "/etcx", false), true, "allow-all");
  expect(with_mount(r, "/etc", false), false, "g-paths");
  d = expect(with_mount(r, "/etc/passwd", true), false, "g-paths");
  CHECK(contains(d.reason, "host path /etc/passwd (matches /etc)"));
  expect(with_mount(r, "/", true), false, "g-paths");    // contains /etc
  expect(with_mount(r, "/run", true), false, "g-paths"); // contains /run/docker
  expect(with_mount(r, "/run/docker/plugins/x.sock", true), false, "g-paths");
  expect(action("container.update"), true, "allow-all"); // no facts: matcher does not hold

  auto pull = action("image.pull");
  pull.image = image("docker.io");
  expect(pull, true, "allow-all");
  pull.image = image("EVIL.io");
  expect(pull, false, "g-registry");
  pull.image = image_id();
  expect(pull, true, "allow-all"); // an ID names no registry
  pull.image = image("");
  expect(pull, false, "g-registry"); // unknown registry: fail closed

  r = facts("container.start");
  expect(r, true, "allow-all");
  r.container->user_is_root = true;
  expect(r, false, "g-root");

  r = facts("container.restart");
  r.container->host_namespaces = {"ipc"};
  expect(r, true, "allow-all");
  r.container->host_namespaces = {"ipc", "network"};
  expect(r, false, "g-ns");

  r = facts("container.pause");
  expect(r, true, "allow-all");
  r.container->devices = {"/dev/kvm"};
  expect(r, false, "g-dev");
  r.container->devices = {};
  r.container->privileged = true;
  expect(r, false, "g-dev"); // privileged maps every device

  r = facts("container.unpause");
  expect(r, true, "allow-all");
  r.container->unsafe = {"MaskedPaths=[]"};
  expect(r, false, "g-unsafe");

  // Every matcher of a guardrail must hold.
  r = facts("container.kill");
  r.container->privileged = true;
  expect(r, true, "allow-all");
  r = with_mount(facts("container.kill"), "/srv/data", true);
  expect(r, true, "allow-all");
  r.container->privileged = true;
  expect(r, false, "g-both");

  // No `when`: every request of the action; first guardrail in file order decides.
  expect(action("plugin.list"), false, "g-always");
  expect(action("volume.create"), false, "g-first");
}

TEST_CASE("policy eval: except_roles exempts only the listed roles") {
  auto p = must_compile(kGuardPolicy);
  CHECK_FALSE(p->evaluate(user("u"), action("plugin.disable")).allow);
  auto d = p->evaluate(user("b"), action("plugin.disable"));
  CHECK(d.allow);
  CHECK(d.rule == "allow-all");
  CHECK(d.roles == std::vector<std::string>{"all", "boss"});
  // boss is not exempt from the other guardrails
  CHECK(p->evaluate(user("b"), action("volume.create")).rule == "g-first");
}

TEST_CASE("policy eval: the first allow rule in file order decides; later rules still allow") {
  auto p = must_compile(R"(
version: 1
roles:
  r1:
    rules:
      - name: strict
        actions: [container.create]
  r2:
    rules:
      - name: lenient
        actions: [container.*]
        when: {privileged: true}
bindings:
  - {role: r1, groups: [g]}
  - {role: r2, groups: [g]}
  - {role: r1, users: [only-strict]}
)");
  auto both = user("x", {"g"});
  auto r = create();
  CHECK(p->evaluate(both, r).rule == "strict");
  r.container->privileged = true;
  auto d = p->evaluate(both, r);
  CHECK(d.allow);
  CHECK(d.rule == "lenient");
  d = p->evaluate(user("only-strict"), r);
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "strict"); // the rule whose limit failed, and why
  CHECK(contains(d.reason, "rule strict does not permit privileged containers"));
}

TEST_CASE("policy eval: reasons do not echo control characters from the request") {
  auto p = must_compile(kLimitsPolicy);
  auto r = create();
  r.container->user = "root\n\x1b[31m";
  r.container->user_is_root = true;
  r.container->capabilities = {"SYS_\x01"};
  auto d = p->evaluate(user("u-loose"), r);
  CHECK_FALSE(d.allow);
  for (char c : d.reason)
    CHECK(static_cast<unsigned char>(c) >= 0x20);
}

namespace {
Request with_port(Request r, int first, int last, const std::string &container_port = "80/tcp",
                  const std::string &host_ip = "") {
  r.container->published_ports.push_back(PublishedPort{host_ip, first, last, container_port});
  return r;
}

Request publish_all(Request r) {
  return with_port(std::move(r), 0, 0, "*");
}

const char *kPortsPolicy = R"(
version: 1
roles:
  dev:
    rules:
      - name: dev-ports
        actions: [container.create, container.start]
        when:
          host_ports: [8080, "8100-8199", "8000-8099", 9000-9010, "9012-9020", "8090"]
  rnd:
    rules:
      - name: rnd-ports
        actions: [container.create]
        when: {host_ports: [random, "1024-65535"]}
  none:
    rules:
      - name: no-ports
        actions: [container.create]
        when: {host_ports: []}
  free:
    rules:
      - name: free-ports
        actions: [container.create]
bindings:
  - {role: dev, users: [u-dev]}
  - {role: rnd, users: [u-rnd]}
  - {role: none, users: [u-none]}
  - {role: free, users: [u-free]}
)";
} // namespace

TEST_CASE("policy eval: host_ports limit permits exactly the listed ports") {
  auto p = must_compile(kPortsPolicy);
  auto dev = user("u-dev");
  auto rnd = user("u-rnd");
  auto none = user("u-none");
  auto free = user("u-free");
  auto allows = [&](const Principal &who, const Request &r) {
    auto d = p->evaluate(who, r);
    INFO(d.rule, ": ", d.reason);
    return d.allow;
  };

  SUBCASE("nothing published: every rule allows") {
    for (const auto &who : {dev, rnd, none, free})
      CHECK(allows(who, create()));
  }
  SUBCASE("single ports") {
    CHECK(allows(dev, with_port(create(), 8080, 8080)));
    CHECK(allows(dev, with_port(create(), 8000, 8000, "80/tcp", "127.0.0.1")));
    CHECK(allows(dev, with_port(create(), 9020, 9020, "53/udp")));
    auto d = p->evaluate(dev, with_port(create(), 80, 80));
    CHECK_FALSE(d.allow);
    CHECK(d.rule == "dev-ports");
    CHECK(d.reason == "rule dev-ports does not permit publishing host port 80 (container port "
                      "80/tcp); caller \"u-dev\" has role dev");
    CHECK_FALSE(allows(dev, with_port(create(), 9011, 9011))); // the gap between two ranges
    CHECK_FALSE(allows(dev, with_port(create(), 8200, 8200)));
    CHECK_FALSE(allows(dev, with_port(create(), 7999, 7999)));
    CHECK_FALSE(allows(rnd, with_port(create(), 1023, 1023)));
    CHECK(allows(rnd, with_port(create(), 1024, 1024)));
    CHECK(allows(rnd, with_port(create(), 65535, 65535)));
  }
  SUBCASE("ranges must lie wholly inside the listed ranges") {
    CHECK(allows(dev, with_port(create(), 8000, 8199))); // adjacent listed ranges join
    CHECK(allows(dev, with_port(create(), 9000, 9010)));
    auto d = p->evaluate(dev, with_port(create(), 8150, 8200, "8150/tcp"));
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "rule dev-ports does not permit publishing host ports 8150-8200 "
                             "(container port 8150/tcp)"));
    CHECK_FALSE(allows(dev, with_port(create(), 7999, 8010))); // over the lower edge
    CHECK_FALSE(allows(dev, with_port(create(), 9005, 9015))); // across the gap at 9011
    CHECK_FALSE(allows(rnd, with_port(create(), 1000, 1024)));
    CHECK(allows(rnd, with_port(create(), 1024, 65535)));
  }
  SUBCASE("random ports need random") {
    auto d = p->evaluate(dev, with_port(create(), 0, 0));
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason,
                   "rule dev-ports does not permit publishing a random host port (container port "
                   "80/tcp)"));
    d = p->evaluate(dev, publish_all(create()));
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "rule dev-ports does not permit publishing a random host port "
                             "(every exposed container port)"));
    CHECK(allows(rnd, with_port(create(), 0, 0)));
    CHECK(allows(rnd, publish_all(create())));
    CHECK(allows(rnd, with_port(publish_all(create()), 8080, 8080)));
  }
  SUBCASE("every binding must be covered") {
    auto r = with_port(with_port(create(), 8080, 8080), 8443, 8443, "443/tcp");
    auto d = p->evaluate(dev, r);
    CHECK_FALSE(d.allow);
    CHECK(contains(d.reason, "host port 8443 (container port 443/tcp)"));
    CHECK_FALSE(allows(rnd, with_port(with_port(create(), 0, 0), 80, 80)));
  }
  SUBCASE("an empty list permits no published port") {
    auto d = p->evaluate(none, with_port(create(), 8080, 8080));
    CHECK_FALSE(d.allow);
    CHECK(d.rule == "no-ports");
    CHECK(contains(d.reason, "rule no-ports does not permit publishing host port 8080"));
    CHECK_FALSE(allows(none, with_port(create(), 0, 0)));
    CHECK_FALSE(allows(none, publish_all(create())));
  }
  SUBCASE("no host_ports key: published ports are not limited") {
    CHECK(allows(free, with_port(create(), 1, 65535)));
    CHECK(allows(free, with_port(create(), 22, 22)));
    CHECK(allows(free, publish_all(create())));
  }
  SUBCASE("malformed bindings from the normalizer are refused") {
    for (auto [first, last] : {std::pair{0, 8080}, {8080, 0}, {8090, 8080}, {8080, 70000}}) {
      CAPTURE(first);
      CAPTURE(last);
      auto d = p->evaluate(rnd, with_port(create(), first, last));
      CHECK_FALSE(d.allow);
      CHECK(contains(d.reason, "is not a valid port range"));
    }
  }
  SUBCASE("requests without container facts are not limited") {
    CHECK(allows(dev, action("container.start")));
  }
}

TEST_CASE("policy eval: host_ports guardrail matches overlapping and random bindings") {
  auto p = must_compile(R"(
version: 1
roles:
  all:
    rules:
      - name: allow-all
        actions: ["*"]
  admin: {}
guardrails:
  - name: no-low-ports
    actions: [container.create]
    when: {host_ports: ["1-1023"]}
    except_roles: [admin]
    message: "ports below 1024 are for admins"
  - name: no-random
    actions: [container.create]
    when: {host_ports: [random, 5000]}
bindings:
  - {role: all, users: [u, root]}
  - {role: admin, users: [root]}
)");
  auto u = user("u");
  auto expect = [&](const Principal &who, const Request &r, bool allow, const std::string &rule) {
    auto d = p->evaluate(who, r);
    CHECK_MESSAGE(d.allow == allow, d.rule, ": ", d.reason);
    CHECK_MESSAGE(d.rule == rule, d.reason);
    return d;
  };

  expect(u, create(), true, "allow-all");
  expect(u, action("container.create"), true, "allow-all"); // no facts: never matches
  expect(u, with_port(create(), 8080, 8080), true, "allow-all");
  expect(u, with_port(create(), 1024, 4999), true, "allow-all");
  expect(u, with_port(create(), 5001, 65535), true, "allow-all");

  auto d = expect(u, with_port(create(), 80, 80), false, "no-low-ports");
  CHECK(d.reason ==
        "ports below 1024 are for admins (guardrail no-low-ports: host port 80 (container port "
        "80/tcp))");
  d = expect(u, with_port(create(), 1000, 2000, "1000/tcp"), false, "no-low-ports");
  CHECK(contains(d.reason, "host ports 1000-2000 (container port 1000/tcp)"));
  d = expect(u, with_port(with_port(create(), 8080, 8080), 443, 443, "443/tcp"), false,
             "no-low-ports");
  CHECK(contains(d.reason, "host port 443 (container port 443/tcp)"));
  expect(u, with_port(create(), 1023, 1023), false, "no-low-ports");
  expect(user("root"), with_port(create(), 80, 80), true, "allow-all"); // admin is exempt

  d = expect(u, with_port(create(), 0, 0), false, "no-random");
  CHECK(d.reason == "denied by guardrail no-random (guardrail no-random: a random host port "
                    "(container port 80/tcp))");
  d = expect(u, publish_all(create()), false, "no-random");
  CHECK(contains(d.reason, "a random host port (every exposed container port)"));
  expect(user("root"), publish_all(create()), false, "no-random"); // not exempt from this one
  expect(u, with_port(create(), 4000, 6000), false, "no-random");  // contains 5000
  expect(u, with_port(create(), 5000, 5000), false, "no-random");
  // A binding the normalizer got wrong matches any list (fail closed).
  expect(u, with_port(create(), 0, 7), false, "no-low-ports");
  expect(user("root"), with_port(create(), 9000, 8000), false, "no-random");
}

TEST_CASE("policy eval: {user} in host paths is the caller's own directory") {
  auto p = must_compile(R"(version: 1
roles:
  dev:
    rules:
      - name: dev-home
        actions: [container.create]
        when:
          host_paths:
            allow: ["/home/{user}/**"]
            deny: ["/home/{user}/.ssh"]
guardrails:
  - name: no-other-homes-ro
    actions: [container.create]
    when:
      host_paths: ["/secret/{user}"]
bindings:
  - role: dev
    groups: [devs]
)");
  auto alice = user("alice", {"devs"});
  CHECK(p->evaluate(alice, with_mount(create(), "/home/alice/src", true)).allow);
  auto other = p->evaluate(alice, with_mount(create(), "/home/bob/src", true));
  CHECK_FALSE(other.allow);
  CHECK(other.rule == "dev-home");
  CHECK(p->evaluate(alice, with_mount(create(), "/home/alice/.ssh", true)).rule == "dev-home");
  CHECK_FALSE(p->evaluate(alice, with_mount(create(), "/home/alice/.ssh", true)).allow);
  CHECK(p->evaluate(alice, with_mount(create(), "/secret/alice", true)).rule ==
        "no-other-homes-ro");
  CHECK(p->evaluate(alice, with_mount(create(), "/secret/bob", true)).rule != "no-other-homes-ro");
  // A name that cannot be a path segment: the allow never matches, deny and guardrail always do.
  auto odd = user("..", {"devs"});
  auto d = p->evaluate(odd, with_mount(create(), "/home/x", true));
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "no-other-homes-ro");
}
