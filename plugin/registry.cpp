// OCI distribution client (see registry.hpp). Every request goes through send_once() (one HTTP
// exchange, bounded by the deadline and a size limit), follow() (manual redirects; credentials
// only for the origin they belong to) and roundtrip() (the 401 challenge: Bearer token or Basic).
// Nothing from the caller reaches a URL before it has passed the OCI grammar checks below.
#include "plugin/registry.hpp"

#include "plugin/crypto.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <condition_variable>
#include <cstdint>
#include <fcntl.h>
#include <httplib.h> // header containers (Headers, Params) only; no client
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace portcullis {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char *kSystemCaFile = "/etc/ssl/certs/ca-certificates.crt";
constexpr std::size_t kSmallBodyLimit = 64u << 10;   // bodies of HEAD/POST/PUT answers
constexpr std::uint32_t kMaxHeaderBytes = 64u << 10; // status line and headers of one answer
constexpr std::size_t kMaxRepoLength = 255;
constexpr long long kMaxTokenLifetime = 24 * 3600; // seconds; longer expires_in is capped
constexpr auto kMaxTokenMargin = 10s;              // cached tokens are dropped this much early

// --- small string helpers ----------------------------------------------------------------------

char lower_char(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto &c : out)
    c = lower_char(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower_char(a[i]) != lower_char(b[i])) return false;
  return true;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || is_digit(c);
}
bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// "application/json; charset=utf-8" -> "application/json" (lower case).
std::string bare_media_type(std::string_view content_type) {
  auto semi = content_type.find(';');
  if (semi != std::string_view::npos) content_type = content_type.substr(0, semi);
  return to_lower(trim(content_type));
}

// --- the OCI grammar ---------------------------------------------------------------------------

// "sha256:" followed by 64 lower-case hex digits.
bool is_sha256_digest(std::string_view s) {
  if (s.size() != 71 || s.substr(0, 7) != "sha256:") return false;
  return std::all_of(s.begin() + 7, s.end(),
                     [](char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); });
}

// OCI tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
bool is_tag(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  if (!(is_alnum(s[0]) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; });
}

// One path component of a repository name: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool is_repo_component(std::string_view c) {
  std::size_t i = 0;
  const std::size_t n = c.size();
  auto alnum_run = [&] {
    std::size_t start = i;
    while (i < n && is_lower_alnum(c[i]))
      ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < n) {
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < n && c[i] == '_') ++i;
    } else if (c[i] == '-') {
      while (i < n && c[i] == '-')
        ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

bool is_repository(std::string_view repo) {
  if (repo.empty() || repo.size() > kMaxRepoLength) return false;
  std::size_t start = 0;
  while (true) {
    auto slash = repo.find('/', start);
    auto comp = repo.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                                   : slash - start);
    if (!is_repo_component(comp)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

// Docker's domain-component: [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool is_domain_component(std::string_view c) {
  if (c.empty() || c.size() > 63) return false;
  if (!is_alnum(c.front()) || !is_alnum(c.back())) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) { return is_alnum(ch) || ch == '-'; });
}

bool is_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    auto dot = h.find('.', start);
    auto comp =
        h.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!is_domain_component(comp)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool is_ipv6_literal(std::string_view h) {
  if (h.size() < 2 || h.size() > 45 || h.find(':') == std::string_view::npos) return false;
  return std::all_of(h.begin(), h.end(), [](char c) { return is_hex(c) || c == ':' || c == '.'; });
}

// "1".."65535", digits only.
std::optional<int> parse_port(std::string_view p) {
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), is_digit)) return std::nullopt;
  int v = 0;
  for (char c : p)
    v = v * 10 + (c - '0');
  if (v < 1 || v > 65535) return std::nullopt;
  return v;
}

struct HostPort {
  std::string host; // IPv6 without brackets
  std::optional<int> port;
};

// "host", "host:port", "[v6]", "[v6]:port" with Docker's grammar for the host.
std::optional<HostPort> split_registry(std::string_view registry) {
  HostPort hp;
  std::string_view rest;
  if (!registry.empty() && registry.front() == '[') {
    auto close = registry.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    auto inner = registry.substr(1, close - 1);
    if (!is_ipv6_literal(inner)) return std::nullopt;
    hp.host = to_lower(inner);
    rest = registry.substr(close + 1);
  } else {
    auto colon = registry.find(':');
    auto host = registry.substr(0, colon);
    if (!is_hostname(host)) return std::nullopt;
    hp.host = to_lower(host);
    rest = colon == std::string_view::npos ? std::string_view{} : registry.substr(colon);
  }
  if (!rest.empty()) {
    if (rest.front() != ':') return std::nullopt;
    hp.port = parse_port(rest.substr(1));
    if (!hp.port) return std::nullopt;
  }
  return hp;
}

bool is_ipv4_loopback(std::string_view h) {
  int parts = 0;
  int first = -1;
  std::size_t start = 0;
  while (true) {
    auto dot = h.find('.', start);
    auto p = h.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), is_digit)) return false;
    int v = 0;
    for (char c : p)
      v = v * 10 + (c - '0');
    if (v > 255) return false;
    if (parts == 0) first = v;
    ++parts;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts == 4 && first == 127;
}

bool is_loopback_host(std::string_view host) {
  return iequals(host, "localhost") || host == "::1" || is_ipv4_loopback(host);
}

// --- URLs --------------------------------------------------------------------------------------

struct Url {
  std::string scheme; // "http" or "https"
  std::string host;   // lower case; IPv6 without brackets
  int port = 0;
  std::string target; // origin-form: "/path?query"
};

