#include "plugin/cosign.hpp"

#include "plugin/gojson.hpp"

namespace portcullis {

bool is_sha256_digest(std::string_view d) {
  if (d.size() != 71 || d.substr(0, 7) != "sha256:") return false;
  for (char c : d.substr(7))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::optional<SimpleSigning> parse_simple_signing(std::string_view payload, std::string *error) {
  auto fail = [&](std::string why) -> std::optional<SimpleSigning> {
    if (error) *error = "signature payload: " + std::move(why);
    return std::nullopt;
  };
  constexpr std::size_t kMaxPayload = 64 * 1024;
  if (payload.size() > kMaxPayload) return fail("larger than 64 KiB");
  JsonParseResult pr = parse_json_strict(payload, JsonLimits{kMaxPayload, 16});
  if (!pr.value) return fail(pr.error);
  const nlohmann::json &doc = *pr.value;
  if (!doc.is_object()) return fail("not a JSON object");
  // Go's decoder matches keys case-insensitively; so does go_field.
  auto object = [](const nlohmann::json *parent, std::string_view name) -> const nlohmann::json * {
    const nlohmann::json *v = parent ? go_field(*parent, name) : nullptr;
    return v && v->is_object() ? v : nullptr;
  };
  auto string = [](const nlohmann::json *parent, std::string_view name) -> const std::string * {
    const nlohmann::json *v = parent ? go_field(*parent, name) : nullptr;
    return v && v->is_string() ? v->get_ptr<const std::string *>() : nullptr;
  };
  const nlohmann::json *critical = object(&doc, "critical");
  if (!critical) return fail("no \"critical\" object");
  const std::string *type = string(critical, "type");
  if (!type || *type != kCosignSignatureType)
    return fail("\"critical.type\" is not \"" + std::string(kCosignSignatureType) + "\"");
  const std::string *ref = string(object(critical, "identity"), "docker-reference");
  if (!ref || ref->empty()) return fail("no \"critical.identity.docker-reference\"");
  const std::string *digest = string(object(critical, "image"), "docker-manifest-digest");
  if (!digest || !is_sha256_digest(*digest))
    return fail("\"critical.image.docker-manifest-digest\" is not a sha256 digest");
  return SimpleSigning{*ref, *digest};
}

SignatureCheck verify_simple_signing(const PublicKey &key, std::string_view payload,
                                     std::string_view signature_b64, std::string_view digest,
                                     std::optional<std::string_view> reference) {
  SignatureCheck r;
  auto sig = base64_decode(signature_b64);
  if (!sig || sig->empty()) {
    r.reason = "the signature is not standard base64";
    return r;
  }
  if (!key.verify(payload, *sig)) {
    r.reason = "the signature does not verify with key " + key.fingerprint();
    return r;
  }
  std::string error;
  r.payload = parse_simple_signing(payload, &error);
  if (!r.payload) {
    r.reason = error;
    return r;
  }
  if (r.payload->manifest_digest != digest) {
    r.reason = "the signature is for digest " + r.payload->manifest_digest + ", not " +
               std::string(digest);
    return r;
  }
  if (reference && r.payload->docker_reference != *reference) {
    r.reason = "the signature names repository " + r.payload->docker_reference + ", not " +
               std::string(*reference);
    return r;
  }
  r.ok = true;
  return r;
}

} // namespace portcullis
