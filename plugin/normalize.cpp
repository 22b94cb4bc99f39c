#include "plugin/normalize.hpp"

#include "plugin/imageref.hpp"
#include "plugin/routes.hpp"
#include "plugin/uri.hpp"
#include "policy/glob.hpp"

#include <algorithm>
#include <cerrno>
#include <set>
#include <sys/stat.h>
#include <tuple>
#include <unistd.h>
#include <vector>

namespace portcullis {

namespace {

using nlohmann::json;

// Thrown only inside this file while decoding a body; always caught in normalize().
struct BodyError {
  std::string message;
};

[[noreturn]] void fail(std::string message) {
  throw BodyError{std::move(message)};
}

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string clip(std::string_view s, std::size_t max = 96) {
  if (s.size() <= max) return std::string(s);
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0u) == 0x80u)
    --n;
  return std::string(s.substr(0, n)) + "...";
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char &c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// --- JSON field access with Go's semantics: case-insensitive names, null == absent -------------

const json *field(const json *obj, std::string_view name) {
  if (!obj) return nullptr;
  const json *v = go_field(*obj, name);
  if (!v || v->is_null()) return nullptr;
  return v;
}

std::string wrong_type(std::string_view where, std::string_view name, std::string_view expected) {
  return "The body field " + std::string(where) + std::string(name) + " must be " +
         std::string(expected) + ".";
}

std::optional<std::string> get_string(const json *obj, std::string_view name,
                                      std::string_view where) {
  const json *v = field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) fail(wrong_type(where, name, "a string"));
  return v->get<std::string>();
}

bool get_bool(const json *obj, std::string_view name, std::string_view where) {
  const json *v = field(obj, name);
  if (!v) return false;
  if (!v->is_boolean()) fail(wrong_type(where, name, "true or false"));
  return v->get<bool>();
}

const json *get_object(const json *obj, std::string_view name, std::string_view where) {
  const json *v = field(obj, name);
  if (v && !v->is_object()) fail(wrong_type(where, name, "an object"));
  return v;
}

const json *get_array(const json *obj, std::string_view name, std::string_view where) {
  const json *v = field(obj, name);
  if (v && !v->is_array()) fail(wrong_type(where, name, "an array"));
  return v;
}

// []string. With `strslice`, a single string is accepted as a one-element list, as Go's
// strslice.StrSlice does (CapAdd, CapDrop). Null or non-string elements are refused.
std::optional<std::vector<std::string>> get_string_list(const json *obj, std::string_view name,
                                                        std::string_view where,
                                                        bool strslice = false) {
  const json *v = field(obj, name);
  if (!v) return std::nullopt;
  std::vector<std::string> out;
  if (strslice && v->is_string()) {
    out.push_back(v->get<std::string>());
    return out;
  }
  if (!v->is_array()) fail(wrong_type(where, name, "an array of strings"));
  for (const auto &e : *v) {
    if (!e.is_string()) fail(wrong_type(where, name, "an array of strings"));
    out.push_back(e.get<std::string>());
  }
  return out;
}

// map[string]string: an object whose values are strings (null values are Go's "").
const json *get_string_map(const json *obj, std::string_view name, std::string_view where) {
  const json *v = get_object(obj, name, where);
  if (!v) return nullptr;
  for (auto it = v->begin(); it != v->end(); ++it)
    if (!it.value().is_string() && !it.value().is_null())
      fail(wrong_type(where, name, "an object of strings"));
  return v;
}

void add_unique(std::vector<std::string> &v, std::string s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
}

// --- facts ------------------------------------------------------------------------------------

// Lexical normalization of an absolute path, with the very function the policy compiler uses
// for its globs, so facts and patterns can never disagree. A path it refuses (NUL byte) stays
// as given: not normalized, it fails every allow rule and matches every path guardrail.
std::string clean_absolute_path(std::string_view p) {
  return normalize_absolute_path(p).value_or(std::string(p));
}

bool is_root_user(std::string_view user) {
  std::string_view name = user.substr(0, user.find(':'));
  if (name.empty() || name == "root") return true;
  // Go's strconv.Atoi accepts an optional sign: "0", "00", "+0", "-0" are all uid 0.
  std::string_view digits = name;
  if (digits.front() == '+' || digits.front() == '-') digits.remove_prefix(1);
  if (digits.empty()) return false;
  for (char c : digits)
    if (c != '0') return false; // non-digits, or a non-zero uid
  return true;
}

std::string normalize_capability(std::string_view cap, std::string_view where) {
  // The daemon applies strings.ToUpper, which maps some non-ASCII letters to ASCII ones
  // ("ſ" -> "S", "ı" -> "I"); refuse anything that is not plain ASCII.
  for (char ch : cap) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f)
      fail("A capability name in " + std::string(where) +
           "CapAdd is empty or contains non-ASCII, space or control characters.");
  }
  if (cap.empty()) fail("A capability name in " + std::string(where) + "CapAdd is empty.");
  std::string up(cap);
  for (char &c : up)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  if (up == "ALL") return up;
  if (up.rfind("CAP_", 0) != 0) up.insert(0, "CAP_");
  return up;
}

bool is_host_or_container_mode(std::string_view mode) {
  std::string m = ascii_lower(mode);
  return m == "host" || m.rfind("container:", 0) == 0;
}

// API version "a.b" < "c.d"? Unparseable versions count as old (the conservative side).
bool api_version_less(std::string_view v, int major, int minor) {
  auto dot = v.find('.');
  if (dot == std::string_view::npos) return true;
  int a = 0, b = 0;
  for (char c : v.substr(0, dot)) {
    if (c < '0' || c > '9' || a > 100000) return true;
    a = a * 10 + (c - '0');
  }
  for (char c : v.substr(dot + 1)) {
    if (c < '0' || c > '9' || b > 100000) return true;
    b = b * 10 + (c - '0');
  }
  return a < major || (a == major && b < minor);
}

const std::set<std::string_view> kMountModes = {
    "rw",     "ro",      "z",        "Z",      "shared",     "rshared", "slave",
    "rslave", "private", "rprivate", "nocopy", "consistent", "cached",  "delegated"};

int mode_category(std::string_view o) {
  if (o == "rw" || o == "ro") return 0;
  if (o == "z" || o == "Z") return 1;
  if (o == "nocopy") return 3;
  if (o == "consistent" || o == "cached" || o == "delegated") return 4;
  return 2; // propagation
}

// Splits at every `sep`: "a,,b" -> {"a", "", "b"}; "" -> {""}.
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    std::size_t c = s.find(sep);
    out.push_back(s.substr(0, c));
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return out;
}

