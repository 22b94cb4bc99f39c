#include "plugin/service.hpp"

#include "plugin/crypto.hpp"
#include "plugin/directories.hpp"
#include "plugin/normalize.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <spdlog/spdlog.h>
#include <sstream>
#include <sys/stat.h>

namespace portcullis {

namespace {
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

bool read_file(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return static_cast<bool>(in) || in.eof();
}

// A password file: not readable by group or others, at most 4 KiB, one trailing newline dropped.
std::optional<std::string> read_secret_file(const std::string &path, std::string &error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error = "cannot read password file " + path;
    return std::nullopt;
  }
  if ((st.st_mode & 077) != 0) {
    error = "password file " + path + " is readable by group or others; chmod 600 it";
    return std::nullopt;
  }
  std::string text;
  if (st.st_size > 4096 || !read_file(path, text)) {
    error = "cannot read password file " + path + " (or it is larger than 4 KiB)";
    return std::nullopt;
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) {
    error = "password file " + path + " is empty";
    return std::nullopt;
  }
  return text;
}

// Messages reach docker clients and logs: printable ASCII only, bounded length.
std::string sanitize(std::string_view s, std::size_t max = 600) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  for (char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    out.push_back((u >= 0x20 && u < 0x7f) ? c : '?');
  }
  return out;
}

std::string iso_time_now() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - secs).count();
  std::time_t t = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(us));
  return buf;
}

// The decision-log record is written with LogRecord (plugin/audit.hpp): the same JSON text an
// nlohmann document of these members would dump to, without building one per decision.
LogRecord image_record(const ImageRef &i) {
  LogRecord j;
  j.set("ref", i.raw);
  if (i.is_id) j.set("id", true);
  if (!i.registry.empty()) j.set("registry", i.registry);
  if (!i.repository.empty()) j.set("repository", i.repository);
  if (!i.tag.empty()) j.set("tag", i.tag);
  if (!i.digest.empty()) j.set("digest", i.digest);
  return j;
}

LogRecord facts_record(const Request &req) {
  LogRecord f;
  if (req.container) {
    const auto &c = *req.container;
    f.set("privileged", c.privileged);
    if (!c.capabilities.empty()) f.set("capabilities", c.capabilities);
    if (!c.host_mounts.empty()) {
      std::vector<LogRecord> m;
      m.reserve(c.host_mounts.size());
      for (const auto &h : c.host_mounts) {
        LogRecord e;
        e.set("path", h.path).set("read_only", h.read_only).set("origin", h.origin);
        m.push_back(std::move(e));
      }
      f.set("host_mounts", m);
    }
    if (c.image) f.set("image", image_record(*c.image));
    f.set("user", c.user);
    f.set("user_is_root", c.user_is_root);
    if (!c.host_namespaces.empty()) f.set("host_namespaces", c.host_namespaces);
    if (!c.devices.empty()) f.set("devices", c.devices);
    if (!c.published_ports.empty()) {
      std::vector<std::string> ports; // "127.0.0.1:8080->80/tcp", "random->80/tcp"
      ports.reserve(c.published_ports.size());
      for (const auto &p : c.published_ports) {
        std::string host = p.first == 0 ? "random"
                           : p.first == p.last
                               ? std::to_string(p.first)
                               : std::to_string(p.first) + "-" + std::to_string(p.last);
        ports.push_back((p.host_ip.empty() ? "" : p.host_ip + ":") + host + "->" +
                        p.container_port);
      }
      f.set("published_ports", ports);
    }
    if (!c.unsafe.empty()) f.set("unsafe", c.unsafe);
  }
  if (req.image) f.set("image", image_record(*req.image));
  if (req.signature) {
    const SignatureVerdict &v = *req.signature;
    LogRecord sig;
    sig.set("ok", v.ok).set("status", v.status);
    if (!v.image.empty()) sig.set("image", sanitize(v.image, 512));
    if (!v.trust_rule.empty()) sig.set("trust_rule", v.trust_rule);
    if (!v.keys.empty()) sig.set("keys", v.keys);
    if (!v.cache.empty()) sig.set("cache", v.cache);
    sig.set("detail", sanitize(v.detail));
    f.set("signature", sig);
  }
  if (!req.api_version.empty()) f.set("api_version", req.api_version);
  return f;
}
// portcullis's own lookup (plugin/daemon.hpp): no TLS user, this process's token in the lookup
// header, and a GET of a volume, an exec instance or a container, nothing else. Anything else
// carrying the header is judged by the policy like any request (and logged as suspicious).
std::optional<Request> own_lookup(const AuthzRequest &ar, std::string_view token,
                                  const JsonLimits &limits) {
  const std::string *presented = nullptr;
  for (const auto &[k, v] : ar.headers)
    if (k.size() == std::string_view(kLookupHeader).size() &&
        std::equal(k.begin(), k.end(), kLookupHeader, [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        }))
      presented = &v;
  if (!presented) return std::nullopt;
  const bool has_user = ar.user && !ar.user->empty();
  if (has_user || ar.method != "GET" || !lookup_token_matches(*presented, token)) {
    spdlog::warn("a request carries the {} header but is not one of this plugin's lookups "
                 "(wrong token, method or caller): judged by the policy",
                 kLookupHeader);
    return std::nullopt;
  }
  RawHttpRequest raw{ar.method, ar.uri, ar.body, ar.headers};
  NormalizeOptions o;
  o.json = limits;
  o.resolve_host_path = nullptr;
  Request r = normalize(raw, o);
  if (r.invalid || (r.action != "volume.inspect" && r.action != "exec.inspect" &&
                    r.action != "container.inspect" && r.action != "image.inspect")) {
    spdlog::warn("a request with this plugin's lookup token is not a lookup ({}): judged by the "
                 "policy",
                 sanitize(r.action, 64));
    return std::nullopt;
  }
  return r;
}
} // namespace

