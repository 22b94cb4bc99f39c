// Image signatures end to end inside the process: keys, `image sign` into an in-memory registry,
// the legacy and bundle verifiers, trust-rule matching, the verdict cache and the request gate
// (with a fake daemon). The real registry and dockerd are exercised by tests/e2e/signing.sh.
#include "plugin/crypto.hpp"
#include "plugin/gojson.hpp"
#include "plugin/imageref.hpp"
#include "plugin/service.hpp"
#include "plugin/signatures.hpp"
#include "plugin/trust.hpp"
#include "policy/policy.hpp"

#include <doctest/doctest.h>
#include <map>
#include <memory>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace portcullis;
using json = nlohmann::json;

namespace {

std::string private_pem(const char *type, const char *curve = nullptr) {
  EVP_PKEY *k = curve ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, curve)
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  REQUIRE(k);
  BIO *bio = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(k);
  return pem;
}

PrivateKey make_key(const char *type = "EC", const char *curve = "P-256") {
  std::string why;
  auto k = PrivateKey::from_pem(private_pem(type, curve), &why);
  REQUIRE_MESSAGE(k, why);
  return *k;
}

// An OCI registry in memory, with the behaviour of distribution 2.8 by default (no referrers API).
class FakeRegistry : public Registry {
public:
  bool down = false;                                                    // every call fails
  bool referrers_api = false;                                           // answer GET /referrers
  std::map<std::string, std::pair<std::string, std::string>> manifests; // key -> (body, type)
  std::map<std::string, std::string> blobs;                             // key -> body
  unsigned long count = 0;

  static std::string k(const std::string &r, const std::string &repo, const std::string &ref) {
    return r + "/" + repo + "\n" + ref;
  }
  static RegistryResult missing() {
    RegistryResult r;
    r.status = RegistryResult::Status::not_found;
    return r;
  }
  RegistryResult error() {
    RegistryResult r;
    r.error = "connection refused";
    return r;
  }
  RegistryResult ok(const std::string &body, const std::string &type) {
    RegistryResult r;
    r.status = RegistryResult::Status::ok;
    r.body = body;
    r.media_type = type;
    r.digest = "sha256:" + sha256_hex(body);
    return r;
  }
  RegistryResult get_manifest(const std::string &r, const std::string &repo, const std::string &ref,
                              RegistryDeadline) override {
    ++count;
    if (down) return error();
    auto it = manifests.find(k(r, repo, ref));
    if (it == manifests.end()) return missing();
    return ok(it->second.first, it->second.second);
  }
  RegistryResult get_blob(const std::string &r, const std::string &repo, const std::string &d,
                          std::size_t max, RegistryDeadline) override {
    ++count;
    if (down) return error();
    auto it = blobs.find(k(r, repo, d));
    if (it == blobs.end()) return missing();
    if (it->second.size() > max) return error();
    return ok(it->second, "application/octet-stream");
  }
  RegistryResult get_referrers(const std::string &r, const std::string &repo,
                               const std::string &digest, const std::string &,
                               RegistryDeadline) override {
    ++count;
    if (down) return error();
    if (!referrers_api) return missing();
    json index = {{"schemaVersion", 2}, {"mediaType", kOciIndex}, {"manifests", json::array()}};
    for (const auto &[key, m] : manifests) {
      if (key.rfind(r + "/" + repo + "\nsha256:", 0) != 0) continue;
      json doc = json::parse(m.first);
      if (doc.contains("subject") && doc["subject"]["digest"] == digest)
        index["manifests"].push_back({{"mediaType", kOciManifest},
                                      {"digest", "sha256:" + sha256_hex(m.first)},
                                      {"size", m.first.size()},
                                      {"artifactType", doc.value("artifactType", "")}});
    }
    return ok(index.dump(), kOciIndex);
  }
  RegistryResult put_blob(const std::string &r, const std::string &repo, const std::string &bytes,
                          RegistryDeadline) override {
    ++count;
    if (down) return error();
    RegistryResult res = ok("", "");
    res.digest = "sha256:" + sha256_hex(bytes);
    blobs[k(r, repo, res.digest)] = bytes;
    return res;
  }
  RegistryResult put_manifest(const std::string &r, const std::string &repo, const std::string &ref,
                              const std::string &type, const std::string &bytes,
                              RegistryDeadline) override {
    ++count;
    if (down) return error();
    manifests[k(r, repo, ref)] = {bytes, type};
    manifests[k(r, repo, "sha256:" + sha256_hex(bytes))] = {bytes, type};
    RegistryResult res = ok("", "");
    res.digest = "sha256:" + sha256_hex(bytes);
    return res;
  }
  unsigned long requests() const override { return count; }

