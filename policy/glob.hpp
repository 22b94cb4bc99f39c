// Host-path globs for policies. A pattern is an absolute path whose segments may use `*` (any
// run of characters within one segment), `?` (exactly one character) or be exactly `**` (any
// number of segments, including none), and `{user}` (the caller's name, bound per request).
// Patterns are normalized lexically when compiled.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

class PathGlob {
public:
  // Upper bound on segments, so matching needs no heap allocation.
  static constexpr std::size_t kMaxSegments = 64;

  // Compiles `pattern`. On failure returns nullopt and sets *error to a message that says what
  // is wrong and what is expected.
  static std::optional<PathGlob> compile(std::string_view pattern, std::string *error);

  // The pattern after normalization, e.g. "/srv/projects/**" or "/home/{user}/**".
  const std::string &text() const { return text_; }
  bool has_wildcards() const { return has_wildcards_; }

  // `{user}` in a pattern stands for the caller's principal name ("/home/{user}/**"). Such a
  // template must be bound before use: an unbound one matches nothing and overlaps everything
  // (fail closed both ways).
  bool has_user_template() const { return user_template_; }
  // The pattern with `{user}` replaced by `user`. nullopt when the name cannot be a path
  // segment: empty, "." or "..", or containing '/', '\', a wildcard or brace, or a control
  // character. Callers fail closed on nullopt.
  std::optional<PathGlob> bind_user(std::string_view user) const;

  // True when `path` (an absolute, lexically normalized path) matches the whole pattern.
  // A path that is not absolute and normalized never matches.
  bool matches(std::string_view path) const;

  // True when the tree rooted at `path` and the trees rooted at the paths the pattern matches
  // share anything: `path` is at, under, or above a matching path. A pattern without wildcards
  // therefore covers P and P/** and also catches a mount of any parent of P ("/" catches
  // everything). A path that is not absolute and normalized always overlaps (fail closed).
  bool overlaps(std::string_view path) const;

private:
  std::string text_;
  std::vector<std::string> segments_; // "**" or a segment pattern
  bool has_wildcards_ = false;
  bool user_template_ = false;
};

// Lexically normalizes an absolute path ("//", ".", ".." resolved; ".." at the root stays at
// the root). Returns nullopt for relative paths, empty paths and paths containing NUL.
std::optional<std::string> normalize_absolute_path(std::string_view path);

// True when `path` is absolute and already in normalized form (no empty, "." or ".." segments,
// no trailing slash except for "/" itself, no NUL).
bool is_normalized_absolute_path(std::string_view path);

} // namespace portcullis