// What a volume with this driver and these driver options gives the container, as facts.
// moby's `local` driver mounts `device` on the volume's directory with mount(2), type `type` and
// options `o`; a `bind`/`rbind` token in `o` makes it a bind mount of the host path `device`
// whatever `type` says, so `{"type":"none","o":"bind","device":"/etc"}` is a host mount of /etc
// in disguise. Mounts[].VolumeOptions.Subpath does not narrow it: daemons before API 1.45 ignore
// the field and mount the whole device, so the device is what is judged.
// `what` names the request field for messages, e.g. "POST /volumes/create DriverOpts".
void volume_driver_facts(std::string_view driver, const json *opts, std::string_view what,
                         bool mount_read_only, ContainerFacts &f) {
  if (!driver.empty() && driver != "local") {
    // A third-party volume plugin decides itself what it mounts: the policy cannot see it.
    add_unique(f.unsafe, "volume driver " + clip(driver));
    return;
  }
  if (!opts || opts->empty()) return;
  std::string type, device, o;
  for (auto it = opts->begin(); it != opts->end(); ++it) {
    const std::string &k = it.key(); // the local driver matches option names exactly
    std::string v = it.value().is_string() ? it.value().get<std::string>() : std::string();
    if (k == "type")
      type = v;
    else if (k == "device")
      device = v;
    else if (k == "o")
      o = v;
    else if (k != "size") // dockerd refuses other names; whatever it does, flag them
      add_unique(f.unsafe, std::string(what) + " option " + clip(k));
  }
  // mount options apply in order (moby/sys parseOptions): the last of ro/rw wins.
  bool bind = false, recursive = false, ro_option = false;
  for (std::string_view t : split(o, ',')) {
    if (t == "bind" || t == "rbind") bind = true;
    if (t == "rbind") recursive = true;
    if (t == "ro") ro_option = true;
    if (t == "rw") ro_option = false;
  }
  // An rbind remounted read-only is read-only at its top only: submounts stay writable.
  const bool read_only = mount_read_only || (ro_option && !recursive);
  if (bind) {
    // mount(2) gets `device` as written and the kernel resolves "l/.." physically (after the
    // link), so only a path that is already clean is judged by its text.
    if (device.empty() || device.front() != '/' ||
        normalize_absolute_path(device).value_or("") != device)
      fail("A bind-type local volume in " + std::string(what) +
           " has a device path that is relative, empty or not clean (., .., //, trailing /).");
    f.host_mounts.push_back(HostMount{device, clean_absolute_path(device), read_only,
                                      std::string(what) + " (local volume bind)"});
    return;
  }
  if (type == "tmpfs" && device.rfind('/', 0) != 0) return; // memory only, no host path
  if (!type.empty() || !device.empty() || !o.empty()) {
    // nfs/cifs (network mounts by the daemon), ext4 on /dev/sdX (a host block device), ...
    add_unique(f.unsafe, std::string(what) + " local volume mount type=" + clip(type, 32) +
                             (device.empty() ? std::string() : " device=" + clip(device)));
    if (device.rfind("/dev/", 0) == 0) add_unique(f.devices, "volume-device:" + clip(device));
  }
}

void decode_binds(const json *hc, std::string_view where, ContainerFacts &f) {
  auto binds = get_string_list(hc, "Binds", where);
  if (!binds) return;
  for (const std::string &spec : *binds) {
    // volume/mounts linux parser: split on every ':'; 1 part = anonymous volume,
    // 2 = src:dst, 3 = src:dst:mode, more = invalid.
    const std::vector<std::string_view> parts = split(spec, ':');
    if (spec.empty() || parts.size() > 3)
      fail("An entry of " + std::string(where) + "Binds is not of the form src:dst[:options].");
    if (parts.size() == 1) continue; // anonymous volume at a container path
    std::string_view src = parts[0];
    bool read_only = false;
    if (parts.size() == 3) {
      int seen[5] = {0, 0, 0, 0, 0};
      for (std::string_view o : split(parts[2], ',')) {
        if (!kMountModes.count(o))
          fail("An entry of " + std::string(where) + "Binds has an unknown mount option.");
        if (++seen[mode_category(o)] > 1)
          fail("An entry of " + std::string(where) + "Binds has conflicting mount options.");
        if (o == "ro") read_only = true;
        if (o == "shared" || o == "rshared")
          add_unique(f.unsafe, "Binds propagation " + std::string(o) + " (" + clip(src) + ")");
      }
    }
    if (!src.empty() && src.front() == '/') {
      f.host_mounts.push_back(
          HostMount{std::string(src), clean_absolute_path(src), read_only, "Binds"});
    } else if (!src.empty()) {
      // A named volume: what it mounts depends on how it was created (add_daemon_facts).
      f.named_volumes.push_back(
          NamedVolume{std::string(src), read_only, std::string(where) + "Binds"});
    }
  }
}

// Host mounts made from the inline options of a *named* volume: the volume persists, and every
// reference to its name in the request (and later requests, through the lookup) mounts it, so
// the mount is read-only only if every reference is (see settle_inline_named).
struct InlineNamed {
  std::size_t first_mount, end_mount; // range in ContainerFacts::host_mounts
  std::string name;
};

// kind: "container" (Binds/Mounts of a container), or "service" (a swarm ContainerSpec: its
// tasks may run on other nodes, where a volume of the same name can be anything).
void decode_mounts(const json *hc, std::string_view where, ContainerFacts &f,
                   std::vector<InlineNamed> *inline_named, bool service = false) {
  const json *mounts = get_array(hc, "Mounts", where);
  if (!mounts) return;
  const std::string w = std::string(where) + "Mounts[].";
  for (const auto &m : *mounts) {
    if (!m.is_object()) fail(wrong_type(where, "Mounts", "an array of objects"));
    std::string type = get_string(&m, "Type", w).value_or("");
    std::string source = get_string(&m, "Source", w).value_or("");
    bool read_only = get_bool(&m, "ReadOnly", w);
    const json *bind_opts = get_object(&m, "BindOptions", w);
    const json *vol_opts = get_object(&m, "VolumeOptions", w);
    get_object(&m, "TmpfsOptions", w);
    if (type == "bind") {
      if (source.empty() || source.front() != '/')
        fail("A bind mount in " + std::string(where) + "Mounts has a relative or empty Source.");
      std::string prop = get_string(bind_opts, "Propagation", w + "BindOptions.").value_or("");
      if (prop == "shared" || prop == "rshared")
        add_unique(f.unsafe, "Mounts bind propagation " + prop + " (" + clip(source) + ")");
      if (get_bool(bind_opts, "CreateMountpoint", w + "BindOptions."))
        add_unique(f.unsafe, "Mounts bind CreateMountpoint (" + clip(source) + ")");
      // Read-only at the top only: mounts below the source stay writable.
      const bool non_recursive = get_bool(bind_opts, "ReadOnlyNonRecursive", w + "BindOptions.");
      f.host_mounts.push_back(
          HostMount{source, clean_absolute_path(source), read_only && !non_recursive, "Mounts"});
    } else if (type == "volume") {
      const json *driver = get_object(vol_opts, "DriverConfig", w + "VolumeOptions.");
      std::string dname =
          get_string(driver, "Name", w + "VolumeOptions.DriverConfig.").value_or("");
      const json *dopts = get_string_map(driver, "Options", w + "VolumeOptions.DriverConfig.");
      std::string subpath = get_string(vol_opts, "Subpath", w + "VolumeOptions.").value_or("");
      for (std::string_view part : split(subpath, '/'))
        if (part == "..")
          fail("The volume subpath in " + std::string(where) + "Mounts contains \"..\".");
      // The daemon creates a missing volume with these options: judge what it mounts (the whole
      // device, whatever Subpath says).
      const std::size_t before = f.host_mounts.size();
      volume_driver_facts(dname, dopts, "Mounts", read_only, f);
      if (!source.empty() && inline_named && f.host_mounts.size() > before)
        inline_named->push_back(InlineNamed{before, f.host_mounts.size(), source});
      if (source.empty()) {
        // anonymous: a fresh volume, made with the options above
      } else if (service) {
        // Looked up here, the name says nothing about the nodes the tasks run on.
        add_unique(f.unsafe, "service mounts named volume " + clip(source) +
                                 " (other nodes may hold a different volume of that name)");
      } else {
        // An existing one keeps the options it was created with (add_daemon_facts).
        f.named_volumes.push_back(NamedVolume{source, read_only, std::string(where) + "Mounts"});
      }
    } else if (type == "tmpfs") {
      // A tmpfs is private to the container.
    } else {
      add_unique(f.unsafe, "Mounts type " + (type.empty() ? std::string("(empty)") : clip(type)));
    }
  }
}