std::string host_in_url(const std::string &host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// What error messages show of a URL: never the path or query (signed URLs carry secrets there).
std::string origin_of(const Url &u) {
  return u.scheme + "://" + host_in_url(u.host) + ":" + std::to_string(u.port);
}

bool same_origin(const Url &a, const Url &b) {
  return a.scheme == b.scheme && a.host == b.host && a.port == b.port;
}

// A request target we are willing to put on the wire: visible ASCII without the characters
// RFC 3986 never allows unencoded, and well-formed %XX escapes.
bool is_safe_target(std::string_view t) {
  if (t.empty() || t.front() != '/' || t.size() > 8000) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    auto c = static_cast<unsigned char>(t[i]);
    if (c <= 0x20 || c >= 0x7f) return false;
    if (std::string_view("\"<>\\^`{|}#").find(static_cast<char>(c)) != std::string_view::npos)
      return false;
    if (c == '%' && (i + 2 >= t.size() || !is_hex(t[i + 1]) || !is_hex(t[i + 2]))) return false;
  }
  return true;
}

// Authority of a URL found in a header (Location, realm): host[:port] or [v6][:port]; no userinfo.
bool parse_authority(std::string_view a, const std::string &scheme, Url &out) {
  std::string_view rest;
  if (!a.empty() && a.front() == '[') {
    auto close = a.find(']');
    if (close == std::string_view::npos) return false;
    auto inner = a.substr(1, close - 1);
    if (!is_ipv6_literal(inner)) return false;
    out.host = to_lower(inner);
    rest = a.substr(close + 1);
  } else {
    auto colon = a.find(':');
    auto host = a.substr(0, colon);
    if (host.empty() || host.size() > 253 || !std::all_of(host.begin(), host.end(), [](char c) {
          return is_alnum(c) || c == '.' || c == '-' || c == '_';
        }))
      return false;
    out.host = to_lower(host);
    rest = colon == std::string_view::npos ? std::string_view{} : a.substr(colon);
  }
  out.port = scheme == "https" ? 443 : 80;
  if (!rest.empty()) {
    if (rest.front() != ':') return false;
    if (rest.size() > 1) { // "host:" means the default port
      auto p = parse_port(rest.substr(1));
      if (!p) return false;
      out.port = *p;
    }
  }
  return true;
}

std::string strip_fragment(std::string_view s) {
  auto hash = s.find('#');
  return std::string(s.substr(0, hash));
}

// "http://host:port/path?q" (scheme case-insensitive). Only http and https.
std::optional<Url> parse_absolute_url(std::string_view raw) {
  std::string s = strip_fragment(raw);
  auto sep = s.find("://");
  if (sep == std::string::npos) return std::nullopt;
  Url u;
  u.scheme = to_lower(std::string_view(s).substr(0, sep));
  if (u.scheme != "http" && u.scheme != "https") return std::nullopt;
  auto after = std::string_view(s).substr(sep + 3);
  auto end = after.find_first_of("/?");
  if (!parse_authority(after.substr(0, end), u.scheme, u)) return std::nullopt;
  std::string target = end == std::string_view::npos ? "/" : std::string(after.substr(end));
  if (target.front() == '?') target.insert(0, "/");
  if (!is_safe_target(target)) return std::nullopt;
  u.target = std::move(target);
  return u;
}

// RFC 3986 5.2.4 on an absolute path (no query).
std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t start = 1; // path starts with '/'
  while (true) {
    auto slash = path.find('/', start);
    bool last = slash == std::string_view::npos;
    auto seg = path.substr(start, last ? std::string_view::npos : slash - start);
    if (seg == ".") {
      if (last) out.emplace_back();
    } else if (seg == "..") {
      if (!out.empty()) out.pop_back();
      if (last) out.emplace_back();
    } else {
      out.push_back(seg);
    }
    if (last) break;
    start = slash + 1;
  }
  std::string r;
  for (auto seg : out) {
    r += '/';
    r += seg;
  }
  return r.empty() ? "/" : r;
}

std::string normalize_target(std::string_view target) {
  auto q = target.find('?');
  std::string path = remove_dot_segments(target.substr(0, q));
  if (q != std::string_view::npos) path += target.substr(q);
  return path;
}

bool has_scheme(std::string_view ref) {
  if (ref.empty() || !is_alnum(ref[0]) || is_digit(ref[0])) return false;
  for (char c : ref) {
    if (c == ':') return true;
    if (!(is_alnum(c) || c == '+' || c == '-' || c == '.')) return false;
  }
  return false;
}

// Resolves a Location (absolute, scheme-relative, absolute-path, query-only or relative-path)
// against the URL it came from.
std::optional<Url> resolve_url(const Url &base, std::string_view raw_ref) {
  std::string ref = strip_fragment(trim(raw_ref));
  if (ref.empty()) return std::nullopt;
  if (has_scheme(ref)) return parse_absolute_url(ref);
  if (ref.rfind("//", 0) == 0) return parse_absolute_url(base.scheme + ":" + ref);
  Url u = base;
  if (ref.front() == '/') {
    u.target = normalize_target(ref);
  } else if (ref.front() == '?') {
    u.target = base.target.substr(0, base.target.find('?')) + ref;
  } else {
    auto base_path = base.target.substr(0, base.target.find('?'));
    u.target = normalize_target(base_path.substr(0, base_path.rfind('/') + 1) + ref);
  }
  if (!is_safe_target(u.target)) return std::nullopt;
  return u;
}

// --- WWW-Authenticate ---------------------------------------------------------------------------

struct Challenge {
  std::string scheme;                        // lower case
  std::map<std::string, std::string> params; // names lower case
};

