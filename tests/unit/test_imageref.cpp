#include "plugin/imageref.hpp"

#include <doctest/doctest.h>
#include <vector>

using namespace portcullis;

namespace {
const std::string kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

ImageRef ok(std::string_view s, bool default_tag = true) {
  auto r = parse_image_ref(s, default_tag);
  INFO("ref: ", std::string(s));
  REQUIRE(r.has_value());
  CHECK(r->raw == s);
  return *r;
}
} // namespace

TEST_CASE("imageref: Docker Hub defaults") {
  auto r = ok("busybox");
  CHECK(r.registry == "docker.io");
  CHECK(r.repository == "library/busybox");
  CHECK(r.tag == "latest");
  CHECK(r.digest.empty());
  CHECK_FALSE(r.is_id);
  CHECK(image_ref_string(r) == "docker.io/library/busybox:latest");

  auto u = ok("someuser/app:1.2");
  CHECK(u.registry == "docker.io");
  CHECK(u.repository == "someuser/app");
  CHECK(u.tag == "1.2");

  CHECK(ok("docker.io/busybox").repository == "library/busybox");
  CHECK(ok("index.docker.io/library/busybox").registry == "docker.io");
  CHECK(ok("docker.io/library/busybox:1").tag == "1");
}

TEST_CASE("imageref: registries") {
  auto r = ok("registry.example.com:5000/team/app:v1");
  CHECK(r.registry == "registry.example.com:5000");
  CHECK(r.repository == "team/app");
  CHECK(r.tag == "v1");
  CHECK(ok("localhost/app").registry == "localhost");
  CHECK(ok("localhost:5000/app").registry == "localhost:5000");
  CHECK(ok("127.0.0.1:5000/app").registry == "127.0.0.1:5000");
  CHECK(ok("[::1]:5000/app").registry == "[::1]:5000");
  CHECK(ok("Registry.Example.COM/app").registry == "Registry.Example.COM"); // domains may be upper
  // "localhost:5000" alone is repository "localhost" with tag "5000"
  auto lt = ok("localhost:5000");
  CHECK(lt.registry == "docker.io");
  CHECK(lt.repository == "library/localhost");
  CHECK(lt.tag == "5000");
  // single component without '.' ':' or localhost is not a registry
  auto two = ok("myregistry/app");
  CHECK(two.registry == "docker.io");
  CHECK(two.repository == "myregistry/app");
  // no "library/" for other registries or nested names
  CHECK(ok("ghcr.io/app").repository == "app");
}

TEST_CASE("imageref: digests and IDs") {
  auto d = ok("busybox@sha256:" + kHex);
  CHECK(d.digest == "sha256:" + kHex);
  CHECK(d.tag.empty());
  CHECK(d.repository == "library/busybox");
  auto td = ok("ghcr.io/a/b:1@sha256:" + kHex);
  CHECK(td.tag == "1");
  CHECK(td.digest == "sha256:" + kHex);
  CHECK(image_ref_string(td) == "ghcr.io/a/b:1@sha256:" + kHex);

  auto id = ok(kHex);
  CHECK(id.is_id);
  CHECK(id.digest == "sha256:" + kHex);
  CHECK(id.registry.empty());
  CHECK(id.repository.empty());
  CHECK(image_ref_string(id) == "sha256:" + kHex);
  CHECK(ok("sha256:" + kHex).is_id);

  // a short hex string is a valid repository name (documented: the daemon may still resolve it
  // as an ID prefix)
  auto shortid = ok("abc123");
  CHECK_FALSE(shortid.is_id);
  CHECK(shortid.repository == "library/abc123");

  CHECK_FALSE(parse_image_ref("busybox@sha256:abc").has_value());
  CHECK_FALSE(parse_image_ref("busybox@sha512:" + kHex).has_value());
  CHECK_FALSE(parse_image_ref("busybox@sha256:" + std::string(64, 'A')).has_value());
  CHECK_FALSE(parse_image_ref("busybox@").has_value());
}

TEST_CASE("imageref: invalid references") {
  for (std::string bad : std::vector<std::string>{"",
                                                  "Busybox",
                                                  "docker.io/Library/busybox",
                                                  "Foo/bar",
                                                  "busybox:",
                                                  "busybox:-x",
                                                  ":tag",
                                                  "a//b",
                                                  "/busybox",
                                                  "busybox/",
                                                  "bad_host:x/app",
                                                  "-busybox",
                                                  "busy--",
                                                  "a__-b",
                                                  "a...b",
                                                  "busy box",
                                                  "registry:port/x",
                                                  "ex ample.com/x",
                                                  "UPPER.example.com/Repo",
                                                  std::string(256, 'a'),
                                                  "busybox:" + std::string(129, 't'),
                                                  "a@b@c"}) {
    INFO("ref: ", bad);
    CHECK_FALSE(parse_image_ref(bad).has_value());
  }
  // separators that are allowed
  CHECK(ok("a__b").repository == "library/a__b");
  CHECK(ok("a---b.c_d").repository == "library/a---b.c_d");
  CHECK(ok("busybox:_Tag.-1").tag == "_Tag.-1");
}

TEST_CASE("imageref: default_tag=false keeps the tag empty") {
  auto r = ok("busybox", false);
  CHECK(r.tag.empty());
  CHECK(ok("busybox:1", false).tag == "1");
}

TEST_CASE("imageref: tag and digest validators") {
  CHECK(is_valid_image_tag("latest"));
  CHECK(is_valid_image_tag("_x"));
  CHECK_FALSE(is_valid_image_tag(".x"));
  CHECK_FALSE(is_valid_image_tag(""));
  CHECK_FALSE(is_valid_image_tag("a:b"));
  CHECK(is_valid_image_digest("sha256:" + kHex));
  CHECK_FALSE(is_valid_image_digest("sha256:" + kHex + "0"));
}
