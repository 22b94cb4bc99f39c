#include "plugin/config.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <yaml-cpp/yaml.h>

namespace portcullis {

namespace {
struct ConfigError {
  std::string message;
};

std::string where(const std::string &file, const YAML::Node &n) {
  return file + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
}

void check_keys(const YAML::Node &map, const std::set<std::string> &allowed,
                const std::string &file, const std::string &ctx) {
  for (auto kv : map) {
    auto *it = &kv;
    const auto k = it->first.as<std::string>();
    if (!allowed.count(k)) {
      std::string list;
      for (const auto &a : allowed)
        list += (list.empty() ? "" : ", ") + a;
      throw ConfigError{where(file, it->first) + ": unknown key '" + k + "' in " + ctx +
                        " (expected one of: " + list + ")"};
    }
  }
}

std::string str(const YAML::Node &n, const std::string &file, const std::string &key) {
  if (!n.IsScalar()) throw ConfigError{where(file, n) + ": '" + key + "' must be a string"};
  return n.as<std::string>();
}

long long integer(const YAML::Node &n, const std::string &file, const std::string &key,
                  long long lo, long long hi) {
  long long v = 0;
  if (!n.IsScalar() || !YAML::convert<long long>::decode(n, v) || v < lo || v > hi)
    throw ConfigError{where(file, n) + ": '" + key + "' must be an integer between " +
                      std::to_string(lo) + " and " + std::to_string(hi)};
  return v;
}

// "250ms", "3s", "2m", "1h" -> milliseconds, within [lo, hi].
long long duration_ms(const YAML::Node &n, const std::string &file, const std::string &key,
                      long long lo, long long hi) {
  const std::string bad = where(file, n) + ": '" + key +
                          "' must be a duration like 500ms, 3s, 2m or 1h, between " +
                          std::to_string(lo) + "ms and " + std::to_string(hi / 1000) + "s";
  if (!n.IsScalar()) throw ConfigError{bad};
  const std::string s = n.as<std::string>();
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9')
    ++i;
  if (i == 0 || i > 9) throw ConfigError{bad};
  const long long v = std::stoll(s.substr(0, i));
  const std::string unit = s.substr(i);
  long long mult = 0;
  if (unit == "ms")
    mult = 1;
  else if (unit == "s")
    mult = 1000;
  else if (unit == "m")
    mult = 60'000;
  else if (unit == "h")
    mult = 3'600'000;
  else
    throw ConfigError{bad};
  const long long ms = v * mult;
  if (ms < lo || ms > hi) throw ConfigError{bad};
  return ms;
}

bool boolean(const YAML::Node &n, const std::string &file, const std::string &key) {
  bool v = false;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v))
    throw ConfigError{where(file, n) + ": '" + key + "' must be true or false"};
  return v;
}

std::vector<std::string> strings(const YAML::Node &n, const std::string &file,
                                 const std::string &key) {
  if (!n.IsSequence() || n.size() == 0)
    throw ConfigError{where(file, n) + ": '" + key + "' must be a non-empty list of strings"};
  std::vector<std::string> out;
  for (const auto &e : n) {
    const std::string v = str(e, file, key);
    if (v.empty()) throw ConfigError{where(file, e) + ": '" + key + "' has an empty entry"};
    out.push_back(v);
  }
  return out;
}

const YAML::Node mapping(const YAML::Node &n, const std::string &file, const std::string &key) {
  if (!n.IsMap()) throw ConfigError{where(file, n) + ": '" + key + "' must be a mapping"};
  return n;
}

// An admin-written LDAP filter: one parenthesised, balanced expression (the server parses it;
// this catches typos at start instead of denying every request later).
std::string ldap_filter(const YAML::Node &n, const std::string &file, const std::string &key) {
  const std::string f = str(n, file, key);
  if (f.empty()) return f;
  int depth = 0;
  bool ok = f.front() == '(' && f.back() == ')';
  for (std::size_t i = 0; ok && i < f.size(); ++i) {
    const char ch = f[i];
    if (ch == '\\') {
      ok = i + 2 < f.size() && std::isxdigit(static_cast<unsigned char>(f[i + 1])) &&
           std::isxdigit(static_cast<unsigned char>(f[i + 2]));
      i += 2;
    } else if (ch == '(') {
      ++depth;
    } else if (ch == ')') {
      ok = --depth >= 0 && (depth > 0 || i + 1 == f.size());
    } else if (ch == '\0') {
      ok = false;
    }
  }
  if (!ok || depth != 0)
    throw ConfigError{where(file, n) + ": '" + key +
                      "' must be one balanced LDAP filter in parentheses, e.g. "
                      "(objectClass=inetOrgPerson)"};
  return f;
}