bool is_tchar(char c) {
  return is_alnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// RFC 7235 challenges: `scheme param=value, param="quoted \" value", ..., scheme2 ...`.
// Returns false on a malformed header (unterminated quote, duplicated parameter).
bool parse_challenges(std::string_view s, std::vector<Challenge> &out) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  auto skip_ws = [&] {
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
      ++i;
  };
  auto read_token = [&] {
    std::size_t start = i;
    while (i < n && is_tchar(s[i]))
      ++i;
    return s.substr(start, i - start);
  };
  while (true) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
      ++i;
    if (i >= n) return true;
    auto scheme = read_token();
    if (scheme.empty()) return false;
    Challenge c;
    c.scheme = to_lower(scheme);
    while (true) {
      std::size_t save = i;
      skip_ws();
      while (i < n && s[i] == ',') { // empty list elements
        ++i;
        skip_ws();
      }
      auto name = read_token();
      skip_ws();
      if (name.empty() || i >= n || s[i] != '=') {
        // Not a parameter: the next challenge (or a token68, which we skip over as a scheme).
        i = save;
        break;
      }
      ++i; // '='
      skip_ws();
      std::string value;
      if (i < n && s[i] == '"') {
        ++i;
        bool closed = false;
        while (i < n) {
          char ch = s[i++];
          if (ch == '\\') {
            if (i >= n) return false;
            value.push_back(s[i++]);
          } else if (ch == '"') {
            closed = true;
            break;
          } else {
            value.push_back(ch);
          }
        }
        if (!closed) return false;
      } else {
        value = std::string(read_token());
      }
      if (!c.params.emplace(to_lower(name), std::move(value)).second) return false;
      skip_ws();
      if (i < n && s[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
    out.push_back(std::move(c));
    if (i < n && !(s[i] == ' ' || s[i] == '\t' || s[i] == ',' || is_tchar(s[i]))) return false;
  }
}

// A token we are willing to put in an Authorization header: RFC 6750 b64token.
bool is_b64token(std::string_view t) {
  if (t.empty() || t.size() > 16384) return false;
  std::size_t i = 0;
  while (i < t.size() &&
         (is_alnum(t[i]) || std::string_view("-._~+/").find(t[i]) != std::string_view::npos))
    ++i;
  if (i == 0) return false;
  while (i < t.size() && t[i] == '=')
    ++i;
  return i == t.size();
}

// A media type for a Content-Type header: type/subtype of RFC 6838 restricted-name characters.
bool is_media_type(std::string_view m) {
  auto slash = m.find('/');
  if (slash == std::string_view::npos || m.size() > 255) return false;
  auto ok = [](std::string_view part) {
    if (part.empty() || !is_alnum(part.front())) return false;
    return std::all_of(part.begin(), part.end(), [](char c) {
      return is_alnum(c) || std::string_view("!#$&^_.+-").find(c) != std::string_view::npos;
    });
  };
  return ok(m.substr(0, slash)) && ok(m.substr(slash + 1));
}

// --- deadline enforcement ------------------------------------------------------------------------

// target + "?" or "&" + percent-encoded key=value pairs (no regex: a hostile realm path of any
// length costs linear time and constant stack).
std::string append_query(const std::string &target,
                         const std::multimap<std::string, std::string> &params) {
  auto encode = [](const std::string &v) {
    static const char *hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : v) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        out.push_back(static_cast<char>(c));
      } else {
        out.push_back('%');
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 15]);
      }
    }
    return out;
  };
  std::string out = target;
  char sep = target.find('?') == std::string::npos ? '?' : '&';
  for (const auto &[k, v] : params) {
    out += sep;
    out += encode(k) + "=" + encode(v);
    sep = '&';
  }
  return out;
}

// --- the client ------------------------------------------------------------------------------

// One HTTP exchange (or a chain of them): ok when a status line and headers arrived.
struct Exchange {
  bool ok = false;
  std::string error;
  int status = 0;
  httplib::Headers headers;
  std::string body; // 2xx only
  Url url;          // the URL that answered (after redirects)

  std::string header(const char *name) const {
    auto it = headers.find(name); // httplib::Headers compares names case-insensitively
    return it == headers.end() ? std::string() : std::string(trim(it->second));
  }
};

Exchange failed_exchange(std::string error, int status = 0) {
  Exchange e;
  e.error = std::move(error);
  e.status = status;
  return e;
}

RegistryResult failure(std::string error, int http_status = 0) {
  RegistryResult r;
  r.status = RegistryResult::Status::error;
  r.error = std::move(error);
  r.http_status = http_status;
  return r;
}

RegistryResult not_found(int http_status) {
  RegistryResult r;
  r.status = RegistryResult::Status::not_found;
  r.http_status = http_status;
  return r;
}

std::string digest_of(std::string_view bytes) {
  return "sha256:" + sha256_hex(bytes);
}

std::string pull_scope(const std::string &repo) {
  return "repository:" + repo + ":pull";
}
std::string push_scope(const std::string &repo) {
  return "repository:" + repo + ":pull,push";
}

bool is_redirect_status(int s) {
  return s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
}

struct Target {
  std::string key; // the registry as named, lower case (hosts map key, token cache key)
  Url base;        // scheme, API host and port; target unused
  RegistryHostConfig host;
  bool has_credentials() const { return !host.username.empty() || !host.password.empty(); }
};

class HttpRegistry final : public Registry {
public:
  explicit HttpRegistry(RegistryOptions options) : opts_(std::move(options)) {}

  // Nothing escapes the public functions: an exception is an error answer.
  template <class F> static RegistryResult guarded(F &&f) {
    try {
      return f();
    } catch (...) {
      return failure("internal error in the registry client");
    }
  }

