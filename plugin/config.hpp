// The plugin's own configuration file (YAML). See docs/CONFIGURATION.md.
#pragma once

#include <optional>
#include <string>

namespace portcullis {

struct Config {
  std::string file; // where it was loaded from
  std::string socket = "/run/docker/plugins/portcullis.sock";
  unsigned socket_mode = 0600;
  std::string socket_group; // "" = keep the creating process's group
  std::string policy;       // policy file (required)
  std::string directory_type = "file";
  std::string directory_path; // users file for type "file"
  std::string decision_log;   // JSON-lines file ("" = decisions go to stderr only)
  int threads = 2;
  std::string log_level = "info";
  std::size_t max_request_bytes = 16u << 20; // whole AuthZ request from the daemon
  int max_json_depth = 64;
  int idle_timeout_seconds = 300; // keep-alive connections idle longer than this are closed
  std::string default_api_version = "1.41";
};

struct ConfigResult {
  std::optional<Config> config;
  std::string error; // "file:line:col: message"
};

// Parses YAML text; relative paths are resolved against `base_dir`.
ConfigResult parse_config(const std::string &text, const std::string &filename,
                          const std::string &base_dir);
ConfigResult load_config(const std::string &path);

} // namespace portcullis
