#include "plugin/signatures.hpp"

#include "plugin/cosign.hpp"
#include "plugin/crypto.hpp"
#include "plugin/gojson.hpp"
#include "plugin/imageref.hpp"

#include <algorithm>
#include <set>

namespace portcullis {

namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxSignatureLayers = 64; // layers of one .sig manifest examined
constexpr std::size_t kMaxReferrers = 64;       // bundle referrers examined
constexpr std::size_t kMaxPayloadBytes = 64 * 1024;
constexpr std::size_t kMaxBundleBytes = 256 * 1024;
constexpr std::size_t kMaxCandidates = 16; // (repository, digest) pairs per image

const json *field(const json &obj, std::string_view name) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(std::string(name));
  return it == obj.end() ? nullptr : &*it;
}

const std::string *string_field(const json &obj, std::string_view name) {
  const json *v = field(obj, name);
  return v && v->is_string() ? v->get_ptr<const std::string *>() : nullptr;
}

std::optional<json> parse(const std::string &text, std::size_t max, std::string &error) {
  JsonParseResult pr = parse_json_strict(text, JsonLimits{max, 32});
  if (!pr.value) {
    error = pr.error;
    return std::nullopt;
  }
  return std::move(pr.value);
}

// "registry/repo" -> (registry, repo).
std::pair<std::string, std::string> split_repository(const std::string &name) {
  auto slash = name.find('/');
  return {name.substr(0, slash), name.substr(slash + 1)};
}

// True when a signed reference ("index.docker.io/library/x", "reg:5000/a/b", possibly with a tag)
// names the repository `expected` ("docker.io/library/x").
bool same_repository(const std::string &signed_ref, const std::string &expected) {
  auto ref = parse_image_ref(signed_ref, /*default_tag=*/false);
  if (!ref || ref->is_id) return false;
  return trust_repository_name(ref->registry, ref->repository) == expected;
}

std::string key_list(const TrustPolicy &trust, const TrustRule &rule) {
  std::string out;
  for (auto i : rule.keys)
    out += (out.empty() ? "" : ", ") + trust.keys()[i].name;
  return out;
}

struct Search {
  const TrustPolicy &trust;
  const TrustRule &rule;
  std::string registry, repository; // the image's
  std::string sig_registry, sig_repository;
  std::string digest;
  std::string expected_name; // trust_repository_name of the image
  Registry &reg;
  RegistryDeadline deadline;
  std::set<std::size_t> verified; // key indices
  std::vector<std::string> trace;
  std::vector<std::string> errors;   // registry problems
  std::vector<std::string> rejected; // signatures that did not verify, and why (first few)

  bool done() const { return verified.size() >= static_cast<std::size_t>(rule.spec.threshold); }

  void note_reject(std::string why) {
    trace.push_back(why);
    if (rejected.size() < 3) rejected.push_back(std::move(why));
  }

  void legacy() {
    const std::string tag = "sha256-" + digest.substr(7) + ".sig";
    RegistryResult m = reg.get_manifest(sig_registry, sig_repository, tag, deadline);
    if (m.status == RegistryResult::Status::not_found) {
      trace.push_back("legacy: no signature tag " + sig_registry + "/" + sig_repository + ":" +
                      tag);
      return;
    }
    if (m.status != RegistryResult::Status::ok) {
      errors.push_back("fetching " + sig_registry + "/" + sig_repository + ":" + tag + ": " +
                       m.error);
      trace.push_back("legacy: " + errors.back());
      return;
    }
    std::string error;
    auto doc = parse(m.body, 4u << 20, error);
    const json *layers = doc ? field(*doc, "layers") : nullptr;
    if (!layers || !layers->is_array() ||
        (m.media_type != kOciManifest && m.media_type != kDockerManifest)) {
      note_reject("legacy: " + tag + " is not an image manifest with layers" +
                  (error.empty() ? "" : " (" + error + ")"));
      return;
    }
    std::size_t examined = 0;
    // Newest first: cosign appends, so old or junk layers cannot push a new signature past the cap.
    for (auto it = layers->rbegin(); it != layers->rend(); ++it) {
      const json &layer = *it;
      if (done()) return;
      if (++examined > kMaxSignatureLayers) {
        trace.push_back("legacy: more than " + std::to_string(kMaxSignatureLayers) +
                        " signatures; the rest were not examined");
        return;
      }
      const std::string *media = string_field(layer, "mediaType");
      const std::string *ldigest = string_field(layer, "digest");
      const json *annotations = field(layer, "annotations");
      const std::string *sig =
          annotations ? string_field(*annotations, kCosignSignatureAnnotation) : nullptr;
      if (!media || *media != kSimpleSigningLayer || !ldigest || !is_sha256_digest(*ldigest) ||
          !sig) {
        note_reject("legacy: layer " + std::to_string(examined) +
                    " is not a simple-signing signature");
        continue;
      }
      RegistryResult blob =
          reg.get_blob(sig_registry, sig_repository, *ldigest, kMaxPayloadBytes, deadline);
      if (blob.status != RegistryResult::Status::ok) {
        errors.push_back(
            "fetching signature payload " + *ldigest + ": " +
            (blob.status == RegistryResult::Status::not_found ? "not found" : blob.error));
        trace.push_back("legacy: " + errors.back());
        continue;
      }
      bool any = false;
      std::string last_reason;
      for (auto ki : rule.keys) {
        if (verified.count(ki)) continue;
        const TrustKey &k = trust.keys()[ki];
        SignatureCheck c = verify_simple_signing(k.key, blob.body, *sig, digest);
        if (c.ok && rule.spec.check_reference &&
            !same_repository(c.payload->docker_reference, expected_name)) {
          c.ok = false;
          c.reason = "the signature names repository " + c.payload->docker_reference + ", not " +
                     expected_name;
        }
        if (c.ok) {
          verified.insert(ki);
          trace.push_back("legacy: layer " + std::to_string(examined) + " verified with key " +
                          k.name + " (" + k.key.fingerprint() + ")");
          any = true;
          break;
        }
        // A signature that verifies with this key but claims something else is the telling
        // reason; "does not verify" is only the fallback.
        if (last_reason.empty() || c.payload) last_reason = c.reason;
      }
      if (!any)
        note_reject("legacy: layer " + std::to_string(examined) +
                    " was not accepted by any trusted key: " + last_reason);
    }
  }

