#include "policy/glob.hpp"

#include <doctest/doctest.h>

using portcullis::is_normalized_absolute_path;
using portcullis::normalize_absolute_path;
using portcullis::PathGlob;

namespace {
PathGlob glob(const char *p) {
  std::string err;
  auto g = PathGlob::compile(p, &err);
  REQUIRE_MESSAGE(g.has_value(), err);
  return *g;
}
std::string compile_error(const char *p) {
  std::string err;
  auto g = PathGlob::compile(p, &err);
  CHECK_FALSE(g.has_value());
  return err;
}
} // namespace

TEST_CASE("glob: patterns are normalized at compile time") {
  CHECK(glob("/srv//projects/./x/../**").text() == "/srv/projects/**");
  CHECK(glob("/../etc").text() == "/etc");
  CHECK(glob("/").text() == "/");
  CHECK(glob("/srv/**/**/x").text() == "/srv/**/x");
  CHECK(glob("/srv/").text() == "/srv");
  CHECK_FALSE(glob("/etc").has_wildcards());
  CHECK(glob("/srv/*").has_wildcards());
}

TEST_CASE("glob: malformed patterns are rejected with a reason") {
  CHECK(compile_error("").find("empty") != std::string::npos);
  CHECK(compile_error("srv/**").find("relative") != std::string::npos);
  CHECK(compile_error("./srv").find("relative") != std::string::npos);
  CHECK(compile_error("/srv/a**").find("whole segment") != std::string::npos);
  CHECK(compile_error("/srv/[ab]").find("not supported") != std::string::npos);
  CHECK(compile_error("/srv/{a,b}").find("not supported") != std::string::npos);
  CHECK(compile_error("/srv/*/..").find("wildcard") != std::string::npos);
  CHECK(compile_error("/srv/\x01").find("control") != std::string::npos);
}

TEST_CASE("glob: * stays within one segment, ? is one character") {
  auto g = glob("/srv/*/data");
  CHECK(g.matches("/srv/a/data"));
  CHECK(g.matches("/srv/abc/data"));
  CHECK_FALSE(g.matches("/srv/a/b/data"));
  CHECK_FALSE(g.matches("/srv/data"));
  CHECK_FALSE(g.matches("/srv/a/data/x"));
  auto q = glob("/dev/sd?");
  CHECK(q.matches("/dev/sda"));
  CHECK_FALSE(q.matches("/dev/sd"));
  CHECK_FALSE(q.matches("/dev/sdaa"));
  CHECK(q.matches("/dev/sd\xc3\xa9")); // one UTF-8 character
  auto mid = glob("/home/a*c");
  CHECK(mid.matches("/home/abc"));
  CHECK(mid.matches("/home/ac"));
  CHECK(mid.matches("/home/abcbc"));
  CHECK_FALSE(mid.matches("/home/abcd"));
}

TEST_CASE("glob: ** matches zero or more segments") {
  auto g = glob("/srv/projects/**");
  CHECK(g.matches("/srv/projects"));
  CHECK(g.matches("/srv/projects/a"));
  CHECK(g.matches("/srv/projects/a/b/c"));
  CHECK_FALSE(g.matches("/srv/projectsx"));
  CHECK_FALSE(g.matches("/srv"));
  CHECK_FALSE(g.matches("/etc"));
  auto mid = glob("/srv/**/secrets");
  CHECK(mid.matches("/srv/secrets"));
  CHECK(mid.matches("/srv/a/b/secrets"));
  CHECK_FALSE(mid.matches("/srv/a/b/secrets/x"));
  auto all = glob("/**");
  CHECK(all.matches("/"));
  CHECK(all.matches("/etc/passwd"));
}

TEST_CASE("glob: exact patterns and unnormalized paths") {
  auto g = glob("/etc");
  CHECK(g.matches("/etc"));
  CHECK_FALSE(g.matches("/etc/passwd"));
  CHECK_FALSE(g.matches("/"));
  // matches() refuses paths that are not normalized; overlaps() treats them as overlapping.
  auto any = glob("/**");
  CHECK_FALSE(any.matches("relative/path"));
  CHECK_FALSE(any.matches("/srv/../etc"));
  CHECK_FALSE(any.matches("/srv//x"));
  CHECK_FALSE(any.matches("/srv/"));
  CHECK(glob("/nothing/here").overlaps("/srv/../etc"));
  CHECK(glob("/nothing/here").overlaps(""));
}

