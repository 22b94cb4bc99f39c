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

// --- the SAX builder (one pass: DOM + checks) ------------------------------------------------

TEST_CASE("gojson: duplicates are refused at every depth, in objects inside arrays too") {
  const char *dups[] = {
      R"({"a":1,"A":2})",
      R"({"x":{"a":1,"b":{"Key":1,"\u212aey":2}}})",                    // depth 3, Kelvin sign
      R"({"x":[{"ok":1},{"Seccomp":1,"\u017feccomp":2}]})",             // object inside an array
      R"([[[{"p":{"q":[{"Privileged":false,"PRIVILEGED":true}]}}]]])",  // depth 7
      R"({"HostConfig":{"Binds":[],"CapAdd":[],"binds":["/:/host"]}})", // not adjacent
  };
  for (const char *d : dups) {
    CAPTURE(d);
    auto r = parse_json_strict(d, limits());
    CHECK_FALSE(r.value);
    CHECK(r.error.find("duplicate JSON key") != std::string::npos);
  }
  // Keys of a closed object do not leak into its parent or its siblings.
  auto ok =
      parse_json_strict(R"({"a":{"b":{"c":1},"c":2},"b":{"a":1},"c":[{"a":1},{"a":2}]})", limits());
  REQUIRE(ok.value);
  CHECK((*ok.value)["a"]["c"] == 2);
  CHECK((*ok.value)["c"][1]["a"] == 2);
}

TEST_CASE("gojson: many keys (hash collisions are confirmed, never assumed)") {
  std::string doc = "{";
  for (int i = 0; i < 2000; ++i)
    doc += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  auto many = parse_json_strict(doc + "}", limits());
  REQUIRE(many.value);
  CHECK(many.value->size() == 2000);
  CHECK((*many.value)["k1999"] == 1999);
  auto dup = parse_json_strict(doc + ",\"K1000\":0}", limits());
  CHECK_FALSE(dup.value);
  CHECK(dup.error.find("duplicate JSON key \"K1000\"") != std::string::npos);
}

TEST_CASE("gojson: depth limit exactly at the boundary, objects and arrays alike") {
  for (int limit : {1, 2, 5, 64}) {
    CAPTURE(limit);
    JsonLimits l;
    l.max_depth = limit;
    auto nest = [](int n, bool objects) {
      std::string s;
      for (int i = 0; i < n; ++i)
        s += objects ? "{\"a\":" : "[";
      s += "1";
      for (int i = 0; i < n; ++i)
        s += objects ? "}" : "]";
      return s;
    };
    CHECK(parse_json_strict(nest(limit, true), l).value);
    CHECK(parse_json_strict(nest(limit, false), l).value);
    auto over_o = parse_json_strict(nest(limit + 1, true), l);
    auto over_a = parse_json_strict(nest(limit + 1, false), l);
    CHECK_FALSE(over_o.value);
    CHECK_FALSE(over_a.value);
    CHECK(over_o.error == "JSON nesting deeper than " + std::to_string(limit));
    CHECK(over_a.error == "JSON nesting deeper than " + std::to_string(limit));
    // siblings do not add up: depth is nesting, not the number of containers
    std::string wide = "[" + nest(limit - 1, false) + "," + nest(limit - 1, true) + "]";
    CHECK(parse_json_strict(wide, l).value);
  }
  JsonLimits none;
  none.max_depth = 0;
  CHECK(parse_json_strict("1", none).value); // scalars have no depth
  CHECK_FALSE(parse_json_strict("[]", none).value);
}

TEST_CASE("gojson: the document is built exactly as nlohmann builds it") {
  const std::string doc =
      R"({"s":"caf\u00e9 \"q\" \\ \n","i":-42,"u":18446744073709551615,"f":1.5e3,"t":true,)"
      R"("n":null,"e":{},"ea":[],"a":[1,"two",[3],{"four":4}],"big":12345678901234567890123})";
  auto r = parse_json_strict(doc, limits());
  REQUIRE(r.value);
  CHECK(*r.value == nlohmann::json::parse(doc));
  CHECK((*r.value)["u"].is_number_unsigned());
  CHECK((*r.value)["i"].is_number_integer());
  CHECK((*r.value)["big"].is_number_float());
  for (const char *scalar : {"1", "\"x\"", "null", "true", "-0.5"}) {
    CAPTURE(scalar);
    auto s = parse_json_strict(scalar, limits());
    REQUIRE(s.value);
    CHECK(*s.value == nlohmann::json::parse(scalar));
  }
}

TEST_CASE("gojson: syntax errors keep nlohmann's position and kind, not the content") {
  // The exact texts the earlier DOM-with-callback parser produced (checked against it).
  auto r = parse_json_strict(R"({"Env":["SECRET=hunter2"] "x"})", limits());
  CHECK_FALSE(r.value);
  CHECK(r.error == "malformed JSON: parse error at line 1, column 29: syntax error while parsing "
                   "object - unexpected string literal; expected '}'");
  auto trailing = parse_json_strict("{} []", limits());
  CHECK_FALSE(trailing.value);
  CHECK(trailing.error == "malformed JSON: parse error at line 1, column 4: syntax error while "
                          "parsing value - unexpected '['; expected end of input");
  auto utf8 = parse_json_strict("{\"a\xff\":1}", limits()); // invalid UTF-8 in a key
  CHECK_FALSE(utf8.value);
  CHECK(utf8.error == "malformed JSON: parse error at line 1, column 4: syntax error while "
                      "parsing object key - invalid string: ill-formed UTF-8 byte");
}

