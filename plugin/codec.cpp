#include "plugin/codec.hpp"

#include "plugin/crypto.hpp"

namespace portcullis {

namespace {
using json = nlohmann::json;

// The fields of the daemon's call that portcullis reads, in the byte order of their names: when
// several are malformed, the error names the first in this order (as a walk over the sorted
// members of a parsed document would), whatever order the daemon wrote them in.
enum Field : int {
  kRequestBody,
  kRequestHeaders,
  kRequestMethod,
  kRequestPeerCertificates,
  kRequestUri,
  kResponseStatusCode,
  kUser,
  kUserAuthNMethod,
  kFieldCount,
  kOther = kFieldCount, // anything else: ResponseBody, ResponseHeaders, keys of a newer daemon
};

struct FieldInfo {
  std::string_view name;
  const char *wrong_type; // the error when its value has another JSON type
};
constexpr FieldInfo kFields[kFieldCount] = {
    {"RequestBody", "field RequestBody is not a string"},
    {"RequestHeaders", "RequestHeaders is not an object"},
    {"RequestMethod", "field RequestMethod is not a string"},
    {"RequestPeerCertificates", "RequestPeerCertificates is not an array"},
    {"RequestUri", "field RequestUri is not a string"},
    {"ResponseStatusCode", "ResponseStatusCode is not an integer"},
    {"User", "field User is not a string"},
    {"UserAuthNMethod", "field UserAuthNMethod is not a string"},
};

Field field_of(std::string_view k) {
  for (int i = 0; i < kFieldCount; ++i) // exact names: the daemon's own struct, not user input
    if (k == kFields[i].name) return static_cast<Field>(i);
  return kOther;
}

// nlohmann SAX handler that decodes the daemon's call straight into an AuthzRequest, without
// building a document: the base64 body and certificates are decoded from the lexer's buffer.
// The structural rules are parse_json_strict's (StrictStructure: depth, Go-folded duplicate keys
// at every level; nlohmann: syntax, UTF-8, trailing data), checked over the whole call, also
// inside fields that are not read.
class CallDecoder final : public StrictSaxHandler {
public:
  CallDecoder(AuthzRequest &req, int max_depth) : req_(req), strict_(max_depth) {}

  bool null() override { return scalar(Kind::Null); }
  bool boolean(bool) override { return scalar(Kind::Other); }
  bool number_integer(number_integer_t v) override { return integer(static_cast<long long>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return integer(static_cast<long long>(v)); }
  bool number_float(number_float_t, const string_t &) override { return scalar(Kind::Other); }
  bool string(string_t &v) override;

  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return strict_.close(); }
  bool end_array() override { return strict_.close(); }

  bool key(string_t &k) override {
    if (!strict_.key(k)) return false;
    if (strict_.depth() == 1) {
      field_ = field_of(k);
    } else if (strict_.depth() == 2 && field_ == kRequestHeaders) {
      header_ = std::move(k);
    }
    return true;
  }

  bool parse_error(std::size_t, const std::string &, const json::exception &e) override {
    return strict_.parse_error(e);
  }

  const std::string &error() const override { return strict_.error(); }
  bool root_is_object() const { return root_is_object_; }
  // The first field error in field order, or "".
  std::string field_error() const {
    for (const auto &e : field_errors_)
      if (!e.empty()) return e;
    return "";
  }

private:
  enum class Kind { Null, Other };

  // A value directly under the root (depth 1) is the value of field_; one at depth 2 is a
  // header value or a certificate entry. Anything deeper, or under another field, is not read.
  bool at_field_value() const { return root_is_object_ && strict_.depth() == 1; }
  bool in(Field f) const {
    return root_is_object_ && strict_.depth() == 2 && field_ == f && container_ok_;
  }

  void field_error(Field f, const char *message) {
    if (f < kFieldCount && field_errors_[f].empty()) field_errors_[f] = message;
  }

