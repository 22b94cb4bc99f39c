// portcullis-decide-bench: the CPU cost of one AuthZReq decision, in process (no sockets, no
// HTTP). Feeds AuthzService::handle the same dockerd-shaped call that `portcullis-bench --mode
// authz` sends (TLS user alice, docker-CLI container create, optional client certificate) and
// prints µs per call for the whole decision and for its stages. A profiling aid for
// docs/PERFORMANCE.md, not a test: it never decides pass/fail on speed.
//
//   portcullis-decide-bench --policy examples/policy.yaml --users examples/users.yaml
//       [--cert alice.pem] [--body bench/container-create.json] [--log FILE] [--iterations N]
#include "bench/authz_call.hpp"
#include "plugin/codec.hpp"
#include "plugin/gojson.hpp"
#include "plugin/normalize.hpp"
#include "plugin/service.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <optional>
#include <spdlog/spdlog.h>
#include <sstream>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

std::optional<std::string> read_file(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

using portcullis::bench::authz_call;

template <class F> double time_us(long iterations, F &&f) {
  const auto t0 = Clock::now();
  for (long i = 0; i < iterations; ++i)
    f();
  const auto dt = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  return dt / static_cast<double>(iterations);
}

} // namespace

int main(int argc, char **argv) {
  std::string policy, users, cert, body_file, log = "/dev/null", only;
  long iterations = 20000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "portcullis-decide-bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--policy")
      policy = next();
    else if (a == "--users")
      users = next();
    else if (a == "--cert")
      cert = next();
    else if (a == "--body")
      body_file = next();
    else if (a == "--log")
      log = next();
    else if (a == "--only")
      only = next();
    else if (a == "--iterations")
      iterations = std::strtol(next().c_str(), nullptr, 10);
    else {
      std::fprintf(stderr, "usage: portcullis-decide-bench --policy FILE --users FILE [--cert PEM] "
                           "[--body JSON] [--log FILE] [--iterations N] [--only "
                           "decide|call|decode|body|normalize]\n");
      return 2;
    }
  }
  if (policy.empty() || users.empty() || iterations <= 0 || iterations > 100'000'000) {
    std::fprintf(stderr, "portcullis-decide-bench: --policy and --users are required\n");
    return 2;
  }
  std::string api_body;
  if (body_file.empty()) {
    api_body = R"({"Image":"busybox:latest","Cmd":["sh","-c","echo hi"],"HostConfig":{}})"
               "\n";
  } else if (auto b = read_file(body_file)) {
    api_body = *b;
  } else {
    std::fprintf(stderr, "portcullis-decide-bench: cannot read %s\n", body_file.c_str());
    return 2;
  }
  std::string pem;
  if (!cert.empty()) {
    auto p = read_file(cert);
    if (!p) {
      std::fprintf(stderr, "portcullis-decide-bench: cannot read %s\n", cert.c_str());
      return 2;
    }
    pem = *p;
  }
  spdlog::set_level(spdlog::level::warn);
  portcullis::Config config;
  config.policy = policy;
  config.directory_path = users;
  config.decision_log = log;
  std::string error;
  auto svc = portcullis::AuthzService::create(config, error);
  if (!svc) {
    std::fprintf(stderr, "portcullis-decide-bench: %s\n", error.c_str());
    return 1;
  }
  const std::string call = authz_call(api_body, pem);
  const auto probe = svc->handle("POST", "/AuthZPlugin.AuthZReq", call);
  std::printf("probe: %d %s", probe.status, probe.body.c_str());

  const portcullis::JsonLimits limits{config.max_request_bytes, config.max_json_depth};
  std::size_t sink = 0;
  if (only.empty() || only == "decide") { // the whole decision, as the server runs it
    const double us = time_us(iterations, [&] {
      sink += svc->handle("POST", "/AuthZPlugin.AuthZReq", call).body.size();
    });
    std::printf("decision (AuthzService::handle)   %8.2f us\n", us);
  }
  auto stage = [&](const char *name) { return only.empty() || only == name; };
  if (stage("call"))
    std::printf("call: parse_json_strict(daemon call) %8.2f us\n", time_us(iterations, [&] {
                  sink += portcullis::parse_json_strict(call, limits).value->size();
                }));
  if (stage("decode"))
    std::printf("decode: decode_authz_request       %8.2f us\n", time_us(iterations, [&] {
                  sink += portcullis::decode_authz_request(call, limits).request->uri.size();
                }));
  if (stage("body"))
    std::printf("body: parse_json_strict(API body)  %8.2f us\n", time_us(iterations, [&] {
                  sink += portcullis::parse_json_strict(api_body, limits).value->size();
                }));
  if (stage("normalize")) {
    auto decoded = portcullis::decode_authz_request(call, limits);
    const auto &ar = *decoded.request;
    portcullis::RawHttpRequest raw{ar.method, ar.uri, ar.body, ar.headers};
    portcullis::NormalizeOptions nopts;
    nopts.json = limits;
    std::printf("normalize: normalize               %8.2f us\n", time_us(iterations, [&] {
                  sink += portcullis::normalize(raw, nopts).action.size();
                }));
  }
  return sink == 0 ? 1 : 0;
}
