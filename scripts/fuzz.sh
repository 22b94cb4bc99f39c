#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) in build-fuzz/ and runs each one for
# SECONDS_PER_TARGET seconds (default 20, the CI run) over a scratch copy of its seed corpus.
# Exits non-zero when a target crashes, leaks, hits UB or breaks one of its invariants, and says
# where the crashing input is. See docs/FUZZING.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     e.g. scripts/fuzz.sh 600 fuzz_policy
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (parallel fuzzing processes per
# target, default 1), FUZZ_OUT (where corpora, logs and crash files go; default a new /tmp dir).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-20}"
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(fuzz_codec fuzz_normalize fuzz_policy)
BUILD_DIR="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
JOBS="${FUZZ_JOBS:-1}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
  echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi

# --- dependencies: the repo's own list, plus clang's libFuzzer runtime --------------------------
"$ROOT/scripts/install-deps.sh" >/dev/null
need=()
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  echo "fuzz: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# --- build -----------------------------------------------------------------------------------
echo "fuzz: building ${TARGETS[*]} in $BUILD_DIR"
CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPORTCULLIS_FUZZ=ON -DPORTCULLIS_TESTS=OFF -DPORTCULLIS_BENCH=OFF -DPORTCULLIS_WERROR=ON \
  >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${TARGETS[@]}"

# --- run -------------------------------------------------------------------------------------
OUT="${FUZZ_OUT:-$(mktemp -d /tmp/portcullis-fuzz.XXXXXX)}"
mkdir -p "$OUT"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
for t in "${TARGETS[@]}"; do
  name="${t#fuzz_}"
  seeds="$ROOT/fuzz/corpus/$name"
  work="$OUT/$name"
  crashes="$OUT/$name-crashes"
  rm -rf "$work" "$crashes"
  mkdir -p "$work" "$crashes"
  cp -r "$seeds/." "$work/" # the fuzzer writes new inputs here, never into the repo
  args=(-max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=2048
    -artifact_prefix="$crashes/" -print_final_stats=1)
  [ -f "$ROOT/fuzz/$name.dict" ] && args+=(-dict="$ROOT/fuzz/$name.dict")
  if [ "$JOBS" -gt 1 ]; then args+=(-jobs="$JOBS" -workers="$JOBS"); fi
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s (log $OUT/$name.log)"
  rc=0
  (cd "$OUT" && "$BUILD_DIR/fuzz/$t" "${args[@]}" "$work") >"$OUT/$name.log" 2>&1 || rc=$?
  [ "$JOBS" -gt 1 ] && cat "$OUT"/fuzz-*.log >>"$OUT/$name.log" 2>/dev/null && rm -f "$OUT"/fuzz-*.log
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|#[0-9]+ +DONE)' \
    "$OUT/$name.log" | tail -3 | sed 's/^/  /' || true
  mapfile -t found < <(find "$crashes" -type f | sort)
  if [ "$rc" -ne 0 ] || ((${#found[@]})); then
    failed+=("$t")
    echo "fuzz: $t FAILED (exit $rc)"
    grep -E 'ERROR: |invariant violated|SUMMARY: |runtime error' "$OUT/$name.log" | head -5 | sed 's/^/  /' || true
    for f in "${found[@]}"; do
      echo "  crash input: $f"
      echo "  reproduce:   $BUILD_DIR/fuzz/$t $f"
    done
  else
    echo "fuzz: $t OK ($(find "$work" -type f | wc -l) corpus entries in $work)"
  fi
done

echo "fuzz: output in $OUT"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all targets passed"
