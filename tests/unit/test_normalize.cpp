#include "plugin/normalize.hpp"
#include "test_support.hpp"

#include <algorithm>
#include <doctest/doctest.h>

using namespace portcullis;
using portcullis::test::lexical;
using portcullis::test::req;

namespace {

// `docker run busybox true` as docker CLI 20.10 sends it (API 1.41).
const char *kCli2010Body =
    R"({"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,)"
    R"("AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,)"
    R"("Cmd":["true"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,)"
    R"("OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"",)"
    R"("LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},)"
    R"("RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,)"
    R"("VolumeDriver":"","VolumesFrom":null,"CapAdd":null,"CapDrop":null,"CgroupnsMode":"",)"
    R"("Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"",)"
    R"("Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,)"
    R"("PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"",)"
    R"("UsernsMode":"","ShmSize":0,"ConsoleSize":[0,0],"Isolation":"","CpuShares":0,)"
    R"("Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],)"
    R"("BlkioDeviceReadBps":null,"BlkioDeviceWriteBps":null,"BlkioDeviceReadIOps":null,)"
    R"("BlkioDeviceWriteIOps":null,"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,)"
    R"("CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],)"
    R"("DeviceCgroupRules":null,"DeviceRequests":null,"KernelMemory":0,"KernelMemoryTCP":0,)"
    R"("MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,)"
    R"("PidsLimit":null,"Ulimits":null,"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,)"
    R"("IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},)"
    R"("NetworkingConfig":{"EndpointsConfig":{}}})"
    "\n";

// `docker run --rm busybox:latest sh -c 'echo hi'` as docker CLI 28 sends it.
const char *kCli28Body =
    R"({"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,)"
    R"("AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,)"
    R"("Cmd":["sh","-c","echo hi"],"Image":"busybox:latest","Volumes":{},"WorkingDir":"",)"
    R"("Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,)"
    R"("ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"bridge",)"
    R"("PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,)"
    R"("VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[40,120],"CapAdd":null,"CapDrop":null,)"
    R"("CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,)"
    R"("GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"",)"
    R"("Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,)"
    R"("UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,)"
    R"("NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],)"
    R"("BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],)"
    R"("BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,)"
    R"("CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],)"
    R"("DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,)"
    R"("MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,)"
    R"("CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,)"
    R"("ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"bridge":{)"
    R"("IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,)"
    R"("GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"",)"
    R"("IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,)"
    R"("DNSNames":null}}}})"
    "\n";

Request create(const std::string &body, const std::string &uri = "/v1.41/containers/create") {
  return normalize(req("POST", uri, body, "application/json"), lexical());
}

// A create whose body is {"Image":"busybox","HostConfig":{<hc>}}.
Request create_hc(const std::string &hc) {
  return create(R"({"Image":"busybox","HostConfig":{)" + hc + "}}");
}

bool has(const std::vector<std::string> &v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool has_prefix(const std::vector<std::string> &v, std::string_view p) {
  return std::any_of(v.begin(), v.end(), [&](const std::string &s) { return s.rfind(p, 0) == 0; });
}

const ContainerFacts &facts(const Request &r) {
  INFO("invalid: ", r.invalid.value_or("(none)"));
  REQUIRE_FALSE(r.invalid.has_value());
  REQUIRE(r.container.has_value());
  return *r.container;
}

void expect_invalid(const Request &r) {
  CHECK(r.invalid.has_value());
  if (r.invalid) CHECK_FALSE(r.invalid->empty());
}

} // namespace

TEST_CASE("normalize: realistic CLI create bodies give clean facts") {
  for (const char *body : {kCli2010Body, kCli28Body}) {
    Request r = create(body, "/v1.41/containers/create?name=web");
    const ContainerFacts &f = facts(r);
    CHECK(r.method == "POST");
    CHECK(r.path == "/containers/create");
    CHECK(r.api_version == "1.41");
    CHECK(r.action == "container.create");
    CHECK(r.object == "web");
    CHECK_FALSE(f.privileged);
    CHECK(f.capabilities.empty());
    CHECK(f.host_mounts.empty());
    CHECK(f.host_namespaces.empty());
    CHECK(f.devices.empty());
    CHECK(f.unsafe.empty());
    CHECK(f.user.empty());
    CHECK(f.user_is_root);
    REQUIRE(f.image.has_value());
    CHECK(f.image->registry == "docker.io");
    CHECK(f.image->repository == "library/busybox");
    CHECK(f.image->tag == "latest");
    REQUIRE(r.image.has_value());
    CHECK(r.image->repository == "library/busybox");
  }
}

TEST_CASE("normalize: encoded and absolute URIs route to create") {
  for (std::string uri : {"/v1.41/%63ontainers/create", "/containers/cr%65ate",
                          "http://docker/v1.41/containers/create?name=a"}) {
    Request r =
        normalize(req("POST", uri, R"({"Image":"busybox","HostConfig":{"Privileged":true}})",
                      "application/json"));
    INFO(uri);
    CHECK(r.action == "container.create");
    CHECK_FALSE(r.invalid.has_value());
    REQUIRE(r.container);
    CHECK(r.container->privileged);
  }
}

TEST_CASE("normalize: invalid URIs") {
  for (std::string uri : {"/containers//json", "/containers/./x/json", "/containers/x/../y/json",
                          "/containers/%2e%2e/json", "/containers/json?a=1;b=2", "/v1/info", "*",
                          "ftp://x/info", "/info#x", "/containers/%00/json"}) {
    Request r = normalize(req("GET", uri));
    INFO(uri);
    expect_invalid(r);
    CHECK(r.action == "unknown");
  }
  expect_invalid(normalize(req("", "/info")));
  expect_invalid(normalize(req("GE T", "/info")));
}

TEST_CASE("normalize: case-folded keys are found") {
  auto f = facts(create(R"({"Image":"busybox","hOsTcOnFiG":{"pRiViLeGeD":true}})"));
  CHECK(f.privileged);
  auto g = facts(create("{\"Image\":\"busybox\",\"Ho\xC5\xBFtconfig\":{\"Privileged\":true}}"));
  CHECK(g.privileged);
  auto h = facts(
      create(R"({"Image":"busybox","Ho\u017ftConfig":{"\u017fecurityOpt":["label=disable"]}})"));
  CHECK(has(h.unsafe, "SecurityOpt label=disable"));
  auto k = facts(
      create(R"({"Image":"busybox","HostConfig":{"Device\u017f":[{"PathOnHost":"/dev/mem"}]}})"));
  CHECK(has(k.devices, "/dev/mem"));
}