  // Pushes an image manifest under a tag; returns its digest.
  std::string push_image(const std::string &r, const std::string &repo, const std::string &tag,
                         const std::string &salt) {
    json m = {{"schemaVersion", 2},
              {"mediaType", kOciManifest},
              {"config",
               {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                {"digest", "sha256:" + sha256_hex(salt)},
                {"size", salt.size()}}},
              {"layers", json::array()}};
    std::string body = m.dump();
    manifests[k(r, repo, tag)] = {body, kOciManifest};
    manifests[k(r, repo, "sha256:" + sha256_hex(body))] = {body, kOciManifest};
    return "sha256:" + sha256_hex(body);
  }
};

RegistryDeadline soon() {
  return std::chrono::steady_clock::now() + std::chrono::seconds(5);
}

ImageRef image_ref(const std::string &s) {
  auto r = parse_image_ref(s);
  REQUIRE_MESSAGE(r, s);
  return *r;
}

void sign(FakeRegistry &reg, const std::string &image, const PrivateKey &key, bool bundle = false) {
  SignResult r = sign_image(image_ref(image), key, bundle, reg, soon());
  REQUIRE_MESSAGE(r.ok, r.error);
}

// A policy with image_trust: keys "ci" and "release" given as PEM text.
std::string policy_text(const PrivateKey &ci, const PrivateKey &release, const std::string &rules) {
  auto indent = [](const std::string &pem) {
    std::string out;
    for (char c : pem) {
      out += c;
      if (c == '\n') out += "        ";
    }
    return out;
  };
  return "version: 1\n"
         "image_trust:\n"
         "  keys:\n"
         "    ci:\n"
         "      pem: |\n"
         "        " +
         indent(ci.public_pem()) +
         "\n"
         "    release:\n"
         "      pem: |\n"
         "        " +
         indent(release.public_pem()) + "\n  rules:\n" + rules +
         "roles:\n"
         "  dev:\n"
         "    rules:\n"
         "      - name: dev-run\n"
         "        actions: [container.create, container.start, image.pull, image.load]\n"
         "  breakglass:\n"
         "    require_signed_images: false\n"
         "    rules:\n"
         "      - name: bg-run\n"
         "        actions: [container.create, container.start, image.pull, image.load]\n"
         "bindings:\n"
         "  - {role: dev, users: [dana]}\n"
         "  - {role: breakglass, users: [bob]}\n";
}

const char *kRules = "    - name: apps\n"
                     "      images: [\"reg.test:5000/apps/**\"]\n"
                     "      keys: [ci]\n"
                     "    - name: two-keys\n"
                     "      images: [\"reg.test:5000/apps/critical\"]\n"
                     "      keys: [ci, release]\n"
                     "      threshold: 2\n"
                     "    - name: loose\n"
                     "      images: [\"reg.test:5000/loose/*\"]\n"
                     "      keys: [ci]\n"
                     "      check_reference: false\n"
                     "    - name: trial\n"
                     "      images: [\"reg.test:5000/trial/*\"]\n"
                     "      keys: [release]\n"
                     "      mode: warn\n";

struct World {
  PrivateKey ci = make_key();
  PrivateKey release = make_key("ED25519", nullptr);
  PrivateKey rogue = make_key();
  FakeRegistry reg;
  std::shared_ptr<const CompiledPolicy> policy;
  std::shared_ptr<const TrustPolicy> trust;
  VerdictCache cache;

  World() {
    CompileResult r = compile_policy(policy_text(ci, release, kRules), "p.yaml");
    REQUIRE_MESSAGE(r.policy, (r.errors.empty() ? "" : r.errors.front().to_string()));
    policy = r.policy;
    std::vector<std::string> errors;
    trust = TrustPolicy::build(*policy->image_trust(), "/nonexistent/p.yaml", errors);
    REQUIRE_MESSAGE(trust, (errors.empty() ? "" : errors.front()));
  }
  PairCheck check(const std::string &registry, const std::string &repo, const std::string &digest) {
    auto m = trust->match(trust_repository_name(registry, repo));
    REQUIRE(m);
    return check_signatures(*trust, *m->rule, registry, repo, digest, reg, soon());
  }
  SignatureGate gate(std::function<DaemonAnswer(const std::string &)> daemon = {}) {
    SignatureGate g;
    g.trust = trust.get();
    g.policy_hash = "sha256:test";
    g.registry = &reg;
    g.cache = &cache;
    g.daemon_get = std::move(daemon);
    g.deadline = soon();
    return g;
  }
};

DaemonAnswer found(json body) {
  DaemonAnswer a;
  a.status = DaemonAnswer::Status::found;
  a.body = std::move(body);
  return a;
}

Request create_request(const std::string &image) {
  Request r;
  r.method = "POST";
  r.action = "container.create";
  r.container.emplace();
  r.container->image = image_ref(image);
  r.container->image->raw = image;
  return r;
}

} // namespace

