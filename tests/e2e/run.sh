#!/usr/bin/env bash
# End-to-end tests of portcullis on a REAL dockerd (Debian's docker.io, started privately by this
# script with --authorization-plugin and mutual TLS on 127.0.0.1). Needs root.
#
#   tests/e2e/run.sh            # uses build/portcullis (builds it when missing)
#   PORTCULLIS_BIN=... tests/e2e/run.sh
#   SB_KEEP=1 tests/e2e/run.sh  # keep the temp dir (logs, decision log) for inspection
#
# Prints one line per check ("ok - ..." / "not ok - ...") and, last, "N passed, N failed".
# Exit status 1 when any check failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/sandbox.sh
source "$HERE/../../scripts/lib/sandbox.sh"

EXAMPLE_POLICY=${E2E_POLICY:-$SB_REPO/examples/policy.yaml}
EXAMPLE_USERS=${E2E_USERS:-$SB_REPO/examples/users.yaml}
# Rule names in examples/policy.yaml that the denials below must name.
# A developer's container limits live in the allow rule dev-run-containers: a request outside them
# is denied naming that rule. Mounting "/" or "/etc" (they contain the docker socket, /etc/docker)
# hits the guardrail no-docker-socket first.
RULE_PRIVILEGED=${RULE_PRIVILEGED:-dev-run-containers}
RULE_CAPS=${RULE_CAPS:-dev-run-containers}
RULE_HOST_PATHS=${RULE_HOST_PATHS:-dev-run-containers}
RULE_DAEMON_FILES=${RULE_DAEMON_FILES:-no-docker-socket}
RULE_DEFAULT=default-deny

# ok/not_ok/detail/run_as/expect_allowed/expect_denied and the summary printer
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# install_policy FILE: makes FILE the policy the running portcullis reads on SIGHUP.
install_policy() { cp "$1" "$SB_DIR/policy.yaml"; }