std::string new_decision_id() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  // The 16 random hex digits come from a per-thread block of RAND_bytes output: one OpenSSL call
  // (and its fork check, a system call) per 32 ids instead of one per id. Every digit is used
  // once. (portcullis never forks, which would copy the block into the child.)
  thread_local std::string pool;
  thread_local std::size_t used = 0;
  if (used + 16 > pool.size()) {
    pool = random_hex(256);
    used = 0;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%012llx%.16s",
                static_cast<unsigned long long>(ms) & 0xffffffffffffULL, pool.data() + used);
  used += 16;
  return buf;
}

std::optional<RegistryOptions> registry_options(const Config &config, std::string &error) {
  RegistryOptions ro;
  ro.ca_file = config.registries.ca_file;
  for (const auto &[name, h] : config.registries.hosts) {
    RegistryHostConfig hc;
    hc.insecure_http = h.insecure_http;
    hc.username = h.username;
    if (!h.password_file.empty()) {
      auto pw = read_secret_file(h.password_file, error);
      if (!pw) return std::nullopt;
      hc.password = std::move(*pw);
    }
    ro.hosts[name] = std::move(hc);
  }
  return ro;
}

std::string deny_message(std::string_view reason, std::string_view rule, std::string_view id) {
  return "portcullis: " + sanitize(reason) + " [rule=" + sanitize(rule, 128) +
         " decision=" + std::string(id) + "]";
}

