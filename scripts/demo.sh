#!/usr/bin/env bash
# demo.sh: portcullis in front of a private, real dockerd, in about a minute. Needs root.
#
# Starts portcullis with examples/policy.yaml + examples/users.yaml, a sandbox dockerd (unix
# socket + mutual TLS on 127.0.0.1) that asks it about every request, then runs docker commands
# as alice (developer), carol (admin) and over the unix socket (`local`), and prints who ran
# what, whether the daemon allowed it and why. Ends with the last decision-log lines, then
# removes everything it started.
#
# Exit status 0 when every observed decision matches the expected one, 1 otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/sandbox.sh
source "$HERE/lib/sandbox.sh"

[[ "$(id -u)" -eq 0 ]] || sb_die "the demo starts a private dockerd and must run as root"
sb_require_tools
sb_ensure_built

SB_QUIET=${SB_QUIET:-1}
sb_init portcullis-demo
sb_gen_certs alice carol

sb_write_config "$SB_DIR/portcullis.yaml" "$SB_REPO/examples/policy.yaml" \
  "$SB_REPO/examples/users.yaml"
echo "Starting portcullis (policy examples/policy.yaml) and a private dockerd" \
  "(--authorization-plugin=$SB_PLUGIN) ..."
sb_start_portcullis "$SB_DIR/portcullis.yaml"
sb_start_dockerd "$SB_PLUGIN"
sb_import_busybox local 2>/dev/null || sb_import_busybox carol
IMG=$SB_IMAGE

# A project directory the developer policy lets alice mount read-only.
PROJECT_DIR=/srv/projects/demo
created_dirs=()
for d in /srv/projects "$PROJECT_DIR"; do
  if [[ ! -d "$d" ]]; then
    mkdir -p "$d"
    created_dirs=("$d" "${created_dirs[@]}")
  fi
done
demo_cleanup() {
  sb_cleanup
  local d
  for d in "${created_dirs[@]}"; do rmdir "$d" 2>/dev/null || true; done
}
trap demo_cleanup EXIT

MISMATCHES=0
ROWS=()
FIRST_DENIAL=""

# step EXPECT WHO ARGS...: EXPECT is ALLOWED or DENIED.
step() {
  local expect=$1 who=$2
  shift 2
  local out rc=0 observed reason="" rule="" decision=""
  out=$(SB_DOCKER_TIMEOUT=60 sb_docker "$who" "$@" 2>&1) || rc=$?
  if ((rc == 0)); then
    observed=ALLOWED
  elif [[ "$out" == *"authorization denied by plugin $SB_PLUGIN"* ]]; then
    observed=DENIED
    local msg=${out#*authorization denied by plugin "$SB_PLUGIN": }
    msg=${msg%%$'\n'*}
    msg=${msg#portcullis: }
    if [[ "$msg" =~ \[rule=([^] ]+)\ decision=([^] ]+)\] ]]; then
      rule=${BASH_REMATCH[1]}
      decision=${BASH_REMATCH[2]}
      [[ -n "$FIRST_DENIAL" ]] || FIRST_DENIAL=$decision
    fi
    reason=${msg% \[rule=*}
  else
    observed=ERROR
    reason=$(head -n 1 <<<"$out")
  fi
  local mark="  "
  if [[ "$observed" != "$expect" ]]; then
    mark="!!"
    MISMATCHES=$((MISMATCHES + 1))
  fi
  local cmd="docker $*"
  cmd=${cmd//"$IMG"/IMG}
  cmd=${cmd//run --rm --network none/run}
  ROWS+=("$(printf '%s %-6s %-8s %s' "$mark" "$who" "$observed" "$cmd")")
  if [[ -n "$rule" || -n "$reason" ]]; then
    ROWS+=("$(printf '%18s-> %s%s' "" "${rule:+rule=$rule decision=$decision: }" "$reason")")
  fi
  if [[ "$mark" == "!!" ]]; then
    ROWS+=("$(printf '%18s!! expected %s' "" "$expect")")
  fi
}

# Expected outcomes under examples/policy.yaml (alice: developer, carol: admin, local: admin).
R=(run --rm --network none)
step ALLOWED alice "${R[@]}" "$IMG" true
step DENIED alice "${R[@]}" --privileged "$IMG" true
step DENIED alice "${R[@]}" --cap-add SYS_ADMIN "$IMG" true
step DENIED alice "${R[@]}" -v /etc:/x "$IMG" true
step DENIED alice "${R[@]}" --mount type=bind,source=/,target=/x "$IMG" true
step ALLOWED alice "${R[@]}" -v "$PROJECT_DIR:/x:ro" "$IMG" ls /x
step DENIED alice "${R[@]}" -v "$PROJECT_DIR:/x" "$IMG" true
step ALLOWED alice ps -a
step DENIED alice plugin ls
step DENIED alice volume ls
step ALLOWED carol create --network none --privileged "$IMG" true
step ALLOWED carol plugin ls
step ALLOWED carol volume ls
step ALLOWED local ps -a
step ALLOWED local "${R[@]}" "$IMG" true

echo
printf '   %-6s %-8s %s\n' WHO RESULT "COMMAND  (-> deciding rule, decision id: reason)"
printf '%s\n' "${ROWS[@]}"
echo
echo "alice and carol connect over TLS (client certificate CN = user name);"
echo "local = the daemon's unix socket, which carries no identity (the example policy binds it"
echo "to admin). 'docker run' above is 'docker run --rm --network none'; IMG = $IMG."
echo
DLOG=$SB_DIR/decisions.log
echo "Decision log: one JSON line per decision ($DLOG; removed at exit, SB_KEEP=1 keeps it)."
if [[ -n "$FIRST_DENIAL" ]]; then
  echo "The full record of decision $FIRST_DENIAL (grep $FIRST_DENIAL decisions.log):"
  grep -F "\"$FIRST_DENIAL\"" "$DLOG" | jq . 2>/dev/null || grep -F "$FIRST_DENIAL" "$DLOG" || true
fi
echo "The last lines, abridged:"
tail -n 5 "$DLOG" | jq -c '{decision_id, user, action, allow, rule}' 2>/dev/null ||
  tail -n 5 "$DLOG"
echo
if ((MISMATCHES == 0)); then
  echo "demo: all decisions as expected"
else
  echo "demo: $MISMATCHES decision(s) differ from the expected ones (marked !!)"
  exit 1
fi