TEST_CASE("signatures: PrivateKey signs what PublicKey verifies; encrypted keys are refused") {
  for (auto [type, curve] : {std::pair<const char *, const char *>{"EC", "P-256"},
                             {"EC", "P-384"},
                             {"ED25519", nullptr}}) {
    PrivateKey k = make_key(type, curve);
    std::string sig = k.sign("payload");
    REQUIRE_FALSE(sig.empty());
    CHECK(k.public_key().verify("payload", sig));
    CHECK_FALSE(k.public_key().verify("payloaD", sig));
  }
  std::string why;
  CHECK_FALSE(PrivateKey::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n", &why));
  CHECK(why.find("encrypted") != std::string::npos);
  CHECK_FALSE(PrivateKey::from_pem("not a key", &why));
}

TEST_CASE("signatures: image sign writes cosign's legacy payload byte for byte") {
  FakeRegistry reg;
  const std::string d = reg.push_image("reg.test:5000", "apps/web", "1", "a");
  PrivateKey k = make_key();
  sign(reg, "reg.test:5000/apps/web:1", k);
  auto sig = reg.manifests.find(
      FakeRegistry::k("reg.test:5000", "apps/web", "sha256-" + d.substr(7) + ".sig"));
  REQUIRE(sig != reg.manifests.end());
  json m = json::parse(sig->second.first);
  REQUIRE(m["layers"].size() == 1);
  CHECK(m["layers"][0]["mediaType"] == kSimpleSigningLayer);
  const std::string payload =
      reg.blobs[FakeRegistry::k("reg.test:5000", "apps/web", m["layers"][0]["digest"])];
  CHECK(payload == R"({"critical":{"identity":{"docker-reference":"reg.test:5000/apps/web"},)"
                   R"("image":{"docker-manifest-digest":")" +
                       d + R"("},"type":"cosign container image signature"},"optional":null})");
  auto raw =
      base64_decode(m["layers"][0]["annotations"][kCosignSignatureAnnotation].get<std::string>());
  REQUIRE(raw);
  CHECK(k.public_key().verify(payload, *raw));
  // A second signer appends a layer; the first stays.
  sign(reg, "reg.test:5000/apps/web:1", make_key());
  m = json::parse(sig->second.first);
  CHECK(m["layers"].size() == 2);
  // Docker Hub names are written as cosign writes them.
  FakeRegistry hub;
  hub.push_image("docker.io", "library/alpine", "3", "b");
  sign(hub, "alpine:3", k);
  bool hub_payload = false;
  for (const auto &[key, body] : hub.blobs)
    hub_payload |=
        body.find(R"("docker-reference":"index.docker.io/library/alpine")") != std::string::npos;
  CHECK(hub_payload);
}

TEST_CASE("signatures: legacy signatures verify only for the trusted key, digest and repository") {
  World w;
  const std::string reg = "reg.test:5000";
  const std::string signed_d = w.reg.push_image(reg, "apps/web", "1", "signed");
  const std::string unsigned_d = w.reg.push_image(reg, "apps/web", "2", "unsigned");
  const std::string rogue_d = w.reg.push_image(reg, "apps/web", "3", "rogue");
  sign(w.reg, reg + "/apps/web:1", w.ci);
  sign(w.reg, reg + "/apps/web:3", w.rogue);

  PairCheck ok = w.check(reg, "apps/web", signed_d);
  CHECK(ok.status == PairCheck::Status::verified);
  CHECK(ok.keys == std::vector<std::string>{"ci"});
  CHECK(ok.requests >= 2);

  PairCheck none = w.check(reg, "apps/web", unsigned_d);
  CHECK(none.status == PairCheck::Status::unsigned_);
  CHECK(none.detail.find("not signed by 1 of rule apps") != std::string::npos);

  PairCheck untrusted = w.check(reg, "apps/web", rogue_d);
  CHECK(untrusted.status == PairCheck::Status::unsigned_);
  CHECK(untrusted.detail.find("does not verify") != std::string::npos);

  SUBCASE("a signature for another digest, copied to this digest's tag, is refused") {
    auto src =
        w.reg.manifests[FakeRegistry::k(reg, "apps/web", "sha256-" + signed_d.substr(7) + ".sig")];
    w.reg.manifests[FakeRegistry::k(reg, "apps/web", "sha256-" + unsigned_d.substr(7) + ".sig")] =
        src;
    PairCheck c = w.check(reg, "apps/web", unsigned_d);
    CHECK(c.status == PairCheck::Status::unsigned_);
    CHECK(c.detail.find("is for digest " + signed_d) != std::string::npos);
  }
  SUBCASE("the same digest signed for another repository: refused with check_reference") {
    // apps/copy holds the same manifest; its .sig is the one made for apps/web.
    w.reg.push_image(reg, "apps/copy", "1", "signed");
    auto src =
        w.reg.manifests[FakeRegistry::k(reg, "apps/web", "sha256-" + signed_d.substr(7) + ".sig")];
    w.reg.manifests[FakeRegistry::k(reg, "apps/copy", "sha256-" + signed_d.substr(7) + ".sig")] =
        src;
    for (const auto &[key, body] : std::map<std::string, std::string>(w.reg.blobs))
      if (key.rfind(reg + "/apps/web\n", 0) == 0)
        w.reg.blobs[reg + "/apps/copy\n" + key.substr(key.find('\n') + 1)] = body;
    PairCheck c = w.check(reg, "apps/copy", signed_d);
    CHECK(c.status == PairCheck::Status::unsigned_);
    CHECK(c.detail.find("names repository reg.test:5000/apps/web") != std::string::npos);
    // Under a rule with check_reference: false the same signature is accepted.
    w.reg.push_image(reg, "loose/x", "1", "signed");
    w.reg.manifests[FakeRegistry::k(reg, "loose/x", "sha256-" + signed_d.substr(7) + ".sig")] = src;
    for (const auto &[key, body] : std::map<std::string, std::string>(w.reg.blobs))
      if (key.rfind(reg + "/apps/web\n", 0) == 0)
        w.reg.blobs[reg + "/loose/x\n" + key.substr(key.find('\n') + 1)] = body;
    CHECK(w.check(reg, "loose/x", signed_d).status == PairCheck::Status::verified);
  }
  SUBCASE("a tampered payload blob is refused") {
    json m = json::parse(
        w.reg.manifests[FakeRegistry::k(reg, "apps/web", "sha256-" + signed_d.substr(7) + ".sig")]
            .first);
    auto &blob = w.reg.blobs[FakeRegistry::k(reg, "apps/web", m["layers"][0]["digest"])];
    blob[blob.size() - 2] = ' ';
    CHECK(w.check(reg, "apps/web", signed_d).status == PairCheck::Status::unsigned_);
  }
  SUBCASE("registry down: an error, never verified") {
    w.reg.down = true;
    PairCheck c = w.check(reg, "apps/web", signed_d);
    CHECK(c.status == PairCheck::Status::error);
    CHECK(c.detail.find("cannot check") != std::string::npos);
  }
}

