#!/usr/bin/env bash
# bench/run.sh: the portcullis benchmark (docs/PERFORMANCE.md). Prints figures; gates nothing.
#
#   bench/run.sh [--direct-only | --dockerd-only] [--duration SEC] [--connections N]
#
# 1. direct: the floor plugin (bench/floor_plugin.cpp, allows everything without parsing) and
#    portcullis (examples/policy.yaml + examples/users.yaml) on temp unix sockets; portcullis-bench
#    POSTs dockerd-shaped /AuthZPlugin.AuthZReq (TLS user alice, docker-CLI container create,
#    real client certificate) to both, interleaved in rounds.
# 2. through dockerd: three sandbox dockerds (no plugin, floor plugin, portcullis); GET
#    /v1.41/containers/json on each daemon's unix socket (caller "local"), interleaved.
#
# PORTCULLIS_BIN measures another portcullis binary (default: the Release one built here).
# BENCH_POLICY / BENCH_USERS override the policy and users files (they must allow `local`).
# Builds Release binaries in $BENCH_BUILD_DIR (default <repo>/build-bench) when needed. Uses
# scripts/lib/sandbox.sh for temp dirs, certificates, portcullis and dockerd start/stop; all
# sockets are unix sockets under a temp dir or /run/docker/plugins/<unique name>.sock, and
# everything is stopped and removed on exit (also on failure or Ctrl-C).
# Exit status: 0 when every measured request succeeded, 1 otherwise (the figures are then
# meaningless), 2 on usage errors.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$REPO/build-bench}
DURATION=5
CONNECTIONS=4
ROUNDS=5
RUN_DIRECT=1
RUN_DOCKERD=1
POLICY=${BENCH_POLICY:-$REPO/examples/policy.yaml}
USERS=${BENCH_USERS:-$REPO/examples/users.yaml}
while (($#)); do
  case $1 in
  --direct-only) RUN_DOCKERD=0 ;;
  --dockerd-only) RUN_DIRECT=0 ;;
  --duration)
    DURATION=${2:?}
    shift
    ;;
  --connections)
    CONNECTIONS=${2:?}
    shift
    ;;
  -h | --help)
    sed -n '2,22p' "$0"
    exit 0
    ;;
  *)
    echo "bench/run.sh: unknown argument $1 (see --help)" >&2
    exit 2
    ;;
  esac
  shift
done

# --- build (Release: the floor, the client and portcullis itself, same flags) ---------------
if ! command -v cmake >/dev/null; then "$REPO/scripts/install-deps.sh" >&2; fi
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPORTCULLIS_TESTS=OFF >&2
fi
targets=(portcullis-floor portcullis-bench)
[[ -n "${PORTCULLIS_BIN:-}" ]] || targets+=(portcullis) # else: measure the given binary
make -C "$BUILD" -j2 "${targets[@]}" >&2
BENCH=$BUILD/bench/portcullis-bench
FLOOR=$BUILD/bench/portcullis-floor
export PORTCULLIS_BIN=${PORTCULLIS_BIN:-$BUILD/portcullis}

# shellcheck source=scripts/lib/sandbox.sh
source "$REPO/scripts/lib/sandbox.sh"
sb_init pcbench
BASE=$SB_DIR
FLOOR_NAME=$SB_PLUGIN-floor
FLOOR_SOCK=/run/docker/plugins/$FLOOR_NAME.sock # v1 discovery path of plugin $FLOOR_NAME
FLOOR_PID=""
declare -A DOCKERD_PID=() DOCKERD_SOCK=()

# shellcheck disable=SC2317 # invoked through the EXIT trap
bench_cleanup() {
  local rc=$?
  set +e
  local name
  for name in "${!DOCKERD_PID[@]}"; do kill -TERM "${DOCKERD_PID[$name]}" 2>/dev/null; done
  for name in "${!DOCKERD_PID[@]}"; do
    SB_DIR=$BASE/$name SB_DOCKERD_PID=${DOCKERD_PID[$name]}
    sb_stop_dockerd
    sb_umount_under "$SB_DIR"
  done
  DOCKERD_PID=()
  if [[ -n "$FLOOR_PID" ]]; then
    kill -TERM "$FLOOR_PID" 2>/dev/null
    sb_wait_pid_gone "$FLOOR_PID" 10 || kill -KILL "$FLOOR_PID" 2>/dev/null
  fi
  rm -f "$FLOOR_SOCK"
  SB_DIR=$BASE
  (exit "$rc")
  sb_cleanup # stops portcullis, removes its socket and $BASE
}
trap bench_cleanup EXIT

# start_dockerd NAME PLUGIN: a sandbox dockerd under $BASE/NAME ("" PLUGIN = no authz plugin).
start_dockerd() {
  local name=$1 plugin=$2
  SB_DIR=$BASE/$name
  mkdir -p "$SB_DIR"
  SB_DOCKER_SOCK=$SB_DIR/docker.sock
  SB_CERTS="" # unix socket only: no TCP listener, so the three daemons never compete for a port
  sb_start_dockerd "$plugin"
  DOCKERD_PID[$name]=$SB_DOCKERD_PID
  DOCKERD_SOCK[$name]=$SB_DOCKER_SOCK
  SB_DOCKERD_PID=""
  SB_DIR=$BASE
}