TEST_CASE("normalize: duplicate keys, merge trick, trailing data, depth") {
  expect_invalid(create(R"({"Image":"busybox","HostConfig":{"Privileged":true},"HostConfig":{}})"));
  expect_invalid(
      create(R"({"Image":"busybox","HostConfig":{"Privileged":true,"privileged":false}})"));
  expect_invalid(create(R"({"Image":"busybox","Image":"alpine"})"));
  expect_invalid(
      create(R"({"Image":"busybox","HostConfig":{},"Ho\u017ftConfig":{"Privileged":true}})"));
  expect_invalid(create(R"({"Image":"busybox"} {"HostConfig":{"Privileged":true}})"));
  expect_invalid(create(R"({"Image":"busybox"}garbage)"));
  std::string deep = R"({"Image":"busybox","Labels":)";
  for (int i = 0; i < 100; ++i)
    deep += "[";
  for (int i = 0; i < 100; ++i)
    deep += "]";
  deep += "}";
  expect_invalid(create(deep));
  expect_invalid(create("[]"));
  expect_invalid(create("null"));
  expect_invalid(create("{"));
}

TEST_CASE("normalize: wrong JSON types are invalid, null is absent") {
  expect_invalid(create_hc(R"("Privileged":"true")"));
  expect_invalid(create_hc(R"("Privileged":1)"));
  expect_invalid(create_hc(R"("CapAdd":[1])"));
  expect_invalid(create_hc(R"("CapAdd":[null])"));
  expect_invalid(create_hc(R"("CapAdd":{"a":"b"})"));
  expect_invalid(create_hc(R"("Binds":"/:/host")"));
  expect_invalid(create_hc(R"("Mounts":{})"));
  expect_invalid(create_hc(R"("Mounts":["bind"])"));
  expect_invalid(create_hc(R"("Mounts":[{"Type":"bind","Source":"/","ReadOnly":"yes"}])"));
  expect_invalid(create_hc(R"("PidMode":true)"));
  expect_invalid(create_hc(R"("Devices":[{"PathOnHost":5}])"));
  expect_invalid(create_hc(R"("SecurityOpt":"seccomp=unconfined")"));
  expect_invalid(create_hc(R"("Sysctls":["a"])"));
  expect_invalid(create_hc(R"("LogConfig":"syslog")"));
  expect_invalid(create(R"({"Image":5})"));
  expect_invalid(create(R"({"Image":"busybox","User":0})"));
  expect_invalid(create(R"({"Image":"busybox","HostConfig":true})"));
  expect_invalid(create(R"({"Image":"busybox","HostConfig":[]})"));

  auto f = facts(create(R"({"Image":"busybox","User":null,"HostConfig":{"Privileged":null,)"
                        R"("CapAdd":null,"Binds":null,"Mounts":null,"SecurityOpt":null}})"));
  CHECK_FALSE(f.privileged);
  CHECK(f.capabilities.empty());
  facts(create(R"({"Image":"busybox","HostConfig":null})"));
}

TEST_CASE("normalize: CapAdd is normalized as dockerd does") {
  auto f =
      facts(create_hc(R"("CapAdd":["sys_admin","SYS_ADMIN","cap_sys_admin","Net_Raw","all"])"));
  CHECK(f.capabilities == std::vector<std::string>{"CAP_SYS_ADMIN", "CAP_NET_RAW", "ALL"});
  // strslice: a single string is a one-element list
  auto g = facts(create_hc(R"("CapAdd":"sys_ptrace")"));
  CHECK(g.capabilities == std::vector<std::string>{"CAP_SYS_PTRACE"});
  // strings.ToUpper maps U+017F to 'S': refuse non-ASCII capability names
  expect_invalid(create_hc(R"("CapAdd":["\u017fys_admin"])"));
  expect_invalid(create_hc(R"("CapAdd":["sys_adm\u0131n"])"));
  expect_invalid(create_hc(R"("CapAdd":[""])"));
  // CapDrop is harmless but type-checked
  CHECK(facts(create_hc(R"("CapDrop":["ALL"])")).capabilities.empty());
  auto legacy = facts(create_hc(R"("Capabilities":["CAP_SYS_ADMIN"])"));
  CHECK(has(legacy.capabilities, "CAP_SYS_ADMIN"));
  CHECK(has_prefix(legacy.unsafe, "Capabilities"));
}

TEST_CASE("normalize: Binds") {
  auto f = facts(create_hc(
      R"("Binds":["/srv/data:/data","/etc/../etc//:/e:ro","/var/lib/./docker/:/d:rw,z",)"
      R"("named:/n","anon","/a/b/../../..:/root:ro,rprivate","relative/dir:/r","//x//y/:/y"])"));
  REQUIRE(f.host_mounts.size() == 5);
  CHECK(f.host_mounts[0].source == "/srv/data");
  CHECK(f.host_mounts[0].path == "/srv/data");
  CHECK_FALSE(f.host_mounts[0].read_only);
  CHECK(f.host_mounts[0].origin == "Binds");
  CHECK(f.host_mounts[1].path == "/etc");
  CHECK(f.host_mounts[1].read_only);
  CHECK(f.host_mounts[2].path == "/var/lib/docker");
  CHECK_FALSE(f.host_mounts[2].read_only);
  CHECK(f.host_mounts[3].path == "/");
  CHECK(f.host_mounts[3].read_only);
  CHECK(f.host_mounts[4].path == "/x/y");
  CHECK(f.unsafe.empty());

  auto p = facts(create_hc(R"("Binds":["/srv:/srv:rshared"])"));
  CHECK(has_prefix(p.unsafe, "Binds propagation rshared"));
  auto s = facts(create_hc(R"("Binds":["/srv:/srv:ro,shared"])"));
  CHECK(has_prefix(s.unsafe, "Binds propagation shared"));
  CHECK(s.host_mounts.at(0).read_only);

  expect_invalid(create_hc(R"("Binds":["/a:/b:c:d"])"));
  expect_invalid(create_hc(R"("Binds":["/a:/b:rx"])"));
  expect_invalid(create_hc(R"("Binds":["/a:/b:ro,rw"])"));
  expect_invalid(create_hc(R"("Binds":[""])"));
}

TEST_CASE("normalize: Mounts") {
  auto f = facts(create_hc(
      R"("Mounts":[{"Type":"bind","Source":"/home/../root/./","Target":"/r","ReadOnly":true},)"
      R"({"Type":"bind","Source":"//var//run/docker.sock","Target":"/s"},)"
      R"({"Type":"volume","Source":"v","Target":"/v"},)"
      R"({"Type":"tmpfs","Target":"/t"}])"));
  REQUIRE(f.host_mounts.size() == 2);
  CHECK(f.host_mounts[0].path == "/root");
  CHECK(f.host_mounts[0].source == "/home/../root/./");
  CHECK(f.host_mounts[0].read_only);
  CHECK(f.host_mounts[0].origin == "Mounts");
  CHECK(f.host_mounts[1].path == "/var/run/docker.sock");
  CHECK_FALSE(f.host_mounts[1].read_only);
  CHECK(f.unsafe.empty());

  // A volume created on the fly by the local driver with bind options is a host mount.
  auto v = facts(create_hc(
      R"("Mounts":[{"Type":"volume","Source":"v","Target":"/v","VolumeOptions":{"DriverConfig":)"
      R"({"Name":"local","Options":{"type":"none","o":"bind","device":"/"}}}}])"));
  REQUIRE(v.host_mounts.size() == 1);
  CHECK(v.host_mounts[0].path == "/");
  CHECK(v.host_mounts[0].origin == "Mounts (local volume bind)");
  CHECK_FALSE(v.host_mounts[0].read_only);
  CHECK(v.unsafe.empty());
  auto d = facts(create_hc(
      R"("Mounts":[{"Type":"volume","Target":"/v","VolumeOptions":{"DriverConfig":{"Name":"sshfs"}}}])"));
  CHECK(has(d.unsafe, "volume driver sshfs"));
  auto plain = facts(create_hc(
      R"("Mounts":[{"Type":"volume","Target":"/v","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{}}}}])"));
  CHECK(plain.unsafe.empty());

  auto u = facts(create_hc(R"("Mounts":[{"Type":"npipe","Source":"x","Target":"/x"}])"));
  CHECK(has(u.unsafe, "Mounts type npipe"));
  auto up = facts(create_hc(R"("Mounts":[{"Type":"BIND","Source":"/","Target":"/x"}])"));
  CHECK(has(up.unsafe, "Mounts type BIND"));
  auto prop = facts(create_hc(
      R"("Mounts":[{"Type":"bind","Source":"/mnt","Target":"/m","BindOptions":{"Propagation":"rshared"}}])"));
  CHECK(has_prefix(prop.unsafe, "Mounts bind propagation rshared"));
  CHECK(prop.host_mounts.size() == 1);
  auto folded = facts(create_hc(R"("mounts":[{"type":"bind","source":"/etc","target":"/x"}])"));
  CHECK(folded.host_mounts.size() == 1);

  expect_invalid(create_hc(R"("Mounts":[{"Type":"bind","Source":"rel","Target":"/x"}])"));
  expect_invalid(create_hc(R"("Mounts":[{"Type":"bind","Target":"/x"}])"));
}

