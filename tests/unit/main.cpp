#define DOCTEST_CONFIG_IMPLEMENT
#include <cstdlib>
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

int main(int argc, char **argv) {
  // Diagnostics are noise in test output; PORTCULLIS_TEST_LOG=debug shows them.
  const char *lvl = std::getenv("PORTCULLIS_TEST_LOG");
  spdlog::set_level(lvl ? spdlog::level::from_str(lvl) : spdlog::level::off);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
