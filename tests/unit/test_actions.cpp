#include "policy/actions.hpp"

#include <doctest/doctest.h>

using namespace portcullis;

TEST_CASE("action patterns") {
  CHECK(action_pattern_matches("*", "container.create"));
  CHECK(action_pattern_matches("container.*", "container.create"));
  CHECK(action_pattern_matches("container.*", "container.archive.put"));
  CHECK_FALSE(action_pattern_matches("container.*", "containerx.create"));
  CHECK_FALSE(action_pattern_matches("container.*", "container"));
  CHECK_FALSE(action_pattern_matches("build.*", "build"));
  CHECK(action_pattern_matches("build", "build"));
  CHECK_FALSE(action_pattern_matches("container.create", "container.createx"));
  // Unrecognised routes are never covered by a wildcard.
  CHECK_FALSE(action_pattern_matches("*", "unknown"));
  CHECK(action_pattern_matches("unknown", "unknown"));
  CHECK(action_pattern_is_valid("*"));
  CHECK(action_pattern_is_valid("plugin.*"));
  CHECK(action_pattern_is_valid("unknown"));
  CHECK_FALSE(action_pattern_is_valid("nosuch.*"));
  CHECK_FALSE(action_pattern_is_valid("container.creat"));
  CHECK(is_known_action("container.exec"));
  CHECK_FALSE(is_known_action("container.*"));
}