TEST_CASE("signatures: a threshold needs that many distinct trusted keys") {
  World w;
  const std::string reg = "reg.test:5000";
  const std::string d = w.reg.push_image(reg, "apps/critical", "1", "c");
  sign(w.reg, reg + "/apps/critical:1", w.ci);
  sign(w.reg, reg + "/apps/critical:1", w.ci); // the same key twice counts once
  PairCheck one = w.check(reg, "apps/critical", d);
  CHECK(one.status == PairCheck::Status::unsigned_);
  CHECK(one.detail.find("only 1 of them signed") != std::string::npos);
  sign(w.reg, reg + "/apps/critical:1", w.release, /*bundle=*/true);
  PairCheck two = w.check(reg, "apps/critical", d);
  CHECK(two.status == PairCheck::Status::verified);
  CHECK(two.keys.size() == 2);
}

TEST_CASE("signatures: sigstore bundles verify through the fallback tag and the referrers API") {
  for (bool api : {false, true}) {
    CAPTURE(api);
    World w;
    w.reg.referrers_api = api;
    const std::string reg = "reg.test:5000";
    const std::string d = w.reg.push_image(reg, "apps/web", "1", "x");
    const std::string other = w.reg.push_image(reg, "apps/web", "2", "y");
    sign(w.reg, reg + "/apps/web:1", w.ci, /*bundle=*/true);
    CHECK(w.reg.manifests.count(FakeRegistry::k(reg, "apps/web", "sha256-" + d.substr(7))) ==
          (api ? 0u : 1u));
    PairCheck c = w.check(reg, "apps/web", d);
    CHECK(c.status == PairCheck::Status::verified);
    CHECK(w.check(reg, "apps/web", other).status == PairCheck::Status::unsigned_);
    if (!api) {
      // The fallback index of `d`, copied to `other`: the bundle's subject is `d`.
      w.reg.manifests[FakeRegistry::k(reg, "apps/web", "sha256-" + other.substr(7))] =
          w.reg.manifests[FakeRegistry::k(reg, "apps/web", "sha256-" + d.substr(7))];
      PairCheck copied = w.check(reg, "apps/web", other);
      CHECK(copied.status == PairCheck::Status::unsigned_);
      CHECK(copied.detail.find("not a referrer") != std::string::npos);
    }
  }
}

TEST_CASE("signatures: a bundle whose statement names another digest is refused") {
  World w;
  const std::string reg = "reg.test:5000";
  const std::string d = w.reg.push_image(reg, "apps/web", "1", "x");
  const std::string other = w.reg.push_image(reg, "apps/web", "2", "y");
  // Sign `other`, then re-point the referrer's subject at `d`: the signed statement still says
  // `other`.
  sign(w.reg, reg + "/apps/web:2", w.ci, true);
  auto idx = json::parse(
      w.reg.manifests[FakeRegistry::k(reg, "apps/web", "sha256-" + other.substr(7))].first);
  std::string mdigest = idx["manifests"][0]["digest"];
  json man = json::parse(w.reg.manifests[FakeRegistry::k(reg, "apps/web", mdigest)].first);
  man["subject"]["digest"] = d;
  w.reg.put_manifest(reg, "apps/web", "x", kOciManifest, man.dump(), soon());
  idx["manifests"][0]["digest"] = "sha256:" + sha256_hex(man.dump());
  w.reg.put_manifest(reg, "apps/web", "sha256-" + d.substr(7), kOciIndex, idx.dump(), soon());
  PairCheck c = w.check(reg, "apps/web", d);
  CHECK(c.status == PairCheck::Status::unsigned_);
  CHECK(c.detail.find("another digest") != std::string::npos);
  CHECK(dsse_pae("t", "ab") == "DSSEv1 1 t 2 ab");
}

