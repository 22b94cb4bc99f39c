// portcullis-signature-bench: what a signature check adds to a container-create decision
// (docs/PERFORMANCE.md, docs/IMAGE-TRUST.md). Against a REAL registry (bench/signature_run.sh
// starts Debian's docker-registry on loopback):
//   - base:   AuthzService::handle of alice's container create (examples/policy.yaml), as
//             portcullis-decide-bench measures it;
//   - cached: judge_signature for that create with a warm verdict cache, the daemon's image
//             inspect answer given in-process (its socket round trip is reported separately in
//             docs/DAEMON-LOOKUPS.md), so the figure is the verifier's own cost;
//   - cold:   the same with an empty cache: every registry round trip, counted.
// Prints µs per call and the ratio (base + cached) / base, measured in one run.
//
//   portcullis-signature-bench --registry 127.0.0.1:PORT --policy examples/policy.yaml
//       --users examples/users.yaml [--iterations N] [--cold N]
#include "bench/authz_call.hpp"
#include "plugin/crypto.hpp"
#include "plugin/imageref.hpp"
#include "plugin/registry.hpp"
#include "plugin/service.hpp"
#include "plugin/signatures.hpp"
#include "plugin/trust.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

template <class F> double time_us(long iterations, F &&f) {
  const auto t0 = Clock::now();
  for (long i = 0; i < iterations; ++i)
    f();
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count() /
         static_cast<double>(iterations);
}

std::string new_key_pem() {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(k);
  return pem;
}

[[noreturn]] void die(const std::string &why) {
  std::fprintf(stderr, "portcullis-signature-bench: %s\n", why.c_str());
  std::exit(1);
}

} // namespace

int main(int argc, char **argv) {
  using namespace portcullis;
  std::string registry, policy, users;
  long iterations = 20000, cold = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--registry")
      registry = next();
    else if (a == "--policy")
      policy = next();
    else if (a == "--users")
      users = next();
    else if (a == "--iterations")
      iterations = std::strtol(next().c_str(), nullptr, 10);
    else if (a == "--cold")
      cold = std::strtol(next().c_str(), nullptr, 10);
    else
      die("usage: portcullis-signature-bench --registry HOST:PORT --policy FILE --users FILE "
          "[--iterations N] [--cold N]");
  }
  if (registry.empty() || policy.empty() || users.empty() || iterations <= 0 || cold <= 0)
    die("--registry, --policy and --users are required");
  spdlog::set_level(spdlog::level::warn);

  // The base decision: a container create, as portcullis-decide-bench measures it.
  Config config;
  config.policy = policy;
  config.directory_path = users;
  config.decision_log = "/dev/null";
  std::string error;
  auto svc = AuthzService::create(config, error);
  if (!svc) die(error);
  const std::string repo = "bench/app";
  const std::string image = registry + "/" + repo + ":1";
  const std::string call = bench::authz_call(R"({"Image":")" + image +
                                                 R"(","Cmd":["true"],"HostConfig":{}})"
                                                 "\n",
                                             "");
  std::size_t sink = 0;
  const double base = time_us(
      iterations, [&] { sink += svc->handle("POST", "/AuthZPlugin.AuthZReq", call).body.size(); });

  // An image and its signature in the real registry.
  auto reg = make_http_registry(RegistryOptions{});
  const auto far = [] { return Clock::now() + std::chrono::seconds(10); };
  const std::string config_blob =
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  auto cb = reg->put_blob(registry, repo, config_blob, far());
  if (cb.status != RegistryResult::Status::ok) die("push config: " + cb.error);
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifest},
                   {"config",
                    {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                     {"digest", cb.digest},
                     {"size", config_blob.size()}}},
                   {"layers", json::array()}};
  auto pm = reg->put_manifest(registry, repo, "1", kOciManifest, manifest.dump(), far());
  if (pm.status != RegistryResult::Status::ok) die("push manifest: " + pm.error);
  auto key = PrivateKey::from_pem(new_key_pem(), &error);
  if (!key) die(error);
  auto ref = parse_image_ref(image);
  SignResult sr = sign_image(*ref, *key, false, *reg, far());
  if (!sr.ok) die("sign: " + sr.error);

  // The trust policy: that key for bench/**.
  std::string indented;
  for (char c : key->public_pem()) {
    indented += c;
    if (c == '\n') indented += "        ";
  }
  const std::string text = "version: 1\nimage_trust:\n  keys:\n    k:\n      pem: |\n        " +
                           indented + "\n  rules:\n    - name: bench\n      images: [\"" +
                           registry + "/bench/**\"]\n      keys: [k]\n";
  CompileResult cr = compile_policy(text, "bench.yaml");
  if (!cr.policy) die(cr.errors.front().to_string());
  std::vector<std::string> problems;
  auto trust = TrustPolicy::build(*cr.policy->image_trust(), "bench.yaml", problems);
  if (!trust) die(problems.front());

  Request req;
  req.action = "container.create";
  req.container.emplace();
  req.container->image = *ref;
  req.container->image->raw = image;
  const json inspect = {{"Id", "sha256:" + std::string(64, 'a')},
                        {"RepoTags", {image}},
                        {"RepoDigests", {registry + "/" + repo + "@" + sr.digest}}};
  VerdictCache cache;
  SignatureGate gate;
  gate.trust = trust.get();
  gate.policy_hash = "sha256:bench";
  gate.registry = reg.get();
  gate.cache = &cache;
  gate.daemon_get = [&](const std::string &) {
    DaemonAnswer a;
    a.status = DaemonAnswer::Status::found;
    a.body = inspect; // a copy, as the real client builds a new document per answer
    return a;
  };
  gate.deadline = far();
  SignatureVerdict probe = judge_signature(req, gate);
  if (!probe.ok) die("the signed image does not verify: " + probe.detail);

  const double cached = time_us(iterations, [&] { sink += judge_signature(req, gate).ok; });
  const unsigned long before = reg->requests();
  const double cold_us = time_us(cold, [&] {
    cache.flush();
    gate.deadline = far();
    sink += judge_signature(req, gate).ok;
  });
  const double trips = static_cast<double>(reg->requests() - before) / static_cast<double>(cold);

  std::printf("create decision (AuthzService::handle)      %9.2f us\n", base);
  std::printf("signature check, cached verdict             %9.2f us\n", cached);
  std::printf("  ratio (decision + cached check) / decision   %.3f\n", (base + cached) / base);
  std::printf("signature check, cold (real registry)       %9.2f us, %.1f registry round trips\n",
              cold_us, trips);
  return sink == 0 ? 1 : 0;
}
