#include "plugin/cli.hpp"

#include "plugin/config.hpp"
#include "plugin/crypto.hpp"
#include "plugin/directories.hpp"
#include "plugin/imageref.hpp"
#include "plugin/registry.hpp"
#include "plugin/routes.hpp"
#include "plugin/server.hpp"
#include "plugin/service.hpp"
#include "plugin/signatures.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sstream>
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
  portcullis image verify --config FILE REF
                                      check REF's signatures in its registry against the
                                      policy's image_trust and explain which rule, key and
                                      signature decided (exit 0 when trusted)
  portcullis image sign --key KEY [--config FILE] [--format legacy|bundle] REF
                                      sign REF in its registry with an unencrypted PEM private
                                      key, in cosign's format (default legacy)
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

int cmd_image(const std::vector<std::string> &args) {
  const char *usage = "usage: portcullis image verify --config FILE REF\n"
                      "       portcullis image sign --key KEY [--config FILE] "
                      "[--format legacy|bundle] REF\n";
  if (args.empty() || (args[0] != "verify" && args[0] != "sign")) {
    std::fputs(usage, stderr);
    return 64;
  }
  const bool verify = args[0] == "verify";
  std::string config_path, key_path, format = "legacy", ref_text;
  for (std::size_t i = 1; i < args.size(); ++i) {
    auto value = [&](const char *flag, std::string &out) {
      if (args[i] == flag && i + 1 < args.size()) {
        out = args[++i];
        return true;
      }
      return false;
    };
    if (value("--config", config_path) || value("--key", key_path) || value("--format", format))
      continue;
    if (!args[i].empty() && args[i][0] != '-' && ref_text.empty()) {
      ref_text = args[i];
      continue;
    }
    std::fprintf(stderr, "portcullis image: unexpected argument '%s'\n%s", args[i].c_str(), usage);
    return 64;
  }
  if (ref_text.empty() || (verify && config_path.empty()) || (!verify && key_path.empty()) ||
      (format != "legacy" && format != "bundle")) {
    std::fputs(usage, stderr);
    return 64;
  }
  auto ref = parse_image_ref(ref_text);
  if (!ref || ref->is_id) {
    std::fprintf(stderr, "portcullis image: '%s' is not an image name\n", ref_text.c_str());
    return 64;
  }
  std::optional<Config> config;
  if (!config_path.empty()) {
    ConfigResult cr = load_config(config_path);
    if (!cr.config) {
      std::fprintf(stderr, "portcullis image: %s\n", cr.error.c_str());
      return 78;
    }
    config = std::move(cr.config);
  }
  std::optional<RegistryOptions> ro = RegistryOptions{};
  if (config) {
    std::string why;
    ro = registry_options(*config, why);
    if (!ro) {
      std::fprintf(stderr, "portcullis image: %s\n", why.c_str());
      return 78;
    }
  }
  auto registry = make_http_registry(std::move(*ro));
  const long long timeout_ms = config ? config->registries.timeout_ms * 4 : 20'000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!verify) {
    std::ifstream in(key_path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (!in && !in.eof()) {
      std::fprintf(stderr, "portcullis image sign: cannot read %s\n", key_path.c_str());
      return 66;
    }
    std::string why;
    auto key = PrivateKey::from_pem(ss.str(), &why);
    if (!key) {
      std::fprintf(stderr, "portcullis image sign: %s: %s\n", key_path.c_str(), why.c_str());
      return 65;
    }
    SignResult r = sign_image(*ref, *key, format == "bundle", *registry, deadline);
    if (!r.ok) {
      std::fprintf(stderr, "portcullis image sign: %s\n", r.error.c_str());
      return 1;
    }
    std::printf("signed %s@%s with key %s (%s)\nsignature: %s\n",
                trust_repository_name(ref->registry, ref->repository).c_str(), r.digest.c_str(),
                key->public_key().fingerprint().c_str(), key->public_key().algorithm().c_str(),
                r.location.c_str());
    return 0;
  }
  std::string error;
  auto snap = load_policy_file(config->policy, error);
  if (!snap) {
    std::fprintf(stderr, "portcullis image verify: %s\n", error.c_str());
    return 78;
  }
  if (!snap->trust) {
    std::fprintf(stderr, "portcullis image verify: policy %s has no image_trust section\n",
                 snap->path.c_str());
    return 78;
  }
  SignatureGate gate;
  gate.trust = snap->trust.get();
  gate.policy_hash = snap->hash;
  gate.registry = registry.get();
  gate.deadline = deadline;
  std::vector<std::string> trace;
  const unsigned long before = registry->requests();
  SignatureVerdict v = verify_reference(*ref, gate, trace);
  std::printf("image:   %s\n", image_ref_string(*ref).c_str());
  std::printf("policy:  %s (%s)\n", snap->path.c_str(), snap->hash.c_str());
  for (const auto &t : trace)
    std::printf("  %s\n", t.c_str());
  std::printf("result:  %s: %s\n", v.ok ? (v.status == "warn" ? "WARN" : "TRUSTED") : "REFUSED",
              v.detail.c_str());
  std::printf("registry requests: %lu\n", registry->requests() - before);
  return v.ok && v.status == "verified" ? 0 : 1;
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
    if (cmd == "image") return cmd_image(args);
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