void decode_devices(const json *hc, std::string_view where, ContainerFacts &f) {
  if (const json *devs = get_array(hc, "Devices", where)) {
    for (const auto &d : *devs) {
      if (!d.is_object()) fail(wrong_type(where, "Devices", "an array of objects"));
      std::string p = get_string(&d, "PathOnHost", std::string(where) + "Devices[].").value_or("");
      if (p.empty()) fail("An entry of " + std::string(where) + "Devices has no PathOnHost.");
      add_unique(f.devices, p.front() == '/' ? clean_absolute_path(p) : p);
    }
  }
  if (auto rules = get_string_list(hc, "DeviceCgroupRules", where))
    for (const auto &r : *rules)
      add_unique(f.devices, "cgroup-rule:" + clip(r));
  if (const json *reqs = get_array(hc, "DeviceRequests", where)) {
    for (const auto &r : *reqs) {
      if (!r.is_object()) fail(wrong_type(where, "DeviceRequests", "an array of objects"));
      std::string drv =
          get_string(&r, "Driver", std::string(where) + "DeviceRequests[].").value_or("");
      add_unique(f.devices, "device-request:" + (drv.empty() ? std::string("default") : clip(drv)));
    }
  }
}

// "8080" -> {8080, 8080}; "8000-8010" -> {8000, 8010} (the daemon picks one); "" or "0" ->
// {0, 0} (a random port). Anything else is refused: the daemon would reject it too.
std::pair<int, int> host_port_range(std::string_view s, std::string_view where) {
  if (s.empty()) return {0, 0};
  auto number = [&](std::string_view n) {
    if (n.empty() || n.size() > 5 ||
        !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
      fail("A HostPort in " + std::string(where) + "PortBindings is not a port or port range.");
    int v = std::stoi(std::string(n));
    if (v > 65535) fail("A HostPort in " + std::string(where) + "PortBindings is above 65535.");
    return v;
  };
  auto dash = s.find('-');
  if (dash == std::string_view::npos) {
    int v = number(s);
    return {v, v};
  }
  int a = number(s.substr(0, dash)), b = number(s.substr(dash + 1));
  if (a == 0 || b < a)
    fail("A HostPort range in " + std::string(where) + "PortBindings is not ascending.");
  return {a, b};
}

// HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], ...} and
// PublishAllPorts (every exposed port on a random host port).
void decode_port_bindings(const json *hc, std::string_view where, ContainerFacts &f) {
  auto add = [&f](PublishedPort p) {
    for (const auto &q : f.published_ports)
      if (q.host_ip == p.host_ip && q.first == p.first && q.last == p.last &&
          q.container_port == p.container_port)
        return; // the deprecated top-level copy repeats HostConfig
    f.published_ports.push_back(std::move(p));
  };
  const std::string w = std::string(where) + "PortBindings.";
  if (const json *pb = get_object(hc, "PortBindings", where)) {
    for (auto it = pb->begin(); it != pb->end(); ++it) {
      if (it.value().is_null()) continue;
      if (!it.value().is_array()) fail(wrong_type(where, "PortBindings", "a map of arrays"));
      for (const auto &b : it.value()) {
        if (!b.is_object()) fail(wrong_type(w, it.key(), "an array of objects"));
        std::string ip = get_string(&b, "HostIp", w).value_or("");
        auto [first, last] = host_port_range(get_string(&b, "HostPort", w).value_or(""), where);
        add(PublishedPort{clip(ip, 64), first, last, clip(it.key(), 32)});
      }
    }
  }
  if (get_bool(hc, "PublishAllPorts", where)) add(PublishedPort{"", 0, 0, "*"});
}

// PidMode, NetworkMode, ... set to "host" or "container:<id>" share a namespace.
void decode_namespace_modes(const json *hc, std::string_view where, ContainerFacts &f,
                            bool cgroupns) {
  static const std::pair<std::string_view, std::string_view> kModes[] = {
      {"PidMode", "pid"}, {"NetworkMode", "network"}, {"IpcMode", "ipc"},
      {"UTSMode", "uts"}, {"UsernsMode", "userns"},   {"CgroupnsMode", "cgroupns"},
  };
  for (auto [fieldname, ns] : kModes) {
    if (ns == "cgroupns" && !cgroupns) continue;
    auto mode = get_string(hc, fieldname, where);
    if (mode && is_host_or_container_mode(*mode)) add_unique(f.host_namespaces, std::string(ns));
  }
}

// Every SecurityOpt but no-new-privileges (on) is unsafe: the daemon rejects what it does not
// understand, so a whitelist of one is the safe reading. `prefix` names where it came from.
void decode_security_opts(const json *hc, std::string_view where, const std::string &prefix,
                          ContainerFacts &f) {
  if (auto opts = get_string_list(hc, "SecurityOpt", where)) {
    for (const auto &o : *opts) {
      if (o == "no-new-privileges" || o == "no-new-privileges=true" ||
          o == "no-new-privileges:true")
        continue;
      add_unique(f.unsafe, prefix + "SecurityOpt " + clip(o));
    }
  }
}

// HostConfig fields (Resources embedded). `where` is "HostConfig." or "" for the deprecated
// top-level copy that dockerd 20.10 still decodes (ContainerConfigWrapper embeds *HostConfig).
void decode_host_config(const json *hc, std::string_view where, ContainerFacts &f,
                        std::vector<InlineNamed> *inline_named) {
  if (get_bool(hc, "Privileged", where)) f.privileged = true;
  if (auto caps = get_string_list(hc, "CapAdd", where, /*strslice=*/true))
    for (const auto &c : *caps)
      add_unique(f.capabilities, normalize_capability(c, where));
  if (auto caps = get_string_list(hc, "Capabilities", where)) {
    // API 1.40's full capability set; it replaces the defaults.
    for (const auto &c : *caps)
      add_unique(f.capabilities, normalize_capability(c, where));
    add_unique(f.unsafe, "Capabilities (replaces the default capability set)");
  }
  get_string_list(hc, "CapDrop", where, true); // type check only

  decode_binds(hc, where, f);
  decode_mounts(hc, where, f, inline_named);
  decode_devices(hc, where, f);

  decode_namespace_modes(hc, where, f, /*cgroupns=*/true);
  decode_security_opts(hc, where, "", f);
  for (std::string_view name : {"MaskedPaths", "ReadonlyPaths"}) {
    if (auto paths = get_string_list(hc, name, where)) {
      add_unique(f.unsafe, std::string(name) +
                               (paths->empty() ? " empty (unmasks /proc and /sys paths)"
                                               : " replaced (the default list no longer applies)"));
    }
  }
  if (auto v = get_string(hc, "CgroupParent", where); v && !v->empty())
    add_unique(f.unsafe, "CgroupParent " + clip(*v));
  if (auto v = get_string_list(hc, "VolumesFrom", where))
    for (const auto &c : *v)
      add_unique(f.unsafe, "VolumesFrom " + clip(c));
  if (auto v = get_string(hc, "VolumeDriver", where); v && !v->empty() && *v != "local")
    add_unique(f.unsafe, "VolumeDriver " + clip(*v));
  if (const json *s = get_string_map(hc, "Sysctls", where))
    for (auto it = s->begin(); it != s->end(); ++it)
      add_unique(f.unsafe, "Sysctls " + clip(it.key()));
  if (auto v = get_string(hc, "Runtime", where); v && !v->empty() && *v != "runc")
    add_unique(f.unsafe, "Runtime " + clip(*v));
  const json *log = get_object(hc, "LogConfig", where);
  if (auto t = get_string(log, "Type", std::string(where) + "LogConfig."); t && !t->empty())
    add_unique(f.unsafe, "LogConfig.Type " + clip(*t));
  // With the default driver, options still reach it, and the daemon's default may be a network
  // driver (syslog, fluentd, gelf, splunk, ...): an address option would send the container's
  // logs elsewhere. Options of the local file drivers only are harmless.
  if (const json *opts = get_string_map(log, "Config", std::string(where) + "LogConfig.")) {
    static const std::set<std::string_view> kFileLogOptions = {
        "max-size", "max-file",  "compress", "labels", "labels-regex",
        "env",      "env-regex", "tag",      "mode",   "max-buffer-size"};
    for (auto it = opts->begin(); it != opts->end(); ++it)
      if (!kFileLogOptions.count(it.key()))
        add_unique(f.unsafe, "LogConfig.Config " + clip(it.key()));
  }
  decode_port_bindings(hc, where, f);
}

// A named volume created from one mount's inline options is mounted by every reference to its
// name: writable if any of them is.
void settle_inline_named(ContainerFacts &f, const std::vector<InlineNamed> &inline_named) {
  for (const InlineNamed &n : inline_named) {
    const bool all_read_only =
        std::all_of(f.named_volumes.begin(), f.named_volumes.end(),
                    [&](const NamedVolume &v) { return v.name != n.name || v.read_only; });
    if (!all_read_only)
      for (std::size_t i = n.first_mount; i < n.end_mount; ++i)
        f.host_mounts[i].read_only = false;
  }
}

ContainerFacts decode_create(const json &body, const std::string &api_version) {
  if (!body.is_object()) fail("The container-create body is not a JSON object.");
  ContainerFacts f;
  if (auto image = get_string(&body, "Image", ""); image && !image->empty()) {
    f.image = parse_image_ref(*image);
    if (!f.image) fail("The image reference in Image is not valid.");
  }
  f.user = get_string(&body, "User", "").value_or("");
  f.user_is_root = is_root_user(f.user);

  const json *inner = get_object(&body, "HostConfig", "");
  std::vector<InlineNamed> inline_named;
  decode_host_config(inner, "HostConfig.", f, &inline_named);
  // dockerd 20.10 also decodes HostConfig fields at the top level and uses them when the
  // HostConfig object is absent (and merges some of them otherwise): take both, conservatively.
  decode_host_config(&body, "", f, &inline_named);
  settle_inline_named(f, inline_named);

  // For API < 1.41 an empty CgroupnsMode means "host" on cgroup v1 hosts.
  const json *effective = inner ? inner : &body;
  if (get_string(effective, "CgroupnsMode", "").value_or("").empty() &&
      api_version_less(api_version, 1, 41))
    add_unique(f.host_namespaces, "cgroupns");
  return f;
}

// POST /volumes/create {Name, Driver, DriverOpts, Labels, ClusterVolumeSpec}: what the volume
// will mount when a container uses it. No process runs, so the caller is never "root" here.
ContainerFacts decode_volume_create(const json &body) {
  if (!body.is_object()) fail("The volume-create body is not a JSON object.");
  ContainerFacts f;
  f.user_is_root = false;
  std::string driver = get_string(&body, "Driver", "").value_or("");
  const json *opts = get_string_map(&body, "DriverOpts", "");
  volume_driver_facts(driver, opts, "DriverOpts", false, f);
  if (get_object(&body, "ClusterVolumeSpec", ""))
    add_unique(f.unsafe, "ClusterVolumeSpec (a swarm cluster volume)");
  return f;
}

// POST /containers/{id}/update (Resources + RestartPolicy at the top level): device access and
// the cgroup parent can be changed on a running container.
ContainerFacts decode_update(const json &body) {
  if (!body.is_object()) fail("The container-update body is not a JSON object.");
  ContainerFacts f;
  f.user_is_root = false; // no new process
  decode_devices(&body, "", f);
  if (auto v = get_string(&body, "CgroupParent", ""); v && !v->empty())
    add_unique(f.unsafe, "CgroupParent " + clip(*v));
  return f;
}

// POST /networks/create: macvlan/ipvlan (a `parent` host interface), third-party drivers and
// driver options reach the host's network; plain bridge and overlay networks do not.
ContainerFacts decode_network_create(const json &body) {
  if (!body.is_object()) fail("The network-create body is not a JSON object.");
  ContainerFacts f;
  f.user_is_root = false;
  const std::string driver = get_string(&body, "Driver", "").value_or("");
  if (!driver.empty() && driver != "bridge" && driver != "overlay")
    add_unique(f.unsafe, "network driver " + clip(driver));
  if (const json *o = get_string_map(&body, "Options", ""); o && !o->empty())
    add_unique(f.unsafe, "network driver options (" + clip(o->begin().key()) + ", ...)");
  if (get_bool(&body, "Ingress", "")) add_unique(f.unsafe, "network Ingress (swarm routing mesh)");
  if (const json *ipam = get_object(&body, "IPAM", "")) {
    const std::string d = get_string(ipam, "Driver", "IPAM.").value_or("");
    if (!d.empty() && d != "default") add_unique(f.unsafe, "IPAM driver " + clip(d));
    if (const json *io = get_string_map(ipam, "Options", "IPAM."); io && !io->empty())
      add_unique(f.unsafe, "IPAM driver options");
    // A chosen subnet is not checked against the host's routes: it can capture host traffic
    // to that range (a directory server, a registry).
    if (const json *cfg = get_array(ipam, "Config", "IPAM."); cfg && !cfg->empty())
      add_unique(f.unsafe, "IPAM subnets chosen by the caller");
  }
  // Options copied from a config-only network are not in this request.
  if (const json *from = get_object(&body, "ConfigFrom", "");
      from && !get_string(from, "Network", "ConfigFrom.").value_or("").empty())
    add_unique(f.unsafe, "network ConfigFrom (options from another network)");
  return f;
}

// POST /build: the classic builder runs the Dockerfile's RUN steps in containers set up by these
// query parameters (the build context itself never reaches the plugin). RUN steps run as the
// Dockerfile says, root by default, so user_is_root stays true.
ContainerFacts build_facts(const QueryParams &q) {
  ContainerFacts f;
  const std::string net = ascii_lower(q.first("networkmode").value_or(""));
  if (net == "host" || net.rfind("container:", 0) == 0) add_unique(f.host_namespaces, "network");
  if (auto v = q.first("cgroupparent"); v && !v->empty())
    add_unique(f.unsafe, "build cgroupparent " + clip(*v));
  if (auto v = q.first("remote"); v && !v->empty())
    add_unique(f.unsafe, "build remote context (the daemon fetches " + clip(*v) + ")");
  if (q.first("version").value_or("1") != "1")
    add_unique(f.unsafe, "BuildKit build (its steps run over /session and /grpc, unseen)");
  return f;
}

// POST /services/create and /services/{id}/update (a swarm ServiceSpec): the containers the
// swarm will run, here and on other nodes. TaskTemplate.ContainerSpec holds the same dangerous
// settings as a container create, under other names.
ContainerFacts decode_service(const json &body) {
  if (!body.is_object()) fail("The service body is not a JSON object.");
  ContainerFacts f;
  const json *task = get_object(&body, "TaskTemplate", "");
  const std::string tw = "TaskTemplate.";
  const std::string runtime = get_string(task, "Runtime", tw).value_or("");
  if (get_object(task, "PluginSpec", tw) || runtime == "plugin")
    add_unique(f.unsafe, "service installs a plugin (TaskTemplate.PluginSpec)");
  else if (!runtime.empty() && runtime != "container")
    add_unique(f.unsafe, "service runtime " + clip(runtime));
  const json *cs = get_object(task, "ContainerSpec", tw);
  const std::string cw = tw + "ContainerSpec.";
  if (auto image = get_string(cs, "Image", cw); image && !image->empty()) {
    f.image = parse_image_ref(*image);
    if (!f.image) fail("The image reference in " + cw + "Image is not valid.");
  }
  f.user = get_string(cs, "User", cw).value_or("");
  f.user_is_root = is_root_user(f.user);
  if (auto caps = get_string_list(cs, "CapabilityAdd", cw))
    for (const auto &c : *caps)
      add_unique(f.capabilities, normalize_capability(c, cw));
  get_string_list(cs, "CapabilityDrop", cw); // type check only
  decode_mounts(cs, cw, f, nullptr, /*service=*/true);
  if (const json *priv = get_object(cs, "Privileges", cw)) {
    const std::string pw = cw + "Privileges.";
    const json *seccomp = get_object(priv, "Seccomp", pw);
    if (auto m = get_string(seccomp, "Mode", pw + "Seccomp."); m && !m->empty() && *m != "default")
      add_unique(f.unsafe, "Seccomp mode " + clip(*m));
    const json *apparmor = get_object(priv, "AppArmor", pw);
    if (auto m = get_string(apparmor, "Mode", pw + "AppArmor.");
        m && !m->empty() && *m != "default")
      add_unique(f.unsafe, "AppArmor mode " + clip(*m));
    const json *se = get_object(priv, "SELinuxContext", pw);
    if (get_bool(se, "Disable", pw + "SELinuxContext."))
      add_unique(f.unsafe, "SELinuxContext disabled");
    // The executor turns these into label=user:/role:/type:/level: (type spc_t is unconfined).
    for (std::string_view k : {"User", "Role", "Type", "Level"})
      if (auto v = get_string(se, k, pw + "SELinuxContext."); v && !v->empty())
        add_unique(f.unsafe, "SELinuxContext " + std::string(k) + " " + clip(*v));
  }
  if (const json *s = get_string_map(cs, "Sysctls", cw))
    for (auto it = s->begin(); it != s->end(); ++it)
      add_unique(f.unsafe, "Sysctls " + clip(it.key()));
  if (auto i = get_string(cs, "Isolation", cw); i && !i->empty() && *i != "default")
    add_unique(f.unsafe, "Isolation " + clip(*i));
  // Any swarm secret or config, by name or ID, mounted into the tasks: its content is readable.
  for (std::string_view k : {"Secrets", "Configs"})
    if (const json *a = get_array(cs, k, cw); a && !a->empty())
      add_unique(f.unsafe, "service mounts swarm " + ascii_lower(k));
  // EndpointSpec.Ports: published on every node (ingress) or on the task's node (host mode).
  if (const json *ep = get_object(&body, "EndpointSpec", "")) {
    if (const json *ports = get_array(ep, "Ports", "EndpointSpec.")) {
      for (const auto &p : *ports) {
        if (!p.is_object()) fail(wrong_type("EndpointSpec.", "Ports", "an array of objects"));
        const json *pub = field(&p, "PublishedPort");
        if (pub && (!pub->is_number_unsigned() || pub->get<std::uint64_t>() > 65535))
          fail("An EndpointSpec.Ports PublishedPort is not a port number.");
        const int port = pub ? static_cast<int>(pub->get<std::uint64_t>()) : 0;
        const json *target = field(&p, "TargetPort");
        std::string proto = get_string(&p, "Protocol", "EndpointSpec.Ports[].").value_or("tcp");
        std::string cport =
            (target && target->is_number_unsigned() ? std::to_string(target->get<std::uint64_t>())
                                                    : std::string("?")) +
            "/" + clip(proto, 8);
        f.published_ports.push_back(PublishedPort{"", port, port, cport});
      }
    }
  }
  const json *log = get_object(task, "LogDriver", tw);
  if (auto n = get_string(log, "Name", tw + "LogDriver."); n && !n->empty())
    add_unique(f.unsafe, "LogDriver " + clip(*n));
  // Attaching to the swarm-scoped "host" network gives the tasks the host's network namespace.
  for (const json *nets : {get_array(task, "Networks", tw), get_array(&body, "Networks", "")}) {
    if (!nets) continue;
    for (const auto &n : *nets) {
      if (!n.is_object()) fail(wrong_type(tw, "Networks", "an array of objects"));
      std::string target = get_string(&n, "Target", tw + "Networks[].").value_or("");
      if (ascii_lower(target) == "host") add_unique(f.host_namespaces, "network");
      // Swarm also matches a network by ID or ID prefix: the host network cannot be ruled out.
      else if (!target.empty() && std::all_of(target.begin(), target.end(), [](char c) {
                 return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
               }))
        add_unique(f.unsafe, "service network given by ID " + clip(target, 16));
    }
  }
  return f;
}

ContainerFacts decode_exec(const json &body) {
  if (!body.is_object()) fail("The exec-create body is not a JSON object.");
  ContainerFacts f;
  f.privileged = get_bool(&body, "Privileged", "");
  f.user = get_string(&body, "User", "").value_or("");
  f.user_is_root = is_root_user(f.user);
  return f;
}

// --- headers ----------------------------------------------------------------------------------

// Case-insensitive header lookup. Two spellings with different values are refused.
std::optional<std::string> header(const std::map<std::string, std::string> &h,
                                  std::string_view name) {
  std::optional<std::string> found;
  const std::string want = ascii_lower(name);
  for (const auto &[k, v] : h) {
    if (ascii_lower(k) != want) continue;
    if (found && *found != v)
      fail("The request has conflicting " + std::string(name) + " headers.");
    found = v;
  }
  return found;
}

// Actions whose handler decodes a JSON body whatever the Content-Type says: the body must have
// reached the plugin.
const std::set<std::string_view> kJsonBodyActions = {
    "container.create", "container.exec", "container.update", "container.checkpoint.create",
    "exec.start",       "network.create", "network.connect",  "network.disconnect",
    "volume.create",    "volume.update",  "service.create",   "service.update",
    "secret.create",    "secret.update",  "config.create",    "config.update",
    "swarm.init",       "swarm.join",     "swarm.update",     "swarm.unlock",
    "node.update",      "plugin.set",     "plugin.install",   "plugin.upgrade",
};

// tag query parameter applied to a reference, as the daemon's WithTag / WithDigest do.
void apply_tag_param(ImageRef &ref, const std::string &tag, bool digest_allowed) {
  if (tag.empty()) return;
  if (digest_allowed && is_valid_image_digest(tag)) {
    ref.tag.clear(); // reference.TrimNamed drops the old tag and digest
    ref.digest = tag;
    return;
  }
  if (!is_valid_image_tag(tag)) fail("The tag query parameter is not a valid tag.");
  ref.tag = tag;
}

ImageRef require_image(std::string_view name, std::string_view what, bool default_tag = true) {
  auto ref = parse_image_ref(name, default_tag);
  if (!ref) fail("The image reference in " + std::string(what) + " is not valid.");
  return *ref;
}

void image_facts(Request &r, const QueryParams &q) {
  const std::string &a = r.action;
  if (a == "image.pull") {
    std::string from = q.first("fromImage").value_or("");
    if (!from.empty() && from.back() == ':') from.pop_back(); // "pull -a" quirk in the daemon
    ImageRef ref = require_image(from, "fromImage", /*default_tag=*/false);
    if (ref.is_id) fail("The image reference in fromImage is an image ID, not a name.");
    ref.raw = q.first("fromImage").value_or("");
    apply_tag_param(ref, q.first("tag").value_or(""), /*digest_allowed=*/true);
    r.image = std::move(ref); // no tag and no digest: the daemon pulls every tag
  } else if (a == "image.import" || a == "container.commit") {
    std::string repo = q.first("repo").value_or("");
    if (repo.empty()) return;
    ImageRef ref = require_image(repo, "repo");
    if (ref.is_id || !ref.digest.empty()) fail("The repo query parameter must name a repository.");
    std::string tag = q.first("tag").value_or("");
    if (!tag.empty()) apply_tag_param(ref, tag, false);
    r.image = std::move(ref);
  } else if (a == "image.inspect" || a == "image.history" || a == "image.remove" ||
             (a == "image.export" && !r.object.empty()) || a == "image.attestations" ||
             a == "distribution.inspect") {
    r.image = require_image(r.object, "the request path");
  } else if (a == "image.push") {
    ImageRef ref = require_image(r.object, "the request path", /*default_tag=*/false);
    if (ref.is_id) fail("An image ID cannot be pushed.");
    apply_tag_param(ref, q.first("tag").value_or(""), false);
    r.image = std::move(ref); // no tag: the daemon pushes every tag of the repository
  } else if (a == "image.tag") {
    r.image = require_image(r.object, "the request path");
    std::string repo = q.first("repo").value_or("");
    if (repo.empty()) fail("POST /images/{name}/tag has no repo query parameter.");
    ImageRef target = require_image(repo, "repo");
    if (target.is_id || !target.digest.empty())
      fail("The repo query parameter must name a repository.");
    apply_tag_param(target, q.first("tag").value_or(""), false);
    r.object = image_ref_string(target); // the new name is what matters for retagging
  }
}

// The kernel follows symlinks in a bind source: /srv/projects/link -> /etc mounts /etc. Each
// host mount whose path resolves (on this host, now) to another path gets a second fact for the
// resolved path, so limits and guardrails judge both. A path that cannot be resolved is refused.
constexpr std::size_t kMaxHostMounts = 128; // per request; far beyond any real container

// Mounts before `first` were resolved already.
void add_symlink_targets(ContainerFacts &f, const NormalizeOptions &opts, std::size_t first = 0) {
  if (!opts.resolve_host_path) return;
  const std::size_t n = f.host_mounts.size();
  // Resolution costs system calls: bound it per request (a body can repeat one long path).
  if (n > kMaxHostMounts)
    fail("The request has " + std::to_string(n) + " host mounts; at most " +
         std::to_string(kMaxHostMounts) + " are judged.");
  std::map<std::string, std::optional<std::string>> seen;
  for (std::size_t i = first; i < n; ++i) {
    const HostMount m = f.host_mounts[i]; // copy: push_back below may reallocate
    auto [it, fresh] = seen.try_emplace(m.path);
    if (fresh) it->second = opts.resolve_host_path(m.path);
    const std::optional<std::string> &resolved = it->second;
    if (!resolved)
      fail("The host path " + clip(m.path) +
           " cannot be resolved on this host (symlink loop, too long, or not readable).");
    if (*resolved != m.path)
      f.host_mounts.push_back(
          HostMount{m.source, *resolved, m.read_only, m.origin + " (symlink target)"});
  }
}

Request normalize_impl(const RawHttpRequest &raw, const NormalizeOptions &opts) {
  Request r;
  r.method = raw.method;
  r.action = "unknown";
  if (raw.method.empty() || raw.method.size() > 32 ||
      !std::all_of(raw.method.begin(), raw.method.end(), is_token_char)) {
    r.method = clip(raw.method, 32);
    r.invalid = "The request method is missing or malformed.";
    return r;
  }

  UriResult u = parse_request_uri(raw.uri);
  if (!u.uri) {
    r.invalid = u.error;
    return r;
  }
  r.path = u.uri->path;
  r.api_version = u.uri->api_version;
  const QueryParams &q = u.uri->query;

  RouteMatch m = match_route(r.method, r.path, !r.api_version.empty(), q);
  r.action = m.action;
  r.object = m.object;
  if (m.invalid) {
    r.invalid = *m.invalid;
    return r;
  }

  try {
    // --- transport -------------------------------------------------------------------------
    std::string media;
    if (auto ct = header(raw.headers, "Content-Type")) {
      std::string_view v = *ct;
      media = ascii_lower(trim(v.substr(0, v.find(';'))));
    }
    if (media == "application/x-www-form-urlencoded" || media == "multipart/form-data")
      fail("Form-encoded request bodies are refused: the daemon reads parameters from them that "
           "the plugin cannot see.");
    const bool is_json = media == "application/json";
    bool content_length_positive = false;
    if (auto cl = header(raw.headers, "Content-Length")) {
      std::string_view v = trim(*cl);
      if (v.empty() ||
          !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
        fail("The Content-Length header is malformed.");
      content_length_positive = v.find_first_not_of('0') != std::string_view::npos;
    }
    const bool has_body = raw.body.has_value() && !raw.body->empty();
    const bool json_endpoint = kJsonBodyActions.count(r.action) > 0;
    if ((r.action == "container.create" || r.action == "container.exec") && !is_json)
      fail("This endpoint requires Content-Type application/json.");
    if (!has_body && r.action != "system.auth") {
      const bool write = r.method == "POST" || r.method == "PUT";
      if (json_endpoint || (is_json && (write || content_length_positive)))
        fail("The JSON request body was not forwarded to the plugin (too large, or not sent as "
             "application/json), but the daemon would still act on it.");
    }

    // --- body ------------------------------------------------------------------------------
    std::optional<json> body;
    if (has_body && (is_json || json_endpoint)) {
      JsonParseResult pr = parse_json_strict(*raw.body, opts.json);
      if (!pr.value) fail("The JSON request body is invalid: " + pr.error);
      body = std::move(pr.value);
    }
    if ((r.action == "container.create" || r.action == "container.exec" ||
         r.action == "volume.create" || r.action == "container.update" ||
         r.action == "network.create" || r.action == "service.create" ||
         r.action == "service.update") &&
        !body)
      fail("The JSON request body is missing."); // also guaranteed above; never dereference empty
    if (r.action == "container.create") {
      std::string version = r.api_version.empty() ? opts.default_api_version : r.api_version;
      r.container = decode_create(*body, version);
      r.image = r.container->image;
    } else if (r.action == "container.exec") {
      r.container = decode_exec(*body);
    } else if (r.action == "volume.create") {
      r.container = decode_volume_create(*body);
      r.object = get_string(&*body, "Name", "").value_or("");
    } else if (r.action == "container.update") {
      r.container = decode_update(*body);
    } else if (r.action == "network.create") {
      r.container = decode_network_create(*body);
      r.object = get_string(&*body, "Name", "").value_or("");
    } else if (r.action == "build") {
      r.container = build_facts(q);
    } else if (r.action == "service.create" || r.action == "service.update") {
      r.container = decode_service(*body);
      r.image = r.container->image;
      // ?rollback=previous applies the service's previous spec, not this body.
      if (!q.first("rollback").value_or("").empty())
        add_unique(r.container->unsafe,
                   "service rollback (the previous spec is not in the request)");
    }
    if (r.container) add_symlink_targets(*r.container, opts);
    image_facts(r, q);
  } catch (const BodyError &e) {
    r.invalid = e.message;
  }
  return r;
}

} // namespace

std::optional<std::string> resolve_host_path_on_host(const std::string &path) {
  if (path.empty() || path.front() != '/' || path.size() > 4096 ||
      path.find('\0') != std::string::npos)
    return std::nullopt;
  std::vector<std::string> todo; // components still to walk, in reverse order (back = next)
  auto push_front = [&todo](std::string_view p) {
    std::vector<std::string> parts;
    for (std::string_view c : split(p, '/'))
      if (!c.empty() && c != ".") parts.emplace_back(c);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it)
      todo.push_back(*it);
  };
  push_front(path);
  std::string done; // resolved prefix without a trailing slash; "" is "/"
  int links = 0;
  bool exists = true; // false once a component is missing: the rest is taken lexically
  // Each step may cost an lstat(2); links whose targets are long runs of "a/../" could make one
  // path cost thousands. Real paths need tens of steps.
  int steps = 0;
  while (!todo.empty()) {
    if (++steps > 1024) return std::nullopt;
    std::string c = std::move(todo.back());
    todo.pop_back();
    if (c == "..") {
      done.resize(done.rfind('/') == std::string::npos ? 0 : done.rfind('/'));
      continue;
    }
    std::string candidate = done + "/" + c;
    if (candidate.size() > 4096) return std::nullopt;
    if (!exists) {
      done = std::move(candidate);
      continue;
    }
    struct stat st {};
    if (::lstat(candidate.c_str(), &st) != 0) {
      if (errno != ENOENT && errno != ENOTDIR) return std::nullopt; // EACCES, ELOOP, ...
      exists = false; // the daemon may create it (Binds): nothing below can be a symlink yet
      done = std::move(candidate);
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      if (++links > 40) return std::nullopt; // as the kernel's ELOOP
      char buf[4097];
      ssize_t len = ::readlink(candidate.c_str(), buf, sizeof buf - 1);
      if (len <= 0 || static_cast<std::size_t>(len) >= sizeof buf - 1) return std::nullopt;
      std::string_view target(buf, static_cast<std::size_t>(len));
      if (target.front() == '/') done.clear();
      push_front(target);
      continue;
    }
    done = std::move(candidate);
  }
  return done.empty() ? std::string("/") : done;
}