TEST_CASE("signatures: the most specific trust pattern wins") {
  World w;
  auto rule = [&](const std::string &name) {
    auto m = w.trust->match(name);
    return m ? m->rule->spec.name : std::string("(none)");
  };
  CHECK(rule("reg.test:5000/apps/web") == "apps");
  CHECK(rule("reg.test:5000/apps/critical") == "two-keys");
  CHECK(rule("reg.test:5000/apps/critical/sub") == "apps");
  CHECK(rule("reg.test:5000/loose/x") == "loose");
  CHECK(rule("reg.test:5000/loose/x/y") == "(none)");
  CHECK(rule("reg.test:5001/apps/web") == "(none)");
  CHECK(rule("docker.io/library/alpine") == "(none)");
  CHECK(trust_repository_name("Index.Docker.IO", "library/x") == "docker.io/library/x");
}

TEST_CASE("signatures: the request gate judges what the daemon will run") {
  World w;
  const std::string reg = "reg.test:5000";
  const std::string signed_d = w.reg.push_image(reg, "apps/web", "1", "s");
  const std::string unsigned_d = w.reg.push_image(reg, "apps/web", "2", "u");
  sign(w.reg, reg + "/apps/web:1", w.ci);
  std::map<std::string, json> images; // daemon path -> inspect answer
  std::vector<std::string> asked;
  auto daemon = [&](const std::string &path) {
    asked.push_back(path);
    auto it = images.find(path);
    if (it == images.end()) {
      DaemonAnswer a;
      a.status = DaemonAnswer::Status::not_found;
      return a;
    }
    return found(it->second);
  };
  const std::string id = "sha256:" + std::string(64, 'a');
  images["/images/" + percent_encode_segment(reg + "/apps/web:1") + "/json"] = {
      {"Id", id}, {"RepoDigests", {reg + "/apps/web@" + signed_d}}};
  // A local retag of an unsigned image under the signed name: its digests are its own.
  images["/images/" + percent_encode_segment(reg + "/apps/web:retag") + "/json"] = {
      {"Id", "sha256:" + std::string(64, 'b')}, {"RepoDigests", {reg + "/apps/web@" + unsigned_d}}};
  // Built or loaded here: no repository digest at all.
  images["/images/" + percent_encode_segment(reg + "/apps/web:built") + "/json"] = {
      {"Id", "sha256:" + std::string(64, 'c')}, {"RepoDigests", json::array()}};

  SignatureVerdict v = judge_signature(create_request(reg + "/apps/web:1"), w.gate(daemon));
  CHECK(v.ok);
  CHECK(v.status == "verified");
  CHECK(v.trust_rule == "apps");
  CHECK(v.cache == "miss");
  // Cached: no registry request the second time.
  const auto before = w.reg.requests();
  v = judge_signature(create_request(reg + "/apps/web:1"), w.gate(daemon));
  CHECK(v.ok);
  CHECK(v.cache == "hit");
  CHECK(w.reg.requests() == before);

  v = judge_signature(create_request(reg + "/apps/web:retag"), w.gate(daemon));
  CHECK_FALSE(v.ok);
  CHECK(v.status == "unsigned");
  v = judge_signature(create_request(reg + "/apps/web:built"), w.gate(daemon));
  CHECK_FALSE(v.ok);
  CHECK(v.detail.find("no repository digest") != std::string::npos);

  // Not on the daemon yet: judged in the registry (the CLI pulls next).
  v = judge_signature(create_request(reg + "/apps/web:2"), w.gate(daemon));
  CHECK_FALSE(v.ok);
  v = judge_signature(create_request(reg + "/apps/web@" + signed_d), w.gate(daemon));
  CHECK(v.ok);
  v = judge_signature(create_request("docker.io/library/alpine:3"), w.gate(daemon));
  CHECK_FALSE(v.ok);
  CHECK(v.status == "unmatched");

  // Registry down: the cached verdict stands, an unknown digest is refused.
  w.reg.down = true;
  CHECK(judge_signature(create_request(reg + "/apps/web:1"), w.gate(daemon)).ok);
  const std::string new_d = "sha256:" + std::string(64, 'd');
  images["/images/" + percent_encode_segment(reg + "/apps/web:new") + "/json"] = {
      {"Id", id}, {"RepoDigests", {reg + "/apps/web@" + new_d}}};
  v = judge_signature(create_request(reg + "/apps/web:new"), w.gate(daemon));
  CHECK_FALSE(v.ok);
  CHECK(v.status == "error");
  w.reg.down = false;

  // container.start: the container's image id, then that image.
  images["/containers/c1/json"] = {{"Image", id}, {"Config", {{"Image", reg + "/apps/web:1"}}}};
  images["/images/" + percent_encode_segment(id) + "/json"] = {
      {"Id", id}, {"RepoDigests", {reg + "/apps/web@" + signed_d}}};
  Request start;
  start.action = "container.start";
  start.object = "c1";
  CHECK(judge_signature(start, w.gate(daemon)).ok);
  start.object = "missing";
  CHECK_FALSE(judge_signature(start, w.gate(daemon)).ok);
  // Lookups disabled: refused.
  CHECK_FALSE(judge_signature(create_request(reg + "/apps/web:1"), w.gate()).ok);

  // Pull: by tag only the name is checked, by digest the signature.
  Request pull;
  pull.action = "image.pull";
  pull.image = image_ref(reg + "/apps/web:2");
  CHECK(judge_signature(pull, w.gate(daemon)).status == "name-covered");
  pull.image = image_ref(reg + "/apps/web@" + unsigned_d);
  CHECK_FALSE(judge_signature(pull, w.gate(daemon)).ok);
  pull.image = image_ref(reg + "/apps/web@" + signed_d);
  CHECK(judge_signature(pull, w.gate(daemon)).ok);
  pull.image = image_ref("quay.io/x/y:1");
  CHECK(judge_signature(pull, w.gate(daemon)).status == "unmatched");

  // Warn mode: unsigned but allowed, and says so.
  w.reg.push_image(reg, "trial/app", "1", "t");
  images["/images/" + percent_encode_segment(reg + "/trial/app:1") + "/json"] = {
      {"Id", id}, {"RepoDigests", {reg + "/trial/app@sha256:" + std::string(64, 'e')}}};
  v = judge_signature(create_request(reg + "/trial/app:1"), w.gate(daemon));
  CHECK(v.ok);
  CHECK(v.status == "warn");
}