TEST_CASE("normalize: namespaces") {
  auto f = facts(create_hc(R"("PidMode":"host","NetworkMode":"container:abc","IpcMode":"host",)"
                           R"("UTSMode":"host","UsernsMode":"host","CgroupnsMode":"host")"));
  CHECK(f.host_namespaces ==
        std::vector<std::string>{"pid", "network", "ipc", "uts", "userns", "cgroupns"});
  auto g = facts(create_hc(R"("NetworkMode":"bridge","IpcMode":"shareable","PidMode":"",)"
                           R"("CgroupnsMode":"private")"));
  CHECK(g.host_namespaces.empty());
  CHECK(has(facts(create_hc(R"("PidMode":"container:x")")).host_namespaces, "pid"));
  CHECK(has(facts(create_hc(R"("NetworkMode":"HOST")")).host_namespaces, "network"));

  // API < 1.41: an empty CgroupnsMode is "host" on cgroup v1 hosts
  std::string body = R"({"Image":"busybox","HostConfig":{"CgroupnsMode":""}})";
  CHECK(has(facts(create(body, "/v1.40/containers/create")).host_namespaces, "cgroupns"));
  CHECK_FALSE(has(facts(create(body, "/v1.41/containers/create")).host_namespaces, "cgroupns"));
  CHECK(has(facts(create(R"({"Image":"busybox"})", "/v1.30/containers/create")).host_namespaces,
            "cgroupns"));
  // no version in the URI: the configured default version applies
  NormalizeOptions old;
  old.default_api_version = "1.40";
  Request r = normalize(req("POST", "/containers/create", body, "application/json"), old);
  CHECK(has(facts(r).host_namespaces, "cgroupns"));
  CHECK_FALSE(has(facts(create(body, "/containers/create")).host_namespaces, "cgroupns"));
}

TEST_CASE("normalize: devices") {
  auto f = facts(create_hc(
      R"("Devices":[{"PathOnHost":"/dev/sda","PathInContainer":"/dev/xvda","CgroupPermissions":"rwm"},)"
      R"({"PathOnHost":"/dev/./mem"}],"DeviceCgroupRules":["a *:* rwm"],)"
      R"("DeviceRequests":[{"Driver":"nvidia","Count":-1},{"Count":1}])"));
  CHECK(f.devices == std::vector<std::string>{"/dev/sda", "/dev/mem", "cgroup-rule:a *:* rwm",
                                              "device-request:nvidia", "device-request:default"});
  expect_invalid(create_hc(R"("Devices":[{"PathInContainer":"/dev/x"}])"));
}

TEST_CASE("normalize: unsafe settings") {
  auto ok = facts(create_hc(R"("SecurityOpt":["no-new-privileges","no-new-privileges=true",)"
                            R"("no-new-privileges:true"],"VolumeDriver":"local","Runtime":"runc",)"
                            R"("CgroupParent":"","VolumesFrom":[],"Sysctls":{},)"
                            R"("LogConfig":{"Type":"","Config":{}})"));
  CHECK(ok.unsafe.empty());

  struct Case {
    const char *hc;
    const char *unsafe_prefix;
  } cases[] = {
      {R"("SecurityOpt":["seccomp=unconfined"])", "SecurityOpt seccomp=unconfined"},
      {R"("SecurityOpt":["apparmor:unconfined"])", "SecurityOpt apparmor:unconfined"},
      {R"("SecurityOpt":["no-new-privileges=false"])", "SecurityOpt no-new-privileges=false"},
      {R"("MaskedPaths":[])", "MaskedPaths empty"},
      {R"("ReadonlyPaths":[])", "ReadonlyPaths empty"},
      {R"("MaskedPaths":["/nothing"])", "MaskedPaths replaced"},
      {R"("CgroupParent":"/")", "CgroupParent /"},
      {R"("VolumesFrom":["other"])", "VolumesFrom other"},
      {R"("VolumeDriver":"sshfs")", "VolumeDriver sshfs"},
      {R"("Sysctls":{"kernel.shm_rmid_forced":"1"})", "Sysctls kernel.shm_rmid_forced"},
      {R"("Runtime":"runsc")", "Runtime runsc"},
      {R"("LogConfig":{"Type":"syslog","Config":{"syslog-address":"udp://x"}})",
       "LogConfig.Type syslog"},
  };
  for (const auto &c : cases) {
    INFO(c.hc);
    auto f = facts(create_hc(c.hc));
    CHECK(has_prefix(f.unsafe, c.unsafe_prefix));
  }
  // long values are clipped
  std::string longopt(500, 'x');
  auto l = facts(create_hc(R"("SecurityOpt":[")" + longopt + R"("])"));
  REQUIRE(l.unsafe.size() == 1);
  CHECK(l.unsafe[0].size() < 120);
}

