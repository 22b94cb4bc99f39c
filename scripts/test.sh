#!/usr/bin/env bash
# The full test suite (README command b; CI runs it through .ci/run):
#   1. install Debian packages, build with -Werror, run the unit tests;
#   2. build the unit tests with ASan+UBSan and run them;
#   3. check formatting of the C++ sources;
#   4. LDAP: the slapd harness self-test, the LDAP client's integration tests against a real slapd
#      (plain and ASan+UBSan builds);
#   5. end-to-end tests on a real dockerd with TLS users (tests/e2e/run.sh), and with an LDAP
#      directory (tests/e2e/ldap.sh), and signature enforcement with a real docker-registry
#      (tests/e2e/signing.sh).
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

# ldap_suite NAME BINARY: runs a doctest binary against a fresh slapd harness.
ldap_suite() {
  local name=$1 bin=$2 dir log="$LOGDIR/$1.log"
  dir="$(mktemp -d /tmp/pc-ldap.XXXXXX)"
  rmdir "$dir"
  if ! tests/ldap/slapd.sh start "$dir" --rogue >"$LOGDIR/$name-slapd.log" 2>&1; then
    cat "$LOGDIR/$name-slapd.log"
    failed=$((failed + 1)); failures+=("$name: slapd harness did not start")
    return
  fi
  # lsan.supp: a known libldap/GnuTLS leak of TLS contexts (see the file); nothing of ours.
  if PORTCULLIS_LDAP_ENV="$dir/env.json" LSAN_OPTIONS="suppressions=$ROOT/tests/ldap/lsan.supp" \
     ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$bin" 2>&1 | tee "$log"; then :; else failures+=("$name"); fi
  tests/ldap/slapd.sh cleanup "$dir" >/dev/null 2>&1 || true
  count_doctest "$log"
  grep -qE '^\[doctest\] test cases:' "$log" || { failed=$((failed + 1)); failures+=("$name did not run"); }
}

step "fuzzing (libFuzzer, 20 s per target; docs/FUZZING.md)"
if scripts/fuzz.sh 20 2>&1 | tee "$LOGDIR/fuzz.log"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  failures+=("fuzzing")
fi

step "LDAP harness self-test (real slapd)"
if tests/ldap/selftest.sh 2>&1 | tee "$LOGDIR/ldap-selftest.log"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); failures+=("LDAP harness self-test")
fi

step "LDAP client against a real slapd"
ldap_suite ldap-tests build/ldap_tests

step "LDAP client against a real slapd under ASan+UBSan"
ldap_suite ldap-tests-asan build-asan/ldap_tests

# e2e_suite NAME SCRIPT: runs an end-to-end script that ends with "N passed, N failed".
e2e_suite() {
  local name=$1 script=$2 line
  if "$script" 2>&1 | tee "$LOGDIR/$name.log"; then :; else failures+=("$name"); fi
  line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOGDIR/$name.log" | tail -1)"
  if [ -n "$line" ]; then
    passed=$((passed + $(cut -d' ' -f1 <<<"$line")))
    failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
  else
    failed=$((failed + 1)); failures+=("$name did not report")
  fi
}

step "end-to-end tests on a real dockerd"
e2e_suite e2e tests/e2e/run.sh

step "bypass classes on a real dockerd (raw HTTP)"
e2e_suite e2e-bypass tests/e2e/bypass.sh

step "end-to-end tests on a real dockerd with an LDAP directory"
e2e_suite e2e-ldap tests/e2e/ldap.sh

step "image signatures on a real dockerd and a real registry"
e2e_suite e2e-signing tests/e2e/signing.sh

echo
echo "=== summary ==="
((${#failures[@]})) && printf 'FAILED: %s\n' "${failures[@]}"
echo "logs: $LOGDIR"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