  // One sigstore bundle (DSSE envelope with an in-toto statement).
  void bundle_blob(const std::string &text, const std::string &what) {
    std::string error;
    auto doc = parse(text, kMaxBundleBytes, error);
    const std::string *mt = doc ? string_field(*doc, "mediaType") : nullptr;
    const json *env = doc ? field(*doc, "dsseEnvelope") : nullptr;
    if (!mt || mt->rfind("application/vnd.dev.sigstore.bundle", 0) != 0 || !env ||
        !env->is_object()) {
      note_reject("bundle " + what + ": not a sigstore bundle with a DSSE envelope" +
                  (error.empty() ? "" : " (" + error + ")"));
      return;
    }
    const std::string *payload_b64 = string_field(*env, "payload");
    const std::string *ptype = string_field(*env, "payloadType");
    const json *sigs = field(*env, "signatures");
    std::optional<std::string> payload;
    if (payload_b64) payload = base64_decode(*payload_b64);
    if (!payload || !ptype || *ptype != kInTotoPayloadType || !sigs || !sigs->is_array()) {
      note_reject("bundle " + what +
                  ": the DSSE envelope lacks a base64 in-toto payload or "
                  "signatures");
      return;
    }
    const std::string pae = dsse_pae(*ptype, *payload);
    std::optional<std::size_t> signer;
    for (const json &s : *sigs) {
      const std::string *sig_b64 = string_field(s, "sig");
      std::optional<std::string> sig;
      if (sig_b64) sig = base64_decode(*sig_b64);
      if (!sig || sig->empty()) continue;
      for (auto ki : rule.keys)
        if (!verified.count(ki) && trust.keys()[ki].key.verify(pae, *sig)) {
          signer = ki;
          break;
        }
      if (signer) break;
    }
    if (!signer) {
      note_reject("bundle " + what + ": no signature verifies with a trusted key of rule " +
                  rule.spec.name + " (" + key_list(trust, rule) + ")");
      return;
    }
    // The signed statement must be about exactly this digest.
    auto st = parse(*payload, kMaxBundleBytes, error);
    const std::string *type = st ? string_field(*st, "_type") : nullptr;
    const std::string *pred = st ? string_field(*st, "predicateType") : nullptr;
    const json *subjects = st ? field(*st, "subject") : nullptr;
    if (!type ||
        (*type != "https://in-toto.io/Statement/v1" &&
         *type != "https://in-toto.io/Statement/v0.1") ||
        !pred || *pred != kCosignSignPredicate || !subjects || !subjects->is_array()) {
      note_reject("bundle " + what + ": the signed statement is not a cosign signature statement");
      return;
    }
    bool digest_ok = false, name_ok = !rule.spec.check_reference;
    for (const json &sub : *subjects) {
      const json *d = field(sub, "digest");
      const std::string *hex = d ? string_field(*d, "sha256") : nullptr;
      if (!hex || "sha256:" + *hex != digest) continue;
      digest_ok = true;
      const std::string *name = string_field(sub, "name");
      if (name && same_repository(*name, expected_name)) name_ok = true;
    }
    if (!digest_ok) {
      note_reject("bundle " + what + ": the signed statement is for another digest");
      return;
    }
    if (!name_ok) {
      note_reject("bundle " + what + ": the signed statement does not name repository " +
                  expected_name);
      return;
    }
    verified.insert(*signer);
    const TrustKey &k = trust.keys()[*signer];
    trace.push_back("bundle " + what + ": verified with key " + k.name + " (" +
                    k.key.fingerprint() + ")");
  }

