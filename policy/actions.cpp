#include "policy/actions.hpp"

#include "policy/policy.hpp"

#include <algorithm>

namespace portcullis {

namespace {
std::vector<std::string_view> make_catalog() {
  std::vector<std::string_view> v = {
      // system
      "system.ping",
      "system.version",
      "system.info",
      "system.events",
      "system.df",
      "system.auth",
      "api.options",
      // containers
      "container.list",
      "container.create",
      "container.inspect",
      "container.top",
      "container.logs",
      "container.changes",
      "container.export",
      "container.stats",
      "container.start",
      "container.stop",
      "container.restart",
      "container.kill",
      "container.pause",
      "container.unpause",
      "container.wait",
      "container.rename",
      "container.resize",
      "container.update",
      "container.attach",
      "container.attach.ws",
      "container.archive.get",
      "container.archive.head",
      "container.archive.put",
      "container.remove",
      "container.prune",
      "container.commit",
      "container.copy",
      "container.checkpoint.list",
      "container.checkpoint.create",
      "container.checkpoint.remove",
      "container.exec",
      // exec
      "exec.start",
      "exec.resize",
      "exec.inspect",
      // images
      "image.list",
      "image.search",
      "image.inspect",
      "image.history",
      "image.attestations",
      "image.export",
      "image.pull",
      "image.import",
      "image.load",
      "image.push",
      "image.tag",
      "image.remove",
      "image.prune",
      // build
      "build",
      "build.prune",
      "build.cancel",
      "session",
      "grpc",
      // volumes
      "volume.list",
      "volume.inspect",
      "volume.create",
      "volume.update",
      "volume.remove",
      "volume.prune",
      // networks
      "network.list",
      "network.inspect",
      "network.create",
      "network.connect",
      "network.disconnect",
      "network.remove",
      "network.prune",
      // plugins
      "plugin.list",
      "plugin.privileges",
      "plugin.inspect",
      "plugin.install",
      "plugin.create",
      "plugin.enable",
      "plugin.disable",
      "plugin.push",
      "plugin.set",
      "plugin.upgrade",
      "plugin.remove",
      // swarm
      "swarm.inspect",
      "swarm.init",
      "swarm.join",
      "swarm.leave",
      "swarm.update",
      "swarm.unlockkey",
      "swarm.unlock",
      "node.list",
      "node.inspect",
      "node.remove",
      "node.update",
      "service.list",
      "service.create",
      "service.inspect",
      "service.remove",
      "service.update",
      "service.logs",
      "task.list",
      "task.inspect",
      "task.logs",
      "secret.list",
      "secret.create",
      "secret.inspect",
      "secret.remove",
      "secret.update",
      "config.list",
      "config.create",
      "config.inspect",
      "config.remove",
      "config.update",
      // distribution, debug
      "distribution.inspect",
      "debug.vars",
      "debug.pprof",
      // everything else
      "unknown",
  };
  std::sort(v.begin(), v.end());
  return v;
}

// Read-only actions ("*.read"). Left out on purpose, although they are GET routes:
//  - file, log or process contents: container.logs, container.export, container.archive.get,
//    container.archive.head (probes paths), image.export, service.logs, task.logs;
//  - a process's I/O: container.attach.ws (a GET that takes stdin);
//  - data that may be secret: container.inspect (Config.Env), swarm.inspect (join tokens),
//    swarm.unlockkey, volume.list and volume.inspect (driver options such as CIFS passwords),
//    plugin.inspect (plugin settings), service.list/inspect and task.list/inspect (the spec's
//    Env), config.list/inspect (config data), image.attestations (provenance with build args);
//  - calls to a registry on the caller's behalf: image.search, plugin.privileges,
//    distribution.inspect;
//  - the daemon's internals: debug.vars, debug.pprof.
// Must stay sorted (checked by a unit test).
const std::vector<std::string_view> kReadActions = {
    "container.changes", "container.list", "container.stats", "container.top",   "exec.inspect",
    "image.history",     "image.inspect",  "image.list",      "network.inspect", "network.list",
    "node.inspect",      "node.list",      "plugin.list",     "secret.inspect",  "secret.list",
    "system.df",         "system.events",  "system.info",     "system.ping",     "system.version",
};
} // namespace

const std::vector<std::string_view> &read_actions() {
  return kReadActions;
}

bool is_read_action(std::string_view name) {
  return std::binary_search(kReadActions.begin(), kReadActions.end(), name);
}

const std::vector<std::string_view> &known_actions() {
  static const std::vector<std::string_view> catalog = make_catalog();
  return catalog;
}

bool is_known_action(std::string_view name) {
  const auto &c = known_actions();
  return std::binary_search(c.begin(), c.end(), name);
}

bool action_pattern_matches(std::string_view pattern, std::string_view action) {
  // Routes the normalizer cannot name stay denied unless a rule names "unknown" itself: a
  // wildcard written for today's API must not silently cover endpoints added tomorrow.
  if (action == "unknown") return pattern == "unknown";
  if (pattern == "*") return true;
  if (pattern == "*.read") return is_read_action(action);
  if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == ".*") {
    std::string_view prefix = pattern.substr(0, pattern.size() - 1); // keeps the dot
    return action.size() > prefix.size() && action.substr(0, prefix.size()) == prefix;
  }
  return pattern == action;
}

bool action_pattern_is_valid(std::string_view pattern) {
  for (auto a : known_actions())
    if (action_pattern_matches(pattern, a)) return true;
  return false;
}

} // namespace portcullis

namespace portcullis {

bool is_signature_gated_action(std::string_view action) {
  return action == "container.create" || action == "container.start" ||
         action == "container.restart" || action == "image.pull" || action == "service.create" ||
         action == "service.update";
}

bool is_image_producing_action(std::string_view action) {
  // Plugins are images that run as root and are never signature-checked here; joining a swarm
  // lets another manager schedule tasks this plugin never sees.
  return action == "image.load" || action == "image.import" || action == "container.commit" ||
         action == "build" || action == "session" || action == "grpc" ||
         action == "plugin.install" || action == "plugin.upgrade" || action == "plugin.create" ||
         action == "plugin.enable" || action == "swarm.join";
}

} // namespace portcullis