  RegistryResult get_manifest(const std::string &registry, const std::string &repo,
                              const std::string &reference, RegistryDeadline deadline) override {
    return guarded([&] { return get_manifest_impl(registry, repo, reference, deadline); });
  }
  RegistryResult get_blob(const std::string &registry, const std::string &repo,
                          const std::string &digest, std::size_t max_bytes,
                          RegistryDeadline deadline) override {
    return guarded([&] { return get_blob_impl(registry, repo, digest, max_bytes, deadline); });
  }
  RegistryResult get_referrers(const std::string &registry, const std::string &repo,
                               const std::string &digest, const std::string &artifact_type,
                               RegistryDeadline deadline) override {
    return guarded(
        [&] { return get_referrers_impl(registry, repo, digest, artifact_type, deadline); });
  }
  RegistryResult put_blob(const std::string &registry, const std::string &repo,
                          const std::string &bytes, RegistryDeadline deadline) override {
    return guarded([&] { return put_blob_impl(registry, repo, bytes, deadline); });
  }
  RegistryResult put_manifest(const std::string &registry, const std::string &repo,
                              const std::string &reference, const std::string &media_type,
                              const std::string &bytes, RegistryDeadline deadline) override {
    return guarded(
        [&] { return put_manifest_impl(registry, repo, reference, media_type, bytes, deadline); });
  }
  unsigned long requests() const override { return requests_.load(); }

private:
  struct CachedToken {
    std::string token;
    Clock::time_point valid_until;
  };

  // --- targets ---

  std::optional<Target> target_for(const std::string &registry, std::string &error) const {
    auto hp = split_registry(registry);
    if (!hp) {
      error = "invalid registry name";
      return std::nullopt;
    }
    Target t;
    t.key = to_lower(registry);
    if (auto it = opts_.hosts.find(t.key); it != opts_.hosts.end()) t.host = it->second;
    bool plain = is_loopback_registry(t.key) || t.host.insecure_http;
    t.base.scheme = plain ? "http" : "https";
    auto api = split_registry(registry_api_host(t.key));
    if (!api) {
      error = "invalid registry name";
      return std::nullopt;
    }
    t.base.host = api->host;
    t.base.port = api->port.value_or(plain ? 80 : 443);
    t.base.target = "/v2/";
    return t;
  }

  Url url_for(const Target &t, std::string target) const {
    Url u = t.base;
    u.target = std::move(target);
    return u;
  }

  // --- one exchange ---

  // One HTTP/1.1 exchange over Boost.Beast (cpp-httplib 0.11.4 parses status lines with a
  // recursive std::regex and buffers header and chunk-size lines without a bound: a hostile
  // server could crash or exhaust the plugin). Every step, connect to last byte, is bounded by
  // `deadline`; the header block by kMaxHeaderBytes, unparsed input by the read buffer's limit,
  // and a 2xx body by `limit`. Name resolution is the system's (not interruptible).
  Exchange send_once(const Url &url, const std::string &method, httplib::Headers headers,
                     const std::string *body, const std::string &content_type, std::size_t limit,
                     RegistryDeadline deadline) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    namespace asio = boost::asio;
    namespace ssl = asio::ssl;
    using tcp = asio::ip::tcp;
    if (Clock::now() >= deadline) return failed_exchange("registry timeout");
    if (!is_safe_target(url.target)) return failed_exchange("refusing an unsafe request URL");
    const http::verb verb = http::string_to_verb(method);
    if (verb == http::verb::unknown) return failed_exchange("unsupported method");

    http::request<http::string_body> req{verb, url.target, 11};
    for (const auto &[k, v] : headers)
      req.insert(k, v);
    // Set here, so that IPv6 literals get their brackets.
    bool default_port = url.port == (url.scheme == "https" ? 443 : 80);
    req.set(http::field::host,
            host_in_url(url.host) + (default_port ? "" : ":" + std::to_string(url.port)));
    req.set(http::field::accept_encoding, "identity"); // digests are over the bytes as served
    req.set(http::field::user_agent, "portcullis");
    req.set(http::field::connection, "close");
    if (body) {
      req.body() = *body;
      if (!content_type.empty()) req.set(http::field::content_type, content_type);
    }
    if (body || verb == http::verb::post || verb == http::verb::put) req.prepare_payload();

    Exchange ex;
    ex.url = url;
    asio::io_context ioc;
    beast::error_code ec;
    // Runs one asynchronous step to completion; the stream's expiry (the deadline) aborts it.
    auto run = [&](auto &&start) {
      ec = {};
      bool done = false;
      start([&](beast::error_code e, auto &&...) {
        ec = e;
        done = true;
      });
      ioc.restart();
      ioc.run();
      if (!done) ec = asio::error::operation_aborted;
      return !ec;
    };
    auto timed_out = [&] { return ec == beast::error::timeout || Clock::now() >= deadline; };

    tcp::resolver resolver(ioc);
    auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
    if (ec) return failed_exchange("cannot resolve " + origin_of(url));
    if (Clock::now() >= deadline) return failed_exchange("registry timeout");

    http::response_parser<http::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    // No body limit while the headers are read: a large error page must not turn a 404 into an
    // error. The 2xx body limit is set once the status is known (Content-Length checked by hand).
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (verb == http::verb::head) parser.skip(true);        // a HEAD answer has no body
    beast::flat_buffer buffer(kMaxHeaderBytes + 64 * 1024); // bounds any unparsed line
    requests_.fetch_add(1);