TEST_CASE("normalize: deprecated top-level HostConfig fields (dockerd 20.10) are decoded") {
  auto f = facts(create(R"({"Image":"busybox","Privileged":true,"Binds":["/:/host"],)"
                        R"("CapAdd":["SYS_ADMIN"],"PidMode":"host"})"));
  CHECK(f.privileged);
  REQUIRE(f.host_mounts.size() == 1);
  CHECK(f.host_mounts[0].path == "/");
  CHECK(has(f.capabilities, "CAP_SYS_ADMIN"));
  CHECK(has(f.host_namespaces, "pid"));
  // even next to an inner HostConfig (conservative union)
  auto g = facts(create(R"({"Image":"busybox","VolumeDriver":"evil","HostConfig":{}})"));
  CHECK(has(g.unsafe, "VolumeDriver evil"));
}

TEST_CASE("normalize: user and image") {
  for (std::string u : {"", "root", "0", "root:root", "0:0", "00", "+0", ":1000"}) {
    INFO(u);
    CHECK(facts(create(R"({"Image":"busybox","User":")" + u + R"("})")).user_is_root);
  }
  for (std::string u : {"1000", "nobody", "1000:0", "rooty", "10"}) {
    INFO(u);
    auto f = facts(create(R"({"Image":"busybox","User":")" + u + R"("})"));
    CHECK_FALSE(f.user_is_root);
    CHECK(f.user == u);
  }
  auto reg = facts(create(R"({"Image":"registry.example.com:5000/team/app:v1"})"));
  CHECK(reg.image->registry == "registry.example.com:5000");
  CHECK_FALSE(facts(create(R"({"Cmd":["true"]})")).image.has_value());
  expect_invalid(create(R"({"Image":"BusyBox"})"));
  expect_invalid(create(R"({"Image":"busybox@sha256:123"})"));
}

TEST_CASE("normalize: exec") {
  Request r = normalize(req("POST", "/v1.41/containers/create/exec",
                            R"({"User":"0","Privileged":true,"Cmd":["sh"],"Env":["A=b"]})",
                            "application/json; charset=utf-8"));
  CHECK(r.action == "container.exec");
  CHECK(r.object == "create");
  const ContainerFacts &f = facts(r);
  CHECK(f.privileged);
  CHECK(f.user == "0");
  CHECK(f.user_is_root);
  CHECK(f.capabilities.empty());
  CHECK_FALSE(f.image.has_value());

  auto plain = facts(normalize(
      req("POST", "/containers/c1/exec", R"({"User":"app","Cmd":["ls"]})", "application/json")));
  CHECK_FALSE(plain.privileged);
  CHECK_FALSE(plain.user_is_root);
  expect_invalid(
      normalize(req("POST", "/containers/c1/exec", R"({"pRiViLeGeD":"yes"})", "application/json")));
  expect_invalid(normalize(req("POST", "/containers/c1/exec",
                               R"({"Privileged":false,"privileged":true})", "application/json")));
}

TEST_CASE("normalize: transport checks") {
  const std::string body = R"({"Image":"busybox"})";
  // form bodies are refused on every route
  for (std::string ct : {"application/x-www-form-urlencoded", "Multipart/Form-Data; boundary=x",
                         " application/x-www-form-urlencoded ; charset=utf-8"}) {
    INFO(ct);
    expect_invalid(normalize(req("POST", "/containers/x/kill?signal=KILL", std::nullopt, ct)));
    expect_invalid(normalize(req("POST", "/images/create?fromImage=busybox", std::nullopt, ct)));
  }
  // create and exec require JSON
  expect_invalid(normalize(req("POST", "/containers/create", body, "text/plain")));
  expect_invalid(normalize(req("POST", "/containers/create", body, "")));
  expect_invalid(normalize(req("POST", "/containers/x/exec", R"({"Cmd":["sh"]})", "text/plain")));
  CHECK_FALSE(normalize(req("POST", "/containers/create", body, "APPLICATION/JSON;charset=UTF-8"))
                  .invalid.has_value());

  // JSON endpoints without a forwarded body
  Request nb = normalize(req("POST", "/containers/create", std::nullopt, "application/json"));
  expect_invalid(nb);
  CHECK(nb.invalid->find("not forwarded") != std::string::npos);
  CHECK(nb.action == "container.create");
  expect_invalid(normalize(req("POST", "/containers/x/update", std::nullopt, "text/plain")));
  expect_invalid(normalize(req("POST", "/containers/x/update", std::nullopt)));
  expect_invalid(normalize(req("POST", "/exec/e/start", std::nullopt, "text/plain")));
  expect_invalid(normalize(req("POST", "/containers/create", std::string(), "application/json")));
  // any POST/PUT declaring JSON needs the body
  expect_invalid(normalize(req("POST", "/containers/x/start", std::nullopt, "application/json")));
  expect_invalid(
      normalize(req("PUT", "/containers/x/archive?path=/", std::nullopt, "application/json")));
  // Content-Length > 0 with JSON but no body, on any method
  RawHttpRequest g = req("GET", "/containers/json", std::nullopt, "application/json");
  g.headers["Content-Length"] = "2000000";
  expect_invalid(normalize(g));
  RawHttpRequest bad_cl = req("GET", "/containers/json");
  bad_cl.headers["Content-Length"] = "12x";
  expect_invalid(normalize(bad_cl));
  // conflicting spellings of a header
  RawHttpRequest two = req("POST", "/containers/create", body, "application/json");
  two.headers["content-type"] = "application/x-www-form-urlencoded";
  expect_invalid(normalize(two));

  // ordinary requests stay valid
  CHECK_FALSE(normalize(req("POST", "/containers/x/start", std::nullopt, "text/plain"))
                  .invalid.has_value());
  CHECK_FALSE(normalize(req("GET", "/containers/json?all=1")).invalid.has_value());
  CHECK_FALSE(
      normalize(req("PUT", "/containers/x/archive?path=/", std::nullopt, "application/x-tar"))
          .invalid.has_value());
  // POST /auth never carries its body to the plugin
  Request login = normalize(req("POST", "/v1.41/auth", std::nullopt, "application/json"));
  CHECK(login.action == "system.auth");
  CHECK_FALSE(login.invalid.has_value());
  // a JSON body on another endpoint is still parsed strictly
  expect_invalid(
      normalize(req("POST", "/networks/create", R"({"Name":"a","name":"b"})", "application/json")));
  CHECK_FALSE(normalize(req("POST", "/networks/create", R"({"Name":"a","Driver":"bridge"})",
                            "application/json"))
                  .invalid.has_value());
}

TEST_CASE("normalize: invalid reasons do not echo request content") {
  Request r = create(R"({"Image":"busybox","Env":["PASSWORD=hunter2"],"Env":[]})");
  expect_invalid(r);
  CHECK(r.invalid->find("hunter2") == std::string::npos);
  Request t = create(R"({"Image":"busybox","Env":["PASSWORD=hunter2" x]})");
  expect_invalid(t);
  CHECK(t.invalid->find("hunter2") == std::string::npos);
  Request u = create(R"({"Image":"busybox","HostConfig":{"Privileged":"hunter2"}})");
  expect_invalid(u);
  CHECK(u.invalid->find("hunter2") == std::string::npos);
}