TEST_CASE("gojson: go_field returns what a scan of every member would") {
  auto r = parse_json_strict(
      R"({"Ab":1,"aB":0,"Binds":2,"Cap":3,"Kelvin":4,"Sea":5,"\u017fub":6,"\u212aey":7,)"
      R"("":8,"\u00e9t\u00e9":9,"z":10})",
      limits());
  // parse_json_strict refuses "Ab"/"aB"; build an object with folded duplicates by hand to
  // check the lookup order on documents that did not come from the strict parser.
  CHECK_FALSE(r.value);
  nlohmann::json o = {{"Ab", 1},
                      {"aB", 0},
                      {"ab", -1},
                      {"Binds", 2},
                      {"Cap", 3},
                      {"Kelvin", 4},
                      {"Sea", 5},
                      {"\xC5\xBFub", 6},
                      {"sub", -6},
                      {"\xE2\x84\xAA"
                       "ey",
                       7},
                      {"", 8},
                      {"\xC3\xA9t\xC3\xA9", 9},
                      {"z", 10},
                      {"KEY", 11}};
  auto scan = [&](std::string_view field) -> const nlohmann::json * {
    const std::string want = go_fold(field);
    for (auto it = o.begin(); it != o.end(); ++it)
      if (go_fold(it.key()) == want) return &it.value();
    return nullptr;
  };
  for (const char *f : {"AB", "ab", "binds", "BINDS", "cap", "kelvin", "SEA", "sub", "SUB", "key",
                        "Key", "", "\xC3\xA9t\xC3\xA9", "z", "Z", "missing", "\xC5\xBFUB", "k"}) {
    CAPTURE(f);
    CHECK(go_field(o, f) == scan(f));
  }
  CHECK(*go_field(o, "ab") == 1); // "Ab" sorts first
  CHECK(*go_field(o, "key") == 11);
  CHECK(*go_field(o, "sub") == -6); // "sub" < "\u017fub" in byte order
}

TEST_CASE("gojson: duplicate checks cost O(n log n), also for an object of 200 000 keys") {
  // A linear scan over every earlier key made a 1.3 MB body of distinct keys cost seconds of
  // CPU (quadratic): a denial of service by anyone who may send a JSON body.
  StrictStructure s(64);
  REQUIRE(s.open(true));
  const int n = 200000;
  for (int i = 0; i < n; ++i)
    REQUIRE(s.key("k" + std::to_string(i)));
  CHECK(s.probes() < static_cast<std::uint64_t>(2 * n)); // the quadratic scan needed n*n/2
  CHECK_FALSE(s.key("K199999"));                         // still found after folding
  CHECK(s.error().find("duplicate JSON key \"K199999\"") != std::string::npos);
}

TEST_CASE("gojson: duplicates are found in small and big objects and after nested ones") {
  auto check = [](const std::string &doc, const char *dup) {
    CAPTURE(doc);
    auto r = parse_json_strict(doc, JsonLimits{});
    if (!dup) {
      CHECK(r.value.has_value());
      CHECK(r.error.empty());
      return;
    }
    CHECK_FALSE(r.value.has_value());
    CHECK(r.error.find(std::string("duplicate JSON key \"") + dup + "\"") != std::string::npos);
  };
  auto keys = [](const char *prefix, int n) {
    std::string s;
    for (int i = 0; i < n; ++i)
      s +=
          std::string(i ? "," : "") + "\"" + prefix + std::to_string(i) + "\":" + std::to_string(i);
    return s;
  };
  for (int n : {1, 15, 16, 17, 40}) {
    CAPTURE(n);
    // a nested object of n keys, before and after the parent's own keys
    check("{\"a\":1,\"b\":{" + keys("k", n) + "},\"c\":1}", nullptr);
    check("{\"a\":1,\"b\":{" + keys("k", n) + "},\"c\":1,\"A\":2}", "A");
    check("{\"a\":1,\"b\":{" + keys("k", n) + "},\"c\":1,\"B\":2}", "B");
    check("{\"b\":{" + keys("k", n) + ",\"K0\":1},\"c\":1}", "K0");
    check("{" + keys("k", n) + ",\"Ho\\u017ft\":1,\"HOST\":2}", "HOST");
    check("{" + keys("k", n) + ",\"x\":[{" + keys("k", n) + "},{" + keys("k", n) + "}]}", nullptr);
    check("{" + keys("k", n) + ",\"x\":[{" + keys("k", n) + "}],\"K" + std::to_string(n - 1) +
              "\":0}",
          ("K" + std::to_string(n - 1)).c_str());
    // siblings with the same keys are fine; the nested object's keys do not leak into them
    check("{\"p\":{" + keys("k", n) + "},\"q\":{" + keys("k", n) + "}}", nullptr);
  }
}