TEST_CASE("signatures: roles that require signatures are decided on the verdict") {
  World w;
  Principal dana{"dana", "TLS", {}}, bob{"bob", "TLS", {}};
  CHECK(w.policy->requires_signed_images(dana));
  CHECK_FALSE(w.policy->requires_signed_images(bob));
  Request r = create_request("reg.test:5000/apps/web:1");
  Decision d = w.policy->evaluate(dana, r);
  CHECK_FALSE(d.allow);
  CHECK(d.reason.find("signature was not checked") != std::string::npos);
  r.signature = SignatureVerdict{};
  r.signature->detail = "reg.test:5000/apps/web@sha256:x is not signed";
  d = w.policy->evaluate(dana, r);
  CHECK_FALSE(d.allow);
  CHECK(d.rule == "dev-run");
  CHECK(d.reason.find("is not signed") != std::string::npos);
  r.signature->ok = true;
  CHECK(w.policy->evaluate(dana, r).allow);
  // The break-glass role needs no signature.
  Request plain = create_request("reg.test:5000/apps/web:1");
  CHECK(w.policy->evaluate(bob, plain).allow);
  // Images made here cannot be signed: load is refused to the signed-only role.
  Request load;
  load.action = "image.load";
  d = w.policy->evaluate(dana, load);
  CHECK_FALSE(d.allow);
  CHECK(d.reason.find("signed images only") != std::string::npos);
  CHECK(w.policy->evaluate(bob, load).allow);
}

TEST_CASE("signatures: image_trust is validated when the policy loads") {
  auto errors = [](const std::string &trust, const std::string &roles = "") {
    CompileResult r = compile_policy("version: 1\n" + trust + roles, "p.yaml");
    std::string all;
    for (const auto &e : r.errors)
      all += e.to_string() + "\n";
    return all;
  };
  const std::string keys = "image_trust:\n  keys:\n    ci: {file: ci.pub}\n  rules:\n";
  CHECK(errors(keys + "    - {name: a, images: [alpine], keys: [ci]}\n")
            .find("must start with a registry host") != std::string::npos);
  CHECK(errors(keys + "    - {name: a, images: [\"reg.io/x\"], keys: [nope]}\n")
            .find("undefined key \"nope\"") != std::string::npos);
  CHECK(errors(keys + "    - {name: a, images: [\"reg.io/x\"], keys: [ci], threshold: 2}\n")
            .find("threshold 2 needs at least") != std::string::npos);
  CHECK(errors(keys + "    - {name: a, images: [\"reg.io/x\"], keys: [ci]}\n"
                      "    - {name: b, images: [\"REG.io/x\"], keys: [ci]}\n")
            .find("already used by rule") != std::string::npos);
  CHECK(errors(keys + "    - {name: a, images: [\"reg.io/x\"], keys: [ci], mode: audit}\n")
            .find("\"enforce\" or \"warn\"") != std::string::npos);
  CHECK(errors("image_trust:\n  keys:\n    ci: {file: a, pem: b}\n  rules: []\n")
            .find("exactly one of") != std::string::npos);
  CHECK(errors("", "roles:\n  dev:\n    require_signed_images: true\n")
            .find("no image_trust section") != std::string::npos);
  CHECK(errors(keys + "    - {name: a, images: [\"index.docker.io/library/*\"], keys: [ci]}\n")
            .empty());
  // A key that is not a public key fails when the plugin builds the trust policy.
  CompileResult ok =
      compile_policy("version: 1\nimage_trust:\n  keys:\n    ci: {pem: \"garbage\"}\n  rules:\n"
                     "    - {name: a, images: [\"reg.io/x\"], keys: [ci]}\n",
                     "p.yaml");
  REQUIRE(ok.policy);
  std::vector<std::string> problems;
  CHECK_FALSE(TrustPolicy::build(*ok.policy->image_trust(), "/x/p.yaml", problems));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("image_trust.keys.ci") != std::string::npos);
}