TEST_CASE("glob: overlaps covers at, under and above") {
  auto sock = glob("/var/run/docker.sock");
  CHECK(sock.overlaps("/var/run/docker.sock"));
  CHECK(sock.overlaps("/var/run/docker.sock/x")); // under
  CHECK(sock.overlaps("/var/run"));               // above: the socket is inside the mount
  CHECK(sock.overlaps("/var"));
  CHECK(sock.overlaps("/"));
  CHECK_FALSE(sock.overlaps("/var/lib"));
  CHECK_FALSE(sock.overlaps("/var/run/docker.sockx"));
  CHECK_FALSE(sock.overlaps("/srv/projects/x"));

  auto plugins = glob("/run/docker/**");
  CHECK(plugins.overlaps("/run/docker"));
  CHECK(plugins.overlaps("/run/docker/plugins/x.sock"));
  CHECK(plugins.overlaps("/run"));
  CHECK_FALSE(plugins.overlaps("/run/user"));

  auto secrets = glob("/srv/projects/*/secrets");
  CHECK(secrets.overlaps("/srv/projects/a/secrets/key"));
  CHECK(secrets.overlaps("/srv/projects/a")); // contains a/secrets
  CHECK_FALSE(secrets.overlaps("/srv/projects/a/src"));
  CHECK_FALSE(secrets.overlaps("/srv/other"));

  auto deep = glob("/a/**/b");
  CHECK(deep.overlaps("/a/x/y")); // /a/x/y/b would match
  CHECK(deep.overlaps("/a/x/b/c"));
  CHECK_FALSE(deep.overlaps("/c"));
}

TEST_CASE("glob: path helpers") {
  CHECK(normalize_absolute_path("/a//b/./c/../d/") == std::optional<std::string>("/a/b/d"));
  CHECK(normalize_absolute_path("/..") == std::optional<std::string>("/"));
  CHECK_FALSE(normalize_absolute_path("a/b").has_value());
  CHECK_FALSE(normalize_absolute_path("").has_value());
  CHECK(is_normalized_absolute_path("/"));
  CHECK(is_normalized_absolute_path("/a/b"));
  CHECK_FALSE(is_normalized_absolute_path("/a/"));
  CHECK_FALSE(is_normalized_absolute_path("/a/./b"));
  CHECK_FALSE(is_normalized_absolute_path("/a/../b"));
  CHECK_FALSE(is_normalized_absolute_path("a"));
}

TEST_CASE("glob: many segments and stars stay fast and correct") {
  auto g = glob("/**/a/**/a/**/a/**/a/**/b");
  std::string path;
  for (int i = 0; i < 200; ++i)
    path += "/a";
  CHECK_FALSE(g.matches(path));
  CHECK(g.matches(path + "/b"));
  auto s = glob("/*a*a*a*a*a*b");
  CHECK_FALSE(s.matches("/" + std::string(500, 'a')));
  CHECK(s.matches("/" + std::string(500, 'a') + "b"));
}

TEST_CASE("glob: {user} templates are bound to the caller's name, fail closed unbound") {
  std::string why;
  auto g = PathGlob::compile("/home/{user}/**", &why);
  REQUIRE_MESSAGE(g, why);
  CHECK(g->has_user_template());
  CHECK(g->text() == "/home/{user}/**");
  // Unbound: matches nothing, overlaps everything.
  CHECK_FALSE(g->matches("/home/alice/src"));
  CHECK(g->overlaps("/opt"));
  auto alice = g->bind_user("alice");
  REQUIRE(alice);
  CHECK_FALSE(alice->has_user_template());
  CHECK(alice->matches("/home/alice/src"));
  CHECK_FALSE(alice->matches("/home/bob/src"));
  CHECK(alice->matches("/home/alice")); // "**" is also zero segments
  CHECK(alice->overlaps("/home"));
  // Names that cannot be one path segment are not bound (callers fail closed).
  for (const char *bad : {"", ".", "..", "a/b", "*", "a?", "[x]", "{user}", "a\\b"}) {
    CAPTURE(bad);
    CHECK_FALSE(g->bind_user(bad));
  }
  // Inside a segment, twice, and a pattern without the template binds to itself.
  auto two = PathGlob::compile("/srv/{user}-data/{user}", &why);
  REQUIRE(two);
  CHECK(two->bind_user("bob")->matches("/srv/bob-data/bob"));
  auto plain = PathGlob::compile("/srv/**", &why);
  REQUIRE(plain);
  CHECK_FALSE(plain->has_user_template());
  CHECK(plain->bind_user("x/y")->matches("/srv/a")); // no template: the name does not matter
  // Other braces and ".." after {user} are errors.
  CHECK_FALSE(PathGlob::compile("/home/{USER}/**", &why));
  CHECK_FALSE(PathGlob::compile("/home/{user}/../etc", &why));
  CHECK_MESSAGE(why.find("{user}") != std::string::npos, why);
}