std::string scope(const YAML::Node &n, const std::string &file, const std::string &key) {
  const std::string v = str(n, file, key);
  if (v != "base" && v != "one" && v != "sub")
    throw ConfigError{where(file, n) + ": '" + key + "' must be base, one or sub"};
  return v;
}

void parse_ldap(const YAML::Node &l, LdapConfig &c, const std::string &file,
                const std::string &base_dir);
void parse_cache(const YAML::Node &n, DirectoryCacheConfig &c, const std::string &file);
void parse_identity(const YAML::Node &n, IdentityConfig &c, const std::string &file);

std::string resolve(const std::string &base, const std::string &p) {
  if (p.empty() || p.front() == '/') return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
}
void parse_cache(const YAML::Node &n, DirectoryCacheConfig &c, const std::string &file) {
  mapping(n, file, "directory.cache");
  check_keys(n, {"positive_ttl", "negative_ttl", "refresh_ahead", "stale_grace", "max_entries"},
             file, "'directory.cache'");
  if (auto v = n["positive_ttl"])
    c.positive_ttl_ms = duration_ms(v, file, "cache.positive_ttl", 0, 86'400'000);
  if (auto v = n["negative_ttl"])
    c.negative_ttl_ms = duration_ms(v, file, "cache.negative_ttl", 0, 86'400'000);
  if (c.negative_ttl_ms > c.positive_ttl_ms)
    throw ConfigError{where(file, n) +
                      ": 'cache.negative_ttl' must not be longer than 'cache.positive_ttl'"};
  if (auto v = n["refresh_ahead"]) {
    double f = -1;
    if (!v.IsScalar() || !YAML::convert<double>::decode(v, f) || !(f == 0 || (f >= 0.1 && f < 1)))
      throw ConfigError{where(file, v) +
                        ": 'cache.refresh_ahead' must be 0 (off) or a fraction from 0.1 to 0.99"};
    c.refresh_ahead = f;
  }
  if (auto v = n["stale_grace"])
    c.stale_grace_ms = duration_ms(v, file, "cache.stale_grace", 0, 86'400'000);
  if (auto v = n["max_entries"])
    c.max_entries = static_cast<std::size_t>(integer(v, file, "cache.max_entries", 1, 10'000'000));
}

void parse_identity(const YAML::Node &n, IdentityConfig &c, const std::string &file) {
  mapping(n, file, "identity");
  check_keys(n, {"source", "dn_attribute", "strip"}, file, "'identity'");
  if (auto v = n["source"]) {
    c.source = str(v, file, "identity.source");
    if (c.source != "cn" && c.source != "san_email" && c.source != "san_uri" &&
        c.source != "dn_attribute")
      throw ConfigError{where(file, v) +
                        ": 'identity.source' must be cn, san_email, san_uri or dn_attribute"};
  }
  if (auto v = n["dn_attribute"]) c.dn_attribute = str(v, file, "identity.dn_attribute");
  if ((c.source == "dn_attribute") != !c.dn_attribute.empty())
    throw ConfigError{where(file, n) +
                      ": 'identity.dn_attribute' is required with source dn_attribute, and only "
                      "then"};
  if (auto v = n["strip"]) {
    c.strip = str(v, file, "identity.strip");
    try {
      std::regex re(c.strip, std::regex::ECMAScript);
      (void)re;
    } catch (const std::regex_error &e) {
      throw ConfigError{where(file, v) + ": 'identity.strip' is not a valid regular expression"};
    }
  }
}

