#include "policy/glob.hpp"

#include <array>

namespace portcullis {

namespace {

constexpr std::string_view kDoubleStar = "**";
constexpr std::string_view kUserTemplate = "{user}";

// Index just past the UTF-8 character that starts at `i`.
std::size_t next_char(std::string_view s, std::size_t i) {
  ++i;
  while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80)
    ++i;
  return i;
}

// `*` matches any run of characters, `?` exactly one character, anything else itself.
bool segment_matches(std::string_view pat, std::string_view s) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < s.size()) {
    if (p < pat.size() && pat[p] == '?') {
      ++p;
      t = next_char(s, t);
    } else if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pat.size() && pat[p] == s[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      mark = next_char(s, mark);
      t = mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*')
    ++p;
  return p == pat.size();
}

bool has_wildcard(std::string_view seg) {
  return seg.find_first_of("*?") != std::string_view::npos;
}

// Calls f(segment) for every segment of a normalized absolute path; stops when f returns false.
template <typename F> void for_each_segment(std::string_view path, F &&f) {
  std::size_t i = 1;
  while (i < path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (!f(path.substr(i, j - i))) return;
    i = j + 1;
  }
}

} // namespace

bool is_normalized_absolute_path(std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  if (path.find('\0') != std::string_view::npos) return false;
  if (path.size() == 1) return true;
  if (path.back() == '/') return false;
  bool ok = true;
  for_each_segment(path, [&](std::string_view seg) {
    if (seg.empty() || seg == "." || seg == "..") ok = false;
    return ok;
  });
  return ok;
}

std::optional<std::string> normalize_absolute_path(std::string_view path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  if (path.find('\0') != std::string_view::npos) return std::nullopt;
  std::vector<std::string_view> segs;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    if (seg.empty() || seg == ".") {
    } else if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else {
      segs.push_back(seg);
    }
    i = j + 1;
  }
  std::size_t total = 0;
  for (auto seg : segs)
    total += seg.size() + 1;
  if (total == 0) return "/";
  std::string out(total, '/');
  std::size_t pos = 0;
  for (auto seg : segs) {
    out.replace(pos + 1, seg.size(), seg.data(), seg.size()); // out[pos] is already '/'
    pos += seg.size() + 1;
  }
  return out;
}

std::optional<PathGlob> PathGlob::compile(std::string_view pattern, std::string *error) {
  auto fail = [&](std::string msg) -> std::optional<PathGlob> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  if (pattern.empty())
    return fail("empty path pattern; expected an absolute path such as \"/srv/data/**\"");
  if (pattern[0] != '/')
    return fail("path pattern \"" + std::string(pattern) +
                "\" is relative; expected an absolute path starting with \"/\"");
  // `{user}` is the only use of braces; check the rest without it.
  std::string without_templates(pattern);
  bool user_template = false;
  for (std::size_t at; (at = without_templates.find(kUserTemplate)) != std::string::npos;) {
    without_templates.replace(at, kUserTemplate.size(), "u");
    user_template = true;
  }
  for (char c : without_templates) {
    auto uc = static_cast<unsigned char>(c);
    if (uc < 0x20 || uc == 0x7F)
      return fail("path pattern contains a control character; expected a printable path");
    if (c == '[' || c == ']' || c == '{' || c == '}' || c == '\\')
      return fail("path pattern \"" + std::string(pattern) +
                  "\" uses '[', ']', '{', '}' or '\\', which are not supported; only '*', '?' "
                  "and '**' are wildcards, and {user} stands for the caller's name");
  }
  PathGlob g;
  g.user_template_ = user_template;
  std::size_t i = 0;
  while (i < pattern.size()) {
    std::size_t j = pattern.find('/', i);
    if (j == std::string_view::npos) j = pattern.size();
    std::string_view seg = pattern.substr(i, j - i);
    i = j + 1;
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (g.segments_.empty()) continue;
      if (has_wildcard(g.segments_.back()) ||
          g.segments_.back().find(kUserTemplate) != std::string::npos)
        return fail("path pattern \"" + std::string(pattern) +
                    "\" has \"..\" after a wildcard or {user} segment; expected a pattern without "
                    "\"..\"");
      g.segments_.pop_back();
      continue;
    }
    if (seg.find(kDoubleStar) != std::string_view::npos && seg != kDoubleStar)
      return fail("path pattern \"" + std::string(pattern) +
                  "\" has \"**\" inside a segment; \"**\" must be a whole segment, e.g. "
                  "\"/srv/**\"");
    if (seg == kDoubleStar && !g.segments_.empty() && g.segments_.back() == kDoubleStar)
      continue; // "**/**" is "**"
    g.segments_.emplace_back(seg);
  }
  if (g.segments_.size() > kMaxSegments)
    return fail("path pattern has more than " + std::to_string(kMaxSegments) + " segments");
  for (const auto &s : g.segments_) {
    g.text_ += '/';
    g.text_ += s;
    if (has_wildcard(s)) g.has_wildcards_ = true;
  }
  if (g.text_.empty()) g.text_ = "/";
  return g;
}

namespace {
// NFA simulation over pattern positions: state i means "segments_[0..i) matched the path so
// far". `mode_overlap` selects PathGlob::overlaps semantics.
bool run(const std::vector<std::string> &pat, std::string_view path, bool mode_overlap) {
  const std::size_t n = pat.size();
  std::array<bool, PathGlob::kMaxSegments + 1> cur{}, next{};
  auto closure = [&](std::array<bool, PathGlob::kMaxSegments + 1> &st) {
    for (std::size_t i = 0; i < n; ++i)
      if (st[i] && pat[i] == kDoubleStar) st[i + 1] = true;
  };
  cur[0] = true;
  closure(cur);
  if (mode_overlap && cur[n]) return true; // path is under a matching path
  bool alive = true;
  for_each_segment(path, [&](std::string_view seg) {
    next.fill(false);
    bool any = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (!cur[i]) continue;
      if (pat[i] == kDoubleStar) {
        next[i] = true;
        any = true;
      } else if (segment_matches(pat[i], seg)) {
        next[i + 1] = true;
        any = true;
      }
    }
    closure(next);
    cur = next;
    if (!any) {
      alive = false;
      return false;
    }
    if (mode_overlap && cur[n]) return false; // decided: under a matching path
    return true;
  });
  if (!alive) return false;
  if (mode_overlap) {
    for (std::size_t i = 0; i <= n; ++i)
      if (cur[i]) return true; // path is at or above a matching path
    return false;
  }
  return cur[n];
}
} // namespace

bool PathGlob::matches(std::string_view path) const {
  if (user_template_ || !is_normalized_absolute_path(path)) return false;
  return run(segments_, path, false);
}

bool PathGlob::overlaps(std::string_view path) const {
  if (user_template_ || !is_normalized_absolute_path(path)) return true;
  return run(segments_, path, true);
}

std::optional<PathGlob> PathGlob::bind_user(std::string_view user) const {
  if (!user_template_) return *this;
  if (user.empty() || user == "." || user == ".." || user.size() > 255) return std::nullopt;
  for (char c : user) {
    auto uc = static_cast<unsigned char>(c);
    if (uc < 0x20 || uc == 0x7F || c == '/' || c == '\\' || c == '*' || c == '?' || c == '[' ||
        c == ']' || c == '{' || c == '}')
      return std::nullopt;
  }
  std::string bound = text_;
  for (std::size_t at = 0; (at = bound.find(kUserTemplate, at)) != std::string::npos;
       at += user.size())
    bound.replace(at, kUserTemplate.size(), user);
  return compile(bound, nullptr);
}

} // namespace portcullis
