// Helpers shared by the fuzz targets (docs/FUZZING.md).
#pragma once

#include "plugin/normalize.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace portcullis::fuzz {

// An API request written like HTTP, the form of the normalizer's seed corpus:
//
//   POST /v1.41/containers/create?name=web       <- method, one space, URI (rest of the line)
//   Content-Type: application/json               <- headers, "Name: value", until an empty line
//                                                <- empty line: a body follows (maybe empty)
//   {"Image":"busybox"}                          <- body: every remaining byte
//
// Lines end at '\n' only, so any other byte (CR, NUL, ...) stays inside the field. Without the
// empty line there is no body (RequestBody absent).
inline RawHttpRequest parse_http_like(std::string_view in) {
  RawHttpRequest r;
  auto next_line = [&in](std::string_view &line) {
    if (in.empty()) return false;
    std::size_t nl = in.find('\n');
    line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    return true;
  };
  std::string_view line;
  if (!next_line(line)) return r;
  std::size_t sp = line.find(' ');
  r.method = std::string(line.substr(0, sp));
  if (sp != std::string_view::npos) r.uri = std::string(line.substr(sp + 1));
  while (true) {
    // An empty line ends the headers; the body is whatever follows, even nothing.
    if (!in.empty() && in.front() == '\n') {
      r.body = std::string(in.substr(1));
      return r;
    }
    if (!next_line(line)) return r;
    std::size_t colon = line.find(':');
    std::string name(line.substr(0, colon));
    std::string value;
    if (colon != std::string_view::npos) {
      std::string_view v = line.substr(colon + 1);
      if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      value = std::string(v);
    }
    r.headers.insert_or_assign(std::move(name), std::move(value));
  }
}

// A deterministic stand-in for the host's symlinks (no file system access while fuzzing):
//   /srv/projects/link...  -> /var/run...   (a project symlink that points at the docker socket)
//   /srv/projects/etc...   -> /etc...
//   any path with a component "loop" cannot be resolved (as a symlink loop)
inline std::optional<std::string> fake_resolve(const std::string &path) {
  auto starts = [&path](std::string_view p) {
    return path.compare(0, p.size(), p) == 0 && (path.size() == p.size() || path[p.size()] == '/');
  };
  if (path.find("/loop/") != std::string::npos ||
      (path.size() >= 5 && path.compare(path.size() - 5, 5, "/loop") == 0))
    return std::nullopt;
  if (starts("/srv/projects/link")) return "/var/run" + path.substr(18);
  if (starts("/srv/projects/etc")) return "/etc" + path.substr(17);
  return path;
}

} // namespace portcullis::fuzz