# field FILE TARGET KEY: a value from portcullis-bench's "RESULT target=... key=value" lines.
field() {
  awk -v t="target=$2" -v k="$3" '$1 == "RESULT" && $2 == t {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v r="$1" -v g="$2" -v op="$3" 'BEGIN {
  if (r == "n/a") print "n/a"; else if ((op == ">=" && r >= g) || (op == "<=" && r <= g)) print "met";
  else print "NOT met" }'; }
errors_of() { awk '$1 == "RESULT" { for (i = 3; i <= NF; i++) if ($i ~ /^errors=/ && $i != "errors=0") bad = 1;
  for (i = 3; i <= NF; i++) if ($i == "requests=0") bad = 1 } END { print bad ? 1 : 0 }' "$1"; }

# --- plugins ------------------------------------------------------------------------------
sb_gen_certs alice >/dev/null
ALICE_CERT=$SB_CERTS/alice/cert.pem
SB_CERTS=""
[[ -f "$POLICY" && -f "$USERS" ]] || sb_die "missing $POLICY or $USERS"
sb_write_config "$BASE/portcullis.yaml" "$POLICY" "$USERS"
"$FLOOR" --socket "$FLOOR_SOCK" --threads 2 2>>"$BASE/floor.log" &
FLOOR_PID=$!
sb_wait_until 10 curl -sf --unix-socket "$FLOOR_SOCK" -X POST http://p/Plugin.Activate ||
  sb_die "the floor plugin did not start"
sb_start_portcullis "$BASE/portcullis.yaml"

status=0
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
  "$(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "portcullis: $("$PORTCULLIS_BIN" version 2>&1 | head -n 1) ($PORTCULLIS_BIN)," \
  "source $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"

if ((RUN_DIRECT)); then
  echo
  echo "=== direct: AuthZReq decisions/s (floor vs portcullis) ==="
  "$BENCH" --mode authz --connections "$CONNECTIONS" --duration "$DURATION" --rounds "$ROUNDS" \
    --peer-cert "$ALICE_CERT" --target "floor=$FLOOR_SOCK" \
    --target "portcullis=$(sb_plugin_socket)" | tee "$BASE/direct.txt"
fi

if ((RUN_DOCKERD)); then
  echo
  echo "=== through dockerd: GET /v1.41/containers/json over the unix socket (caller: local) ==="
  start_dockerd noplugin ""
  start_dockerd floor "$FLOOR_NAME"
  start_dockerd portcullis "$SB_PLUGIN"
  "$BENCH" --mode http-get --path /v1.41/containers/json --connections "$CONNECTIONS" \
    --duration "$DURATION" --rounds "$ROUNDS" --target "no-plugin=${DOCKERD_SOCK[noplugin]}" \
    --target "floor=${DOCKERD_SOCK[floor]}" --target "portcullis=${DOCKERD_SOCK[portcullis]}" |
    tee "$BASE/dockerd.txt"
fi

echo
echo "=== summary ==="
if ((RUN_DIRECT)); then
  d=$BASE/direct.txt
  r=$(ratio "$(field "$d" portcullis rps)" "$(field "$d" floor rps)")
  allowed=$(field "$d" portcullis allowed)
  echo "decisions/s        floor $(field "$d" floor rps), portcullis $(field "$d" portcullis rps)" \
    "($( ((allowed > 0)) && echo allowed || echo denied) by portcullis)"
  echo "  portcullis/floor decisions/s = $r   (goal >= 0.5: $(verdict "$r" 0.5 '>='))"
  [[ $(errors_of "$d") == 0 ]] || {
    echo "  WARNING: errors in the direct run; figures are not valid"
    status=1
  }
fi
if ((RUN_DOCKERD)); then
  d=$BASE/dockerd.txt
  r=$(ratio "$(field "$d" portcullis p50_us)" "$(field "$d" floor p50_us)")
  echo "API p50 latency    no-plugin $(field "$d" no-plugin p50_us) us, floor" \
    "$(field "$d" floor p50_us) us, portcullis $(field "$d" portcullis p50_us) us"
  echo "  portcullis/floor p50 = $r   (goal <= 1.2: $(verdict "$r" 1.2 '<='))"
  echo "  floor/no-plugin p50 = $(ratio "$(field "$d" floor p50_us)" "$(field "$d" no-plugin p50_us)")" \
    "  (context: the protocol's own cost)"
  echo "  API req/s: portcullis/floor = $(ratio "$(field "$d" portcullis rps)" "$(field "$d" floor rps)")," \
    "floor/no-plugin = $(ratio "$(field "$d" floor rps)" "$(field "$d" no-plugin rps)")"
  [[ $(errors_of "$d") == 0 ]] || {
    echo "  WARNING: errors in the dockerd run; figures are not valid"
    status=1
  }
fi
exit "$status"
