#include "plugin/uri.hpp"

namespace portcullis {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go's unescape(): "%XX" must be followed by two hex digits; `plus_is_space` for query mode.
std::optional<std::string> unescape(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt; // needs in[i+1] and in[i+2]
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != prefix[i]) return false;
  }
  return true;
}

bool is_authority_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
}

bool is_api_version(std::string_view v) {
  // \d+\.\d+
  auto dot = v.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= v.size()) return false;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (i != dot && (v[i] < '0' || v[i] > '9')) return false;
  return true;
}

} // namespace

std::optional<std::string> QueryParams::first(std::string_view key) const {
  for (const auto &[k, v] : items)
    if (k == key) return v;
  return std::nullopt;
}

std::size_t QueryParams::count(std::string_view key) const {
  std::size_t n = 0;
  for (const auto &kv : items)
    if (kv.first == key) ++n;
  return n;
}

std::optional<std::string> percent_decode_path(std::string_view in) {
  return unescape(in, false);
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0u) != 0x80u) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

bool is_clean_path(std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  // Walk the segments after the leading '/'. An empty segment is only allowed as the very last one
  // (the single trailing slash mux keeps, or the root "/").
  std::size_t start = 1;
  while (true) {
    std::size_t end = path.find('/', start);
    bool last = end == std::string_view::npos;
    std::string_view seg = path.substr(start, last ? std::string_view::npos : end - start);
    if (seg == "." || seg == "..") return false;
    if (seg.empty() && !last) return false;
    if (last) return true;
    start = end + 1;
  }
}

bool parse_go_query(std::string_view raw, QueryParams &out, std::string &error) {
  out.items.clear();
  while (!raw.empty()) {
    std::size_t amp = raw.find('&');
    std::string_view piece = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view{} : raw.substr(amp + 1);
    if (piece.find(';') != std::string_view::npos) {
      error = "The query string contains ';', which the daemon rejects as a separator.";
      return false;
    }
    if (piece.empty()) continue;
    std::size_t eq = piece.find('=');
    std::string_view k = piece.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view{} : piece.substr(eq + 1);
    auto key = unescape(k, true);
    auto value = unescape(v, true);
    if (!key || !value) {
      error = "The query string contains an invalid percent-escape.";
      return false;
    }
    if (!is_valid_utf8(*key) || !is_valid_utf8(*value)) {
      error = "The query string is not valid UTF-8.";
      return false;
    }
    out.items.emplace_back(std::move(*key), std::move(*value));
  }
  return true;
}

UriResult parse_request_uri(std::string_view raw) {
  UriResult r;
  if (raw.empty()) {
    r.error = "The request URI is empty.";
    return r;
  }
  for (char ch : raw) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) {
      r.error = "The request URI contains a space, control or non-ASCII character.";
      return r;
    }
  }
  if (raw.find('#') != std::string_view::npos) {
    r.error = "The request URI contains a fragment ('#').";
    return r;
  }
  std::size_t qpos = raw.find('?');
  std::string_view before = raw.substr(0, qpos);
  std::string_view raw_query =
      qpos == std::string_view::npos ? std::string_view{} : raw.substr(qpos + 1);

  std::string_view raw_path;
  if (!before.empty() && before[0] == '/') {
    raw_path = before;
  } else {
    std::size_t skip = 0;
    if (starts_with_ci(before, "http://"))
      skip = 7;
    else if (starts_with_ci(before, "https://"))
      skip = 8;
    if (skip == 0) {
      r.error = "The request URI is neither a path nor an http(s) absolute URI.";
      return r;
    }
    std::string_view rest = before.substr(skip);
    std::size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    for (char c : authority) {
      if (!is_authority_char(c)) {
        r.error = "The host part of the absolute request URI is not a plain host name.";
        return r;
      }
    }
    raw_path = slash == std::string_view::npos ? std::string_view{"/"} : rest.substr(slash);
  }

  auto decoded = percent_decode_path(raw_path);
  if (!decoded) {
    r.error = "The request path contains an invalid percent-escape.";
    return r;
  }
  for (char ch : *decoded) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      r.error = "The request path contains a NUL or control character.";
      return r;
    }
  }
  if (!is_valid_utf8(*decoded)) {
    r.error = "The request path is not valid UTF-8.";
    return r;
  }
  if (!is_clean_path(*decoded)) {
    r.error = "The request path is not clean (it has '//', '.' or '..' segments); dockerd would "
              "redirect it instead of executing it.";
    return r;
  }

  ParsedUri u;
  std::string_view p = *decoded;
  // mux registers every route as "/v{version:[0-9.]+}" + path and as path alone.
  if (p.size() > 2 && p[0] == '/' && p[1] == 'v') {
    std::size_t j = 2;
    while (j < p.size() && ((p[j] >= '0' && p[j] <= '9') || p[j] == '.'))
      ++j;
    if (j > 2 && j < p.size() && p[j] == '/') {
      std::string_view version = p.substr(2, j - 2);
      if (!is_api_version(version)) {
        r.error = "The API version in the request path is malformed (expected /vMAJOR.MINOR/).";
        return r;
      }
      u.api_version = std::string(version);
      p = p.substr(j);
    }
  }
  u.path = std::string(p);
  if (!parse_go_query(raw_query, u.query, r.error)) return r;
  r.uri = std::move(u);
  return r;
}

} // namespace portcullis
