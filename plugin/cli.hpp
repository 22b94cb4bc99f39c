#pragma once

namespace portcullis {
// The command-line interface; main() only calls this.
int run_cli(int argc, char **argv);
} // namespace portcullis