TEST_CASE("normalize: image actions") {
  Request pull = normalize(
      req("POST", "/v1.41/images/create?fromImage=busybox&tag=1.36", std::nullopt, "text/plain"));
  CHECK(pull.action == "image.pull");
  CHECK_FALSE(pull.invalid.has_value());
  REQUIRE(pull.image);
  CHECK(pull.image->repository == "library/busybox");
  CHECK(pull.image->tag == "1.36");

  const std::string hex(64, 'a');
  Request pd = normalize(req("POST", "/images/create?fromImage=ghcr.io/a/b&tag=sha256:" + hex));
  REQUIRE(pd.image);
  CHECK(pd.image->registry == "ghcr.io");
  CHECK(pd.image->digest == "sha256:" + hex);
  CHECK(pd.image->tag.empty());

  Request all = normalize(req("POST", "/images/create?fromImage=busybox"));
  REQUIRE(all.image);
  CHECK(all.image->tag.empty()); // every tag
  CHECK(normalize(req("POST", "/images/create?fromImage=busybox:")).image->tag.empty());
  CHECK(normalize(req("POST", "/images/create?fromImage=busybox:2")).image->tag == "2");
  expect_invalid(normalize(req("POST", "/images/create?fromImage=Busybox")));
  expect_invalid(normalize(req("POST", "/images/create?fromImage=busybox&tag=a:b")));
  expect_invalid(normalize(req("POST", "/images/create?fromImage=" + hex)));
  expect_invalid(normalize(req("POST", "/images/create?fromImage=a&fromSrc=-")));
  expect_invalid(normalize(req("POST", "/images/create")));

  Request imp = normalize(req("POST", "/images/create?fromSrc=-&repo=test/busybox&tag=1",
                              std::nullopt, "application/x-tar"));
  CHECK(imp.action == "image.import");
  CHECK_FALSE(imp.invalid.has_value());
  REQUIRE(imp.image);
  CHECK(imp.image->repository == "test/busybox");
  CHECK(imp.image->tag == "1");

  Request insp = normalize(req("GET", "/images/localhost:5000/app:1/json"));
  CHECK(insp.action == "image.inspect");
  REQUIRE(insp.image);
  CHECK(insp.image->registry == "localhost:5000");
  CHECK(insp.image->tag == "1");
  Request byid = normalize(req("DELETE", "/images/sha256:" + hex));
  CHECK(byid.action == "image.remove");
  REQUIRE(byid.image);
  CHECK(byid.image->is_id);
  expect_invalid(normalize(req("GET", "/images/Not_Valid/history")));

  Request tag = normalize(req("POST", "/images/busybox/tag?repo=ghcr.io/me/bb&tag=v2"));
  CHECK(tag.action == "image.tag");
  CHECK_FALSE(tag.invalid.has_value());
  REQUIRE(tag.image);
  CHECK(tag.image->repository == "library/busybox");
  CHECK(tag.object == "ghcr.io/me/bb:v2");
  CHECK(normalize(req("POST", "/images/busybox/tag?repo=x")).object ==
        "docker.io/library/x:latest");
  expect_invalid(normalize(req("POST", "/images/busybox/tag")));
  expect_invalid(normalize(req("POST", "/images/busybox/tag?repo=x&tag=sha256:" + hex)));

  Request push = normalize(req("POST", "/images/127.0.0.1:5000/app/push?tag=3"));
  CHECK(push.action == "image.push");
  REQUIRE(push.image);
  CHECK(push.image->registry == "127.0.0.1:5000");
  CHECK(push.image->tag == "3");
  CHECK(normalize(req("POST", "/images/127.0.0.1:5000/app/push")).image->tag.empty());

  Request dist = normalize(req("GET", "/distribution/busybox/json"));
  REQUIRE(dist.image);
  CHECK(dist.image->repository == "library/busybox");
}

TEST_CASE("normalize: never throws on hostile input") {
  const std::string inputs[] = {std::string("\0\0\0", 3),
                                "{\"Image\":\"\xff\"}",
                                "{\"HostConfig\":{\"Binds\":[\"/:/:/:/\"]}}",
                                std::string(10000, '{'),
                                "{\"Mounts\":[{}]}",
                                "{\"HostConfig\":{\"Mounts\":[{}]}}"};
  for (const auto &body : inputs) {
    Request r = create(body);
    CHECK((r.invalid.has_value() || r.container.has_value()));
  }
  Request big = normalize(req("GET", "/" + std::string(100000, 'a')));
  CHECK(big.action == "unknown");
}

// --- volumes: the local driver's bind options are host mounts ----------------------------------

namespace {
Request volume_create(const std::string &body) {
  return normalize(req("POST", "/v1.41/volumes/create", body, "application/json"), lexical());
}
} // namespace

TEST_CASE("normalize: POST /volumes/create with bind options is a host mount") {
  auto r = volume_create(
      R"({"Name":"v1","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/etc"}})");
  REQUIRE_FALSE(r.invalid.has_value());
  CHECK(r.action == "volume.create");
  CHECK(r.object == "v1");
  const auto &f = facts(r);
  REQUIRE(f.host_mounts.size() == 1);
  CHECK(f.host_mounts[0].path == "/etc");
  CHECK(f.host_mounts[0].origin == "DriverOpts (local volume bind)");
  CHECK_FALSE(f.host_mounts[0].read_only);
  CHECK_FALSE(f.user_is_root); // no process runs: run_as_root limits do not apply
  CHECK(f.unsafe.empty());

  // read-only, the type ignored, keys folded by Go
  auto ro = facts(volume_create(
      R"({"driver":"","driveropts":{"type":"ext4","o":"ro,bind","device":"/srv/etc"}})"));
  REQUIRE(ro.host_mounts.size() == 1);
  CHECK(ro.host_mounts[0].path == "/srv/etc");
  CHECK(ro.host_mounts[0].read_only);
  // options apply in order: a later rw wins (moby/sys parseOptions)
  CHECK_FALSE(facts(volume_create(R"({"DriverOpts":{"o":"bind,ro,rw","device":"/srv"}})"))
                  .host_mounts[0]
                  .read_only);
  CHECK(facts(volume_create(R"({"DriverOpts":{"o":"rw,bind,ro","device":"/srv"}})"))
            .host_mounts[0]
            .read_only);
  // rbind remounted ro is read-only at the top only: submounts stay writable
  CHECK_FALSE(facts(volume_create(R"({"DriverOpts":{"o":"rbind,ro","device":"/srv"}})"))
                  .host_mounts[0]
                  .read_only);
  // mount(2) gets the device as written: "l/.." is resolved after the link, so an unclean
  // device cannot be judged by its text
  for (const char *dev : {"/srv//x", "/srv/x/../etc", "/srv/./x", "/srv/x/"}) {
    CAPTURE(dev);
    expect_invalid(
        volume_create(std::string(R"({"DriverOpts":{"o":"bind","device":")") + dev + "\"}}"));
  }

  // plain named volumes, tmpfs volumes: no host access
  CHECK(facts(volume_create(R"({"Name":"v2"})")).host_mounts.empty());
  CHECK(facts(volume_create(R"({"Name":"v2","Driver":"local","DriverOpts":{}})")).unsafe.empty());
  auto tmp = facts(volume_create(
      R"({"DriverOpts":{"type":"tmpfs","device":"tmpfs","o":"size=100m,uid=1000"}})"));
  CHECK(tmp.host_mounts.empty());
  CHECK(tmp.unsafe.empty());

  // anything else the daemon would mount is unsafe; block devices are devices too
  auto nfs = facts(
      volume_create(R"({"DriverOpts":{"type":"nfs","o":"addr=10.0.0.1,rw","device":":/x"}})"));
  CHECK(has_prefix(nfs.unsafe, "DriverOpts local volume mount type=nfs"));
  auto blk = facts(volume_create(R"({"DriverOpts":{"type":"ext4","device":"/dev/sda1"}})"));
  CHECK(has_prefix(blk.unsafe, "DriverOpts local volume mount type=ext4"));
  CHECK(has(blk.devices, "volume-device:/dev/sda1"));
  CHECK(has(facts(volume_create(R"({"Driver":"sshfs"})")).unsafe, "volume driver sshfs"));
  CHECK(has(facts(volume_create(R"({"DriverOpts":{"mystery":"1"}})")).unsafe,
            "DriverOpts option mystery"));
  CHECK(
      has_prefix(facts(volume_create(R"({"ClusterVolumeSpec":{}})")).unsafe, "ClusterVolumeSpec"));

  // relative or empty bind devices, bodies of the wrong shape, no body at all
  expect_invalid(volume_create(R"({"DriverOpts":{"o":"bind","device":"etc"}})"));
  expect_invalid(volume_create(R"({"DriverOpts":{"o":"bind"}})"));
  expect_invalid(volume_create(R"({"DriverOpts":{"o":1}})"));
  expect_invalid(volume_create(R"({"DriverOpts":["o=bind"]})"));
  expect_invalid(volume_create(R"([])"));
  expect_invalid(normalize(req("POST", "/v1.41/volumes/create", std::nullopt, "application/json")));
}