std::shared_ptr<PolicySnapshot> load_policy_file(const std::string &path, std::string &errors,
                                                 std::shared_ptr<const Directory> directory) {
  std::string text;
  if (!read_file(path, text)) {
    errors = path + ": cannot read policy file";
    return nullptr;
  }
  CompileOptions options;
  if (directory)
    options.group_key = [d = directory.get()](const std::string &g, std::string &error) {
      return d->binding_key(g, error);
    };
  CompileResult r = compile_policy(text, path, options);
  if (!r.policy) {
    std::string all;
    for (const auto &d : r.errors)
      all += (all.empty() ? "" : "\n") + d.to_string();
    errors = all.empty() ? path + ": policy failed to compile" : all;
    return nullptr;
  }
  std::shared_ptr<const TrustPolicy> trust;
  if (const ImageTrustSpec *spec = r.policy->image_trust()) {
    std::vector<std::string> problems;
    trust = TrustPolicy::build(*spec, path, problems);
    if (!trust) {
      std::string all;
      for (const auto &p : problems)
        all += (all.empty() ? "" : "\n") + p;
      errors = all.empty() ? path + ": image_trust keys failed to load" : all;
      return nullptr;
    }
  }
  auto snap = std::make_shared<PolicySnapshot>();
  snap->policy = r.policy;
  snap->trust = std::move(trust);
  snap->hash = "sha256:" + sha256_hex(text);
  snap->path = path;
  snap->directory = std::move(directory);
  return snap;
}

std::unique_ptr<AuthzService> AuthzService::create(const Config &config, std::string &error) {
  auto svc = std::unique_ptr<AuthzService>(new AuthzService(config));
  auto dir = open_directory(config, error);
  if (!dir) return nullptr;
  if (config.directory_type != "file") svc->remote_directory_ = dir;
  auto snap = load_policy_file(config.policy, error, dir);
  if (!snap) return nullptr;
  if (!svc->log_.open(config.decision_log, error)) return nullptr;
  if (!config.daemon.socket.empty()) {
    // A fresh token per process: only this process's lookups carry it (docs/DAEMON-LOOKUPS.md).
    svc->daemon_.emplace(DaemonClientOptions{config.daemon.socket,
                                             std::chrono::milliseconds(config.daemon.timeout_ms),
                                             1u << 20, random_hex(32)}); // 256 bits
  }
  {
    auto ro = registry_options(config, error);
    if (!ro) return nullptr;
    svc->registry_ = make_http_registry(std::move(*ro));
    VerdictCacheOptions co;
    co.verified_ttl = std::chrono::seconds(config.registries.verified_ttl_s);
    co.unsigned_ttl = std::chrono::seconds(config.registries.unsigned_ttl_s);
    co.error_ttl = std::chrono::seconds(config.registries.error_ttl_s);
    svc->verdicts_ = std::make_unique<VerdictCache>(co);
  }
  spdlog::info("policy loaded from {} ({}, {} roles, {} rules); directory: {}", snap->path,
               snap->hash, snap->policy->role_count(), snap->policy->rule_count(),
               snap->directory->describe());
  svc->snapshot_.store(std::move(snap));
  return svc;
}

std::string AuthzService::reload(bool &ok) {
  ok = false;
  auto old = snapshot_.load();
  std::string error;
  // A file directory is re-read; a remote one (LDAP) keeps its connections, and its cache is
  // flushed once the new policy is in force.
  std::shared_ptr<const Directory> dir =
      remote_directory_ ? remote_directory_ : open_directory(config_, error);
  auto snap = dir ? load_policy_file(config_.policy, error, dir) : nullptr;
  std::string log_error;
  if (!log_.reopen(log_error)) spdlog::error("decision log reopen failed: {}", log_error);
  if (!snap) {
    std::string msg =
        "policy reload failed, keeping policy " + (old ? old->hash : "<none>") + ":\n" + error;
    spdlog::error("{}", msg);
    return msg;
  }
  std::string msg = "policy reloaded from " + snap->path + " (" + snap->hash + ", was " +
                    (old ? old->hash : "<none>") + ")";
  snapshot_.store(std::move(snap));
  if (remote_directory_) remote_directory_->flush();
  if (verdicts_) verdicts_->flush(); // keys or rules may have changed
  ok = true;
  spdlog::info("{}", msg);
  return msg;
}