# make_policy_without_local OUT: the example policy with every binding that names the user
# `local` removed (items of the top-level `bindings:` list), so the unix-socket caller has no role.
make_policy_without_local() {
  awk '
    function flush() {
      if (item != "" && item !~ /users:[^\n]*[[ ,]local([] ,]|$)/) printf "%s", item
      item = ""
    }
    /^bindings:/ { inb = 1; print; next }
    inb && /^[^ #]/ { flush(); inb = 0 }
    inb && /^  - / { flush(); item = $0 "\n"; next }
    inb && item != "" { item = item $0 "\n"; next }
    { print }
    END { flush() }
  ' "$EXAMPLE_POLICY" >"$1"
}

# ---------------------------------------------------------------------------------------------
e2e_start portcullis-e2e "$EXAMPLE_POLICY" "$EXAMPLE_USERS"

sb_gen_certs alice carol
cp "$EXAMPLE_USERS" "$SB_DIR/users.yaml"
install_policy "$EXAMPLE_POLICY"
sb_write_config "$SB_DIR/portcullis.yaml" "$SB_DIR/policy.yaml" "$SB_DIR/users.yaml"

# --- CLI: policy check ------------------------------------------------------------------------
if out=$("$PORTCULLIS_BIN" policy check "$EXAMPLE_POLICY" 2>&1); then
  ok "policy check accepts examples/policy.yaml"
else
  not_ok "policy check accepts examples/policy.yaml"
  detail "$out"
fi
printf 'roles:\n  developer: [\n' >"$SB_DIR/broken.yaml"
rc=0
out=$("$PORTCULLIS_BIN" policy check "$SB_DIR/broken.yaml" 2>&1) || rc=$?
if ((rc == 1)) && grep -Eq "broken.yaml:[0-9]+:[0-9]+: error: " <<<"$out"; then
  ok "policy check rejects a broken policy with file:line:col (exit 1)"
else
  not_ok "policy check rejects a broken policy with file:line:col (exit $rc)"
  detail "$out"
fi

# --- start-up with a broken policy fails --------------------------------------------------------
bad_sock="$SB_PLUGIN_DIR/$SB_PLUGIN-bad.sock"
sed -e "s|^socket: .*|socket: $bad_sock|" -e "s|^policy: .*|policy: $SB_DIR/broken.yaml|" \
  "$SB_DIR/portcullis.yaml" >"$SB_DIR/bad-config.yaml"
rc=0
timeout 20 "$PORTCULLIS_BIN" serve --config "$SB_DIR/bad-config.yaml" >"$SB_DIR/bad.log" 2>&1 ||
  rc=$?
rm -f "$bad_sock"
if ((rc != 0 && rc != 124)); then
  ok "serve refuses to start with a broken policy (exit $rc)"
else
  not_ok "serve refuses to start with a broken policy (exit $rc)"
  detail "$(cat "$SB_DIR/bad.log")"
fi

# --- raw protocol against the plugin socket -----------------------------------------------------
sb_start_portcullis "$SB_DIR/portcullis.yaml"

resp=$(sb_plugin_call /Plugin.Activate)
code=${resp##*$'\n'}
body=${resp%$'\n'*}
if [[ "$code" == 200 ]] && jq -e '.Implements | index("authz")' <<<"$body" >/dev/null 2>&1; then
  ok "raw: /Plugin.Activate answers {\"Implements\":[\"authz\"]}"
else
  not_ok "raw: /Plugin.Activate answers {\"Implements\":[\"authz\"]} (HTTP $code)"
  detail "$body"
fi

for phase in AuthZReq AuthZRes; do
  resp=$(sb_plugin_call "/AuthZPlugin.$phase" --data-binary '{"RequestMethod":"POST","RequestUri":')
  code=${resp##*$'\n'}
  body=${resp%$'\n'*}
  if [[ "$code" == 200 ]] &&
    jq -e '(.Allow == false) and ((.Msg // "") | length > 0)' <<<"$body" >/dev/null 2>&1; then
    ok "raw: malformed JSON to /AuthZPlugin.$phase -> Allow false with a message"
  else
    not_ok "raw: malformed JSON to /AuthZPlugin.$phase -> Allow false with a message (HTTP $code)"
    detail "$body"
  fi
done

resp=$(sb_plugin_call /AuthZPlugin.AuthZReq \
  --data-binary '{"RequestMethod":"GET","RequestUri":"/v1.41/info","Allow":true}{"x":1}')
code=${resp##*$'\n'}
body=${resp%$'\n'*}
if [[ "$code" != 200 ]] || jq -e '.Allow == false' <<<"$body" >/dev/null 2>&1; then
  ok "raw: trailing data after the JSON object is not allowed"
else
  not_ok "raw: trailing data after the JSON object is not allowed (HTTP $code)"
  detail "$body"
fi

resp=$(sb_plugin_call /NoSuch.Method --data-binary '{}')
code=${resp##*$'\n'}
if [[ "$code" == 404 ]]; then
  ok "raw: unknown path -> 404"
else
  not_ok "raw: unknown path -> 404 (HTTP $code)"
fi

big=$SB_DIR/big.json
{
  printf '{"RequestMethod":"POST","RequestUri":"/v1.41/containers/create","RequestBody":"'
  head -c $((20 * 1024 * 1024)) /dev/zero | tr '\0' 'A'
  printf '"}'
} >"$big"
resp=$(sb_plugin_call /AuthZPlugin.AuthZReq --data-binary "@$big")
rm -f "$big"
code=${resp##*$'\n'}
body=${resp%$'\n'*}
if [[ "$code" != 200 ]] || jq -e '.Allow == false' <<<"$body" >/dev/null 2>&1; then
  ok "raw: 20 MB body is rejected (HTTP $code)"
else
  not_ok "raw: 20 MB body is rejected (HTTP $code)"
  detail "${body:0:500}"
fi
if kill -0 "$SB_PORTCULLIS_PID" 2>/dev/null && sb_plugin_ready; then
  ok "raw: plugin still alive and answering after the 20 MB body"
else
  not_ok "raw: plugin still alive and answering after the 20 MB body"
  detail "$(tail -n 20 "$SB_PORTCULLIS_LOG")"
  sb_stop_portcullis KILL
  sb_restart_portcullis # let the docker checks still run
fi

# --- a real dockerd with the plugin ---------------------------------------------------------------
sb_start_dockerd "$SB_PLUGIN"
IMG=$SB_IMAGE
# The example policy binds `local` to admin; fall back to carol (admin over TLS) if it does not.
sb_import_busybox local 2>/dev/null || sb_import_busybox carol

expect_allowed "alice (developer): docker run --rm --network none $IMG true" \
  alice run --rm --network none "$IMG" true
marker="e2e-$$-$RANDOM"
run_as alice run --rm --network none "$IMG" echo "$marker"
if ((LAST_RC == 0)) && [[ "$LAST_OUT" == *"$marker"* ]]; then
  ok "alice: the allowed container really runs (printed its marker)"
else
  not_ok "alice: the allowed container really runs (exit $LAST_RC)"
  detail "$LAST_OUT"
fi

expect_denied "alice: --privileged denied" "$RULE_PRIVILEGED" privileged \
  alice run --rm --network none --privileged "$IMG" true
priv_decision=$LAST_DECISION
expect_denied "alice: --cap-add SYS_ADMIN denied" "$RULE_CAPS" SYS_ADMIN \
  alice run --rm --network none --cap-add SYS_ADMIN "$IMG" true
expect_denied "alice: -v /etc:/x denied" "$RULE_DAEMON_FILES" /etc \
  alice run --rm --network none -v /etc:/x "$IMG" true
expect_denied "alice: --mount type=bind,source=/,target=/x denied" "$RULE_DAEMON_FILES" "" \
  alice run --rm --network none --mount type=bind,source=/,target=/x "$IMG" true
expect_denied "alice: -v /home:/x:ro (outside /srv/projects) denied" "$RULE_HOST_PATHS" /home \
  alice run --rm --network none -v /home:/x:ro "$IMG" true

expect_denied "alice: docker plugin disable denied (would drop the authz plugin)" \
  no-plugin-management "" alice plugin disable "$SB_PLUGIN"

# Raw API requests as alice (TLS) that try known authz bypasses; each must get the plugin's 403.
# api_as_alice NAME CURL_ARGS...: POST /v1.41/containers/create; sets API_CODE and API_BODY.
api_as_alice() {
  local out
  out=$(curl -sS --max-time 60 --cacert "$SB_CERTS/ca.pem" --cert "$SB_CERTS/alice/cert.pem" \
    --key "$SB_CERTS/alice/key.pem" -H 'Content-Type: application/json' -w '\n%{http_code}' \
    "$@" "https://127.0.0.1:$SB_PORT/v1.41/containers/create" 2>&1) || true
  API_CODE=${out##*$'\n'}
  API_BODY=${out%$'\n'*}
}
# expect_api_denied DESC CURL_ARGS...
expect_api_denied() {
  local desc=$1
  shift
  api_as_alice "$@"
  if [[ "$API_CODE" == 403 && "$API_BODY" == *"authorization denied by plugin $SB_PLUGIN"* ]]; then
    ok "$desc"
  else
    not_ok "$desc (HTTP $API_CODE)"
    detail "${API_BODY:0:600}"
  fi
}
expect_api_denied "API: lower-case keys {\"hostconfig\":{\"privileged\":true}} denied" \
  --data-binary "{\"image\":\"$IMG\",\"cmd\":[\"true\"],\"hostconfig\":{\"privileged\":true}}"
expect_api_denied "API: chunked request body with Privileged denied" \
  -H 'Transfer-Encoding: chunked' \
  --data-binary "{\"Image\":\"$IMG\",\"Cmd\":[\"true\"],\"HostConfig\":{\"Privileged\":true}}"
pad=$SB_DIR/padded.json
{
  printf '{"Image":"%s","Cmd":["true"],"Labels":{"pad":"' "$IMG"
  head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' 'A'
  printf '"},"HostConfig":{"Privileged":true}}'
} >"$pad"
expect_api_denied "API: 2 MiB padded body with Privileged (not forwarded to the plugin) denied" \
  --data-binary "@$pad"
rm -f "$pad"

expect_allowed "carol (admin): docker create --privileged allowed" \
  carol create --network none --privileged "$IMG" true
expect_allowed "local (unix socket, bound to admin): docker ps allowed" local ps -a

# --- decision log -----------------------------------------------------------------------------
dlog=$SB_DIR/decisions.log
# jq_count FILTER [ARGS...]: number of decision-log lines FILTER selects.
jq_count() {
  local filter=$1
  shift
  jq -c "$@" "select($filter)" "$dlog" 2>/dev/null | wc -l
}
# shellcheck disable=SC2016 # $id and $rule are jq variables
if [[ -n "$priv_decision" ]] &&
  (($(jq_count '.decision_id == $id and .allow == false and .rule == $rule
                and .user == "alice" and .phase == "request"' \
    --arg id "$priv_decision" --arg rule "$RULE_PRIVILEGED") == 1)); then
  ok "decision log has the JSON line for decision $priv_decision (alice, deny, $RULE_PRIVILEGED)"
else
  not_ok "decision log has one JSON line for the --privileged denial (id '${priv_decision}')"
  detail "$(grep -F -- "${priv_decision:-no-id}" "$dlog" 2>/dev/null || tail -n 3 "$dlog" 2>&1)"
fi
if (($(jq_count '.user == "alice" and .allow == true and .action == "container.create"') > 0)); then
  ok "decision log records alice's allowed container.create"
else
  not_ok "decision log records alice's allowed container.create"
  detail "$(tail -n 3 "$dlog" 2>&1)"
fi
if bad=$(jq -c 'select((.decision_id | type) != "string" or (.allow | type) != "boolean"
                       or (.rule | type) != "string" or (.policy_hash | type) != "string")' \
  "$dlog" 2>&1) && [[ -z "$bad" ]]; then
  ok "decision log: every line is JSON with decision_id, allow, rule, policy_hash"
else
  not_ok "decision log: every line is JSON with decision_id, allow, rule, policy_hash"
  detail "$bad"
fi

# --- SIGHUP reload --------------------------------------------------------------------------
printf 'roles:\n  developer: [\n' >"$SB_DIR/policy.yaml"
if sb_reload_portcullis; then
  not_ok "SIGHUP with a broken policy: reload reported failure"
else
  if grep -q "policy reload failed" "$SB_PORTCULLIS_LOG"; then
    ok "SIGHUP with a broken policy: portcullis logs 'policy reload failed'"
  else
    not_ok "SIGHUP with a broken policy: portcullis logs 'policy reload failed'"
    detail "$(tail -n 5 "$SB_PORTCULLIS_LOG")"
  fi
fi
if kill -0 "$SB_PORTCULLIS_PID" 2>/dev/null; then
  ok "SIGHUP with a broken policy: portcullis keeps running"
else
  not_ok "SIGHUP with a broken policy: portcullis keeps running"
  sb_restart_portcullis
fi
expect_denied "old policy still enforced: alice --privileged still denied" \
  "$RULE_PRIVILEGED" privileged \
  alice run --rm --network none --privileged "$IMG" true
expect_allowed "old policy still enforced: alice plain run still allowed" \
  alice run --rm --network none "$IMG" true

make_policy_without_local "$SB_DIR/policy-nolocal.yaml"
if "$PORTCULLIS_BIN" policy check "$SB_DIR/policy-nolocal.yaml" >/dev/null 2>&1; then
  install_policy "$SB_DIR/policy-nolocal.yaml"
  if sb_reload_portcullis; then
    ok "SIGHUP with a valid changed policy (local unbound): 'policy reloaded'"
  else
    not_ok "SIGHUP with a valid changed policy (local unbound): 'policy reloaded'"
    detail "$(tail -n 5 "$SB_PORTCULLIS_LOG")"
  fi
  expect_denied "new policy in force: local docker ps denied" "$RULE_DEFAULT" "" local ps
  expect_allowed "new policy in force: alice plain run still allowed" \
    alice run --rm --network none "$IMG" true
  install_policy "$EXAMPLE_POLICY"
  if sb_reload_portcullis; then
    expect_allowed "example policy reloaded again: local docker ps allowed" local ps
  else
    not_ok "SIGHUP back to the example policy: 'policy reloaded'"
  fi
else
  not_ok "test policy without the local binding compiles"
  detail "$("$PORTCULLIS_BIN" policy check "$SB_DIR/policy-nolocal.yaml" 2>&1)"
fi

# --- plugin crash: the daemon fails closed --------------------------------------------------
# dockerd retries transport errors for up to ~30 s before it gives up, so the TLS caller and
# the unix-socket caller wait in parallel.
sb_stop_portcullis KILL
t0=$SECONDS
(
  rc=0
  SB_DOCKER_TIMEOUT=90 sb_docker alice ps >"$SB_DIR/crash-alice.out" 2>&1 || rc=$?
  echo "$rc $((SECONDS - t0))" >"$SB_DIR/crash-alice.rc"
) &
crash_alice=$!
(
  rc=0
  SB_DOCKER_TIMEOUT=90 sb_docker local ps >"$SB_DIR/crash-local.out" 2>&1 || rc=$?
  echo "$rc" >"$SB_DIR/crash-local.rc"
) &
crash_local=$!
wait "$crash_alice" "$crash_local" || true
read -r LAST_RC took <"$SB_DIR/crash-alice.rc" || LAST_RC=999 took=999
LAST_OUT=$(cat "$SB_DIR/crash-alice.out")
if ((LAST_RC != 0 && LAST_RC != 124)) && [[ "$LAST_OUT" == *"plugin $SB_PLUGIN"* ]]; then
  ok "plugin killed (-9): the daemon denies, error names the plugin (after ${took}s)"
else
  not_ok "plugin killed (-9): the daemon denies, error names the plugin (exit $LAST_RC, ${took}s)"
  detail "$LAST_OUT"
fi
if ((took <= 60)); then
  ok "plugin killed: the failing request ends within 60 s (${took}s)"
else
  not_ok "plugin killed: the failing request ends within 60 s (${took}s)"
fi
read -r LAST_RC <"$SB_DIR/crash-local.rc" || LAST_RC=999
LAST_OUT=$(cat "$SB_DIR/crash-local.out")
if ((LAST_RC != 0 && LAST_RC != 124)) && [[ "$LAST_OUT" == *"plugin $SB_PLUGIN"* ]]; then
  ok "plugin killed: the unix-socket caller is denied too"
else
  not_ok "plugin killed: the unix-socket caller is denied too (exit $LAST_RC)"
  detail "$LAST_OUT"
fi

sb_restart_portcullis
ok "portcullis restarts on the same socket (stale socket replaced)"
expect_allowed "after restart: alice plain run allowed again" \
  alice run --rm --network none "$IMG" true
expect_denied "after restart: alice --privileged still denied" "$RULE_PRIVILEGED" privileged \
  alice run --rm --network none --privileged "$IMG" true

# --- graceful stop --------------------------------------------------------------------------
sb_stop_dockerd
pid=$SB_PORTCULLIS_PID
kill -TERM "$pid"
rc=0
deadline=$((SECONDS + 10))
while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
if ! kill -0 "$pid" 2>/dev/null; then
  wait "$pid" || rc=$?
  SB_PORTCULLIS_PID=""
  if ((rc == 0)); then
    ok "SIGTERM: portcullis exits 0"
  else
    not_ok "SIGTERM: portcullis exits 0 (exit $rc)"
  fi
else
  not_ok "SIGTERM: portcullis exits within 10 s"
fi

echo "# e2e took $((SECONDS - START)) s" >&2
FINISHED=1