// Daemons before API 1.45 ignore Subpath and mount the whole device.
TEST_CASE("normalize: Mounts volume Subpath does not narrow an inline bind volume") {
  auto f = facts(create_hc(
      R"("Mounts":[{"Type":"volume","Target":"/v","ReadOnly":true,"VolumeOptions":{"Subpath":"a/b",)"
      R"("DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/srv"}}}}])"));
  REQUIRE(f.host_mounts.size() == 1);
  CHECK(f.host_mounts[0].path == "/srv");
  CHECK(f.host_mounts[0].read_only);
  // BindOptions.ReadOnlyNonRecursive: read-only at the top only
  auto nr =
      facts(create_hc(R"("Mounts":[{"Type":"bind","Source":"/srv","Target":"/s","ReadOnly":true,)"
                      R"("BindOptions":{"ReadOnlyNonRecursive":true}}])"));
  CHECK_FALSE(nr.host_mounts.at(0).read_only);
  expect_invalid(
      create_hc(R"("Mounts":[{"Type":"volume","Target":"/v","VolumeOptions":{"Subpath":"../etc",)"
                R"("DriverConfig":{"Name":"local","Options":{"o":"bind","device":"/srv"}}}}])"));
}

// --- symlinks in host paths ------------------------------------------------------------------

#include <filesystem>
#include <unistd.h>

TEST_CASE("resolve_host_path_on_host follows symlinks as the kernel would") {
  namespace fs = std::filesystem;
  const fs::path base = fs::temp_directory_path() / ("pc-resolve-" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base / "real" / "sub");
  fs::create_symlink("/etc", base / "to-etc");           // absolute target
  fs::create_symlink("real/sub", base / "to-sub");       // relative target
  fs::create_symlink("../to-etc", base / "real" / "up"); // relative, through another link
  fs::create_symlink(base / "loop-b", base / "loop-a");
  fs::create_symlink(base / "loop-a", base / "loop-b");
  const std::string b = base.string();

  CHECK(resolve_host_path_on_host(b + "/to-etc") == "/etc");
  CHECK(resolve_host_path_on_host(b + "/to-etc/passwd") == "/etc/passwd");
  CHECK(resolve_host_path_on_host(b + "/to-sub") == b + "/real/sub");
  CHECK(resolve_host_path_on_host(b + "/real/up/ssl") == "/etc/ssl");
  CHECK(resolve_host_path_on_host(b + "/real/sub") == b + "/real/sub");
  // a missing tail is taken as written (Binds creates it), after the links before it
  CHECK(resolve_host_path_on_host(b + "/to-sub/new/dir") == b + "/real/sub/new/dir");
  CHECK(resolve_host_path_on_host("/") == "/");
  CHECK_FALSE(resolve_host_path_on_host(b + "/loop-a").has_value()); // ELOOP
  CHECK_FALSE(resolve_host_path_on_host("relative/path").has_value());
  CHECK_FALSE(resolve_host_path_on_host(std::string("/etc\0/x", 7)).has_value());
  fs::remove_all(base);
}

TEST_CASE("normalize: a symlinked host path adds its target, which limits then judge") {
  NormalizeOptions o;
  o.resolve_host_path = [](const std::string &p) -> std::optional<std::string> {
    if (p == "/srv/projects/link") return "/etc";
    if (p == "/srv/projects/loop") return std::nullopt;
    return p;
  };
  auto run = [&](const std::string &hc) {
    return normalize(req("POST", "/v1.41/containers/create",
                         R"({"Image":"busybox","HostConfig":{)" + hc + "}}", "application/json"),
                     o);
  };
  const Request r = run(R"("Binds":["/srv/projects/link:/x:ro","/srv/projects/a:/a"])");
  const auto &f = facts(r);
  REQUIRE(f.host_mounts.size() == 3);
  CHECK(f.host_mounts[0].path == "/srv/projects/link");
  CHECK(f.host_mounts[1].path == "/srv/projects/a");
  CHECK(f.host_mounts[2].path == "/etc");
  CHECK(f.host_mounts[2].source == "/srv/projects/link");
  CHECK(f.host_mounts[2].read_only);
  CHECK(f.host_mounts[2].origin == "Binds (symlink target)");
  expect_invalid(run(R"("Binds":["/srv/projects/loop:/x"])"));
  // volume.create too
  auto v = normalize(req("POST", "/volumes/create",
                         R"({"DriverOpts":{"o":"bind","device":"/srv/projects/link"}})",
                         "application/json"),
                     o);
  REQUIRE(v.container.has_value());
  REQUIRE(v.container->host_mounts.size() == 2);
  CHECK(v.container->host_mounts[1].path == "/etc");
}

// --- facts beyond create: update, network create, build ----------------------------------------