  void bundles() {
    RegistryResult idx =
        reg.get_referrers(sig_registry, sig_repository, digest, kSigstoreBundleV03, deadline);
    std::string source = "referrers";
    if (idx.status == RegistryResult::Status::not_found) {
      // No referrers API: the fallback tag holds the index (OCI distribution spec 1.1).
      source = "tag sha256-" + digest.substr(7);
      idx = reg.get_manifest(sig_registry, sig_repository, "sha256-" + digest.substr(7), deadline);
      if (idx.status == RegistryResult::Status::not_found) {
        trace.push_back("bundle: no referrers and no fallback tag " + sig_registry + "/" +
                        sig_repository + ":sha256-" + digest.substr(7));
        return;
      }
    }
    if (idx.status != RegistryResult::Status::ok) {
      errors.push_back("fetching bundle referrers (" + source + "): " + idx.error);
      trace.push_back("bundle: " + errors.back());
      return;
    }
    std::string error;
    auto doc = parse(idx.body, 4u << 20, error);
    const json *manifests = doc ? field(*doc, "manifests") : nullptr;
    if (!manifests || !manifests->is_array()) {
      note_reject("bundle: " + source + " is not an image index");
      return;
    }
    std::size_t examined = 0;
    for (const json &desc : *manifests) {
      if (done()) return;
      const std::string *at = string_field(desc, "artifactType");
      const std::string *mdigest = string_field(desc, "digest");
      if (!at || at->rfind("application/vnd.dev.sigstore.bundle", 0) != 0 || !mdigest ||
          !is_sha256_digest(*mdigest))
        continue;
      if (++examined > kMaxReferrers) {
        trace.push_back("bundle: more than " + std::to_string(kMaxReferrers) +
                        " bundles; the rest were not examined");
        return;
      }
      RegistryResult m = reg.get_manifest(sig_registry, sig_repository, *mdigest, deadline);
      if (m.status != RegistryResult::Status::ok) {
        errors.push_back("fetching bundle manifest " + *mdigest + ": " +
                         (m.status == RegistryResult::Status::not_found ? "not found" : m.error));
        trace.push_back("bundle: " + errors.back());
        continue;
      }
      auto man = parse(m.body, 4u << 20, error);
      const json *subject = man ? field(*man, "subject") : nullptr;
      const std::string *sdigest = subject ? string_field(*subject, "digest") : nullptr;
      const json *layers = man ? field(*man, "layers") : nullptr;
      if (!sdigest || *sdigest != digest || !layers || !layers->is_array()) {
        note_reject("bundle " + *mdigest + ": not a referrer of " + digest);
        continue;
      }
      for (const json &layer : *layers) {
        const std::string *lm = string_field(layer, "mediaType");
        const std::string *ld = string_field(layer, "digest");
        if (!lm || lm->rfind("application/vnd.dev.sigstore.bundle", 0) != 0 || !ld ||
            !is_sha256_digest(*ld))
          continue;
        RegistryResult b =
            reg.get_blob(sig_registry, sig_repository, *ld, kMaxBundleBytes, deadline);
        if (b.status != RegistryResult::Status::ok) {
          errors.push_back("fetching bundle " + *ld + ": " +
                           (b.status == RegistryResult::Status::not_found ? "not found" : b.error));
          trace.push_back("bundle: " + errors.back());
          continue;
        }
        bundle_blob(b.body, *mdigest);
        break; // one bundle per referrer
      }
    }
  }
};

} // namespace

std::string dsse_pae(std::string_view payload_type, std::string_view payload) {
  std::string out = "DSSEv1 ";
  out += std::to_string(payload_type.size());
  out += ' ';
  out += payload_type;
  out += ' ';
  out += std::to_string(payload.size());
  out += ' ';
  out += payload;
  return out;
}

