#!/usr/bin/env bash
# The full test suite (README command b; CI runs it through .ci/run):
#   1. install Debian packages, build with -Werror, run the unit tests;
#   2. build the unit tests with ASan+UBSan and run them;
#   3. check formatting of the C++ sources;
#   4. end-to-end tests on a real dockerd with TLS users (tests/e2e/run.sh).
# Prints "N passed, N failed" at the end and exits non-zero on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOGDIR="$(mktemp -d /tmp/portcullis-test.XXXXXX)"
passed=0
failed=0
failures=()

step() { echo; echo "=== $* ==="; }

count_doctest() { # file -> adds doctest case counts
  local line p f
  line="$(grep -E '^\[doctest\] test cases:' "$1" | tail -1)"
  p="$(sed -nE 's/.*\| *([0-9]+) passed.*/\1/p' <<<"$line")"
  f="$(sed -nE 's/.*\| *([0-9]+) failed.*/\1/p' <<<"$line")"
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
}

step "dependencies and -Werror build"
if ! scripts/build.sh; then
  echo "BUILD FAILED"; echo "0 passed, 1 failed"; exit 1
fi

step "unit tests"
if build/unit_tests 2>&1 | tee "$LOGDIR/unit.log"; then :; else failures+=("unit tests"); fi
count_doctest "$LOGDIR/unit.log"
grep -qE '^\[doctest\] test cases:' "$LOGDIR/unit.log" || { failed=$((failed + 1)); failures+=("unit tests did not run"); }

step "unit tests under ASan+UBSan"
if BUILD_DIR="$ROOT/build-asan" BUILD_TYPE=Debug scripts/build.sh -DPORTCULLIS_SANITIZE=ON -DPORTCULLIS_BENCH=OFF \
  && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     build-asan/unit_tests 2>&1 | tee "$LOGDIR/asan.log"; then :; else failures+=("sanitizer unit tests"); fi
count_doctest "$LOGDIR/asan.log"
grep -qE '^\[doctest\] test cases:' "$LOGDIR/asan.log" || { failed=$((failed + 1)); failures+=("sanitizer unit tests did not run"); }

step "formatting (clang-format)"
if scripts/check-format.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("formatting"); fi

step "end-to-end tests on a real dockerd"
if tests/e2e/run.sh 2>&1 | tee "$LOGDIR/e2e.log"; then :; else failures+=("e2e"); fi
line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOGDIR/e2e.log" | tail -1)"
if [ -n "$line" ]; then
  passed=$((passed + $(cut -d' ' -f1 <<<"$line")))
  failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
else
  failed=$((failed + 1)); failures+=("e2e did not report")
fi

echo
echo "=== summary ==="
((${#failures[@]})) && printf 'FAILED: %s\n' "${failures[@]}"
echo "logs: $LOGDIR"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
