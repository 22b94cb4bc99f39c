#include "plugin/uri.hpp"

#include <doctest/doctest.h>

using namespace portcullis;

namespace {
ParsedUri ok(std::string_view raw) {
  UriResult r = parse_request_uri(raw);
  INFO("uri: ", std::string(raw), " error: ", r.error);
  REQUIRE(r.uri.has_value());
  CHECK(r.error.empty());
  return *r.uri;
}
std::string bad(std::string_view raw) {
  UriResult r = parse_request_uri(raw);
  INFO("uri: ", std::string(raw));
  CHECK_FALSE(r.uri.has_value());
  CHECK_FALSE(r.error.empty());
  return r.error;
}
} // namespace

TEST_CASE("uri: origin-form with version prefix") {
  auto u = ok("/v1.41/containers/json?all=1");
  CHECK(u.path == "/containers/json");
  CHECK(u.api_version == "1.41");
  CHECK(u.query.first("all") == "1");
  auto v = ok("/containers/json");
  CHECK(v.path == "/containers/json");
  CHECK(v.api_version.empty());
  CHECK(v.query.items.empty());
}

TEST_CASE("uri: percent-decoding happens before routing") {
  CHECK(ok("/v1.41/%63ontainers/create").path == "/containers/create");
  CHECK(ok("/containers/cr%65ate").path == "/containers/create");
  CHECK(ok("/%761.41/containers/json").api_version == "1.41"); // %76 = 'v'
  // %2F becomes a real '/' before mux sees the path
  CHECK(ok("/images/docker.io%2Flibrary%2Fbusybox/json").path ==
        "/images/docker.io/library/busybox/json");
  // '+' is literal in a path
  CHECK(ok("/containers/a+b/json").path == "/containers/a+b/json");
}

TEST_CASE("uri: absolute-form") {
  auto u = ok("http://localhost/v1.47/containers/create?name=x");
  CHECK(u.path == "/containers/create");
  CHECK(u.api_version == "1.47");
  CHECK(u.query.first("name") == "x");
  CHECK(ok("HTTPS://docker:2376/_ping").path == "/_ping");
  CHECK(ok("http://host").path == "/");
  CHECK(ok("http://host?x=1").query.first("x") == "1");
  CHECK(ok("http://[::1]:2375/info").path == "/info");
  bad("ftp://host/containers/json");
  bad("http://user@host/containers/json");
  bad("containers/json");
  bad("*");
  bad("");
  bad("//host/containers/json"); // origin-form "//..." is an unclean path
}

TEST_CASE("uri: unclean paths are refused") {
  bad("/containers//json");
  bad("/containers/./json");
  bad("/containers/x/../y/json");
  bad("/containers/x/%2e%2e/json");
  bad("/containers/x%2F..%2Fy/json");
  bad("/containers/x/.");
  bad("/v1.41//containers/json");
  // a single trailing slash is kept (mux routes GET /networks/)
  CHECK(ok("/networks/").path == "/networks/");
  CHECK(ok("/").path == "/");
  // "..." and ".x" are ordinary names
  CHECK(ok("/containers/.../json").path == "/containers/.../json");
}

TEST_CASE("uri: bad escapes, NUL, controls, fragments") {
  bad("/containers/%zz/json");
  bad("/containers/%4/json");
  bad("/containers/abc%");
  bad("/containers/a%00b/json");
  bad("/containers/a%0ab/json");
  bad("/containers/a%7fb/json");
  bad("/containers/a%ffb/json"); // not UTF-8
  bad("/containers/json#frag");
  bad("/containers/json?x=1#frag");
  bad("/containers/a b/json");
  bad("/containers/\x01/json");
}

TEST_CASE("uri: API versions") {
  CHECK(ok("/v1.24/info").api_version == "1.24");
  CHECK(ok("/v10.100/info").api_version == "10.100");
  bad("/v1/info");
  bad("/v1.2.3/info");
  bad("/v../info");
  bad("/v.41/info");
  bad("/v1./info");
  // only one prefix is stripped; "/v1.41" alone is not a version prefix
  CHECK(ok("/v1.41/v1.41/info").path == "/v1.41/info");
  CHECK(ok("/v1.41").path == "/v1.41");
  CHECK(ok("/v1.41").api_version.empty());
  // "vx" is not a version
  CHECK(ok("/vx/info").path == "/vx/info");
}

TEST_CASE("uri: query follows Go url.ParseQuery") {
  auto u = ok("/images/create?fromImage=busy%62ox&tag=1+0&%6eame=a&empty&&x=");
  CHECK(u.query.first("fromImage") == "busybox");
  CHECK(u.query.first("tag") == "1 0");
  CHECK(u.query.first("name") == "a");
  CHECK(u.query.first("empty") == "");
  CHECK(u.query.first("x") == "");
  CHECK_FALSE(u.query.first("missing").has_value());
  CHECK(u.query.count("empty") == 1);

  auto d = ok("/containers/create?name=first&name=second");
  CHECK(d.query.count("name") == 2);
  CHECK(d.query.first("name") == "first"); // the daemon uses the first value
  CHECK(d.query.items.size() == 2);
  CHECK(d.query.items[1].second == "second");

  // keys are case-sensitive
  CHECK_FALSE(ok("/x?Name=a").query.first("name").has_value());

  std::string e = bad("/containers/json?a=1;b=2");
  CHECK(e.find(';') != std::string::npos);
  bad("/containers/json?a=%zz");
  bad("/containers/json?a%=1");
  bad("/containers/json?a=%ff");

  // the path part of "?aaa=/start" is not part of the path
  auto p = ok("/containers/aa/pause?aaa=/start");
  CHECK(p.path == "/containers/aa/pause");
  CHECK(p.query.first("aaa") == "/start");
}

TEST_CASE("uri: helpers") {
  CHECK(is_clean_path("/a/b/"));
  CHECK_FALSE(is_clean_path("a/b"));
  CHECK_FALSE(is_clean_path(""));
  CHECK_FALSE(is_clean_path("/a/.."));
  CHECK(is_valid_utf8("h\xC3\xA9llo"));
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));     // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80")); // surrogate
  CHECK_FALSE(is_valid_utf8("\xE2\x84"));     // truncated
  CHECK(percent_decode_path("%41%2f") == std::optional<std::string>("A/"));
  CHECK_FALSE(percent_decode_path("%4").has_value());
}