    auto exchange = [&](auto &stream, auto &lowest) -> std::optional<Exchange> {
      if (!run([&](auto h) { http::async_write(stream, req, h); }))
        return timed_out() ? failed_exchange("registry timeout")
                           : failed_exchange("cannot send to " + origin_of(url));
      if (!run([&](auto h) { http::async_read_header(stream, buffer, parser, h); })) {
        if (timed_out()) return failed_exchange("registry timeout");
        if (ec == http::error::body_limit) // a Content-Length over the limit
          return failed_exchange("response from " + origin_of(url) + " exceeds the limit of " +
                                 std::to_string(limit) + " bytes");
        if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
          return failed_exchange("response headers from " + origin_of(url) + " are too large");
        return failed_exchange("no valid HTTP answer from " + origin_of(url));
      }
      ex.status = static_cast<int>(parser.get().result_int());
      for (const auto &f : parser.get())
        ex.headers.emplace(std::string(f.name_string()), std::string(f.value()));
      if (ex.status < 200 || ex.status > 299) {
        ex.ok = true; // errors, redirects and challenges: headers are all we need
        return std::nullopt;
      }
      if (verb != http::verb::head && parser.content_length() && *parser.content_length() > limit)
        return failed_exchange("response from " + origin_of(url) + " exceeds the limit of " +
                                   std::to_string(limit) + " bytes",
                               ex.status);
      parser.body_limit(limit);
      if (verb != http::verb::head && !parser.is_done()) {
        if (!run([&](auto h) { http::async_read(stream, buffer, parser, h); })) {
          if (ec == http::error::body_limit)
            return failed_exchange("response from " + origin_of(url) + " exceeds the limit of " +
                                       std::to_string(limit) + " bytes",
                                   ex.status);
          if (timed_out()) return failed_exchange("registry timeout", ex.status);
          return failed_exchange("incomplete answer from " + origin_of(url), ex.status);
        }
      }
      (void)lowest;
      ex.body = std::move(parser.get().body());
      ex.ok = true;
      return std::nullopt;
    };

