#!/usr/bin/env bash
# Installs the Debian packages (if missing) and builds portcullis into build/ (or $BUILD_DIR).
# Extra arguments go to cmake's configure step, e.g. -DPORTCULLIS_SANITIZE=ON.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DPORTCULLIS_WERROR=ON "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "build: $BUILD_DIR/portcullis"
