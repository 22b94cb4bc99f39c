#include "plugin/config.hpp"

#include <filesystem>
#include <fstream>
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

std::string resolve(const std::string &base, const std::string &p) {
  if (p.empty() || p.front() == '/') return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
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
                "threads", "log_level", "limits", "default_api_version"},
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
      check_keys(d, {"type", "path"}, filename, "'directory'");
      if (auto n = d["type"]) c.directory_type = str(n, filename, "directory.type");
      if (c.directory_type != "file")
        throw ConfigError{where(filename, d["type"]) +
                          ": directory type must be 'file' (the only one built in so far)"};
      if (auto n = d["path"])
        c.directory_path = resolve(base_dir, str(n, filename, "directory.path"));
    }
    if (c.directory_path.empty())
      throw ConfigError{filename + ": 'directory.path' (the users file) is required"};
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