TEST_CASE("normalize: container update carries device and cgroup facts") {
  auto up = [](const std::string &body) {
    return normalize(req("POST", "/v1.41/containers/c1/update", body, "application/json"),
                     lexical());
  };
  Request r = up(R"({"DeviceCgroupRules":["a *:* rwm"],"Memory":1000000})");
  REQUIRE_FALSE(r.invalid.has_value());
  CHECK(r.action == "container.update");
  CHECK(r.object == "c1");
  CHECK(has(facts(r).devices, "cgroup-rule:a *:* rwm"));
  CHECK_FALSE(facts(r).user_is_root);
  CHECK(has(facts(up(R"({"devices":[{"PathOnHost":"/dev/sda"}]})")).devices, "/dev/sda"));
  CHECK(has_prefix(facts(up(R"({"CgroupParent":"/"})")).unsafe, "CgroupParent"));
  const auto plain = facts(up(R"({"CpuShares":512,"RestartPolicy":{"Name":"always"}})"));
  CHECK(plain.devices.empty());
  CHECK(plain.unsafe.empty());
  expect_invalid(up(R"({"Devices":"x"})"));
  expect_invalid(
      normalize(req("POST", "/v1.41/containers/c1/update", std::nullopt, "application/json")));
}

TEST_CASE("normalize: network create flags drivers that reach the host network") {
  auto net = [](const std::string &body) {
    return normalize(req("POST", "/v1.41/networks/create", body, "application/json"), lexical());
  };
  // what `docker network create n1` sends
  Request plain = net(R"({"Name":"n1","CheckDuplicate":true,"Driver":"bridge","Scope":"",)"
                      R"("EnableIPv6":false,"IPAM":{"Driver":"default","Options":{},"Config":[]},)"
                      R"("Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,)"
                      R"("ConfigFrom":{"Network":""},"Options":{},"Labels":{}})");
  CHECK(plain.object == "n1");
  CHECK(facts(plain).unsafe.empty());
  CHECK(has(facts(net(R"({"Name":"m","Driver":"macvlan","Options":{"parent":"eth0"}})")).unsafe,
            "network driver macvlan"));
  CHECK(has_prefix(facts(net(R"({"Name":"b","Options":{"parent":"eth0"}})")).unsafe,
                   "network driver options (parent"));
  CHECK(has(facts(net(R"({"Name":"i","Ingress":true})")).unsafe,
            "network Ingress (swarm routing mesh)"));
  CHECK(has(facts(net(R"({"Name":"p","IPAM":{"Driver":"dhcp"}})")).unsafe, "IPAM driver dhcp"));
  expect_invalid(net(R"({"Name":"x","Options":{"parent":1}})"));
}

TEST_CASE("normalize: build query parameters are facts") {
  auto build = [](const std::string &query) {
    return normalize(
        req("POST", "/v1.41/build" + query, std::string("tar bytes"), "application/x-tar"),
        lexical());
  };
  Request host = build("?networkmode=host&t=app");
  REQUIRE_FALSE(host.invalid.has_value());
  CHECK(host.action == "build");
  CHECK(has(facts(host).host_namespaces, "network"));
  CHECK(facts(host).user_is_root); // RUN steps are root unless the Dockerfile says otherwise
  CHECK(has(facts(build("?networkmode=container:abc")).host_namespaces, "network"));
  CHECK(facts(build("?networkmode=none")).host_namespaces.empty());
  CHECK(has_prefix(facts(build("?cgroupparent=/x")).unsafe, "build cgroupparent"));
  CHECK(has_prefix(facts(build("?remote=https://example.com/ctx.tar")).unsafe,
                   "build remote context"));
  CHECK(has_prefix(facts(build("?version=2")).unsafe, "BuildKit build"));
  CHECK(facts(build("?version=1&t=a")).unsafe.empty());
}

TEST_CASE("normalize: swarm service create/update carries the ContainerSpec's facts") {
  auto svc = [](const std::string &uri, const std::string &body) {
    return normalize(req("POST", uri, body, "application/json"), lexical());
  };
  Request r = svc("/v1.41/services/create",
                  R"({"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"nginx:1",)"
                  R"("User":"www","CapabilityAdd":["sys_admin"],)"
                  R"("Mounts":[{"Type":"bind","Source":"/etc","Target":"/x"}],)"
                  R"("Privileges":{"Seccomp":{"Mode":"unconfined"},"AppArmor":{"Mode":"disabled"},)"
                  R"("SELinuxContext":{"Disable":true}},"Sysctls":{"net.ipv4.ip_forward":"1"}},)"
                  R"("Networks":[{"Target":"HOST"}],"LogDriver":{"Name":"syslog"}}})");
  REQUIRE_FALSE(r.invalid.has_value());
  CHECK(r.action == "service.create");
  const auto &f = facts(r);
  REQUIRE(f.image.has_value());
  CHECK(f.image->repository == "library/nginx");
  REQUIRE(r.image.has_value());
  CHECK(f.user == "www");
  CHECK_FALSE(f.user_is_root);
  CHECK(has(f.capabilities, "CAP_SYS_ADMIN"));
  REQUIRE(f.host_mounts.size() == 1);
  CHECK(f.host_mounts[0].path == "/etc");
  CHECK(has(f.unsafe, "Seccomp mode unconfined"));
  CHECK(has(f.unsafe, "AppArmor mode disabled"));
  CHECK(has(f.unsafe, "SELinuxContext disabled"));
  CHECK(has(f.unsafe, "Sysctls net.ipv4.ip_forward"));
  CHECK(has(f.unsafe, "LogDriver syslog"));
  CHECK(has(f.host_namespaces, "network"));

  // update, Go-folded keys, the default user (root), the deprecated top-level Networks
  Request u = svc("/v1.41/services/abc/update?version=3",
                  R"({"tasktemplate":{"containerspec":{"image":"busybox"}},)"
                  R"("Networks":[{"Target":"host"}]})");
  CHECK(u.action == "service.update");
  CHECK(facts(u).user_is_root);
  CHECK(has(facts(u).host_namespaces, "network"));
  CHECK(facts(u).unsafe.empty());

  // a plugin service installs a plugin on every node
  CHECK(has_prefix(facts(svc("/v1.41/services/create",
                             R"({"TaskTemplate":{"Runtime":"plugin","PluginSpec":{}}})"))
                       .unsafe,
                   "service installs a plugin"));
  // a plain service is clean
  const auto plain = facts(svc("/v1.41/services/create",
                               R"({"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"busybox",)"
                               R"("User":"1000","Privileges":{"Seccomp":{"Mode":"default"}}}}})"));
  CHECK(plain.unsafe.empty());
  CHECK(plain.host_mounts.empty());
  expect_invalid(svc("/v1.41/services/create", R"({"TaskTemplate":{"ContainerSpec":[]}})"));
  expect_invalid(svc("/v1.41/services/create",
                     R"({"TaskTemplate":{"ContainerSpec":{"Image":"Not A Valid Ref"}}})"));
  expect_invalid(
      normalize(req("POST", "/v1.41/services/create", std::nullopt, "application/json")));
}