PairCheck check_signatures(const TrustPolicy &trust, const TrustRule &rule,
                           const std::string &registry, const std::string &repository,
                           const std::string &digest, Registry &reg, RegistryDeadline deadline) {
  PairCheck out;
  const unsigned long before = reg.requests();
  try {
    Search s{trust,    rule,       registry, repository,
             registry, repository, digest,   trust_repository_name(registry, repository),
             reg,      deadline,   {},       {},
             {},       {}};
    if (!rule.spec.signature_repository.empty()) {
      auto [r, p] = split_repository(rule.spec.signature_repository);
      s.sig_registry = r;
      s.sig_repository = p;
    }
    if (!is_sha256_digest(digest)) {
      out.detail = "not a sha256 digest: " + digest;
      return out;
    }
    if (rule.spec.legacy) s.legacy();
    if (!s.done() && rule.spec.bundle) s.bundles();
    out.trace = std::move(s.trace);
    for (auto ki : s.verified)
      out.keys.push_back(trust.keys()[ki].name);
    const std::string what = s.expected_name + "@" + digest;
    const std::string need = std::to_string(rule.spec.threshold) + " of rule " + rule.spec.name +
                             "'s keys (" + key_list(trust, rule) + ")";
    if (s.done()) {
      out.status = PairCheck::Status::verified;
      std::string ks;
      for (const auto &k : out.keys)
        ks += (ks.empty() ? "" : ", ") + k;
      out.detail = what + " is signed by " + ks + " (rule " + rule.spec.name + ")";
    } else if (!s.errors.empty()) {
      out.status = PairCheck::Status::error;
      out.detail = "cannot check the signatures of " + what + ": " + s.errors.front() +
                   " (the registry is unreachable or failing; unknown digests are denied)";
    } else {
      out.status = PairCheck::Status::unsigned_;
      out.detail = what + " is not signed by " + need;
      if (!s.verified.empty())
        out.detail += "; only " + std::to_string(s.verified.size()) + " of them signed";
      if (!s.rejected.empty()) out.detail += "; " + s.rejected.front();
    }
  } catch (const std::exception &e) {
    out.status = PairCheck::Status::error;
    out.detail = std::string("internal error while checking signatures: ") + e.what();
  }
  out.requests = reg.requests() - before;
  return out;
}

std::shared_ptr<const PairCheck> VerdictCache::get(const std::string &key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.expires <= std::chrono::steady_clock::now())
    return nullptr;
  return it->second.check;
}

