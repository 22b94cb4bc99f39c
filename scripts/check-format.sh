#!/usr/bin/env bash
# Fails when a C++ source differs from .clang-format's layout. `--fix` rewrites them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mapfile -t files < <(git ls-files -- '*.cpp' '*.hpp' 2>/dev/null || find plugin policy tests bench -name '*.[ch]pp')
if [ "${1:-}" = "--fix" ]; then clang-format -i "${files[@]}"; exit 0; fi
clang-format --dry-run -Werror "${files[@]}"
echo "format: ${#files[@]} files OK"
