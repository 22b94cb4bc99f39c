#!/usr/bin/env bash
# Starts Debian's docker-registry on loopback (in memory) and runs portcullis-signature-bench
# against it: the cost of a cached and of a cold signature check next to a create decision.
#   bench/signature_run.sh [BUILD_DIR]    (default build; figures go to docs/PERFORMANCE.md)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
command -v docker-registry >/dev/null || "$ROOT/scripts/install-deps.sh"
[[ -x "$BUILD/bench/portcullis-signature-bench" ]] ||
  cmake --build "$BUILD" -j2 --target portcullis-signature-bench
DIR=$(mktemp -d /tmp/pc-sigbench.XXXXXX)
PORT=$((20000 + RANDOM % 40000))
printf 'version: 0.1\nlog: {level: error}\nstorage: {inmemory: {}}\nhttp: {addr: 127.0.0.1:%s}\n' \
  "$PORT" >"$DIR/registry.yml"
docker-registry serve "$DIR/registry.yml" >"$DIR/registry.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
"$BUILD/bench/portcullis-signature-bench" --registry "127.0.0.1:$PORT" \
  --policy "$ROOT/examples/policy.yaml" --users "$ROOT/examples/users.yaml" "${@:2}"