void parse_ldap(const YAML::Node &l, LdapConfig &c, const std::string &file,
                const std::string &base_dir) {
  mapping(l, file, "directory.ldap");
  check_keys(l,
             {"urls", "starttls", "tls", "bind_dn", "bind_password_file", "timeouts", "pool",
              "user", "groups"},
             file, "'directory.ldap'");
  if (!l["urls"]) throw ConfigError{where(file, l) + ": 'ldap.urls' is required"};
  c.urls = strings(l["urls"], file, "ldap.urls");
  if (auto v = l["starttls"]) c.starttls = boolean(v, file, "ldap.starttls");
  static const std::regex url_re(
      R"(^(ldaps?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?$)");
  for (std::size_t i = 0; i < c.urls.size(); ++i) {
    std::smatch m;
    if (!std::regex_match(c.urls[i], m, url_re))
      throw ConfigError{where(file, l["urls"][i]) +
                        ": LDAP URLs must be ldaps://host[:port] or ldap://host[:port] (no DN, "
                        "attributes or extensions)"};
    if (m[1] == "ldap" && !c.starttls)
      throw ConfigError{where(file, l["urls"][i]) +
                        ": an ldap:// URL needs 'starttls: true' (portcullis never binds in "
                        "cleartext); or use ldaps://"};
    if (m[1] == "ldaps" && c.starttls)
      throw ConfigError{where(file, l["urls"][i]) +
                        ": 'starttls' applies to ldap:// URLs, not ldaps://"};
  }
  if (auto t = l["tls"]) {
    mapping(t, file, "ldap.tls");
    check_keys(t, {"ca_file", "client_cert", "client_key", "cipher_suite"}, file, "'ldap.tls'");
    if (auto v = t["ca_file"]) c.ca_file = resolve(base_dir, str(v, file, "ldap.tls.ca_file"));
    if (auto v = t["client_cert"])
      c.client_cert = resolve(base_dir, str(v, file, "ldap.tls.client_cert"));
    if (auto v = t["client_key"])
      c.client_key = resolve(base_dir, str(v, file, "ldap.tls.client_key"));
    if (auto v = t["cipher_suite"]) c.tls_cipher_suite = str(v, file, "ldap.tls.cipher_suite");
    if (c.client_cert.empty() != c.client_key.empty())
      throw ConfigError{where(file, t) + ": 'ldap.tls.client_cert' and 'client_key' go together"};
  }
  if (c.ca_file.empty())
    throw ConfigError{where(file, l) +
                      ": 'ldap.tls.ca_file' is required: the directory's certificate is always "
                      "verified"};
  if (auto v = l["bind_dn"]) c.bind_dn = str(v, file, "ldap.bind_dn");
  if (c.bind_dn.empty())
    throw ConfigError{where(file, l) + ": 'ldap.bind_dn' (the service account) is required"};
  if (auto v = l["bind_password_file"])
    c.bind_password_file = resolve(base_dir, str(v, file, "ldap.bind_password_file"));
  if (c.bind_password_file.empty())
    throw ConfigError{where(file, l) + ": 'ldap.bind_password_file' is required"};
  if (auto t = l["timeouts"]) {
    mapping(t, file, "ldap.timeouts");
    check_keys(t, {"connect", "operation", "decision"}, file, "'ldap.timeouts'");
    if (auto v = t["connect"])
      c.connect_timeout_ms = duration_ms(v, file, "ldap.timeouts.connect", 100, 60'000);
    if (auto v = t["operation"])
      c.operation_timeout_ms = duration_ms(v, file, "ldap.timeouts.operation", 100, 60'000);
    if (auto v = t["decision"])
      c.decision_timeout_ms = duration_ms(v, file, "ldap.timeouts.decision", 100, 60'000);
  }
  if (auto p = l["pool"]) {
    mapping(p, file, "ldap.pool");
    check_keys(p, {"size", "max_age", "backoff_max"}, file, "'ldap.pool'");
    if (auto v = p["size"])
      c.pool_size = static_cast<int>(integer(v, file, "ldap.pool.size", 1, 64));
    if (auto v = p["max_age"])
      c.max_connection_age_ms = duration_ms(v, file, "ldap.pool.max_age", 1000, 86'400'000);
    if (auto v = p["backoff_max"])
      c.backoff_max_ms = duration_ms(v, file, "ldap.pool.backoff_max", 100, 600'000);
  }
  if (!l["user"]) throw ConfigError{where(file, l) + ": 'ldap.user' is required"};
  {
    const YAML::Node u = mapping(l["user"], file, "ldap.user");
    check_keys(u, {"base_dn", "scope", "attribute", "filter"}, file, "'ldap.user'");
    if (auto v = u["base_dn"]) c.user_base_dn = str(v, file, "ldap.user.base_dn");
    if (c.user_base_dn.empty())
      throw ConfigError{where(file, u) + ": 'ldap.user.base_dn' is required"};
    if (auto v = u["scope"]) c.user_scope = scope(v, file, "ldap.user.scope");
    if (auto v = u["attribute"]) c.user_attribute = str(v, file, "ldap.user.attribute");
    if (auto v = u["filter"]) c.user_filter = ldap_filter(v, file, "ldap.user.filter");
  }
  if (!l["groups"]) throw ConfigError{where(file, l) + ": 'ldap.groups' is required"};
  const YAML::Node g = mapping(l["groups"], file, "ldap.groups");
  check_keys(g,
             {"strategies", "base_dn", "scope", "filter", "member_attributes", "memberof_attribute",
              "posix_member_attribute", "nested", "max_depth", "max_groups", "bind_by_cn"},
             file, "'ldap.groups'");
  if (auto v = g["strategies"]) {
    c.group_strategies = strings(v, file, "ldap.groups.strategies");
    for (std::size_t i = 0; i < c.group_strategies.size(); ++i) {
      const auto &s = c.group_strategies[i];
      if (s != "member" && s != "memberof" && s != "posix" && s != "ad_in_chain")
        throw ConfigError{where(file, v[i]) +
                          ": group strategies are member, memberof, posix and ad_in_chain"};
    }
  }
  if (auto v = g["base_dn"]) c.group_base_dn = str(v, file, "ldap.groups.base_dn");
  bool needs_base = false;
  for (const auto &s : c.group_strategies)
    needs_base = needs_base || s != "memberof";
  if (needs_base && c.group_base_dn.empty())
    throw ConfigError{where(file, g) + ": 'ldap.groups.base_dn' is required for the member, "
                                       "posix and ad_in_chain strategies"};
  if (auto v = g["scope"]) c.group_scope = scope(v, file, "ldap.groups.scope");
  if (auto v = g["filter"]) c.group_filter = ldap_filter(v, file, "ldap.groups.filter");
  if (auto v = g["member_attributes"])
    c.member_attributes = strings(v, file, "ldap.groups.member_attributes");
  if (auto v = g["memberof_attribute"])
    c.memberof_attribute = str(v, file, "ldap.groups.memberof_attribute");
  if (auto v = g["posix_member_attribute"])
    c.posix_member_attribute = str(v, file, "ldap.groups.posix_member_attribute");
  if (auto v = g["nested"]) c.nested = boolean(v, file, "ldap.groups.nested");
  if (auto v = g["max_depth"])
    c.max_depth = static_cast<int>(integer(v, file, "ldap.groups.max_depth", 1, 64));
  if (auto v = g["max_groups"])
    c.max_groups = static_cast<int>(integer(v, file, "ldap.groups.max_groups", 1, 100'000));
  if (auto v = g["bind_by_cn"]) c.bind_by_cn = boolean(v, file, "ldap.groups.bind_by_cn");
  static const std::regex attr_re("^[A-Za-z][A-Za-z0-9-]*$|^[0-9]+(\\.[0-9]+)*$");
  for (const std::string *a : {&c.user_attribute, &c.memberof_attribute, &c.posix_member_attribute})
    if (!std::regex_match(*a, attr_re))
      throw ConfigError{where(file, l) + ": '" + *a + "' is not an LDAP attribute name"};
  for (const auto &a : c.member_attributes)
    if (!std::regex_match(a, attr_re))
      throw ConfigError{where(file, g) + ": '" + a + "' is not an LDAP attribute name"};
}
} // namespace

ConfigResult parse_config(const std::string &text, const std::string &filename,
                          const std::string &base_dir) {
  ConfigResult r;
  Config c;
  c.file = filename;
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) throw ConfigError{where(filename, root) + ": expected a mapping"};
    check_keys(root,
               {"socket", "socket_mode", "socket_group", "policy", "directory", "decision_log",
                "threads", "log_level", "limits", "default_api_version", "identity", "daemon",
                "registries"},
               filename, "the configuration");
    if (auto n = root["socket"]) c.socket = resolve(base_dir, str(n, filename, "socket"));
    if (auto n = root["socket_mode"]) {
      const std::string s = str(n, filename, "socket_mode");
      std::size_t pos = 0;
      unsigned long mode = 0;
      bool ok = !s.empty() && s.find_first_not_of("01234567") == std::string::npos;
      if (ok) mode = std::stoul(s, &pos, 8);
      if (!ok || mode > 0777 || (mode & 0007))
        throw ConfigError{where(filename, n) +
                          ": 'socket_mode' must be an octal string like \"0660\" with no "
                          "permissions for others"};
      c.socket_mode = static_cast<unsigned>(mode);
    }
    if (auto n = root["socket_group"]) c.socket_group = str(n, filename, "socket_group");
    if (auto n = root["policy"]) c.policy = resolve(base_dir, str(n, filename, "policy"));
    if (c.policy.empty()) throw ConfigError{filename + ": 'policy' (the policy file) is required"};
    if (auto d = root["directory"]) {
      if (!d.IsMap()) throw ConfigError{where(filename, d) + ": 'directory' must be a mapping"};
      check_keys(d, {"type", "path", "ldap", "cache"}, filename, "'directory'");
      if (auto n = d["type"]) c.directory_type = str(n, filename, "directory.type");
      if (c.directory_type == "file") {
        if (d["ldap"] || d["cache"])
          throw ConfigError{where(filename, d) +
                            ": 'ldap' and 'cache' belong to directory type 'ldap'"};
        if (auto n = d["path"])
          c.directory_path = resolve(base_dir, str(n, filename, "directory.path"));
      } else if (c.directory_type == "ldap") {
        if (d["path"])
          throw ConfigError{where(filename, d["path"]) +
                            ": 'path' belongs to directory type 'file'"};
        if (!d["ldap"])
          throw ConfigError{where(filename, d) + ": directory type 'ldap' needs an 'ldap' section"};
        parse_ldap(d["ldap"], c.ldap, filename, base_dir);
        if (auto n = d["cache"]) parse_cache(n, c.cache, filename);
      } else {
        throw ConfigError{where(filename, d["type"]) + ": directory type must be 'file' or 'ldap'"};
      }
    }
    if (c.directory_type == "file" && c.directory_path.empty())
      throw ConfigError{filename + ": 'directory.path' (the users file) is required"};
    if (auto n = root["identity"]) parse_identity(n, c.identity, filename);
    if (auto d = root["daemon"]) {
      if (!d.IsMap()) throw ConfigError{where(filename, d) + ": 'daemon' must be a mapping"};
      check_keys(d, {"socket", "timeout_ms", "lookup_threads", "max_pending"}, filename,
                 "'daemon'");
      if (auto n = d["socket"]) {
        c.daemon.socket = str(n, filename, "daemon.socket");
        if (!c.daemon.socket.empty()) c.daemon.socket = resolve(base_dir, c.daemon.socket);
      }
      if (auto n = d["timeout_ms"])
        c.daemon.timeout_ms = integer(n, filename, "daemon.timeout_ms", 50, 10'000);
      if (auto n = d["lookup_threads"])
        c.daemon.lookup_threads =
            static_cast<int>(integer(n, filename, "daemon.lookup_threads", 1, 64));
      if (auto n = d["max_pending"])
        c.daemon.max_pending =
            static_cast<int>(integer(n, filename, "daemon.max_pending", 1, 100'000));
    }
    if (auto d = root["registries"]) {
      if (!d.IsMap()) throw ConfigError{where(filename, d) + ": 'registries' must be a mapping"};
      check_keys(
          d, {"timeout_ms", "verified_ttl_s", "unsigned_ttl_s", "error_ttl_s", "ca_file", "hosts"},
          filename, "'registries'");
      auto &R = c.registries;
      if (auto n = d["timeout_ms"])
        R.timeout_ms = integer(n, filename, "registries.timeout_ms", 100, 20'000);
      if (auto n = d["verified_ttl_s"])
        R.verified_ttl_s = integer(n, filename, "registries.verified_ttl_s", 0, 86'400);
      if (auto n = d["unsigned_ttl_s"])
        R.unsigned_ttl_s = integer(n, filename, "registries.unsigned_ttl_s", 0, 3'600);
      if (auto n = d["error_ttl_s"])
        R.error_ttl_s = integer(n, filename, "registries.error_ttl_s", 0, 300);
      if (auto n = d["ca_file"])
        R.ca_file = resolve(base_dir, str(n, filename, "registries.ca_file"));
      if (auto h = d["hosts"]) {
        if (!h.IsMap())
          throw ConfigError{where(filename, h) + ": 'registries.hosts' must be a mapping of "
                                                 "registry names to settings"};
        for (auto kv : h) {
          const std::string name = kv.first.as<std::string>();
          const std::string w = "registries.hosts." + name;
          if (name.empty() || name.find_first_of("/ \t") != std::string::npos ||
              std::any_of(name.begin(), name.end(),
                          [](unsigned char ch) { return std::isupper(ch) || ch < 0x20; }))
            throw ConfigError{where(filename, kv.first) + ": '" + name +
                              "' is not a registry name; expected lower-case host[:port]"};
          RegistryHostSettings hs;
          if (!kv.second.IsNull()) {
            if (!kv.second.IsMap())
              throw ConfigError{where(filename, kv.second) + ": '" + w + "' must be a mapping"};
            check_keys(kv.second, {"insecure_http", "username", "password_file"}, filename,
                       "'" + w + "'");
            if (auto n = kv.second["insecure_http"]) {
              const std::string b = str(n, filename, w + ".insecure_http");
              if (b != "true" && b != "false")
                throw ConfigError{where(filename, n) + ": '" + w +
                                  ".insecure_http' must be true or false"};
              hs.insecure_http = b == "true";
            }
            if (auto n = kv.second["username"]) hs.username = str(n, filename, w + ".username");
            if (auto n = kv.second["password_file"])
              hs.password_file = resolve(base_dir, str(n, filename, w + ".password_file"));
            if (hs.username.empty() != hs.password_file.empty())
              throw ConfigError{where(filename, kv.second) + ": '" + w +
                                "' needs both username and password_file, or neither"};
          }
          R.hosts.emplace_back(name, std::move(hs));
        }
      }
    }
    if (auto n = root["decision_log"])
      c.decision_log = resolve(base_dir, str(n, filename, "decision_log"));
    if (auto n = root["threads"])
      c.threads = static_cast<int>(integer(n, filename, "threads", 1, 256));
    if (auto n = root["log_level"]) {
      c.log_level = str(n, filename, "log_level");
      static const std::set<std::string> levels = {"trace", "debug",    "info", "warn",
                                                   "error", "critical", "off"};
      if (!levels.count(c.log_level))
        throw ConfigError{
            where(filename, n) +
            ": 'log_level' must be one of trace, debug, info, warn, error, critical, off"};
    }
    if (auto n = root["default_api_version"])
      c.default_api_version = str(n, filename, "default_api_version");
    if (auto l = root["limits"]) {
      if (!l.IsMap()) throw ConfigError{where(filename, l) + ": 'limits' must be a mapping"};
      check_keys(l, {"max_request_bytes", "max_json_depth", "idle_timeout_seconds"}, filename,
                 "'limits'");
      if (auto n = l["max_request_bytes"])
        c.max_request_bytes = static_cast<std::size_t>(
            integer(n, filename, "limits.max_request_bytes", 4096, 1LL << 30));
      if (auto n = l["max_json_depth"])
        c.max_json_depth = static_cast<int>(integer(n, filename, "limits.max_json_depth", 4, 1000));
      if (auto n = l["idle_timeout_seconds"])
        c.idle_timeout_seconds =
            static_cast<int>(integer(n, filename, "limits.idle_timeout_seconds", 1, 86400));
    }
  } catch (const ConfigError &e) {
    r.error = e.message;
    return r;
  } catch (const YAML::Exception &e) {
    r.error = filename + ":" + std::to_string(e.mark.line + 1) + ":" +
              std::to_string(e.mark.column + 1) + ": " + e.msg;
    return r;
  }
  r.config = std::move(c);
  return r;
}

ConfigResult load_config(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ConfigResult{std::nullopt, path + ": cannot open configuration file"};
  std::ostringstream ss;
  ss << in.rdbuf();
  auto abs = std::filesystem::absolute(path);
  return parse_config(ss.str(), path, abs.parent_path().string());
}

} // namespace portcullis