namespace {
std::function<DaemonAnswer(const std::string &)> fake_daemon(std::map<std::string, json> &m) {
  return [&m](const std::string &path) {
    auto it = m.find(path);
    if (it == m.end()) {
      DaemonAnswer a;
      a.status = DaemonAnswer::Status::not_found;
      return a;
    }
    return found(it->second);
  };
}
} // namespace

TEST_CASE("signatures: start never judges a container by its tag in the registry") {
  World w;
  const std::string reg = "reg.test:5000";
  w.reg.push_image(reg, "apps/web", "1", "s");
  sign(w.reg, reg + "/apps/web:1", w.ci);
  std::map<std::string, json> d;
  // Container made (before the policy, by another role, or in a create race) from an unsigned
  // image that has since been removed with `docker rmi -f` (the container still starts).
  const std::string unsigned_id = "sha256:" + std::string(64, 'b');
  d["/containers/c2/json"] = {{"Image", unsigned_id}, {"Config", {{"Image", reg + "/apps/web:1"}}}};
  Request start;
  start.action = "container.start";
  start.object = "c2";
  SignatureVerdict v = judge_signature(start, w.gate(fake_daemon(d)));
  INFO(v.status << ": " << v.detail);
  CHECK_FALSE(v.ok); // was: "verified" from the registry's apps/web:1, not image b...b
}

TEST_CASE("signatures: container.restart starts a container without a signature check") {
  World w;
  std::string t = policy_text(w.ci, w.release, kRules);
  const std::string from = "actions: [container.create, container.start,";
  t.replace(t.find(from), from.size(), from + " container.restart,");
  CompileResult r = compile_policy(t, "p.yaml");
  REQUIRE(r.policy);
  Principal dana{"dana", "TLS", {}};
  Request restart;
  restart.method = "POST";
  restart.action = "container.restart";
  restart.object = "c2"; // a stopped container whose image no trusted key signed
  CHECK_FALSE(r.policy->evaluate(dana, restart).allow); // was: allowed by dev-run without a check
}

TEST_CASE("signatures: a warn rule on a name the user tagged locally does not waive "
          "enforcement") {
  World w;
  const std::string reg = "reg.test:5000";
  const std::string unsigned_d = w.reg.push_image(reg, "apps/web", "2", "u");
  std::map<std::string, json> d;
  // containerd store after `docker tag reg/apps/web:2 reg/trial/x:1`: RepoDigests are
  // synthesized for every name of the image.
  d["/images/" + percent_encode_segment(reg + "/apps/web:2") + "/json"] = {
      {"Id", unsigned_d},
      {"RepoDigests", {reg + "/apps/web@" + unsigned_d, reg + "/trial/x@" + unsigned_d}}};
  SignatureVerdict v = judge_signature(create_request(reg + "/apps/web:2"), w.gate(fake_daemon(d)));
  INFO(v.status << ": " << v.detail);
  CHECK_FALSE(v.ok); // was: ok, status "warn"
}