    std::optional<Exchange> failed;
    if (url.scheme == "https") {
      ssl::context ctx(ssl::context::tls_client);
      ctx.set_options(ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                      ssl::context::no_tlsv1_1);
      ctx.load_verify_file(opts_.ca_file.empty() ? kSystemCaFile : opts_.ca_file, ec);
      if (ec) return failed_exchange("cannot load the CA file for " + origin_of(url));
      ctx.set_verify_mode(ssl::verify_peer);
      beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
      stream.set_verify_callback(ssl::host_name_verification(url.host));
      beast::error_code ignored;
      if (!is_ipv6_literal(url.host) &&
          !SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str()))
        return failed_exchange("cannot set up TLS for " + origin_of(url));
      auto &lowest = beast::get_lowest_layer(stream);
      lowest.expires_at(deadline);
      if (!run([&](auto h) { lowest.async_connect(endpoints, h); }))
        return failed_exchange(timed_out() ? "registry timeout"
                                           : "cannot connect to " + origin_of(url));
      if (!run([&](auto h) { stream.async_handshake(ssl::stream_base::client, h); }))
        return failed_exchange(timed_out() ? "registry timeout"
                                           : "TLS handshake with " + origin_of(url) +
                                                 " failed (certificate not trusted?)");
      failed = exchange(stream, lowest);
      lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
    } else {
      beast::tcp_stream stream(ioc);
      stream.expires_at(deadline);
      if (!run([&](auto h) { stream.async_connect(endpoints, h); }))
        return failed_exchange(timed_out() ? "registry timeout"
                                           : "cannot connect to " + origin_of(url));
      failed = exchange(stream, stream);
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }
    if (failed) return *failed;
    return ex;
  }

  // --- redirects ---

  // Sends the request, following redirects of GET/HEAD. `auth` (a full Authorization value) goes
  // only to URLs with the same scheme, host and port as `origin`.
  Exchange follow(const Url &origin, const std::string &method, Url url,
                  const httplib::Headers &headers, const std::string &auth, const std::string *body,
                  const std::string &content_type, std::size_t limit, RegistryDeadline deadline) {
    for (int hop = 0;; ++hop) {
      httplib::Headers h = headers;
      if (!auth.empty() && same_origin(url, origin)) h.emplace("Authorization", auth);
      Exchange ex = send_once(url, method, std::move(h), body, content_type, limit, deadline);
      if (!ex.ok || !is_redirect_status(ex.status) || (method != "GET" && method != "HEAD"))
        return ex;
      if (hop >= opts_.max_redirects)
        return failed_exchange("too many redirects (more than " +
                                   std::to_string(opts_.max_redirects) + ")",
                               ex.status);
      auto location = ex.header("Location");
      if (location.empty())
        return failed_exchange("redirect without a Location from " + origin_of(url), ex.status);
      auto next = resolve_url(url, location);
      if (!next)
        return failed_exchange("unusable redirect Location from " + origin_of(url), ex.status);
      if (url.scheme == "https" && next->scheme != "https")
        return failed_exchange(
            "refusing a redirect from https to plain http (" + origin_of(*next) + ")", ex.status);
      if (origin.scheme == "https" && next->scheme != "https")
        return failed_exchange("refusing a redirect to plain http (" + origin_of(*next) + ")",
                               ex.status);
      url = std::move(*next);
    }
  }

  // --- authentication ---

  std::string basic_value(const Target &t) const {
    return "Basic " + base64_encode(t.host.username + ":" + t.host.password);
  }

  std::optional<std::string> cached_token(const std::string &key, const std::string &scope) {
    std::lock_guard lock(tokens_mu_);
    auto it = tokens_.find({key, scope});
    if (it == tokens_.end()) return std::nullopt;
    if (Clock::now() >= it->second.valid_until) {
      tokens_.erase(it);
      return std::nullopt;
    }
    return it->second.token;
  }

  void drop_token(const std::string &key, const std::string &scope) {
    std::lock_guard lock(tokens_mu_);
    tokens_.erase({key, scope});
  }

  void store_token(const std::string &key, const std::string &scope, const std::string &token,
                   std::chrono::milliseconds lifetime) {
    auto margin = std::min<std::chrono::milliseconds>(kMaxTokenMargin, lifetime / 4);
    auto now = Clock::now();
    auto until = now + lifetime - margin;
    std::lock_guard lock(tokens_mu_);
    for (auto it = tokens_.begin(); it != tokens_.end();) { // prune expired entries
      if (now >= it->second.valid_until)
        it = tokens_.erase(it);
      else
        ++it;
    }
    if (until <= now) {
      tokens_.erase({key, scope});
      return;
    }
    tokens_[{key, scope}] = CachedToken{token, until};
  }

  // GET realm?service=..&scope=.. -> token. Sets `error` on failure.
  std::optional<std::string> fetch_token(const Target &t, const std::string &scope,
                                         const Challenge &c, RegistryDeadline deadline,
                                         std::string &error, int &status) {
    auto realm_it = c.params.find("realm");
    if (realm_it == c.params.end() || realm_it->second.empty()) {
      error = "unauthorized: bearer challenge without a realm";
      return std::nullopt;
    }
    auto realm = parse_absolute_url(realm_it->second);
    if (!realm) {
      error = "unauthorized: unusable token realm";
      return std::nullopt;
    }
    // Plain http only to the registry's own host or a loopback one: a man in the middle of an
    // insecure registry must not redirect credentials to a host of its choosing in clear text.
    if (realm->scheme != "https" &&
        (t.base.scheme == "https" ||
         (realm->host != t.base.host && !is_loopback_host(realm->host)))) {
      error = "refusing a plain-http token realm (" + origin_of(*realm) + ")";
      return std::nullopt;
    }
    httplib::Params params;
    if (auto s = c.params.find("service"); s != c.params.end() && !s->second.empty())
      params.emplace("service", s->second);
    params.emplace("scope", scope);
    Url url = *realm;
    url.target = append_query(url.target, params);
    httplib::Headers headers{{"Accept", "application/json"}};
    std::string auth = t.has_credentials() ? basic_value(t) : std::string();
    Exchange ex =
        follow(*realm, "GET", url, headers, auth, nullptr, "", opts_.max_token_bytes, deadline);
    status = ex.status;
    if (!ex.ok) {
      error = "token server: " + ex.error;
      return std::nullopt;
    }
    if (ex.status == 401 || ex.status == 403) {
      error = "unauthorized: token server answered HTTP " + std::to_string(ex.status);
      return std::nullopt;
    }
    if (ex.status != 200) {
      error = "token server answered HTTP " + std::to_string(ex.status);
      return std::nullopt;
    }
    auto j = nlohmann::json::parse(ex.body, nullptr, false);
    if (!j.is_object()) {
      error = "token server answer is not a JSON object";
      return std::nullopt;
    }
    std::string token;
    for (const char *field : {"token", "access_token"}) {
      auto it = j.find(field);
      if (it != j.end() && it->is_string() && !it->get_ref<const std::string &>().empty()) {
        token = it->get<std::string>();
        break;
      }
    }
    if (token.empty()) {
      error = "token server answer has no token";
      return std::nullopt;
    }
    if (!is_b64token(token)) {
      error = "token server answered an unusable token";
      return std::nullopt;
    }
    long long seconds = 60;
    if (auto it = j.find("expires_in"); it != j.end() && it->is_number()) {
      double v = it->get<double>();
      if (v >= 0)
        seconds = v > static_cast<double>(kMaxTokenLifetime) ? kMaxTokenLifetime
                                                             : static_cast<long long>(v);
    }
    store_token(t.key, scope, token, std::chrono::seconds(seconds));
    return token;
  }

  // The request with the registry's authentication: first as is (or with a cached token), then,
  // on a 401 challenge, once more with a Bearer token or Basic credentials. A final 401/403 is an
  // error, never an answer.
  Exchange roundtrip(const Target &t, const std::string &scope, const std::string &method,
                     const Url &url, const httplib::Headers &headers, const std::string *body,
                     const std::string &content_type, std::size_t limit,
                     RegistryDeadline deadline) {
    std::string auth;
    bool cached = false;
    if (auto tok = cached_token(t.key, scope)) {
      auth = "Bearer " + *tok;
      cached = true;
    }
    for (int attempt = 0;; ++attempt) {
      Exchange ex = follow(t.base, method, url, headers, auth, body, content_type, limit, deadline);
      if (!ex.ok) return ex;
      if (ex.status == 403 || (ex.status == 401 && attempt > 0))
        return failed_exchange("unauthorized (HTTP " + std::to_string(ex.status) + " from " +
                                   origin_of(ex.url) + ")",
                               ex.status);
      if (ex.status != 401) return ex;
      // Only the registry itself may ask for credentials: a host it redirected to must not name
      // a realm that would receive the registry's Basic credentials or a token.
      if (!same_origin(ex.url, t.base))
        return failed_exchange("unauthorized (HTTP 401 from " + origin_of(ex.url) +
                                   ", a host the registry redirected to)",
                               401);

      // A header that does not parse contributes nothing.
      std::vector<Challenge> challenges;
      bool parsed = true;
      for (auto [it, end] = ex.headers.equal_range("WWW-Authenticate"); it != end; ++it) {
        std::vector<Challenge> one;
        if (parse_challenges(it->second, one))
          challenges.insert(challenges.end(), one.begin(), one.end());
        else
          parsed = false;
      }
      const Challenge *bearer = nullptr;
      const Challenge *basic = nullptr;
      for (const auto &c : challenges) {
        if (c.scheme == "bearer" && !bearer) bearer = &c;
        if (c.scheme == "basic" && !basic) basic = &c;
      }
      if (!parsed && !bearer && !basic)
        return failed_exchange("unauthorized (malformed WWW-Authenticate)", 401);
      if (bearer) {
        if (cached) drop_token(t.key, scope);
        std::string error;
        int status = 0;
        auto token = fetch_token(t, scope, *bearer, deadline, error, status);
        if (!token) return failed_exchange(error, status ? status : 401);
        auth = "Bearer " + *token;
      } else if (basic && t.has_credentials()) {
        auth = basic_value(t);
      } else {
        return failed_exchange("unauthorized (HTTP 401 from " + origin_of(ex.url) + ")", 401);
      }
      cached = false;
    }
  }

  // --- operations ---

  RegistryResult get_manifest_impl(const std::string &registry, const std::string &repo,
                                   const std::string &reference, RegistryDeadline deadline) {
    std::string error;
    auto t = target_for(registry, error);
    if (!t) return failure(error);
    if (!is_repository(repo)) return failure("invalid repository name");
    bool by_digest = is_sha256_digest(reference);
    if (!by_digest && !is_tag(reference)) return failure("invalid manifest reference");
    httplib::Headers headers{{"Accept", std::string(kOciIndex) + ", " + kOciManifest + ", " +
                                            kDockerManifestList + ", " + kDockerManifest}};
    Exchange ex = roundtrip(*t, pull_scope(repo), "GET",
                            url_for(*t, "/v2/" + repo + "/manifests/" + reference), headers,
                            nullptr, "", opts_.max_manifest_bytes, deadline);
    if (!ex.ok) return failure(ex.error, ex.status);
    if (ex.status == 404) return not_found(404);
    if (ex.status != 200)
      return failure("registry answered HTTP " + std::to_string(ex.status) + " for the manifest",
                     ex.status);
    RegistryResult r;
    r.http_status = ex.status;
    r.media_type = bare_media_type(ex.header("Content-Type"));
    bool known = false;
    for (const char *m : {kOciIndex, kOciManifest, kDockerManifestList, kDockerManifest})
      known = known || r.media_type == m;
    if (!known) return failure("unexpected manifest media type", ex.status);
    r.digest = digest_of(ex.body);
    if (by_digest) {
      if (r.digest != reference) return failure("manifest digest mismatch", ex.status);
      auto claimed = ex.header("Docker-Content-Digest");
      if (!claimed.empty() && claimed != reference)
        return failure("manifest digest mismatch (Docker-Content-Digest)", ex.status);
    }
    r.body = std::move(ex.body);
    r.status = RegistryResult::Status::ok;
    return r;
  }

  RegistryResult get_blob_impl(const std::string &registry, const std::string &repo,
                               const std::string &digest, std::size_t max_bytes,
                               RegistryDeadline deadline) {
    std::string error;
    auto t = target_for(registry, error);
    if (!t) return failure(error);
    if (!is_repository(repo)) return failure("invalid repository name");
    if (!is_sha256_digest(digest)) return failure("invalid blob digest");
    Exchange ex =
        roundtrip(*t, pull_scope(repo), "GET", url_for(*t, "/v2/" + repo + "/blobs/" + digest), {},
                  nullptr, "", max_bytes, deadline);
    if (!ex.ok) return failure(ex.error, ex.status);
    if (ex.status == 404) return not_found(404);
    if (ex.status != 200)
      return failure("registry answered HTTP " + std::to_string(ex.status) + " for the blob",
                     ex.status);
    RegistryResult r;
    r.http_status = ex.status;
    r.digest = digest_of(ex.body);
    if (r.digest != digest) return failure("blob digest mismatch", ex.status);
    r.media_type = bare_media_type(ex.header("Content-Type"));
    r.body = std::move(ex.body);
    r.status = RegistryResult::Status::ok;
    return r;
  }

  RegistryResult get_referrers_impl(const std::string &registry, const std::string &repo,
                                    const std::string &digest, const std::string &artifact_type,
                                    RegistryDeadline deadline) {
    std::string error;
    auto t = target_for(registry, error);
    if (!t) return failure(error);
    if (!is_repository(repo)) return failure("invalid repository name");
    if (!is_sha256_digest(digest)) return failure("invalid subject digest");
    std::string target = "/v2/" + repo + "/referrers/" + digest;
    if (!artifact_type.empty()) target = append_query(target, {{"artifactType", artifact_type}});
    Exchange ex =
        roundtrip(*t, pull_scope(repo), "GET", url_for(*t, target), {{"Accept", kOciIndex}},
                  nullptr, "", opts_.max_manifest_bytes, deadline);
    if (!ex.ok) return failure(ex.error, ex.status);
    if (ex.status == 404) return not_found(404);
    if (ex.status != 200)
      return failure("registry answered HTTP " + std::to_string(ex.status) + " for referrers",
                     ex.status);
    RegistryResult r;
    r.http_status = ex.status;
    r.media_type = bare_media_type(ex.header("Content-Type"));
    if (r.media_type != kOciIndex) return failure("referrers answer is not an OCI image index");
    if (!nlohmann::json::parse(ex.body, nullptr, false).is_object())
      return failure("referrers answer is not a JSON object", ex.status);
    r.digest = digest_of(ex.body);
    r.body = std::move(ex.body);
    r.status = RegistryResult::Status::ok;
    return r;
  }

  RegistryResult put_blob_impl(const std::string &registry, const std::string &repo,
                               const std::string &bytes, RegistryDeadline deadline) {
    std::string error;
    auto t = target_for(registry, error);
    if (!t) return failure(error);
    if (!is_repository(repo)) return failure("invalid repository name");
    const std::string digest = digest_of(bytes);
    const std::string scope = push_scope(repo);
    const Url blob_url = url_for(*t, "/v2/" + repo + "/blobs/" + digest);

    Exchange head =
        roundtrip(*t, scope, "HEAD", blob_url, {}, nullptr, "", kSmallBodyLimit, deadline);
    if (!head.ok) return failure(head.error, head.status);
    if (head.status == 200) {
      RegistryResult r;
      r.status = RegistryResult::Status::ok;
      r.http_status = 200;
      r.digest = digest;
      r.location = origin_of(head.url) + head.url.target;
      return r;
    }
    if (head.status != 404)
      return failure("registry answered HTTP " + std::to_string(head.status) +
                         " when checking for the blob",
                     head.status);

    const std::string empty;
    Exchange post = roundtrip(*t, scope, "POST", url_for(*t, "/v2/" + repo + "/blobs/uploads/"), {},
                              &empty, "", kSmallBodyLimit, deadline);
    if (!post.ok) return failure(post.error, post.status);
    if (post.status != 202)
      return failure("registry answered HTTP " + std::to_string(post.status) +
                         " when starting the upload",
                     post.status);
    auto upload = resolve_url(post.url, post.header("Location"));
    if (!upload) return failure("upload answer without a usable Location", post.status);
    if (t->base.scheme == "https" && upload->scheme != "https")
      return failure("refusing a plain-http upload location", post.status);
    upload->target = append_query(upload->target, {{"digest", digest}});

    Exchange put = roundtrip(*t, scope, "PUT", *upload, {}, &bytes, "application/octet-stream",
                             kSmallBodyLimit, deadline);
    if (!put.ok) return failure(put.error, put.status);
    if (put.status != 201)
      return failure("registry answered HTTP " + std::to_string(put.status) +
                         " when completing the upload",
                     put.status);
    RegistryResult r;
    r.status = RegistryResult::Status::ok;
    r.http_status = put.status;
    r.digest = digest;
    auto stored = resolve_url(put.url, put.header("Location"));
    const Url &where = stored ? *stored : blob_url;
    r.location = origin_of(where) + where.target;
    return r;
  }

  RegistryResult put_manifest_impl(const std::string &registry, const std::string &repo,
                                   const std::string &reference, const std::string &media_type,
                                   const std::string &bytes, RegistryDeadline deadline) {
    std::string error;
    auto t = target_for(registry, error);
    if (!t) return failure(error);
    if (!is_repository(repo)) return failure("invalid repository name");
    const std::string digest = digest_of(bytes);
    if (is_sha256_digest(reference)) {
      if (reference != digest) return failure("manifest digest mismatch");
    } else if (!is_tag(reference)) {
      return failure("invalid manifest reference");
    }
    if (!is_media_type(media_type)) return failure("invalid manifest media type");
    if (bytes.size() > opts_.max_manifest_bytes)
      return failure("manifest exceeds the limit of " + std::to_string(opts_.max_manifest_bytes) +
                     " bytes");
    const Url url = url_for(*t, "/v2/" + repo + "/manifests/" + reference);
    Exchange put = roundtrip(*t, push_scope(repo), "PUT", url, {}, &bytes, media_type,
                             kSmallBodyLimit, deadline);
    if (!put.ok) return failure(put.error, put.status);
    if (put.status != 201)
      return failure("registry answered HTTP " + std::to_string(put.status) +
                         " when storing the manifest",
                     put.status);
    auto claimed = put.header("Docker-Content-Digest");
    if (!claimed.empty() && claimed != digest)
      return failure("registry stored the manifest under another digest", put.status);
    RegistryResult r;
    r.status = RegistryResult::Status::ok;
    r.http_status = put.status;
    r.digest = digest;
    r.media_type = media_type;
    auto stored = resolve_url(put.url, put.header("Location"));
    const Url &where = stored ? *stored : url;
    r.location = origin_of(where) + where.target;
    return r;
  }

  const RegistryOptions opts_;
  std::atomic<unsigned long> requests_{0};
  std::mutex tokens_mu_;
  std::map<std::pair<std::string, std::string>, CachedToken> tokens_;
};

} // namespace

std::unique_ptr<Registry> make_http_registry(RegistryOptions options) {
  return std::make_unique<HttpRegistry>(std::move(options));
}

std::string registry_api_host(const std::string &registry) {
  return registry == "docker.io" ? "registry-1.docker.io" : registry;
}

bool is_loopback_registry(const std::string &registry) {
  std::string_view r = registry;
  std::string_view host;
  std::string_view port;
  if (!r.empty() && r.front() == '[') {
    auto close = r.find(']');
    if (close == std::string_view::npos) return false;
    host = r.substr(1, close - 1);
    auto rest = r.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (!parse_port(port)) return false;
    }
    return host == "::1";
  }
  auto colons = std::count(r.begin(), r.end(), ':');
  if (colons > 1) return r == "::1"; // a bare IPv6 literal carries no port
  auto colon = r.find(':');
  host = r.substr(0, colon);
  if (colon != std::string_view::npos && !parse_port(r.substr(colon + 1))) return false;
  return is_loopback_host(host);
}

} // namespace portcullis