  bool open(bool object) {
    if (!seen_root_) {
      seen_root_ = true;
      root_is_object_ = object;
    } else if (at_field_value()) {
      container_ok_ =
          (field_ == kRequestHeaders && object) || (field_ == kRequestPeerCertificates && !object);
      if (!container_ok_ && field_ != kOther) wrong_type();
    } else if (in(kRequestHeaders)) {
      field_error(kRequestHeaders, "RequestHeaders values must be strings");
    } else if (in(kRequestPeerCertificates)) {
      field_error(kRequestPeerCertificates, "RequestPeerCertificates entries must be strings");
    }
    return strict_.open(object);
  }

  bool scalar(Kind kind) {
    if (!seen_root_) {
      seen_root_ = true; // a scalar document: not an object
      return true;
    }
    if (at_field_value()) {
      if (kind != Kind::Null) wrong_type();
    } else if (in(kRequestHeaders)) {
      field_error(kRequestHeaders, "RequestHeaders values must be strings");
    } else if (in(kRequestPeerCertificates)) {
      field_error(kRequestPeerCertificates, "RequestPeerCertificates entries must be strings");
    }
    return true;
  }

  bool integer(long long v) {
    if (at_field_value() && field_ == kResponseStatusCode) {
      req_.response_status = v;
      return true;
    }
    return scalar(Kind::Other);
  }

  // The value of field_ has a type the field cannot have.
  void wrong_type();

  AuthzRequest &req_;
  StrictStructure strict_;
  bool seen_root_ = false;
  bool root_is_object_ = false;
  Field field_ = kOther;      // the root member being read
  bool container_ok_ = false; // field_'s value is a container of the type it must have
  std::string header_;        // the RequestHeaders key whose value comes next
  std::string field_errors_[kFieldCount];
};

void CallDecoder::wrong_type() {
  if (field_ < kFieldCount) field_error(field_, kFields[field_].wrong_type);
}

bool CallDecoder::string(string_t &v) {
  if (!seen_root_) {
    seen_root_ = true;
    return true;
  }
  if (at_field_value()) {
    switch (field_) {
    case kUser:
      req_.user = std::move(v);
      break;
    case kUserAuthNMethod:
      req_.auth_method = std::move(v);
      break;
    case kRequestMethod:
      req_.method = std::move(v);
      break;
    case kRequestUri:
      req_.uri = std::move(v);
      break;
    case kRequestBody: {
      auto decoded = base64_decode(v);
      if (!decoded)
        field_error(kRequestBody, "RequestBody is not valid base64");
      else if (!decoded->empty())
        req_.body = std::move(*decoded);
      break;
    }
    case kOther:
      break;
    default:
      wrong_type();
      break;
    }
  } else if (in(kRequestHeaders)) {
    req_.headers.insert_or_assign(std::move(header_), std::move(v));
  } else if (in(kRequestPeerCertificates)) {
    auto pem = base64_decode(v);
    if (!pem)
      field_error(kRequestPeerCertificates, "RequestPeerCertificates entry is not valid base64");
    else if (field_errors_[kRequestPeerCertificates].empty())
      req_.peer_certificates.push_back(std::move(*pem));
  }
  return true;
}
} // namespace

DecodeResult decode_authz_request(std::string_view text, const JsonLimits &limits) {
  DecodeResult r;
  if (text.empty()) {
    r.error = "empty request from the daemon";
    return r;
  }
  AuthzRequest req;
  CallDecoder decoder(req, limits.max_depth);
  if (std::string err = sax_parse_strict(text, limits, decoder); !err.empty()) {
    r.error = "undecodable request from the daemon: " + err;
    return r;
  }
  if (!decoder.root_is_object()) {
    r.error = "request from the daemon is not a JSON object";
    return r;
  }
  if (std::string err = decoder.field_error(); !err.empty()) {
    r.error = "malformed request from the daemon: " + err;
    return r;
  }
  if (req.method.empty() || req.uri.empty()) {
    r.error = "malformed request from the daemon: RequestMethod or RequestUri missing";
    return r;
  }
  r.request = std::move(req);
  return r;
}

std::string encode_authz_response(bool allow, std::string_view msg) {
  json j = {{"Allow", allow}};
  if (!msg.empty()) j["Msg"] = std::string(msg);
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string encode_activate_response() {
  return "{\"Implements\":[\"authz\"]}\n";
}

std::string encode_plugin_error(std::string_view err) {
  json j = {{"Err", std::string(err)}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

} // namespace portcullis