TEST_CASE("signatures: one key under two names does not meet threshold 2") {
  PrivateKey k = make_key();
  std::string pem;
  for (char c : k.public_pem()) {
    pem += c;
    if (c == '\n') pem += "        ";
  }
  std::string text =
      "version: 1\nimage_trust:\n  keys:\n    a:\n      pem: |\n        " + pem +
      "\n    b:\n      pem: |\n        " + pem +
      "\n  rules:\n    - name: crit\n      images: [\"reg.test:5000/apps/**\"]\n"
      "      keys: [a, b]\n      threshold: 2\n"
      "roles:\n  dev:\n    rules:\n      - name: r\n        actions: [container.create]\n";
  CompileResult r = compile_policy(text, "p.yaml");
  REQUIRE_MESSAGE(r.policy, (r.errors.empty() ? "" : r.errors.front().to_string()));
  std::vector<std::string> errors;
  auto trust = TrustPolicy::build(*r.policy->image_trust(), "/x/p.yaml", errors);
  // Duplicate key material is refused when the policy loads ...
  CHECK_FALSE(trust);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("the same key as \"a\"") != std::string::npos);
  // ... and even if it were not, one signature counts once per key material.
  std::vector<std::string> ignored;
  std::string single = text;
  single.replace(single.find("      keys: [a, b]\n      threshold: 2\n"),
                 std::string("      keys: [a, b]\n      threshold: 2\n").size(),
                 "      keys: [a]\n");
  const std::string b_key = "\n    b:\n      pem: |\n        " + pem;
  single.replace(single.find(b_key), b_key.size(), "");
  r = compile_policy(single, "p.yaml");
  REQUIRE(r.policy);
  trust = TrustPolicy::build(*r.policy->image_trust(), "/x/p.yaml", ignored);
  REQUIRE(trust);
  FakeRegistry reg;
  const std::string d = reg.push_image("reg.test:5000", "apps/web", "1", "s");
  sign(reg, "reg.test:5000/apps/web:1", k);
  // The very same signature layer, appended twice (a re-push, or anyone with push access).
  auto &m =
      reg.manifests[FakeRegistry::k("reg.test:5000", "apps/web", "sha256-" + d.substr(7) + ".sig")];
  json doc = json::parse(m.first);
  doc["layers"].push_back(doc["layers"][0]);
  m.first = doc.dump();
  auto mt = trust->match("reg.test:5000/apps/web");
  PairCheck c = check_signatures(*trust, *mt->rule, "reg.test:5000", "apps/web", d, reg, soon());
  CHECK(c.status == PairCheck::Status::verified);
  CHECK(c.keys.size() == 1);
}

TEST_CASE("signatures: services must be pinned by digest; plugins and swarm joins are refused") {
  World w;
  const std::string reg = "reg.test:5000";
  const std::string d = w.reg.push_image(reg, "apps/web", "1", "s");
  sign(w.reg, reg + "/apps/web:1", w.ci);
  Request svc = create_request(reg + "/apps/web:1");
  svc.action = "service.create";
  SignatureVerdict v = judge_signature(svc, w.gate());
  CHECK_FALSE(v.ok);
  CHECK(v.status == "unpinned");
  svc.container->image = image_ref(reg + "/apps/web:1@" + d);
  CHECK(judge_signature(svc, w.gate()).ok);
  for (const char *a : {"plugin.install", "plugin.upgrade", "plugin.create", "plugin.enable",
                        "swarm.join", "build", "grpc", "session", "container.commit"})
    CHECK_MESSAGE(is_image_producing_action(a), a);
  CHECK(is_signature_gated_action("container.restart"));
}

TEST_CASE("signatures: the containerd-store id is a candidate only when inspect says so") {
  World w;
  const std::string reg = "reg.test:5000";
  const std::string d = w.reg.push_image(reg, "apps/web", "1", "s");
  sign(w.reg, reg + "/apps/web:1", w.ci);
  std::map<std::string, json> m;
  // Classic store: no Descriptor, the id is a config digest and never a candidate.
  m["/images/" + percent_encode_segment(reg + "/apps/web:x") + "/json"] = {
      {"Id", d}, {"RepoDigests", json::array()}};
  CHECK_FALSE(judge_signature(create_request(reg + "/apps/web:x"), w.gate(fake_daemon(m))).ok);
  // containerd store: the id is the manifest digest, as the Descriptor says.
  m["/images/" + percent_encode_segment(reg + "/apps/web:x") + "/json"] = {
      {"Id", d}, {"Descriptor", {{"digest", d}}}, {"RepoDigests", json::array()}};
  CHECK(judge_signature(create_request(reg + "/apps/web:x"), w.gate(fake_daemon(m))).ok);
}

TEST_CASE("signatures: registry password files must not be readable by others") {
  char dir[] = "/tmp/pc-pw.XXXXXX";
  REQUIRE(mkdtemp(dir));
  const std::string file = std::string(dir) + "/pw";
  {
    FILE *f = std::fopen(file.c_str(), "w");
    REQUIRE(f);
    std::fputs("s3cret\n", f);
    std::fclose(f);
  }
  Config c;
  c.registries.hosts.push_back({"reg.test:5000", {false, "reader", file}});
  std::string error;
  REQUIRE(::chmod(file.c_str(), 0644) == 0);
  CHECK_FALSE(registry_options(c, error));
  CHECK(error.find("readable by group or others") != std::string::npos);
  CHECK(error.find("s3cret") == std::string::npos);
  REQUIRE(::chmod(file.c_str(), 0600) == 0);
  auto ro = registry_options(c, error);
  REQUIRE(ro);
  CHECK(ro->hosts.at("reg.test:5000").password == "s3cret");
  CHECK(ro->hosts.at("reg.test:5000").username == "reader");
  std::remove(file.c_str());
  ::rmdir(dir);
}