TEST_CASE("normalize: review fixes for services, networks and symlink resolution budgets") {
  auto svc = [](const std::string &uri, const std::string &body) {
    return normalize(req("POST", uri, body, "application/json"), lexical());
  };
  auto spec = [](const std::string &cs, const std::string &task_extra = "") {
    return R"({"TaskTemplate":{"ContainerSpec":{"Image":"busybox","User":"1000")" + cs + "}" +
           task_extra + "}}";
  };
  CHECK(has(
      facts(svc("/services/create", spec(R"(,"Privileges":{"SELinuxContext":{"Type":"spc_t"}})")))
          .unsafe,
      "SELinuxContext Type spc_t"));
  CHECK(has_prefix(
      facts(svc("/services/create", spec("", R"(,"Networks":[{"Target":"4f2a"}])"))).unsafe,
      "service network given by ID"));
  CHECK(facts(svc("/services/create", spec("", R"(,"Networks":[{"Target":"backend"}])")))
            .unsafe.empty());
  CHECK(has_prefix(facts(svc("/services/s1/update?version=2&rollback=previous", spec(""))).unsafe,
                   "service rollback"));
  CHECK(has(facts(svc("/services/create", spec(R"(,"Secrets":[{"SecretID":"x"}])"))).unsafe,
            "service mounts swarm secrets"));
  CHECK(has(facts(svc("/services/create", spec(R"(,"Configs":[{"ConfigID":"x"}])"))).unsafe,
            "service mounts swarm configs"));

  auto net = [](const std::string &body) {
    return normalize(req("POST", "/networks/create", body, "application/json"), lexical());
  };
  CHECK(has_prefix(facts(net(R"({"Name":"n","ConfigFrom":{"Network":"cfg"}})")).unsafe,
                   "network ConfigFrom"));
  CHECK(has(facts(net(R"({"Name":"n","IPAM":{"Config":[{"Subnet":"10.1.2.0/24"}]}})")).unsafe,
            "IPAM subnets chosen by the caller"));

  // at most 128 host mounts are judged; resolution results are reused within a request
  int calls = 0;
  NormalizeOptions o;
  o.resolve_host_path = [&calls](const std::string &p) -> std::optional<std::string> {
    ++calls;
    return p;
  };
  std::string binds;
  for (int i = 0; i < 100; ++i)
    binds += std::string(i ? "," : "") + "\"/srv/same:/x" + std::to_string(i) + "\"";
  Request r = normalize(req("POST", "/containers/create",
                            R"({"Image":"busybox","HostConfig":{"Binds":[)" + binds + "]}}",
                            "application/json"),
                        o);
  CHECK_FALSE(r.invalid.has_value());
  CHECK(calls == 1);
  std::string many;
  for (int i = 0; i < 129; ++i)
    many += std::string(i ? "," : "") + "\"/srv/p" + std::to_string(i) + ":/x" + std::to_string(i) +
            "\"";
  expect_invalid(normalize(req("POST", "/containers/create",
                               R"({"Image":"busybox","HostConfig":{"Binds":[)" + many + "]}}",
                               "application/json"),
                           o));
}

TEST_CASE("resolve_host_path_on_host bounds its work per path") {
  namespace fs = std::filesystem;
  const fs::path base = fs::temp_directory_path() / ("pc-budget-" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base / "a");
  std::string detour;           // "a/../" repeated: every step an lstat
  for (int i = 0; i < 300; ++i) // 600 steps
    detour += "a/../";
  fs::create_symlink(detour + "a", base / "l1");
  fs::create_symlink("l1/" + detour + "../l1", base / "l2");
  CHECK(resolve_host_path_on_host((base / "l1").string()) == (base / "a").string());
  CHECK_FALSE(resolve_host_path_on_host((base / "l2").string()).has_value()); // > 1024 steps
  fs::remove_all(base);
}

TEST_CASE("normalize: PortBindings and PublishAllPorts become published ports") {
  auto r = create_hc(R"("PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"},)"
                     R"({"HostIp":"","HostPort":""}],"53/udp":[{"HostPort":"5300-5310"}],)"
                     R"("443/tcp":null})");
  const auto &f = facts(r);
  REQUIRE(f.published_ports.size() == 3);
  auto find = [&](std::string_view cport, int first) -> const PublishedPort * {
    for (const auto &p : f.published_ports)
      if (p.container_port == cport && p.first == first) return &p;
    return nullptr;
  };
  const PublishedPort *a = find("80/tcp", 8080);
  REQUIRE(a);
  CHECK(a->host_ip == "127.0.0.1");
  CHECK(a->last == 8080);
  const PublishedPort *random = find("80/tcp", 0);
  REQUIRE(random);
  CHECK(random->last == 0);
  const PublishedPort *range = find("53/udp", 5300);
  REQUIRE(range);
  CHECK(range->last == 5310);
  CHECK(f.unsafe.empty()); // publishing is judged by host_ports, not as an unsafe setting

  auto all = create_hc(R"("PublishAllPorts":true)");
  REQUIRE(facts(all).published_ports.size() == 1);
  CHECK(facts(all).published_ports[0].container_port == "*");
  CHECK(facts(all).published_ports[0].first == 0);
  CHECK(facts(create_hc(R"("PublishAllPorts":false,"PortBindings":{})")).published_ports.empty());

  // Case-folded keys are the same fields; the deprecated top-level copy is not counted twice.
  auto folded =
      create(R"({"Image":"busybox","HostConfig":{"portbindings":{"22/tcp":)"
             R"([{"hostport":"2222"}]}},"PortBindings":{"22/tcp":[{"HostPort":"2222"}]}})");
  REQUIRE(facts(folded).published_ports.size() == 1);
  CHECK(facts(folded).published_ports[0].first == 2222);

  for (const char *bad :
       {R"("PortBindings":{"80/tcp":[{"HostPort":"http"}]})",
        R"("PortBindings":{"80/tcp":[{"HostPort":"70000"}]})",
        R"("PortBindings":{"80/tcp":[{"HostPort":"9000-8000"}]})",
        R"("PortBindings":{"80/tcp":[{"HostPort":8080}]})",
        R"("PortBindings":{"80/tcp":{"HostPort":"8080"}})", R"("PortBindings":["80:80"])"}) {
    CAPTURE(bad);
    expect_invalid(create_hc(bad));
  }
}

TEST_CASE("normalize: LogConfig options other than the file drivers' are unsafe") {
  // The daemon's default driver may be a network driver: an address option redirects the logs.
  auto r = create_hc(R"("LogConfig":{"Type":"","Config":{"syslog-address":"tcp://10.0.0.1:514"}})");
  CHECK(has(facts(r).unsafe, "LogConfig.Config syslog-address"));
  auto ok = create_hc(R"("LogConfig":{"Type":"","Config":{"max-size":"10m","max-file":"3"}})");
  CHECK(facts(ok).unsafe.empty());
  CHECK(has(facts(create_hc(R"("LogConfig":{"Config":{"fluentd-address":"x"}})")).unsafe,
            "LogConfig.Config fluentd-address"));
}
