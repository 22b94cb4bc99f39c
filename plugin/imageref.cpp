#include "plugin/imageref.hpp"

namespace portcullis {

namespace {

constexpr std::size_t kNameTotalLengthMax = 255;
constexpr std::string_view kDefaultDomain = "docker.io";
constexpr std::string_view kLegacyDefaultDomain = "index.docker.io";

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}
bool is_word(char c) {
  return is_alnum(c) || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_lower_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f');
}

bool is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!is_lower_hex(c)) return false;
  return true;
}

// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := "." | "_" | "__" | "-"+
bool is_path_component(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (true) {
    std::size_t start = i;
    while (i < n && is_lower_alnum(s[i]))
      ++i;
    if (i == start) return false; // an alphanumeric run is required here
    if (i == n) return true;
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < n && s[i] == '_') ++i;
    } else if (s[i] == '-') {
      while (i < n && s[i] == '-')
        ++i;
    } else {
      return false;
    }
  }
}

// domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool is_domain_component(std::string_view s) {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '-') return false;
  return true;
}

// domain := host (":" port)?, host := domain-component ("." domain-component)* | "[" ipv6 "]"
bool is_domain(std::string_view s) {
  std::string_view host = s;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    std::size_t close = s.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : s.substr(1, close - 1))
      if (!(is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':'))
        return false;
    std::string_view rest = s.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    port = rest.substr(1);
    if (port.empty()) return false;
    for (char c : port)
      if (!is_digit(c)) return false;
    return true;
  }
  if (std::size_t colon = s.find(':'); colon != std::string_view::npos) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (port.empty()) return false;
    for (char c : port)
      if (!is_digit(c)) return false;
  }
  std::size_t start = 0;
  while (true) {
    std::size_t dot = host.find('.', start);
    std::string_view comp = host.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!is_domain_component(comp)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool is_repository_path(std::string_view s) {
  std::size_t start = 0;
  while (true) {
    std::size_t slash = s.find('/', start);
    std::string_view comp =
        s.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (!is_path_component(comp)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

} // namespace

bool is_valid_image_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128 || !is_word(tag.front())) return false;
  for (char c : tag)
    if (!is_word(c) && c != '.' && c != '-') return false;
  return true;
}

bool is_valid_image_digest(std::string_view digest) {
  return digest.size() == 71 && digest.substr(0, 7) == "sha256:" && is_hex64(digest.substr(7));
}

std::optional<ImageRef> parse_image_ref(std::string_view s, bool default_tag) {
  ImageRef ref;
  ref.raw = std::string(s);
  if (s.empty()) return std::nullopt;

  // ParseAnyReference: a bare 64-hex identifier or a full digest names an image ID.
  if (is_hex64(s)) {
    ref.is_id = true;
    ref.digest = "sha256:" + std::string(s);
    return ref;
  }
  if (is_valid_image_digest(s)) {
    ref.is_id = true;
    ref.digest = std::string(s);
    return ref;
  }

  std::string_view name = s;
  if (std::size_t at = name.find('@'); at != std::string_view::npos) {
    std::string_view digest = name.substr(at + 1);
    if (!is_valid_image_digest(digest)) return std::nullopt;
    ref.digest = std::string(digest);
    name = name.substr(0, at);
  }
  std::size_t last_slash = name.rfind('/');
  std::size_t colon = name.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = name.substr(colon + 1);
    if (!is_valid_image_tag(tag)) return std::nullopt;
    ref.tag = std::string(tag);
    name = name.substr(0, colon);
  }
  if (name.empty()) return std::nullopt;

  // splitDockerDomain: the first component is a registry when it contains '.' or ':' or is
  // "localhost"; otherwise the name lives on Docker Hub.
  std::string_view domain = kDefaultDomain;
  std::string_view remainder = name;
  if (std::size_t slash = name.find('/'); slash != std::string_view::npos) {
    std::string_view first = name.substr(0, slash);
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost") {
      domain = first;
      remainder = name.substr(slash + 1);
      if (!is_domain(domain)) return std::nullopt;
    }
  }
  if (domain == kLegacyDefaultDomain) domain = kDefaultDomain;
  if (!is_repository_path(remainder)) return std::nullopt; // also rejects uppercase
  ref.registry = std::string(domain);
  ref.repository = std::string(remainder);
  if (domain == kDefaultDomain && remainder.find('/') == std::string_view::npos)
    ref.repository = "library/" + ref.repository;
  if (ref.registry.size() + 1 + ref.repository.size() > kNameTotalLengthMax) return std::nullopt;
  if (default_tag && ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

std::string image_ref_string(const ImageRef &ref) {
  if (ref.is_id) return ref.digest;
  std::string out = ref.registry + "/" + ref.repository;
  if (!ref.tag.empty()) out += ":" + ref.tag;
  if (!ref.digest.empty()) out += "@" + ref.digest;
  return out;
}

} // namespace portcullis