void VerdictCache::put(const std::string &key, const PairCheck &check) {
  auto ttl = check.status == PairCheck::Status::verified    ? options_.verified_ttl
             : check.status == PairCheck::Status::unsigned_ ? options_.unsigned_ttl
                                                            : options_.error_ttl;
  if (ttl.count() <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  if (entries_.size() >= options_.max_entries) {
    std::erase_if(entries_, [&](const auto &e) { return e.second.expires <= now; });
    if (entries_.size() >= options_.max_entries) entries_.clear(); // bounded memory
  }
  auto stored = std::make_shared<PairCheck>(check);
  stored->trace.clear();
  entries_[key] = Entry{std::move(stored), now + ttl};
}

void VerdictCache::flush() {
  std::lock_guard lock(mu_);
  entries_.clear();
}

std::size_t VerdictCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

namespace {

struct Candidate {
  std::string registry, repository, digest;
};

// Judges candidate pairs: the first one that verifies decides; otherwise the most telling
// failure (a registry error before "unsigned" before "unmatched").
SignatureVerdict judge_candidates(const std::vector<Candidate> &candidates,
                                  const SignatureGate &gate, const std::string &shown,
                                  std::vector<std::string> *trace) {
  SignatureVerdict v;
  v.image = shown;
  std::optional<SignatureVerdict> warn, error, unsigned_;
  bool enforce_seen = false;     // a candidate under an enforce rule, or under no rule
  std::vector<std::string> seen; // at most kMaxCandidates: a linear search is cheapest
  for (const auto &c : candidates) {
    const std::string name = trust_repository_name(c.registry, c.repository);
    std::string pair = name + "@" + c.digest;
    if (std::find(seen.begin(), seen.end(), pair) != seen.end()) continue;
    if (seen.size() >= kMaxCandidates) break;
    seen.push_back(std::move(pair));
    auto m = gate.trust->match(name);
    if (!m) {
      enforce_seen = true;
      if (trace) trace->push_back(name + "@" + c.digest + ": no image_trust rule covers " + name);
      continue;
    }
    const TrustRule &rule = *m->rule;
    const std::string key =
        gate.policy_hash + "\n" + gate.trust->keys_digest() + "\n" + name + "\n" + c.digest;
    std::shared_ptr<const PairCheck> pc = gate.cache ? gate.cache->get(key) : nullptr;
    std::string cache = "hit";
    if (!pc) {
      cache = "miss";
      auto fresh = std::make_shared<PairCheck>(check_signatures(
          *gate.trust, rule, c.registry, c.repository, c.digest, *gate.registry, gate.deadline));
      if (gate.cache) gate.cache->put(key, *fresh);
      pc = std::move(fresh);
    }
    if (trace) {
      trace->push_back(name + "@" + c.digest + ": rule " + rule.spec.name + " (pattern " +
                       m->pattern + ", threshold " + std::to_string(rule.spec.threshold) +
                       ", mode " + (rule.spec.warn ? "warn" : "enforce") + ")" +
                       (cache == "hit" ? " [cached]" : ""));
      for (const auto &t : pc->trace)
        trace->push_back("  " + t);
    }
    SignatureVerdict cv;
    cv.image = seen.back();
    cv.trust_rule = rule.spec.name;
    cv.keys = pc->keys;
    cv.detail = pc->detail;
    cv.cache = cache;
    if (pc->status == PairCheck::Status::verified) {
      cv.ok = true;
      cv.status = "verified";
      return cv;
    }
    cv.status = pc->status == PairCheck::Status::error ? "error" : "unsigned";
    if (!rule.spec.warn) enforce_seen = true;
    if (rule.spec.warn && !warn) {
      warn = cv;
      warn->ok = true;
      warn->status = "warn";
      warn->detail = "warn mode (not enforced): " + cv.detail;
    }
    if (pc->status == PairCheck::Status::error && !error) error = cv;
    if (pc->status == PairCheck::Status::unsigned_ && !unsigned_) unsigned_ = cv;
  }
  // Warn mode waives a failure only when every candidate falls under a warn rule: a name the
  // caller tagged locally under a warn pattern must not waive an enforced one.
  if (warn && !enforce_seen) return *warn;
  if (error) return *error;
  if (unsigned_) return *unsigned_;
  v.status = "unmatched";
  v.detail = candidates.empty()
                 ? "image " + shown + " has no repository digest (it was built, loaded, " +
                       "imported or committed here, never pulled), so no signature can cover it"
                 : "no image_trust rule covers image " + shown + "; unmatched images are denied";
  return v;
}

void add_repo_digest(std::vector<Candidate> &out, const std::string &text) {
  auto ref = parse_image_ref(text, /*default_tag=*/false);
  if (!ref || ref->is_id || ref->digest.empty()) return;
  out.push_back({ref->registry, ref->repository, ref->digest});
}

// Candidates from the daemon's image inspect answer.
std::vector<Candidate> candidates_of(const json &image, const ImageRef *named) {
  std::vector<Candidate> out;
  if (const json *rd = field(image, "RepoDigests"); rd && rd->is_array())
    for (const json &d : *rd)
      if (d.is_string()) add_repo_digest(out, d.get<std::string>());
  // Under the containerd image store the id is the manifest (or index) digest, and inspect
  // says so with a Descriptor of that digest; under the classic store the id is the config
  // digest, which no signature covers, so it is not a candidate there.
  const std::string *id = string_field(image, "Id");
  const json *desc = field(image, "Descriptor");
  const std::string *desc_digest = desc ? string_field(*desc, "digest") : nullptr;
  if (named && !named->is_id && id && is_sha256_digest(*id) && desc_digest && *desc_digest == *id)
    out.push_back({named->registry, named->repository, *id});
  return out;
}

SignatureVerdict fail(std::string status, std::string image, std::string detail) {
  SignatureVerdict v;
  v.status = std::move(status);
  v.image = std::move(image);
  v.detail = std::move(detail);
  return v;
}

// The registry's digest for a reference, then its signatures.
SignatureVerdict judge_in_registry(const ImageRef &ref, const SignatureGate &gate,
                                   std::vector<std::string> *trace) {
  const std::string shown = image_ref_string(ref);
  if (ref.is_id) return fail("no-such-image", shown, "image " + shown + " does not exist here");
  const std::string name = trust_repository_name(ref.registry, ref.repository);
  if (!gate.trust->match(name))
    return fail("unmatched", shown,
                "no image_trust rule covers image " + shown + "; unmatched images are denied");
  std::string digest = ref.digest;
  if (digest.empty()) {
    RegistryResult m =
        gate.registry->get_manifest(ref.registry, ref.repository, ref.tag, gate.deadline);
    if (m.status != RegistryResult::Status::ok)
      return fail(
          m.status == RegistryResult::Status::not_found ? "no-such-image" : "error", shown,
          "cannot resolve " + shown + " in its registry: " +
              (m.status == RegistryResult::Status::not_found ? std::string("not found") : m.error));
    digest = m.digest;
    if (trace) trace->push_back(shown + " resolves to " + digest + " in the registry");
  }
  return judge_candidates({{ref.registry, ref.repository, digest}}, gate, shown, trace);
}

// `registry_fallback`: judge `named` in the registry when the daemon lacks the image (create
// only: the daemon then fails the create and the CLI pulls; a start must be judged by the
// container's own image, never by what a tag names elsewhere).
SignatureVerdict judge_local_image(const std::string &lookup, const ImageRef *named,
                                   const std::string &shown, const SignatureGate &gate,
                                   bool registry_fallback) {
  DaemonAnswer a = gate.daemon_get("/images/" + percent_encode_segment(lookup) + "/json");
  if (a.status == DaemonAnswer::Status::error)
    return fail("error", shown, "cannot look up image " + shown + " on the daemon: " + a.error);
  if (a.status == DaemonAnswer::Status::not_found) {
    // The daemon will answer "no such image" and the docker CLI pulls next: judge what the
    // registry has, so an unsigned image is refused before it is pulled.
    if (named && registry_fallback) return judge_in_registry(*named, gate, nullptr);
    return fail("no-such-image", shown, "image " + shown + " does not exist here");
  }
  SignatureVerdict v = judge_candidates(candidates_of(a.body, named), gate, shown, nullptr);
  const json *rd = field(a.body, "RepoDigests");
  if (!v.ok && v.status != "unmatched" && (!rd || !rd->is_array() || rd->empty()))
    v.detail += "; the image has no repository digest (it was built, loaded, imported or "
                "committed here, never pulled), so no registry signature can cover it";
  return v;
}

} // namespace

SignatureVerdict judge_signature(const Request &req, const SignatureGate &gate) {
  try {
    if (!gate.trust || !gate.registry)
      return fail("error", "", "signature checks are not configured");
    if (req.action == "image.pull") {
      if (!req.image) return fail("error", "", "the pull names no image");
      const ImageRef &ref = *req.image;
      const std::string shown = image_ref_string(ref);
      if (!ref.digest.empty()) return judge_in_registry(ref, gate, nullptr);
      auto m = gate.trust->match(trust_repository_name(ref.registry, ref.repository));
      if (!m)
        return fail("unmatched", shown,
                    "no image_trust rule covers image " + shown + "; unmatched images are denied");
      SignatureVerdict v;
      v.ok = true;
      v.status = "name-covered";
      v.image = shown;
      v.trust_rule = m->rule->spec.name;
      v.detail = "pull by tag: rule " + m->rule->spec.name +
                 " covers the name; the signature is checked when a container uses the image";
      return v;
    }
    const bool service = req.action == "service.create" || req.action == "service.update";
    if (req.action == "container.create" || service) {
      const ImageRef *ref =
          req.container && req.container->image ? &*req.container->image : nullptr;
      if (!ref) return fail("no-such-image", "", "the request names no image");
      if (service) {
        // Every node pulls the tag later, possibly through its own mirror, and rescheduled
        // tasks never come back here: only a digest pins what the swarm will run.
        if (ref->digest.empty())
          return fail("unpinned", ref->raw,
                      "service image " + image_ref_string(*ref) +
                          " is not pinned by digest; use name:tag@sha256:... (the docker CLI "
                          "pins by default; do not pass --no-resolve-image)");
        return judge_in_registry(*ref, gate, nullptr);
      }
      if (!gate.daemon_get)
        return fail("error", ref->raw, "daemon lookups are disabled (daemon.socket is empty)");
      return judge_local_image(ref->raw, ref->is_id ? nullptr : ref, ref->raw, gate, true);
    }
    if (req.action == "container.start" || req.action == "container.restart") {
      if (!gate.daemon_get)
        return fail("error", req.object, "daemon lookups are disabled (daemon.socket is empty)");
      DaemonAnswer c =
          gate.daemon_get("/containers/" + percent_encode_segment(req.object) + "/json");
      if (c.status != DaemonAnswer::Status::found)
        return fail(
            "error", req.object,
            "cannot look up container " + req.object + " on the daemon: " +
                (c.status == DaemonAnswer::Status::not_found ? std::string("not found") : c.error));
      const std::string *image_id = string_field(c.body, "Image");
      if (!image_id || !is_sha256_digest(*image_id))
        return fail("error", req.object, "the daemon names no image id for this container");
      std::optional<ImageRef> named;
      if (const json *cfg = field(c.body, "Config"))
        if (const std::string *ci = string_field(*cfg, "Image"))
          if (auto r = parse_image_ref(*ci); r && !r->is_id) named = *r;
      return judge_local_image(*image_id, named ? &*named : nullptr, *image_id, gate, false);
    }
    return fail("error", "", "action " + req.action + " has no image to check");
  } catch (const std::exception &e) {
    return fail("error", "", std::string("internal error while checking signatures: ") + e.what());
  }
}

SignatureVerdict verify_reference(const ImageRef &ref, const SignatureGate &gate,
                                  std::vector<std::string> &trace) {
  try {
    return judge_in_registry(ref, gate, &trace);
  } catch (const std::exception &e) {
    return fail("error", ref.raw, std::string("internal error: ") + e.what());
  }
}

namespace {

// The repository name cosign writes as docker-reference: Docker Hub as index.docker.io.
std::string cosign_reference(const ImageRef &ref) {
  std::string reg = ref.registry == "docker.io" ? "index.docker.io" : ref.registry;
  return reg + "/" + ref.repository;
}

json descriptor(const std::string &media_type, const std::string &digest, std::size_t size) {
  return json{{"mediaType", media_type}, {"digest", digest}, {"size", size}};
}

} // namespace

SignResult sign_image(const ImageRef &ref, const PrivateKey &key, bool bundle, Registry &reg,
                      RegistryDeadline deadline) {
  SignResult out;
  try {
    if (ref.is_id) {
      out.error = "sign a name in a registry (registry/repository:tag or @digest), not an image id";
      return out;
    }
    RegistryResult image = reg.get_manifest(ref.registry, ref.repository,
                                            ref.digest.empty() ? ref.tag : ref.digest, deadline);
    if (image.status != RegistryResult::Status::ok) {
      out.error = "cannot fetch the image manifest of " + image_ref_string(ref) + ": " +
                  (image.status == RegistryResult::Status::not_found ? "not found" : image.error);
      return out;
    }
    out.digest = image.digest;
    const std::string hex = image.digest.substr(7);
    auto push_blob = [&](const std::string &bytes) -> std::optional<std::string> {
      RegistryResult r = reg.put_blob(ref.registry, ref.repository, bytes, deadline);
      if (r.status != RegistryResult::Status::ok) {
        out.error = "cannot upload a blob: " + r.error;
        return std::nullopt;
      }
      return r.digest;
    };
    if (!bundle) {
      json payload_doc = {{"critical",
                           {{"identity", {{"docker-reference", cosign_reference(ref)}}},
                            {"image", {{"docker-manifest-digest", image.digest}}},
                            {"type", kCosignSignatureType}}},
                          {"optional", nullptr}};
      const std::string payload = payload_doc.dump(); // compact; keys in cosign's order
      const std::string sig = key.sign(payload);
      if (sig.empty()) {
        out.error = "signing failed";
        return out;
      }
      const std::string tag = "sha256-" + hex + ".sig";
      json layers = json::array();
      RegistryResult existing = reg.get_manifest(ref.registry, ref.repository, tag, deadline);
      if (existing.status == RegistryResult::Status::error) {
        out.error = "cannot read the existing signatures: " + existing.error;
        return out;
      }
      if (existing.status == RegistryResult::Status::ok) {
        // Never overwrite other signers' signatures with a document we could not read.
        std::string error;
        auto doc = parse(existing.body, 4u << 20, error);
        const json *l = doc ? field(*doc, "layers") : nullptr;
        if (!l || !l->is_array()) {
          out.error = "the existing signature manifest " + tag + " cannot be read" +
                      (error.empty() ? "" : ": " + error) + "; not overwriting it";
          return out;
        }
        layers = *l;
      }
      auto payload_digest = push_blob(payload);
      if (!payload_digest) return out;
      json layer = descriptor(kSimpleSigningLayer, *payload_digest, payload.size());
      layer["annotations"] = {{kCosignSignatureAnnotation, base64_encode(sig)}};
      layers.push_back(layer);
      json diff_ids = json::array();
      for (const auto &l : layers)
        if (const std::string *d = string_field(l, "digest")) diff_ids.push_back(*d);
      json config = {{"architecture", ""},
                     {"config", json::object()},
                     {"created", "0001-01-01T00:00:00Z"},
                     {"history", json::array({{{"created", "0001-01-01T00:00:00Z"}}})},
                     {"os", ""},
                     {"rootfs", {{"diff_ids", diff_ids}, {"type", "layers"}}}};
      const std::string config_text = config.dump();
      auto config_digest = push_blob(config_text);
      if (!config_digest) return out;
      json manifest = {{"schemaVersion", 2},
                       {"mediaType", kOciManifest},
                       {"config", descriptor("application/vnd.oci.image.config.v1+json",
                                             *config_digest, config_text.size())},
                       {"layers", layers}};
      RegistryResult put = reg.put_manifest(ref.registry, ref.repository, tag, kOciManifest,
                                            manifest.dump(), deadline);
      if (put.status != RegistryResult::Status::ok) {
        out.error = "cannot push the signature manifest: " + put.error;
        return out;
      }
      out.location = ref.registry + "/" + ref.repository + ":" + tag;
      out.ok = true;
      return out;
    }
    // Sigstore bundle: DSSE envelope over an in-toto statement.
    json statement = {{"_type", "https://in-toto.io/Statement/v1"},
                      {"subject", json::array({{{"name", cosign_reference(ref)},
                                                {"digest", {{"sha256", hex}}}}})},
                      {"predicateType", kCosignSignPredicate},
                      {"predicate", json::object()}};
    const std::string payload = statement.dump();
    const std::string sig = key.sign(dsse_pae(kInTotoPayloadType, payload));
    if (sig.empty()) {
      out.error = "signing failed";
      return out;
    }
    json bundle_doc = {
        {"mediaType", kSigstoreBundleV03},
        {"verificationMaterial", {{"publicKey", {{"hint", key.public_key().fingerprint()}}}}},
        {"dsseEnvelope",
         {{"payload", base64_encode(payload)},
          {"payloadType", kInTotoPayloadType},
          {"signatures", json::array({{{"sig", base64_encode(sig)}}})}}}};
    const std::string bundle_text = bundle_doc.dump();
    auto bundle_digest = push_blob(bundle_text);
    if (!bundle_digest) return out;
    auto empty_digest = push_blob("{}");
    if (!empty_digest) return out;
    json annotations = {{"dev.sigstore.bundle.content", "dsse-envelope"},
                        {"dev.sigstore.bundle.predicateType", kCosignSignPredicate}};
    json manifest = {{"schemaVersion", 2},
                     {"mediaType", kOciManifest},
                     {"artifactType", kSigstoreBundleV03},
                     {"config", descriptor("application/vnd.oci.empty.v1+json", *empty_digest, 2)},
                     {"layers", json::array({descriptor(kSigstoreBundleV03, *bundle_digest,
                                                        bundle_text.size())})},
                     {"subject", descriptor(image.media_type, image.digest, image.body.size())},
                     {"annotations", annotations}};
    const std::string manifest_text = manifest.dump();
    const std::string manifest_digest = "sha256:" + sha256_hex(manifest_text);
    RegistryResult put = reg.put_manifest(ref.registry, ref.repository, manifest_digest,
                                          kOciManifest, manifest_text, deadline);
    if (put.status != RegistryResult::Status::ok) {
      out.error = "cannot push the bundle manifest: " + put.error;
      return out;
    }
    out.location = ref.registry + "/" + ref.repository + "@" + manifest_digest;
    // Registries without the referrers API need the fallback index (distribution-spec 1.1).
    RegistryResult api =
        reg.get_referrers(ref.registry, ref.repository, image.digest, kSigstoreBundleV03, deadline);
    if (api.status == RegistryResult::Status::ok) {
      out.ok = true;
      return out;
    }
    const std::string tag = "sha256-" + hex;
    json index = {{"schemaVersion", 2}, {"mediaType", kOciIndex}, {"manifests", json::array()}};
    RegistryResult existing = reg.get_manifest(ref.registry, ref.repository, tag, deadline);
    if (existing.status == RegistryResult::Status::error) {
      out.error = "cannot read the referrers fallback index: " + existing.error;
      return out;
    }
    if (existing.status == RegistryResult::Status::ok) {
      std::string error;
      auto doc = parse(existing.body, 4u << 20, error);
      const json *m = doc ? field(*doc, "manifests") : nullptr;
      if (!m || !m->is_array()) {
        out.error = "the existing referrers index " + tag + " cannot be read" +
                    (error.empty() ? "" : ": " + error) + "; not overwriting it";
        return out;
      }
      index["manifests"] = *m;
    }
    json entry = descriptor(kOciManifest, manifest_digest, manifest_text.size());
    entry["artifactType"] = kSigstoreBundleV03;
    entry["annotations"] = annotations;
    index["manifests"].push_back(entry);
    RegistryResult put_index =
        reg.put_manifest(ref.registry, ref.repository, tag, kOciIndex, index.dump(), deadline);
    if (put_index.status != RegistryResult::Status::ok) {
      out.error = "cannot push the referrers fallback index: " + put_index.error;
      return out;
    }
    out.location += " (fallback index " + ref.registry + "/" + ref.repository + ":" + tag + ")";
    out.ok = true;
  } catch (const std::exception &e) {
    out.error = std::string("internal error while signing: ") + e.what();
  }
  return out;
}

} // namespace portcullis
