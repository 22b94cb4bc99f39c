#include "plugin/cli.hpp"

#include "plugin/config.hpp"
#include "plugin/server.hpp"
#include "plugin/service.hpp"

#include <csignal>
#include <cstdio>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>

#ifndef PORTCULLIS_VERSION
#define PORTCULLIS_VERSION "0.1.0"
#endif

namespace portcullis {

namespace {

const char *kUsage = R"(portcullis — Docker Engine authorization plugin

Usage:
  portcullis serve --config FILE      serve the plugin socket (SIGHUP reloads, SIGTERM stops)
  portcullis policy check FILE...     load and compile policy files without serving
  portcullis version                  print the version
  portcullis help                     this text
)";

void setup_logging(const std::string &level) {
  auto logger = spdlog::stderr_color_mt("portcullis");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(level));
}

int cmd_serve(const std::vector<std::string> &args) {
  std::string config_path;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--config" || args[i] == "-c") && i + 1 < args.size())
      config_path = args[++i];
    else if (args[i].rfind("--config=", 0) == 0)
      config_path = args[i].substr(9);
    else {
      std::fprintf(stderr, "portcullis serve: unexpected argument '%s'\n%s", args[i].c_str(),
                   kUsage);
      return 64;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "portcullis serve: --config FILE is required\n");
    return 64;
  }
  ConfigResult cr = load_config(config_path);
  if (!cr.config) {
    std::fprintf(stderr, "portcullis: %s\n", cr.error.c_str());
    return 78;
  }
  const Config &cfg = *cr.config;
  setup_logging(cfg.log_level);
  std::signal(SIGPIPE, SIG_IGN);

  std::string error;
  auto service = AuthzService::create(cfg, error);
  if (!service) {
    spdlog::critical("cannot start: {}", error);
    return 78;
  }
  ServerOptions so;
  so.socket_path = cfg.socket;
  so.socket_mode = cfg.socket_mode;
  so.socket_group = cfg.socket_group;
  so.max_body_bytes = cfg.max_request_bytes;
  so.idle_timeout_seconds = cfg.idle_timeout_seconds;
  so.threads = cfg.threads;
  AuthzService *svc = service.get();
  return run_server(
      so,
      [svc](std::string_view m, std::string_view t, std::string_view b) {
        return svc->handle(m, t, b);
      },
      [svc] {
        bool ok = false;
        svc->reload(ok);
      });
}

int cmd_policy(const std::vector<std::string> &args) {
  if (args.size() < 2 || args[0] != "check") {
    std::fprintf(stderr, "usage: portcullis policy check FILE...\n");
    return 64;
  }
  int rc = 0;
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::string errors;
    auto snap = load_policy_file(args[i], errors);
    if (!snap) {
      std::fprintf(stderr, "%s\n", errors.c_str());
      rc = 1;
      continue;
    }
    std::printf("%s: OK (%zu roles, %zu rules, %s)\n", args[i].c_str(), snap->policy->role_count(),
                snap->policy->rule_count(), snap->hash.c_str());
  }
  return rc;
}

} // namespace

int run_cli(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 64 : 0;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  try {
    if (cmd == "serve") return cmd_serve(args);
    if (cmd == "policy") return cmd_policy(args);
    if (cmd == "version" || cmd == "--version") {
      std::printf("portcullis %s\n", PORTCULLIS_VERSION);
      return 0;
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "portcullis: fatal: %s\n", e.what());
    return 70;
  }
  std::fprintf(stderr, "portcullis: unknown command '%s'\n%s", cmd.c_str(), kUsage);
  return 64;
}

} // namespace portcullis
