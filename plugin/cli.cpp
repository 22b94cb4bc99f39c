#include "plugin/cli.hpp"

#include "plugin/config.hpp"
#include "plugin/directories.hpp"
#include "plugin/routes.hpp"
#include "plugin/server.hpp"
#include "plugin/service.hpp"

#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
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
  portcullis whoami --config FILE --user NAME [--json]
                                      resolve a user as the plugin would: directory entry,
                                      groups (with the nesting that led to each), roles and
                                      the bindings that grant them
  portcullis routes                   print the Engine API route table as Markdown
                                      (docs/ROUTES.md is this output)
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
  so.lookup_threads = cfg.daemon.lookup_threads;
  so.max_pending = cfg.daemon.max_pending;
  so.max_queue_ms = static_cast<int>(cfg.daemon.timeout_ms);
  AuthzService *svc = service.get();
  return run_server(
      so,
      [svc](std::string_view m, std::string_view t, std::string_view b, bool may_block) {
        return svc->handle(m, t, b, may_block);
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

int cmd_whoami(const std::vector<std::string> &args) {
  std::string config_path, user;
  bool as_json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--config" || args[i] == "-c") && i + 1 < args.size())
      config_path = args[++i];
    else if (args[i] == "--user" && i + 1 < args.size())
      user = args[++i];
    else if (args[i] == "--json")
      as_json = true;
    else {
      std::fprintf(stderr, "portcullis whoami: unexpected argument '%s'\n%s", args[i].c_str(),
                   kUsage);
      return 64;
    }
  }
  if (config_path.empty() || user.empty()) {
    std::fprintf(stderr, "usage: portcullis whoami --config FILE --user NAME [--json]\n");
    return 64;
  }
  ConfigResult cr = load_config(config_path);
  if (!cr.config) {
    std::fprintf(stderr, "portcullis: %s\n", cr.error.c_str());
    return 78;
  }
  setup_logging(cr.config->log_level == "info" ? "warn" : cr.config->log_level);
  std::string error;
  auto dir = open_directory(*cr.config, error);
  if (!dir) {
    std::fprintf(stderr, "portcullis: %s\n", error.c_str());
    return 78;
  }
  auto snap = load_policy_file(cr.config->policy, error, dir);
  if (!snap) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 78;
  }
  Principal who{user, user == kLocalPrincipal ? "none" : "TLS", {}};
  DirectoryResult d;
  if (user == kLocalPrincipal) {
    d.ok = true; // the unix-socket caller is never looked up in the directory
  } else {
    d = dir->groups_for(user);
  }
  if (d.ok) who.groups = d.groups;
  const bool known = user == kLocalPrincipal || d.found || !dir->requires_entry();
  const auto grants = d.ok && known ? snap->policy->role_grants(who) : std::vector<RoleGrant>{};

  if (as_json) {
    nlohmann::json j = {{"user", user}, {"directory", dir->describe()}, {"ok", d.ok && known}};
    if (!d.ok) j["error"] = d.error;
    if (d.ok && !known) j["error"] = "user '" + user + "' is not in the directory";
    if (!d.user_dn.empty()) j["dn"] = d.user_dn;
    j["groups"] = nlohmann::json::array();
    for (const auto &m : d.memberships)
      j["groups"].push_back(
          {{"key", m.key}, {"name", m.display}, {"via", m.via}, {"source", m.source}});
    j["roles"] = nlohmann::json::array();
    for (const auto &g : grants)
      j["roles"].push_back({{"role", g.role}, {"binding", g.via}});
    j["policy"] = snap->hash;
    std::printf("%s\n", j.dump(2).c_str());
    return d.ok && known ? 0 : 1;
  }
  std::printf("user:      %s\n", user.c_str());
  std::printf("directory: %s\n", dir->describe().c_str());
  if (!d.ok) {
    std::printf("error:     %s\n", d.error.c_str());
    return 1;
  }
  if (user == kLocalPrincipal)
    std::printf("entry:     (the unix-socket caller; not looked up in the directory)\n");
  else if (!d.user_dn.empty())
    std::printf("entry:     %s\n", d.user_dn.c_str());
  else
    std::printf("entry:     %s\n", d.found ? "(found)" : "(not in the directory)");
  if (!known) {
    std::printf("result:    denied: user '%s' is not in the directory\n", user.c_str());
    return 1;
  }
  std::printf("groups:%s\n", d.memberships.empty() ? "    (none)" : "");
  for (const auto &m : d.memberships) {
    std::string line = "  " + m.display;
    if (m.key != m.display) line += "  [key " + m.key + "]";
    line += "  (" + m.source;
    if (m.via.empty())
      line += ", direct";
    else
      for (auto it = m.via.rbegin(); it != m.via.rend(); ++it)
        line += " <- " + *it;
    line += ")";
    std::printf("%s\n", line.c_str());
  }
  std::printf("roles:%s\n", grants.empty() ? "     (none: every request is denied)" : "");
  for (const auto &g : grants)
    std::printf("  %-12s from binding %s\n", g.role.c_str(), g.via.c_str());
  std::printf("policy:    %s (%s)\n", snap->path.c_str(), snap->hash.c_str());
  return 0;
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
    if (cmd == "whoami") return cmd_whoami(args);
    if (cmd == "routes") {
      if (!args.empty()) {
        std::fprintf(stderr, "usage: portcullis routes\n");
        return 64;
      }
      std::fputs(route_table_markdown().c_str(), stdout);
      return 0;
    }
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