PluginReply AuthzService::handle(std::string_view http_method, std::string_view target,
                                 std::string_view body, bool may_block) {
  try {
    if (target == "/Plugin.Activate") return {200, encode_activate_response()};
    if (target == "/AuthZPlugin.AuthZReq" || target == "/AuthZPlugin.AuthZRes") {
      if (http_method != "POST")
        return {405, encode_plugin_error("portcullis: plugin calls must use POST")};
      return target == "/AuthZPlugin.AuthZReq" ? authz_request(body, may_block)
                                               : authz_response(body);
    }
    return {404, encode_plugin_error("portcullis: unknown plugin endpoint")};
  } catch (const std::exception &e) {
    spdlog::error("internal error handling {}: {}", sanitize(target, 64), e.what());
  } catch (...) {
    spdlog::error("internal error handling {}", sanitize(target, 64));
  }
  return {200, encode_authz_response(false, deny_message("internal error, request denied",
                                                         "internal-error", new_decision_id()))};
}

PluginReply AuthzService::authz_request(std::string_view body, bool may_block) {
  const auto t0 = Clock::now();
  const std::string id = new_decision_id();
  const JsonLimits limits{config_.max_request_bytes, config_.max_json_depth};
  auto snap = snapshot_.load();

  LogRecord rec;
  rec.set("time", iso_time_now()).set("decision_id", id).set("phase", "request");
  Decision decision;
  Request req;
  std::optional<Principal> who;
  std::string method, user; // for the diagnostics below ("" when the call did not decode)

  DecodeResult decoded = decode_authz_request(body, limits);
  if (!decoded.request) {
    decision.rule = "malformed-request";
    decision.reason = decoded.error;
  } else {
    AuthzRequest &ar = *decoded.request;
    method = sanitize(ar.method, 16);
    rec.set("method", method);
    rec.set("uri", sanitize(ar.uri, 2048));
    std::optional<Request> own = own_lookup(ar, daemon_ ? daemon_->options().token : "", limits);
    if (own) {
      // portcullis's own GET of a volume or exec instance, made while deciding another request.
      req = std::move(*own);
      rec.set("user", "");
      rec.set("auth_method", "none");
      rec.set("principal", "portcullis (own lookup)");
      decision.allow = true;
      decision.rule = "portcullis-lookup";
      decision.reason = "the plugin's own daemon lookup";
      return finish(rec, req, decision, snap->hash, t0, method, user, id);
    }
    IdentityResult ident = identify(ar, *snap->directory, config_.identity);
    user = sanitize(ar.user.value_or(ident.principal ? ident.principal->name : ""), 256);
    rec.set("user", user);
    rec.set("auth_method", ar.auth_method ? std::string_view(*ar.auth_method) : "none");
    if (!ident.cert_fingerprint.empty()) rec.set("cert_sha256", ident.cert_fingerprint);
    if (ident.principal && ident.principal->name != user)
      rec.set("principal", sanitize(ident.principal->name, 256)); // mapped by `identity:`
    if (!ident.user_dn.empty()) rec.set("user_dn", sanitize(ident.user_dn, 1024));
    if (!ident.directory_cache.empty()) rec.set("directory_cache", ident.directory_cache);
    if (!ident.principal) {
      decision.rule = "identity-error";
      decision.reason = ident.error;
    } else {
      who = std::move(ident.principal);
      // The decoded call is not used after this: hand its body and headers over, not copies.
      RawHttpRequest raw{ar.method, ar.uri, std::move(ar.body), std::move(ar.headers)};
      NormalizeOptions nopts;
      nopts.json = limits;
      nopts.default_api_version = config_.default_api_version;
      req = normalize(raw, nopts);
      std::optional<std::string> lookup_error;
      // Signature checks (docs/IMAGE-TRUST.md) for callers whose role requires signed images.
      const bool check_signature = snap->trust && !req.invalid &&
                                   is_signature_gated_action(req.action) &&
                                   snap->policy->requires_signed_images(*who);
      bool lookup = needs_daemon_facts(req) || check_signature;
      if (lookup) {
        // A caller none of whose rules covers the action is denied whatever the daemon says
        // (facts only add guardrail matches and limit failures): no lookup for them, so they
        // can neither load the daemon nor learn what volumes or exec instances exist.
        Decision pre = snap->policy->evaluate(*who, req);
        if (!pre.allow && pre.rule == "default-deny") {
          decision = std::move(pre);
          lookup = false;
        }
      }
      if (lookup) {
        if (!may_block) {
          // The server runs the call again on its lookup pool. Should a caller ignore `defer`,
          // the body is still a denial.
          return PluginReply{
              200,
              encode_authz_response(
                  false, deny_message("request needs a daemon lookup", "internal-error", id)),
              /*defer=*/true};
        }
        if (daemon_) {
          // daemon.timeout_ms bounds all lookups of this request together.
          const auto deadline = Clock::now() + daemon_->options().timeout;
          nopts.daemon_get = [d = &*daemon_, deadline](const std::string &p) {
            return d->get(
                p, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
          };
        }
        if (needs_daemon_facts(req)) lookup_error = add_daemon_facts(req, nopts);
        if (!lookup_error && check_signature) {
          SignatureGate gate;
          gate.trust = snap->trust.get();
          gate.policy_hash = snap->hash;
          gate.registry = registry_.get();
          gate.cache = verdicts_.get();
          gate.daemon_get = nopts.daemon_get;
          gate.deadline = Clock::now() + std::chrono::milliseconds(config_.registries.timeout_ms);
          req.signature = judge_signature(req, gate);
        }
      }
      if (lookup_error) {
        decision.rule = "daemon-lookup";
        decision.reason = *lookup_error;
      } else if (decision.rule.empty()) {
        decision = snap->policy->evaluate(*who, req);
      }
      rec.set("groups", who->groups);
    }
  }
  return finish(rec, req, decision, snap->hash, t0, method, user, id);
}

PluginReply AuthzService::finish(LogRecord &rec, const Request &req, Decision &decision,
                                 const std::string &policy_hash, Clock::time_point t0,
                                 const std::string &method, const std::string &user,
                                 const std::string &id) {
  const std::string path = sanitize(req.path, 2048);
  const std::string_view action = req.action.empty() ? "unknown" : std::string_view(req.action);
  std::string reason = sanitize(decision.reason);
  rec.set("roles", decision.roles);
  rec.set("path", path);
  rec.set("action", action);
  if (!req.object.empty()) rec.set("object", sanitize(req.object, 512));
  rec.set("facts", facts_record(req));
  rec.set("allow", decision.allow);
  rec.set("rule", decision.rule);
  rec.set("reason", reason);
  rec.set("policy_hash", policy_hash);
  rec.set("latency_us",
          static_cast<long long>(
              std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));

  if (!log_.write(rec)) {
    spdlog::critical("decision log {} cannot be written; denying request {}", log_.path(), id);
    decision.allow = false;
    decision.rule = "audit-failure";
    decision.reason = "the decision log cannot be written";
    reason = decision.reason;
  }
  if (decision.allow) {
    spdlog::debug("allow {} {} user={} rule={} id={}", method, path, user, decision.rule, id);
    return {200, encode_authz_response(true, "")};
  }
  spdlog::info("deny {} user={} rule={} id={}: {}", action, user, decision.rule, id, reason);
  return {200, encode_authz_response(false, deny_message(decision.reason, decision.rule, id))};
}

PluginReply AuthzService::authz_response(std::string_view body) {
  // The request was already authorised (dockerd only calls AuthZRes after an allow). Responses
  // are not inspected in this version, so the call is only validated as a JSON object within
  // the size limit (a syntax check without building a document: this runs on every API call),
  // and a malformed call is still refused.
  const bool ok = !body.empty() && body.size() <= config_.max_request_bytes &&
                  body.find_first_not_of(" \t\r\n") != std::string_view::npos &&
                  body[body.find_first_not_of(" \t\r\n")] == '{' &&
                  nlohmann::json::accept(body.begin(), body.end());
  if (!ok) {
    const std::string id = new_decision_id();
    spdlog::warn("malformed AuthZRes call, denying (decision {})", id);
    return {200, encode_authz_response(false,
                                       deny_message("malformed response-phase call from the daemon",
                                                    "malformed-request", id))};
  }
  return {200, encode_authz_response(true, "")};
}

} // namespace portcullis
