#include "plugin/cli.hpp"

int main(int argc, char **argv) {
  return portcullis::run_cli(argc, argv);
}
