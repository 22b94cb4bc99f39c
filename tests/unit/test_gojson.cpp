#include "plugin/gojson.hpp"

#include <doctest/doctest.h>

using namespace portcullis;

namespace {
JsonLimits limits() {
  return JsonLimits{};
}
} // namespace

TEST_CASE("gojson: go_fold matches Go's encoding/json folding") {
  CHECK(go_fold("Privileged") == "PRIVILEGED");
  CHECK(go_fold("pRiViLeGeD") == "PRIVILEGED");
  CHECK(go_fold("Ho\xC5\xBFtconfig") == "HOSTCONFIG"); // U+017F LONG S
  CHECK(go_fold("Lin\xE2\x84\xAAs") == "LINKS");       // U+212A KELVIN SIGN
  CHECK(go_fold("caf\xC3\xA9") == "CAF\xC3\xA9");      // other runes never reach ASCII
}

TEST_CASE("gojson: go_field finds case-folded keys") {
  auto r = parse_json_strict(R"({"hOsTcOnFiG":{"pRiViLeGeD":true},"Ho\u017ftX":1})", limits());
  REQUIRE(r.value);
  const auto *hc = go_field(*r.value, "HostConfig");
  REQUIRE(hc);
  const auto *p = go_field(*hc, "Privileged");
  REQUIRE(p);
  CHECK(*p == true);
  CHECK(go_field(*r.value, "HostX") != nullptr);
  CHECK(go_field(*r.value, "Missing") == nullptr);
  CHECK(go_field(nlohmann::json::array(), "x") == nullptr);
}

TEST_CASE("gojson: duplicate keys are refused, also after folding") {
  CHECK_FALSE(parse_json_strict(R"({"a":1,"a":2})", limits()).value);
  CHECK_FALSE(parse_json_strict(R"({"Privileged":true,"privileged":false})", limits()).value);
  CHECK_FALSE(parse_json_strict(R"({"HostConfig":{},"Ho\u017ftConfig":{}})", limits()).value);
  CHECK_FALSE(parse_json_strict(R"({"Links":1,"Lin\u212as":2})", limits()).value);
  // the merge trick: Go merges both objects and keeps Privileged=true
  auto merge = parse_json_strict(R"({"HostConfig":{"Privileged":true},"HostConfig":{}})", limits());
  CHECK_FALSE(merge.value);
  CHECK(merge.error.find("duplicate") != std::string::npos);
  // the same key in different objects is fine
  CHECK(parse_json_strict(R"({"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]})", limits()).value);
}

TEST_CASE("gojson: trailing data, depth, size, syntax") {
  CHECK_FALSE(parse_json_strict(R"({"a":1} {"a":2})", limits()).value);
  CHECK_FALSE(parse_json_strict(R"({"a":1}x)", limits()).value);
  CHECK(parse_json_strict("{\"a\":1}\n", limits()).value); // the CLI ends with a newline

  JsonLimits shallow;
  shallow.max_depth = 3;
  CHECK(parse_json_strict("[[[1]]]", shallow).value);
  auto deep = parse_json_strict("[[[[1]]]]", shallow);
  CHECK_FALSE(deep.value);
  CHECK(deep.error.find("deeper") != std::string::npos);
  std::string very_deep(100000, '[');
  CHECK_FALSE(parse_json_strict(very_deep, limits()).value);

  JsonLimits small;
  small.max_bytes = 8;
  CHECK_FALSE(parse_json_strict(R"({"a":"123456"})", small).value);

  CHECK_FALSE(parse_json_strict("", limits()).value);
  CHECK_FALSE(parse_json_strict("{'a':1}", limits()).value);
  CHECK_FALSE(parse_json_strict("{\"a\":1,}", limits()).value);
  CHECK_FALSE(parse_json_strict("{\"a\":1 /* c */}", limits()).value);
  CHECK_FALSE(parse_json_strict("{\"a\":\"\xff\"}", limits()).value);  // invalid UTF-8
  CHECK_FALSE(parse_json_strict(R"({"a":"\ud800"})", limits()).value); // lone surrogate
}

TEST_CASE("gojson: error messages do not echo the body") {
  auto r = parse_json_strict(R"({"Env":["SECRET=hunter2"],)", limits());
  CHECK_FALSE(r.value);
  CHECK(r.error.find("hunter2") == std::string::npos);
  auto r2 = parse_json_strict(R"({"Env":["SECRET=hunter2" x]})", limits());
  CHECK_FALSE(r2.value);
  CHECK(r2.error.find("hunter2") == std::string::npos);
}
