#!/usr/bin/env bash
# bench/ldap_run.sh: the LDAP directory benchmark of issue 3 (docs/PERFORMANCE.md, "LDAP
# directory"). Prints figures; gates nothing.
#
#   bench/ldap_run.sh [--duration SEC] [--connections N] [--rounds R] [--direct-only]
#
# 1. Builds Release binaries in $BENCH_BUILD_DIR (default <repo>/build-bench, as bench/run.sh).
# 2. Starts a real slapd (tests/ldap/slapd.sh, fixture tests/ldap/fixture.ldif) and adds 50
#    users bench-u00..bench-u49 (members of cn=developers, so nested in cn=docker-users).
# 3. Starts TWO portcullis instances with the same policy (examples/ldap/policy.yaml):
#    "file": a users file giving alice the same two group DNs slapd gives her;
#    "ldap": the LDAP directory (LDAPS, member+posix strategies, positive_ttl 1h: warm cache).
# 4. portcullis-bench --mode authz (container create by alice, her real client certificate)
#    against both, interleaved in rounds: alice is in docker-admins -> admin -> allowed.
# 5. portcullis-ldap-bench (bench/ldap_bench.cpp): cold lookups, warm hit cost next to the file
#    directory, hit rate with a short TTL (at 4000 and at 250 req/s), and whole decisions
#    (AuthzService::handle) with either directory in process, no sockets. Skipped with
#    --direct-only.
# 6. Summary: ldap/file decisions/s (goal >= 0.9, i.e. within 10 %).
#
# PORTCULLIS_BIN measures another portcullis binary. Everything started is stopped and removed on
# exit (also on failure or Ctrl-C). Exit status: 0 when every measured request succeeded and was
# allowed, 1 otherwise (the figures are then meaningless), 2 on usage errors.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$REPO/build-bench}
DURATION=5
CONNECTIONS=4
ROUNDS=5
RUN_INPROCESS=1
while (($#)); do
  case $1 in
  --direct-only) RUN_INPROCESS=0 ;;
  --duration)
    DURATION=${2:?}
    shift
    ;;
  --connections)
    CONNECTIONS=${2:?}
    shift
    ;;
  --rounds)
    ROUNDS=${2:?}
    shift
    ;;
  -h | --help)
    sed -n '2,23p' "$0"
    exit 0
    ;;
  *)
    echo "bench/ldap_run.sh: unknown argument $1 (see --help)" >&2
    exit 2
    ;;
  esac
  shift
done

# --- build (Release, the same way as bench/run.sh) ------------------------------------------
if ! command -v cmake >/dev/null; then "$REPO/scripts/install-deps.sh" >&2; fi
command -v slapd >/dev/null || PATH=$PATH:/usr/sbin
if ! command -v slapd >/dev/null || ! command -v ldapmodify >/dev/null; then
  "$REPO/scripts/install-deps.sh" >&2
fi
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPORTCULLIS_TESTS=OFF >&2
fi
targets=(portcullis-bench portcullis-ldap-bench)
[[ -n "${PORTCULLIS_BIN:-}" ]] || targets+=(portcullis) # else: measure the given binary
make -C "$BUILD" -j2 "${targets[@]}" >&2
BENCH=$BUILD/bench/portcullis-bench
LDAP_BENCH=$BUILD/bench/portcullis-ldap-bench
export PORTCULLIS_BIN=${PORTCULLIS_BIN:-$BUILD/portcullis}
SLAPD_SH=$REPO/tests/ldap/slapd.sh
POLICY=$REPO/examples/ldap/policy.yaml

# shellcheck source=scripts/lib/sandbox.sh
source "$REPO/scripts/lib/sandbox.sh"
sb_init pcldapbench
LD=$SB_DIR/ldap
LDAP_SOCK=$SB_PLUGIN_DIR/$SB_PLUGIN-ldap.sock
LDAP_PID=""