std::string percent_encode_segment(std::string_view s) {
  static const char *hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

bool needs_daemon_facts(const Request &r) {
  if (r.invalid) return false; // denied anyway
  if (r.action == "exec.start" || r.action == "container.exec" || r.action == "container.attach" ||
      r.action == "container.attach.ws")
    return true;
  return r.container && !r.container->named_volumes.empty();
}

namespace {
// Named volumes looked up per request: each costs a round trip through the daemon.
constexpr std::size_t kMaxNamedVolumes = 32;

std::string answer_error(const DaemonAnswer &a, const std::string &what) {
  return "The plugin could not ask the daemon about " + what + ": " +
         (a.error.empty() ? std::string("no answer") : a.error) + ".";
}

void add_volume_facts(ContainerFacts &f, const NormalizeOptions &opts) {
  if (f.named_volumes.size() > 2 * kMaxNamedVolumes) // Binds are decoded twice (see decode_create)
    fail("The request mounts more than " + std::to_string(kMaxNamedVolumes) + " named volumes.");
  std::set<std::pair<std::string, bool>> done;
  const std::vector<NamedVolume> volumes = f.named_volumes; // volume_driver_facts appends to f
  for (const NamedVolume &v : volumes) {
    if (!done.emplace(v.name, v.read_only).second) continue;
    if (done.size() > kMaxNamedVolumes)
      fail("The request mounts more than " + std::to_string(kMaxNamedVolumes) + " named volumes.");
    const std::string what = "volume " + clip(v.name);
    DaemonAnswer a = opts.daemon_get("/volumes/" + percent_encode_segment(v.name));
    if (a.status == DaemonAnswer::Status::not_found)
      continue; // the daemon creates it now, with the request's options (judged already)
    if (a.status != DaemonAnswer::Status::found || !a.body.is_object())
      throw BodyError{answer_error(a, what)};
    const json *driver = field(&a.body, "Driver");
    const json *options = field(&a.body, "Options");
    if (!driver || !driver->is_string() ||
        (options && !options->is_null() && !options->is_object()))
      throw BodyError{"The daemon's description of " + what + " is not understood."};
    volume_driver_facts(driver->get<std::string>(),
                        options && options->is_object() ? options : nullptr,
                        "existing " + what + " (" + v.origin + ")", v.read_only, f);
  }
}

// Returns the ID of the exec's container.
std::string add_exec_facts(Request &r, const NormalizeOptions &opts) {
  const std::string what = "exec instance " + clip(r.object);
  DaemonAnswer a = opts.daemon_get("/exec/" + percent_encode_segment(r.object) + "/json");
  if (a.status == DaemonAnswer::Status::not_found)
    throw BodyError{"The daemon has no " + what + "."};
  if (a.status != DaemonAnswer::Status::found || !a.body.is_object())
    throw BodyError{answer_error(a, what)};
  const json *pc = field(&a.body, "ProcessConfig");
  const json *priv = pc && pc->is_object() ? field(pc, "privileged") : nullptr;
  const json *user = pc && pc->is_object() ? field(pc, "user") : nullptr;
  if (!priv || !priv->is_boolean() || (user && !user->is_null() && !user->is_string()))
    throw BodyError{"The daemon's description of " + what + " is not understood."};
  const json *cid = field(&a.body, "ContainerID");
  if (!cid || !cid->is_string() || cid->get<std::string>().empty())
    throw BodyError{"The daemon's description of " + what + " is not understood."};
  ContainerFacts f;
  f.privileged = priv->get<bool>();
  f.user = user && user->is_string() ? user->get<std::string>() : "";
  f.user_is_root = is_root_user(f.user);
  r.container = std::move(f);
  return cid->get<std::string>();
}

// An exec process shares its container's privileges, namespaces, devices and mounts: a process
// exec'd into a privileged or host-mounted container has that access. The container's
// host-access facts (from GET /containers/{id}/json) are added to the exec's.
void add_exec_target_facts(ContainerFacts &f, const std::string &container,
                           const NormalizeOptions &opts, bool take_user = false) {
  const std::string what = "container " + clip(container);
  DaemonAnswer a = opts.daemon_get("/containers/" + percent_encode_segment(container) + "/json");
  if (a.status == DaemonAnswer::Status::not_found)
    throw BodyError{"The daemon has no " + what + "."};
  if (a.status != DaemonAnswer::Status::found || !a.body.is_object())
    throw BodyError{answer_error(a, what)};
  const json *hc = field(&a.body, "HostConfig");
  const json *mounts = field(&a.body, "Mounts");
  if (!hc || !hc->is_object() || (mounts && !mounts->is_array()))
    throw BodyError{"The daemon's description of " + what + " is not understood."};
  const std::string origin = "target " + what;
  try {
    const bool privileged = get_bool(hc, "Privileged", "");
    if (privileged) f.privileged = true;
    if (take_user) { // attach: the caller acts as the container's main process
      const json *config = field(&a.body, "Config");
      f.user = get_string(config, "User", "Config.").value_or("");
      f.user_is_root = is_root_user(f.user);
    }
    if (auto caps = get_string_list(hc, "CapAdd", "", /*strslice=*/true))
      for (const auto &c : *caps)
        add_unique(f.capabilities, normalize_capability(c, ""));
    // CgroupnsMode is left out: the daemon fills in its own default, which is "host" on cgroup
    // v1 hosts, so every container there would look like it asked for the host's.
    decode_namespace_modes(hc, "", f, /*cgroupns=*/false);
    decode_devices(hc, "", f);
    decode_security_opts(hc, "", origin + " ", f);
    // The daemon fills in its default masked and read-only /proc and /sys paths for every
    // unprivileged container: a list without them (systempaths=unconfined gives []) unmasks
    // /proc/sys, /proc/sysrq-trigger, /proc/kcore, ... (privileged is its own fact).
    if (!privileged) {
      static const std::pair<std::string_view, std::vector<std::string_view>> kDefaults[] = {
          {"MaskedPaths", {"/proc/kcore", "/proc/keys", "/sys/firmware"}},
          {"ReadonlyPaths", {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"}}};
      for (const auto &[name, required] : kDefaults) {
        auto list = get_string_list(hc, name, "");
        bool complete = list.has_value();
        for (std::string_view p : required)
          if (complete && std::find(list->begin(), list->end(), p) == list->end()) complete = false;
        if (!complete)
          add_unique(f.unsafe, origin + " " + std::string(name) + " without the defaults");
      }
    }
    if (auto v = get_string(hc, "Runtime", ""); v && !v->empty() && *v != "runc")
      add_unique(f.unsafe, origin + " Runtime " + clip(*v));
    if (auto v = get_string(hc, "CgroupParent", ""); v && !v->empty())
      add_unique(f.unsafe, origin + " CgroupParent " + clip(*v));
    if (const json *sc = get_string_map(hc, "Sysctls", ""))
      for (auto it = sc->begin(); it != sc->end(); ++it)
        add_unique(f.unsafe, origin + " Sysctls " + clip(it.key()));
    // BindOptions.ReadOnlyNonRecursive (read-only at the top only) is in HostConfig.Mounts, by
    // target; the inspect's Mounts only says RW false.
    std::set<std::string> non_recursive;
    if (const json *hm = get_array(hc, "Mounts", "")) {
      for (const auto &m : *hm) {
        if (!m.is_object()) fail("bad HostConfig.Mounts");
        const json *bo = get_object(&m, "BindOptions", "Mounts[].");
        if (get_bool(bo, "ReadOnlyNonRecursive", "Mounts[].BindOptions."))
          non_recursive.insert(get_string(&m, "Target", "Mounts[].").value_or(""));
      }
    }
    if (mounts) {
      for (const auto &m : *mounts) {
        if (!m.is_object()) fail("bad Mounts");
        std::string type = get_string(&m, "Type", "Mounts[].").value_or("");
        std::string source = get_string(&m, "Source", "Mounts[].").value_or("");
        std::string dest = get_string(&m, "Destination", "Mounts[].").value_or("");
        const json *rw_field = field(&m, "RW");
        if (!rw_field || !rw_field->is_boolean()) fail("bad Mounts[].RW");
        const bool read_only = !rw_field->get<bool>() && !non_recursive.count(dest);
        if (type == "bind") {
          if (source.empty() || source.front() != '/') fail("bad bind Source");
          f.host_mounts.push_back(
              HostMount{source, clean_absolute_path(source), read_only, origin + " bind mount"});
        } else if (type == "volume") {
          std::string name = get_string(&m, "Name", "Mounts[].").value_or("");
          if (name.empty()) fail("volume without Name");
          f.named_volumes.push_back(NamedVolume{name, read_only, origin});
        } else if (type == "tmpfs" || type == "image") {
          // private to the container; an image mount is read-only image content
        } else if (type.empty()) {
          fail("mount without Type");
        } else {
          add_unique(f.unsafe, origin + " mount type " + clip(type));
        }
      }
    }
  } catch (const BodyError &) {
    throw BodyError{"The daemon's description of " + what + " is not understood."};
  }
}
} // namespace

std::optional<std::string> add_daemon_facts(Request &r, const NormalizeOptions &opts) {
  if (!needs_daemon_facts(r)) return std::nullopt;
  const bool exec = r.action == "exec.start" || r.action == "container.exec" ||
                    r.action == "container.attach" || r.action == "container.attach.ws";
  if (!opts.daemon_get)
    return "This request needs a lookup on the daemon (" +
           std::string(exec ? "the exec instance or container it runs in"
                            : "the named volumes it mounts") +
           "), and daemon lookups are disabled in the plugin's configuration.";
  try {
    // Host mounts from the daemon get their symlinks resolved like the request's own (already
    // done in normalize); an exec request has none of its own.
    const std::size_t first_new_mount = exec || !r.container ? 0 : r.container->host_mounts.size();
    if (r.action == "exec.start") {
      const std::string container = add_exec_facts(r, opts);
      add_exec_target_facts(*r.container, container, opts);
    } else if (r.action == "container.exec") {
      if (!r.container) r.container = ContainerFacts{};
      add_exec_target_facts(*r.container, r.object, opts);
    } else if (r.action == "container.attach" || r.action == "container.attach.ws") {
      // Attaching gives the caller the main process's stdin: its user and its access.
      r.container = ContainerFacts{};
      add_exec_target_facts(*r.container, r.object, opts, /*take_user=*/true);
    }
    add_volume_facts(*r.container, opts);
    add_symlink_targets(*r.container, opts, first_new_mount);
  } catch (const BodyError &e) {
    return e.message;
  } catch (const std::exception &) {
    return std::string("The daemon's answer could not be used (internal error).");
  }
  return std::nullopt;
}

Request normalize(const RawHttpRequest &raw, const NormalizeOptions &opts) {
  try {
    return normalize_impl(raw, opts);
  } catch (...) {
    Request r; // method and path left empty: nothing that could allocate much or throw again
    r.action = "unknown";
    r.invalid = "The request could not be normalized (internal error).";
    return r;
  }
}

} // namespace portcullis
