#include "plugin/service.hpp"

#include "plugin/crypto.hpp"
#include "plugin/normalize.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <spdlog/spdlog.h>
#include <sstream>

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

json image_json(const ImageRef &i) {
  json j = {{"ref", i.raw}};
  if (i.is_id) j["id"] = true;
  if (!i.registry.empty()) j["registry"] = i.registry;
  if (!i.repository.empty()) j["repository"] = i.repository;
  if (!i.tag.empty()) j["tag"] = i.tag;
  if (!i.digest.empty()) j["digest"] = i.digest;
  return j;
}

json facts_json(const Request &req) {
  json f = json::object();
  if (req.container) {
    const auto &c = *req.container;
    f["privileged"] = c.privileged;
    if (!c.capabilities.empty()) f["capabilities"] = c.capabilities;
    if (!c.host_mounts.empty()) {
      json m = json::array();
      for (const auto &h : c.host_mounts)
        m.push_back({{"path", h.path}, {"read_only", h.read_only}, {"origin", h.origin}});
      f["host_mounts"] = m;
    }
    if (c.image) f["image"] = image_json(*c.image);
    f["user"] = c.user;
    f["user_is_root"] = c.user_is_root;
    if (!c.host_namespaces.empty()) f["host_namespaces"] = c.host_namespaces;
    if (!c.devices.empty()) f["devices"] = c.devices;
    if (!c.unsafe.empty()) f["unsafe"] = c.unsafe;
  }
  if (req.image) f["image"] = image_json(*req.image);
  if (!req.api_version.empty()) f["api_version"] = req.api_version;
  return f;
}
} // namespace

std::string new_decision_id() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  char buf[16];
  std::snprintf(buf, sizeof buf, "%012llx",
                static_cast<unsigned long long>(ms) & 0xffffffffffffULL);
  return std::string(buf) + random_hex(8);
}

std::string deny_message(std::string_view reason, std::string_view rule, std::string_view id) {
  return "portcullis: " + sanitize(reason) + " [rule=" + sanitize(rule, 128) +
         " decision=" + std::string(id) + "]";
}

std::shared_ptr<PolicySnapshot> load_policy_file(const std::string &path, std::string &errors) {
  std::string text;
  if (!read_file(path, text)) {
    errors = path + ": cannot read policy file";
    return nullptr;
  }
  CompileResult r = compile_policy(text, path);
  if (!r.policy) {
    std::string all;
    for (const auto &d : r.errors)
      all += (all.empty() ? "" : "\n") + d.to_string();
    errors = all.empty() ? path + ": policy failed to compile" : all;
    return nullptr;
  }
  auto snap = std::make_shared<PolicySnapshot>();
  snap->policy = r.policy;
  snap->hash = "sha256:" + sha256_hex(text);
  snap->path = path;
  return snap;
}

std::unique_ptr<AuthzService> AuthzService::create(const Config &config, std::string &error) {
  auto svc = std::unique_ptr<AuthzService>(new AuthzService(config));
  auto snap = load_policy_file(config.policy, error);
  if (!snap) return nullptr;
  auto dir = FileDirectory::load(config.directory_path, error);
  if (!dir) return nullptr;
  snap->directory = std::shared_ptr<const Directory>(std::move(dir));
  if (!svc->log_.open(config.decision_log, error)) return nullptr;
  spdlog::info("policy loaded from {} ({}, {} roles, {} rules)", snap->path, snap->hash,
               snap->policy->role_count(), snap->policy->rule_count());
  svc->snapshot_.store(std::move(snap));
  return svc;
}

std::string AuthzService::reload(bool &ok) {
  ok = false;
  auto old = snapshot_.load();
  std::string error;
  auto snap = load_policy_file(config_.policy, error);
  if (snap) {
    auto dir = FileDirectory::load(config_.directory_path, error);
    if (dir)
      snap->directory = std::shared_ptr<const Directory>(std::move(dir));
    else
      snap.reset();
  }
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
  ok = true;
  spdlog::info("{}", msg);
  return msg;
}

PluginReply AuthzService::handle(std::string_view http_method, std::string_view target,
                                 std::string_view body) {
  try {
    if (target == "/Plugin.Activate") return {200, encode_activate_response()};
    if (target == "/AuthZPlugin.AuthZReq" || target == "/AuthZPlugin.AuthZRes") {
      if (http_method != "POST")
        return {405, encode_plugin_error("portcullis: plugin calls must use POST")};
      return target == "/AuthZPlugin.AuthZReq" ? authz_request(body) : authz_response(body);
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

PluginReply AuthzService::authz_request(std::string_view body) {
  const auto t0 = Clock::now();
  const std::string id = new_decision_id();
  const JsonLimits limits{config_.max_request_bytes, config_.max_json_depth};
  auto snap = snapshot_.load();

  json rec = {{"time", iso_time_now()}, {"decision_id", id}, {"phase", "request"}};
  Decision decision;
  Request req;
  std::optional<Principal> who;

  DecodeResult decoded = decode_authz_request(body, limits);
  if (!decoded.request) {
    decision.rule = "malformed-request";
    decision.reason = decoded.error;
  } else {
    const AuthzRequest &ar = *decoded.request;
    rec["method"] = sanitize(ar.method, 16);
    rec["uri"] = sanitize(ar.uri, 2048);
    IdentityResult ident = identify(ar, *snap->directory);
    rec["user"] = sanitize(ar.user.value_or(ident.principal ? ident.principal->name : ""), 256);
    rec["auth_method"] = ar.auth_method.value_or("none");
    if (!ident.cert_fingerprint.empty()) rec["cert_sha256"] = ident.cert_fingerprint;
    if (!ident.principal) {
      decision.rule = "identity-error";
      decision.reason = ident.error;
    } else {
      who = std::move(ident.principal);
      RawHttpRequest raw{ar.method, ar.uri, ar.body, ar.headers};
      NormalizeOptions nopts;
      nopts.json = limits;
      nopts.default_api_version = config_.default_api_version;
      req = normalize(raw, nopts);
      decision = snap->policy->evaluate(*who, req);
      rec["groups"] = who->groups;
    }
  }
  rec["roles"] = decision.roles;
  rec["path"] = sanitize(req.path, 2048);
  rec["action"] = req.action.empty() ? "unknown" : req.action;
  if (!req.object.empty()) rec["object"] = sanitize(req.object, 512);
  rec["facts"] = facts_json(req);
  rec["allow"] = decision.allow;
  rec["rule"] = decision.rule;
  rec["reason"] = sanitize(decision.reason);
  rec["policy_hash"] = snap->hash;
  rec["latency_us"] =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();

  if (!log_.write(rec)) {
    spdlog::critical("decision log {} cannot be written; denying request {}", log_.path(), id);
    decision.allow = false;
    decision.rule = "audit-failure";
    decision.reason = "the decision log cannot be written";
    rec["rule"] = decision.rule;
    rec["reason"] = decision.reason;
  }
  if (decision.allow) {
    spdlog::debug("allow {} {} user={} rule={} id={}", rec.value("method", ""),
                  rec["path"].get<std::string>(), rec.value("user", ""), decision.rule, id);
    return {200, encode_authz_response(true, "")};
  }
  spdlog::info("deny {} user={} rule={} id={}: {}", rec["action"].get<std::string>(),
               rec.value("user", ""), decision.rule, id, rec["reason"].get<std::string>());
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