# shellcheck disable=SC2317 # invoked through the EXIT trap
ldap_bench_cleanup() {
  local rc=$?
  set +e
  if [[ -n "$LDAP_PID" ]]; then
    kill -TERM "$LDAP_PID" 2>/dev/null
    sb_wait_pid_gone "$LDAP_PID" 10 || kill -KILL "$LDAP_PID" 2>/dev/null
    LDAP_PID=""
  fi
  rm -f "$LDAP_SOCK"
  [[ ! -d "$LD" ]] || "$SLAPD_SH" cleanup "$LD" >/dev/null 2>&1
  (exit "$rc")
  sb_cleanup # stops the file instance, removes its socket and $SB_DIR
}
trap ldap_bench_cleanup EXIT

# field FILE TARGET KEY: a value from portcullis-bench's "RESULT target=... key=value" lines.
field() {
  awk -v t="target=$2" -v k="$3" '$1 == "RESULT" && $2 == t {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

# --- slapd + bench users --------------------------------------------------------------------
"$SLAPD_SH" start "$LD" >"$SB_DIR/slapd-start.log" 2>&1 || {
  cat "$SB_DIR/slapd-start.log" >&2
  exit 1
}
# shellcheck source=/dev/null
source "$LD/env" # LDAP_*, SLAPD_LOG (tests/ldap/README.md)
{
  for i in $(seq -w 0 49); do
    printf 'dn: uid=bench-u%s,%s\nchangetype: add\nobjectClass: inetOrgPerson\n' "$i" "$LDAP_USER_BASE"
    printf 'uid: bench-u%s\ncn: Bench User %s\nsn: User%s\n\n' "$i" "$i" "$i"
  done
  printf 'dn: cn=developers,%s\nchangetype: modify\nadd: member\n' "$LDAP_GROUP_BASE"
  for i in $(seq -w 0 49); do printf 'member: uid=bench-u%s,%s\n' "$i" "$LDAP_USER_BASE"; done
  printf -- '-\n'
} | "$SLAPD_SH" ldapmodify "$LD" - >/dev/null

# --- the two portcullis instances -----------------------------------------------------------
sb_gen_certs alice >/dev/null
ALICE_CERT=$SB_CERTS/alice/cert.pem
SB_CERTS=""
# The file directory matches groups as written: give alice the DNs slapd gives her.
cat >"$SB_DIR/users.yaml" <<'YAML'
users:
  alice: ["cn=docker-admins,ou=groups,dc=example,dc=test", "cn=admins,ou=groups,dc=example,dc=test"]
YAML
sb_write_config "$SB_DIR/file.yaml" "$POLICY" "$SB_DIR/users.yaml"
cat >"$SB_DIR/ldap.yaml" <<YAML
socket: $LDAP_SOCK
socket_mode: "0600"
policy: $POLICY
decision_log: $SB_DIR/ldap-decisions.log
threads: 2
log_level: info
limits: {max_request_bytes: 16777216, max_json_depth: 64}
YAML
sb_ldap_directory_yaml "$LDAPS_URL" \
  "{positive_ttl: 1h, negative_ttl: 30s, refresh_ahead: 0.5, stale_grace: 5m}" >>"$SB_DIR/ldap.yaml"

sb_start_portcullis "$SB_DIR/file.yaml" # SB_PORTCULLIS_PID, socket $(sb_plugin_socket)
"$PORTCULLIS_BIN" serve --config "$SB_DIR/ldap.yaml" >>"$SB_DIR/portcullis-ldap.log" 2>&1 &
LDAP_PID=$!
# shellcheck disable=SC2317 # invoked through sb_wait_until
ldap_ready() {
  curl -sf --max-time 2 --unix-socket "$LDAP_SOCK" -X POST \
    http://plugin.moby.localhost/Plugin.Activate | grep -q authz
}
if ! sb_wait_until 20 ldap_ready; then
  tail -n 20 "$SB_DIR/portcullis-ldap.log" >&2 || true
  sb_die "the LDAP portcullis instance did not answer within 20 s"
fi

# --- measure --------------------------------------------------------------------------------
status=0
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
  "$(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "portcullis: $("$PORTCULLIS_BIN" version 2>&1 | head -n 1) ($PORTCULLIS_BIN)," \
  "source $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
echo "slapd: $LDAPS_URL ($LD)"

echo
echo "=== direct: AuthZReq decisions/s, file directory vs LDAP directory (warm cache) ==="
searches_before=$(grep -c ' SRCH base=' "$SLAPD_LOG" || true)
"$BENCH" --mode authz --connections "$CONNECTIONS" --duration "$DURATION" --rounds "$ROUNDS" \
  --peer-cert "$ALICE_CERT" --target "file=$(sb_plugin_socket)" --target "ldap=$LDAP_SOCK" |
  tee "$SB_DIR/direct.txt"
# How the LDAP instance's decisions were answered (the decision log's cache label).
cache_labels=$(jq -r '.directory_cache // empty' "$SB_DIR/ldap-decisions.log" 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s=%s", sep, $2, $1; sep = ", " }')
searches=$(($(grep -c ' SRCH base=' "$SLAPD_LOG" || true) - searches_before))

if ((RUN_INPROCESS)); then
  echo
  echo "=== in process: portcullis-ldap-bench (same slapd) ==="
  "$LDAP_BENCH" --env "$LD/env.json" --policy "$POLICY" --users "$SB_DIR/users.yaml" \
    --cert "$ALICE_CERT" --body "$REPO/bench/container-create.json" |
    tee "$SB_DIR/inprocess.txt" || status=1
  # The same stream at a dockerd-like rate: rarely seen users now outlive the 1 s TTL.
  "$LDAP_BENCH" --env "$LD/env.json" --parts c --sim-rate 250 --sim-requests 1500 |
    tee -a "$SB_DIR/inprocess.txt" || status=1
fi

echo
echo "=== summary ==="
d=$SB_DIR/direct.txt
r=$(ratio "$(field "$d" ldap rps)" "$(field "$d" file rps)")
echo "decisions/s        file $(field "$d" file rps), ldap $(field "$d" ldap rps)" \
  "(allowed: file $(field "$d" file allowed), ldap $(field "$d" ldap allowed);" \
  "denied: file $(field "$d" file denied), ldap $(field "$d" ldap denied))"
echo "p50 us             file $(field "$d" file p50_us), ldap $(field "$d" ldap p50_us)"
verdict=$(awk -v r="$r" 'BEGIN { if (r == "n/a") print "n/a"; else print (r >= 0.9 ? "met" : "NOT met") }')
echo "  ldap/file decisions/s = $r   (goal >= 0.9: $verdict)"
echo "  ldap decision-log cache labels: ${cache_labels:-none found};" \
  "LDAP searches slapd served during the run: $searches"
for t in file ldap; do
  e=$(field "$d" $t errors)
  a=$(field "$d" $t allowed)
  dn=$(field "$d" $t denied)
  if [[ "$e" != 0 || -z "$a" || "$a" == 0 || "$dn" != 0 ]]; then
    echo "  WARNING: target $t had errors=$e allowed=$a denied=$dn; figures are not valid"
    status=1
  fi
done
if ((RUN_INPROCESS)); then
  awk '$1 == "RESULT" && ($2 == "cold" || $2 == "warm" || $2 == "sim" || $2 == "decide") {
    delete kv; for (i = 3; i <= NF; i++) { split($i, f, "="); kv[f[1]] = f[2] }
    if ($2 == "cold")
      printf "  cold lookup %-13s %-9s p50 %s us, p90 %s us, max %s us\n", kv["user"],
        kv["status"], kv["p50_us"], kv["p90_us"], kv["max_us"]
    else if ($2 == "warm")
      printf "  warm hit    %-13s cache %s ns vs file %s ns per groups_for()\n", kv["user"],
        kv["cache_ns"], kv["file_ns"]
    else if ($2 == "decide")
      printf "  in process  %-13s %s us per whole decision (median round; best %s)\n",
        kv["target"], kv["median_us"], kv["best_us"]
    else
      printf "  hit rate at %4s req/s, TTL 1 s, refresh_ahead %s: %.2f %% (%s hits, %s misses, %s refreshes)\n",
        kv["rate"], kv["refresh_ahead"], 100 * kv["hit_rate"], kv["hits"], kv["misses"], kv["refreshes"] }' \
    "$SB_DIR/inprocess.txt"
fi
exit "$status"
