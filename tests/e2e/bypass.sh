#!/usr/bin/env bash
# End-to-end bypass tests (issue 4): known authorization-plugin bypass classes sent as RAW HTTP to
# a REAL dockerd (Debian's docker.io, started privately with --authorization-plugin and mutual
# TLS on 127.0.0.1). Needs root.
#
#   tests/e2e/bypass.sh            # uses build/portcullis (builds it when missing)
#   PORTCULLIS_BIN=... tests/e2e/bypass.sh
#   SB_KEEP=1 tests/e2e/bypass.sh  # keep the temp dir (logs, decision log) for inspection
#
# Every bypass request is sent with curl as alice (developer) or bob (operator) over TLS; each
# must get dockerd's HTTP 403 "authorization denied by plugin", and the rule named in the
# message ("[rule=R decision=D]", cross-checked with decision D's line in the decision log) must
# be the rule that denies the PLAIN form of the same request, which is sent too. Where the plugin
# cannot see what the daemon would act on (body over 1 MiB, form-encoded body, conflicting
# duplicate headers, duplicate JSON keys, non-ASCII capability names) the only correct answer is
# a refusal of the request as such: those expect rule=invalid-request, and the comment at each
# says why the plain form's rule cannot apply.
#
# Controls (the same vectors with harmless content) must be ALLOWED (HTTP 2xx): they prove the
# vector really reaches the daemon's handler, so a denial is the plugin's doing, not an accident.
#
# Prints one line per check ("ok - ..." / "not ok - ...") and, last, "N passed, N failed".
# Exit status 1 when any check failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/sandbox.sh
source "$HERE/../../scripts/lib/sandbox.sh"

EXAMPLE_POLICY=${E2E_POLICY:-$SB_REPO/examples/policy.yaml}
EXAMPLE_USERS=${E2E_USERS:-$SB_REPO/examples/users.yaml}
# Rule names in examples/policy.yaml (see run.sh): a developer's container limits live in the
# allow rule dev-run-containers; a mount of /etc (contains /etc/docker) hits the guardrail
# no-docker-socket first.
RULE_DEV_RUN=${RULE_DEV_RUN:-dev-run-containers}
RULE_DEV_IMAGES=${RULE_DEV_IMAGES:-dev-images}
RULE_DAEMON_FILES=${RULE_DAEMON_FILES:-no-docker-socket}
RULE_PRIV_EXEC=${RULE_PRIV_EXEC:-no-privileged-exec}
RULE_PLUGINS=${RULE_PLUGINS:-no-plugin-management}
RULE_DEFAULT=default-deny
RULE_INVALID=invalid-request

# shellcheck source=lib.sh
source "$HERE/lib.sh"

# --- host paths this script creates under /srv/projects (removed by the cleanup hook) ---------
PROJECTS=/srv/projects
CREATED_PATHS=() # symlinks/directories we made, removed in reverse order
MADE_DIRS=()     # /srv, /srv/projects if we made them (removed only when empty)
e2e_cleanup_hook() {
  local i p
  for ((i = ${#CREATED_PATHS[@]} - 1; i >= 0; i--)); do
    p=${CREATED_PATHS[i]}
    if [[ -L "$p" ]]; then rm -f "$p"; elif [[ -d "$p" ]]; then rmdir "$p" 2>/dev/null || true; fi
  done
  for ((i = ${#MADE_DIRS[@]} - 1; i >= 0; i--)); do rmdir "${MADE_DIRS[i]}" 2>/dev/null || true; done
}

# --- raw API helpers --------------------------------------------------------------------------
API_CODE=""
API_BODY=""
DENY_RULE=""

# api WHO METHOD TARGET [CURL_ARGS...]: one raw request. WHO "local" goes over the unix socket
# (no identity), any other WHO over TLS with $SB_CERTS/WHO. Sets API_CODE and API_BODY.
# --path-as-is: curl must not squash /../ or touch the target in any way.
api() {
  local who=$1 method=$2 target=$3 out
  shift 3
  local conn=(--unix-socket "$SB_DOCKER_SOCK") base=http://docker
  if [[ "$who" != local ]]; then
    conn=(--cacert "$SB_CERTS/ca.pem" --cert "$SB_CERTS/$who/cert.pem"
      --key "$SB_CERTS/$who/key.pem")
    base=https://127.0.0.1:$SB_PORT
  fi
  out=$(curl -sS --max-time 60 --path-as-is "${conn[@]}" -X "$method" -w '\n%{http_code}' \
    "$@" "$base$target" 2>&1) || true
  API_CODE=${out##*$'\n'}
  API_BODY=${out%$'\n'*}
}
JSON=(-H 'Content-Type: application/json')

# decision_line ID: "allow rule user" of decision ID in the decision log (waits ≤ 2 s for it).
decision_line() {
  local id=$1 line="" i
  for ((i = 0; i < 20; i++)); do
    # shellcheck disable=SC2016 # $id is a jq variable
    line=$(jq -r --arg id "$id" 'select(.decision_id == $id) | "\(.allow) \(.rule) \(.user)"' \
      "$SB_DIR/decisions.log" 2>/dev/null | head -n 1)
    [[ -z "$line" ]] || break
    sleep 0.1
  done
  echo "$line"
}

# deny DESC WANT_RULE WHO METHOD TARGET [CURL_ARGS...]: the request must get HTTP 403 with the
# plugin's denial naming WANT_RULE and a decision id, and the decision log must record that
# decision as a deny by WANT_RULE for WHO. Sets DENY_RULE to the rule actually named (or "").
deny() {
  local desc=$1 want=$2 who=$3
  shift 3
  api "$who" "$@"
  DENY_RULE=""
  local re="authorization denied by plugin $SB_PLUGIN: portcullis: .*\[rule=([^] ]+) decision=([^] ]+)\]"
  if [[ "$API_CODE" == 403 && "$API_BODY" =~ $re ]]; then
    DENY_RULE=${BASH_REMATCH[1]}
    local id=${BASH_REMATCH[2]} logged
    logged=$(decision_line "$id")
    if [[ "$DENY_RULE" == "$want" && "$logged" == "false $want $who" ]]; then
      ok "$desc (rule=$want decision=$id)"
    else
      not_ok "$desc (denied by rule=$DENY_RULE, expected rule=$want; decision log: '$logged')"
      detail "${API_BODY:0:600}"
    fi
  else
    not_ok "$desc (HTTP $API_CODE; expected 403 from the plugin naming rule=$want)"
    detail "${API_BODY:0:600}"
  fi
}

# plain DESC WANT_RULE WHO METHOD TARGET [CURL_ARGS...]: the plain form of a request; like deny.
# Sets PLAIN_RULE to the rule the bypass forms must name: the one actually observed, or WANT_RULE
# when the plain form was not denied by the plugin (that failure is reported already).
PLAIN_RULE=""
plain() {
  local desc=$1 want=$2
  shift 2
  deny "plain form: $desc" "$want" "$@"
  PLAIN_RULE=${DENY_RULE:-$want}
}

# allow DESC WHO METHOD TARGET [CURL_ARGS...]: a control; must be answered 2xx by the daemon.
allow() {
  local desc=$1
  shift
  api "$@"
  if [[ "$API_CODE" == 2?? ]]; then
    ok "control: $desc (HTTP $API_CODE)"
  else
    not_ok "control: $desc (HTTP $API_CODE; expected 2xx)"
    detail "${API_BODY:0:600}"
  fi
}

# create_body HOSTCONFIG_JSON: a container-create body for $IMG with that HostConfig.
create_body() { printf '{"Image":"%s","Cmd":["true"],"HostConfig":%s}' "$IMG" "$1"; }

# padded_file FILE PREFIX SUFFIX: PREFIX, 1 MiB + 64 KiB of 'A', SUFFIX: a JSON body over
# dockerd's 1 MiB forwarding limit. Only just over: dockerd reads 1 MiB to decide, and Go's server
# drains a remainder under 256 KiB after the 403, so curl reads the answer instead of a
# connection reset while it is still sending.
padded_file() {
  {
    printf '%s' "$2"
    head -c $((1024 * 1024 + 64 * 1024)) /dev/zero | tr '\0' 'A'
    printf '%s' "$3"
  } >"$1"
}

# ---------------------------------------------------------------------------------------------
e2e_start portcullis-bypass "$EXAMPLE_POLICY" "$EXAMPLE_USERS"

sb_gen_certs alice bob
cp "$EXAMPLE_USERS" "$SB_DIR/users.yaml"
cp "$EXAMPLE_POLICY" "$SB_DIR/policy.yaml"
sb_write_config "$SB_DIR/portcullis.yaml" "$SB_DIR/policy.yaml" "$SB_DIR/users.yaml"
sb_start_portcullis "$SB_DIR/portcullis.yaml"
sb_start_dockerd "$SB_PLUGIN"
IMG=$SB_IMAGE
sb_import_busybox local

V=/v1.41
C=$V/containers/create
PRIV_BODY=$(create_body '{"Privileged":true}')

# --- controls: each vector reaches the daemon's handler ---------------------------------------
allow "alice: plain raw container create" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{}')"
allow "alice: chunked container create" alice POST "$C" "${JSON[@]}" \
  -H 'Transfer-Encoding: chunked' --data-binary "$(create_body '{}')"
allow "alice: percent-encoded path $V/containers/%63reate" alice POST "$V/containers/%63reate" \
  "${JSON[@]}" --data-binary "$(create_body '{}')"
allow "alice: absolute-form URI http://x$C" alice POST / --request-target "http://x$C" \
  "${JSON[@]}" --data-binary "$(create_body '{}')"
allow "alice: lower-case keys {\"image\",\"cmd\",\"hostconfig\":{}}" alice POST "$C" "${JSON[@]}" \
  --data-binary "{\"image\":\"$IMG\",\"cmd\":[\"true\"],\"hostconfig\":{}}"

# --- HostConfig.Privileged: key spelling, transport and URI tricks ----------------------------
plain "HostConfig.Privileged true" "$RULE_DEV_RUN" alice POST "$C" "${JSON[@]}" \
  --data-binary "$PRIV_BODY"
P=$PLAIN_RULE
expect_denied "plain form via the CLI: docker create --privileged" "$P" privileged \
  alice create --network none --privileged "$IMG" true
deny "lower-case keys {\"hostconfig\":{\"privileged\":true}}: same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "{\"image\":\"$IMG\",\"cmd\":[\"true\"],\"hostconfig\":{\"privileged\":true}}"
deny "upper-case keys {\"HOSTCONFIG\":{\"PRIVILEGED\":true}}: same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "{\"Image\":\"$IMG\",\"Cmd\":[\"true\"],\"HOSTCONFIG\":{\"PRIVILEGED\":true}}"
# Go's encoding/json folds U+017F (long s) to 's' and U+212A (Kelvin sign) to 'k' in keys.
deny "Unicode-folded key \"Ho\\u017ftConfig\" (JSON escape): same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "{\"Image\":\"$IMG\",\"Cmd\":[\"true\"],\"Ho\\u017ftConfig\":{\"Privileged\":true}}"
deny "Unicode-folded key HoſtConfig as raw UTF-8 bytes C5 BF: same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "{\"Image\":\"$IMG\",\"Cmd\":[\"true\"],\"Ho"$'\xc5\xbf'"tConfig\":{\"Privileged\":true}}"
deny "chunked body with Privileged: same rule as plain" "$P" alice POST "$C" "${JSON[@]}" \
  -H 'Transfer-Encoding: chunked' --data-binary "$PRIV_BODY"
deny "percent-encoded path $V/containers/%63reate: same rule as plain" "$P" \
  alice POST "$V/containers/%63reate" "${JSON[@]}" --data-binary "$PRIV_BODY"
deny "percent-encoded path $V/%63ontainers/cr%65ate: same rule as plain" "$P" \
  alice POST "$V/%63ontainers/cr%65ate" "${JSON[@]}" --data-binary "$PRIV_BODY"
deny "unversioned path /containers/create: same rule as plain" "$P" \
  alice POST /containers/create "${JSON[@]}" --data-binary "$PRIV_BODY"
deny "absolute-form URI http://x$C: same rule as plain" "$P" \
  alice POST / --request-target "http://x$C" "${JSON[@]}" --data-binary "$PRIV_BODY"
deny "absolute-form + percent-encoded http://x$V/containers/%63reate: same rule as plain" "$P" \
  alice POST / --request-target "http://x$V/containers/%63reate" "${JSON[@]}" \
  --data-binary "$PRIV_BODY"
deny "Privileged + Content-Type 'application/json; charset=utf-8': same rule as plain" "$P" \
  alice POST "$C" -H 'Content-Type: application/json; charset=utf-8' --data-binary "$PRIV_BODY"

# Over 1 MiB, dockerd forwards no RequestBody but still acts on the body: the plugin cannot see
# Privileged, so it must refuse the request as such (invalid-request), never judge it as empty.
pad=$SB_DIR/padded.json
padded_file "$pad" "{\"Image\":\"$IMG\",\"Cmd\":[\"true\"],\"Labels\":{\"pad\":\"" \
  '"},"HostConfig":{"Privileged":true}}'
deny ">1 MiB body with Privileged (body not forwarded): invalid-request" "$RULE_INVALID" \
  alice POST "$C" "${JSON[@]}" --data-binary "@$pad"
deny ">1 MiB chunked body with Privileged: invalid-request" "$RULE_INVALID" \
  alice POST "$C" "${JSON[@]}" -H 'Transfer-Encoding: chunked' --data-binary "@$pad"
rm -f "$pad"

# Form-encoded bodies are never forwarded and the daemon reads parameters from them.
deny "form-encoded Content-Type on container create: invalid-request" "$RULE_INVALID" \
  alice POST "$C" -H 'Content-Type: application/x-www-form-urlencoded' \
  --data-binary "$PRIV_BODY"
# The real form attack: a harmless fromImage in the query, the real one in the body (Go's
# ParseForm lets body values win). Plain form: the foreign registry in the query.
plain "image pull from a registry outside the developer's list" "$RULE_DEV_IMAGES" \
  alice POST "$V/images/create?fromImage=evil.example.com/x&tag=1"
deny "form-encoded body fromImage=evil.example.com/x over a docker.io query: invalid-request" \
  "$RULE_INVALID" alice POST "$V/images/create?fromImage=docker.io/library/busybox&tag=latest" \
  -H 'Content-Type: application/x-www-form-urlencoded' \
  --data-binary 'fromImage=evil.example.com/x&tag=1'
deny "multipart/form-data body on image pull: invalid-request" "$RULE_INVALID" \
  alice POST "$V/images/create?fromImage=docker.io/library/busybox&tag=latest" \
  -F 'fromImage=evil.example.com/x' -F 'tag=1'

# Duplicate headers: the plugin sees the LAST Content-Type, dockerd (and its body forwarding)
# the FIRST. Either order must be refused.
deny "duplicate Content-Type (form first, json last; body not forwarded): invalid-request" \
  "$RULE_INVALID" alice POST "$C" -H 'Content-Type: application/x-www-form-urlencoded' \
  -H 'Content-Type: application/json' --data-binary "$PRIV_BODY"
deny "duplicate Content-Type (json first, form last): invalid-request" "$RULE_INVALID" \
  alice POST "$C" -H 'Content-Type: application/json' \
  -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "$PRIV_BODY"

# Duplicate keys: Go decodes the second HostConfig object INTO the first (Privileged stays
# true), a last-wins parser sees {} — the plugin must refuse the ambiguity (invalid-request)
# instead of picking one reading; the plain form's rule cannot apply to an ambiguous body.
deny "duplicate keys {\"HostConfig\":{\"Privileged\":true},\"HostConfig\":{}}: invalid-request" \
  "$RULE_INVALID" alice POST "$C" "${JSON[@]}" \
  --data-binary "{\"Image\":\"$IMG\",\"Cmd\":[\"true\"],\"HostConfig\":{\"Privileged\":true},\"HostConfig\":{}}"
deny "case-folded duplicate keys {\"HostConfig\":{},\"hostconfig\":{\"Privileged\":true}}: invalid-request" \
  "$RULE_INVALID" alice POST "$C" "${JSON[@]}" \
  --data-binary "{\"Image\":\"$IMG\",\"Cmd\":[\"true\"],\"HostConfig\":{},\"hostconfig\":{\"Privileged\":true}}"
deny "Unicode-folded duplicate keys HostConfig + Ho\\u017ftConfig: invalid-request" \
  "$RULE_INVALID" alice POST "$C" "${JSON[@]}" \
  --data-binary "{\"Image\":\"$IMG\",\"Cmd\":[\"true\"],\"HostConfig\":{},\"Ho\\u017ftConfig\":{\"Privileged\":true}}"

# --- Kelvin sign in a key: NetworkMode host -------------------------------------------------
plain "HostConfig.NetworkMode host" "$RULE_DEV_RUN" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"NetworkMode":"host"}')"
deny "Unicode-folded key \"Networ\\u212aMode\" (Kelvin sign) host: same rule as plain" \
  "$PLAIN_RULE" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"Networ\u212aMode":"host"}')"

# --- CapAdd ---------------------------------------------------------------------------------
plain "CapAdd [\"SYS_ADMIN\"]" "$RULE_DEV_RUN" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"CapAdd":["SYS_ADMIN"]}')"
P=$PLAIN_RULE
expect_denied "plain form via the CLI: docker create --cap-add SYS_ADMIN" "$P" SYS_ADMIN \
  alice create --network none --cap-add SYS_ADMIN "$IMG" true
for caps in '["sys_admin"]' '["cap_sys_admin"]' '["Cap_Sys_Admin"]' '"sys_admin"' '["ALL"]' \
  '["all"]'; do
  deny "CapAdd $caps: same rule as plain" "$P" alice POST "$C" "${JSON[@]}" \
    --data-binary "$(create_body "{\"CapAdd\":$caps}")"
done
deny "lower-case keys {\"hostconfig\":{\"capadd\":[\"sys_admin\"]}}: same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "{\"image\":\"$IMG\",\"cmd\":[\"true\"],\"hostconfig\":{\"capadd\":[\"sys_admin\"]}}"
# Go's strings.ToUpper maps U+017F to 'S' and U+0131 (dotless i) to 'I': the daemon reads these
# as CAP_SYS_ADMIN. The plugin refuses non-ASCII capability names outright (invalid-request).
deny "CapAdd [\"\\u017fys_admin\"] (ToUpper gives SYS_ADMIN): invalid-request" "$RULE_INVALID" \
  alice POST "$C" "${JSON[@]}" --data-binary "$(create_body '{"CapAdd":["\u017fys_admin"]}')"
deny "CapAdd [\"sys_adm\\u0131n\"] (ToUpper gives SYS_ADMIN): invalid-request" "$RULE_INVALID" \
  alice POST "$C" "${JSON[@]}" --data-binary "$(create_body '{"CapAdd":["sys_adm\u0131n"]}')"

# --- SecurityOpt seccomp/apparmor unconfined ------------------------------------------------
plain "SecurityOpt [\"seccomp=unconfined\"]" "$RULE_DEV_RUN" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"SecurityOpt":["seccomp=unconfined"]}')"
P=$PLAIN_RULE
expect_denied "plain form via the CLI: docker create --security-opt seccomp=unconfined" "$P" "" \
  alice create --network none --security-opt seccomp=unconfined "$IMG" true
deny "SecurityOpt [\"seccomp:unconfined\"] (legacy ':' separator): same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"SecurityOpt":["seccomp:unconfined"]}')"
deny "SecurityOpt [\"apparmor:unconfined\"]: same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"SecurityOpt":["apparmor:unconfined"]}')"
deny "Unicode-folded key \"\\u017fecurityOpt\" seccomp=unconfined: same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"\u017fecurityOpt":["seccomp=unconfined"]}')"
deny "lower-case key \"securityopt\" seccomp:unconfined: same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"securityopt":["seccomp:unconfined"]}')"

# --- host paths: symlinks under the allowed /srv/projects -----------------------------------
for d in /srv "$PROJECTS"; do
  if [[ ! -e "$d" ]]; then
    mkdir "$d"
    MADE_DIRS+=("$d")
  fi
done
tag="e2e-$$-$RANDOM"
real_dir=$PROJECTS/$tag-dir
link_etc=$PROJECTS/$tag-link-etc   # -> /etc (absolute)
link_rel=$PROJECTS/$tag-link-rel   # -> ../../etc (relative)
link_root=$PROJECTS/$tag-link-root # -> /root
link_chain=$PROJECTS/$tag-link-chain # -> $link_etc (a symlink to a symlink)
mkdir "$real_dir" && CREATED_PATHS+=("$real_dir")
ln -s /etc "$link_etc" && CREATED_PATHS+=("$link_etc")
ln -s ../../etc "$link_rel" && CREATED_PATHS+=("$link_rel")
ln -s /root "$link_root" && CREATED_PATHS+=("$link_root")
ln -s "$link_etc" "$link_chain" && CREATED_PATHS+=("$link_chain")

allow "alice: Binds $real_dir:/x:ro (a real directory under /srv/projects)" alice POST "$C" \
  "${JSON[@]}" --data-binary "$(create_body "{\"Binds\":[\"$real_dir:/x:ro\"]}")"
plain "Binds /etc:/x:ro" "$RULE_DAEMON_FILES" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"Binds":["/etc:/x:ro"]}')"
P=$PLAIN_RULE
deny "Binds $link_etc:/x:ro (symlink -> /etc): same rule as plain" "$P" alice POST "$C" \
  "${JSON[@]}" --data-binary "$(create_body "{\"Binds\":[\"$link_etc:/x:ro\"]}")"
deny "Binds $link_rel:/x:ro (relative symlink -> ../../etc): same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body "{\"Binds\":[\"$link_rel:/x:ro\"]}")"
deny "Binds $link_chain:/x:ro (symlink -> symlink -> /etc): same rule as plain" "$P" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body "{\"Binds\":[\"$link_chain:/x:ro\"]}")"
deny "Mounts bind Source=$link_etc (symlink -> /etc): same rule as plain" "$P" alice POST "$C" \
  "${JSON[@]}" --data-binary "$(create_body "{\"Mounts\":[{\"Type\":\"bind\",\"Source\":\"$link_etc\",\"Target\":\"/x\",\"ReadOnly\":true}]}")"
deny "Binds $PROJECTS/../../etc:/x:ro (dot-dot): same rule as plain" "$P" alice POST "$C" \
  "${JSON[@]}" --data-binary "$(create_body "{\"Binds\":[\"$PROJECTS/../../etc:/x:ro\"]}")"
plain "Binds /etc/docker:/x:ro" "$RULE_DAEMON_FILES" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"Binds":["/etc/docker:/x:ro"]}')"
deny "Binds $link_etc/docker:/x:ro (symlink in a middle component): same rule as plain" \
  "$PLAIN_RULE" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body "{\"Binds\":[\"$link_etc/docker:/x:ro\"]}")"
plain "Binds /root:/x:ro (outside /srv/projects)" "$RULE_DEV_RUN" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"Binds":["/root:/x:ro"]}')"
deny "Binds $link_root:/x:ro (symlink -> /root): same rule as plain" "$PLAIN_RULE" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body "{\"Binds\":[\"$link_root:/x:ro\"]}")"

# --- `local` volume bind, then run -----------------------------------------------------------
vol="e2e-etc-$$-$RANDOM"
bind_opts='{"type":"none","o":"bind","device":"/etc"}'
# Developers have no volume.create at all; a bind-type local volume is a host mount in
# disguise, so it must be denied like its plain form, the bind mount -v /etc:/x:ro.
deny "POST /volumes/create of a plain named volume (developers have no volume.create)" \
  "$RULE_DEFAULT" alice POST "$V/volumes/create" "${JSON[@]}" \
  --data-binary "{\"Name\":\"$vol-plain\"}"
plain "Binds /etc:/x:ro" "$RULE_DAEMON_FILES" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"Binds":["/etc:/x:ro"]}')"
deny "POST /volumes/create local type=none,o=bind,device=/etc: same rule as plain" \
  "$PLAIN_RULE" alice POST "$V/volumes/create" "${JSON[@]}" \
  --data-binary "{\"Name\":\"$vol\",\"Driver\":\"local\",\"DriverOpts\":$bind_opts}"
deny "POST /volumes/create lower-case keys {\"driveropts\":{bind /etc}}: same rule as plain" \
  "$PLAIN_RULE" alice POST "$V/volumes/create" "${JSON[@]}" \
  --data-binary "{\"name\":\"$vol\",\"driver\":\"local\",\"driveropts\":$bind_opts}"
deny "POST /volumes/create local o=ro,bind device=/etc (bind token not first): same rule as plain" \
  "$PLAIN_RULE" alice POST "$V/volumes/create" "${JSON[@]}" \
  --data-binary "{\"Name\":\"$vol\",\"Driver\":\"local\",\"DriverOpts\":{\"type\":\"none\",\"o\":\"ro,bind\",\"device\":\"/etc\"}}"
deny "POST /volumes/create local bind device=$link_etc (symlink -> /etc): same rule as plain" \
  "$PLAIN_RULE" alice POST "$V/volumes/create" "${JSON[@]}" \
  --data-binary "{\"Name\":\"$vol\",\"Driver\":\"local\",\"DriverOpts\":{\"type\":\"none\",\"o\":\"bind\",\"device\":\"$link_etc\"}}"
api local GET "$V/volumes/$vol"
if [[ "$API_CODE" == 404 ]]; then
  ok "the denied bind volume $vol does not exist (local: GET /volumes/$vol -> 404)"
else
  not_ok "the denied bind volume $vol does not exist (local: GET /volumes/$vol -> HTTP $API_CODE)"
  detail "${API_BODY:0:400}"
fi
# One step: container create with an inline local bind volume (the daemon creates the volume).
plain "Mounts bind Source=/etc ReadOnly" "$RULE_DAEMON_FILES" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"Mounts":[{"Type":"bind","Source":"/etc","Target":"/x","ReadOnly":true}]}')"
deny "Mounts volume $vol with DriverConfig local bind /etc: same rule as plain" "$PLAIN_RULE" \
  alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body "{\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"$vol\",\"Target\":\"/x\",\"ReadOnly\":true,\"VolumeOptions\":{\"DriverConfig\":{\"Name\":\"local\",\"Options\":$bind_opts}}}]}")"
plain "Mounts bind Source=/root ReadOnly" "$RULE_DEV_RUN" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"Mounts":[{"Type":"bind","Source":"/root","Target":"/x","ReadOnly":true}]}')"
deny "Mounts volume with DriverConfig local o=rbind device=/root: same rule as plain" \
  "$PLAIN_RULE" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body "{\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"$vol-root\",\"Target\":\"/x\",\"ReadOnly\":true,\"VolumeOptions\":{\"DriverConfig\":{\"Name\":\"local\",\"Options\":{\"type\":\"none\",\"o\":\"rbind\",\"device\":\"/root\"}}}}]}")"
api local GET "$V/volumes/$vol"
if [[ "$API_CODE" == 404 ]]; then
  ok "no inline bind volume $vol was created by the denied requests"
else
  not_ok "no inline bind volume $vol was created by the denied requests (HTTP $API_CODE)"
  detail "${API_BODY:0:400}"
fi
# ... then run: mounting the name now gives a fresh, empty local volume, never /etc.
run_as alice run --rm --network none -v "$vol:/x:ro" "$IMG" ls /x
if [[ "$LAST_OUT" != *passwd* && "$LAST_OUT" != *docker* ]]; then
  ok "then run: alice -v $vol:/x:ro does not show /etc (exit $LAST_RC)"
else
  not_ok "then run: alice -v $vol:/x:ro shows the host's /etc"
  detail "$LAST_OUT"
fi
# A bind volume that already exists (made by an admin, here `local`) is a host bind of /etc in
# disguise: mounting it by name must be refused to a developer like -v /etc:/x:ro is.
adm_vol="e2e-adm-etc-$$-$RANDOM"
allow "local (admin): POST /volumes/create $adm_vol local bind /etc" local POST \
  "$V/volumes/create" "${JSON[@]}" \
  --data-binary "{\"Name\":\"$adm_vol\",\"Driver\":\"local\",\"DriverOpts\":$bind_opts}"
plain "Binds /etc:/x:ro (again, for the named-volume case)" "$RULE_DAEMON_FILES" alice POST "$C" \
  "${JSON[@]}" --data-binary "$(create_body '{"Binds":["/etc:/x:ro"]}')"
# The plugin looks named volumes up on the daemon (plugin/daemon.hpp): an existing bind volume
# is judged by its host path, whoever mounts it and however.
deny "Binds $adm_vol:/x:ro (an existing local bind volume of /etc, by name): same rule as plain" \
  "$PLAIN_RULE" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body "{\"Binds\":[\"$adm_vol:/x:ro\"]}")"
deny "Mounts volume Source=$adm_vol (existing bind volume of /etc, by name): same rule as plain" \
  "$PLAIN_RULE" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body "{\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"$adm_vol\",\"Target\":\"/x\",\"ReadOnly\":true}]}")"
expect_denied "then run: alice docker run -v $adm_vol:/x (read-write): same rule as plain" \
  "$PLAIN_RULE" "" alice run --rm --network none -v "$adm_vol:/x" "$IMG" ls /x
deny "Binds lower-case key {\"binds\":[\"$adm_vol:/x\"]}: same rule as plain" "$PLAIN_RULE" alice \
  POST "$C" "${JSON[@]}" --data-binary "$(create_body "{\"binds\":[\"$adm_vol:/x\"]}")"
deny "Mounts volume Source=$adm_vol with an inline DriverConfig of no options: same rule" \
  "$PLAIN_RULE" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body "{\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"$adm_vol\",\"Target\":\"/x\",\"VolumeOptions\":{\"DriverConfig\":{\"Name\":\"local\"}}}]}")"
# Lookups must not deadlock: the daemon authorizes portcullis's own GET through portcullis, whose
# I/O threads (2 here) must stay free. 12 at once, each needing a lookup, all answered.
pids=()
for i in $(seq 1 12); do
  curl -sS --max-time 30 --unix-socket "$SB_DOCKER_SOCK" -X POST "${JSON[@]}" \
    -o "$SB_DIR/par-$i.out" -w '%{http_code}' \
    --data-binary "$(create_body "{\"Binds\":[\"$adm_vol:/x:ro\"]}")" \
    "http://docker$C" >"$SB_DIR/par-$i.code" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
codes=$(for f in "$SB_DIR"/par-*.code; do cat "$f"; echo; done | sort | uniq -c | tr -s ' ' |
  tr '\n' ';')
# `local` is the admin: each create is allowed (after the lookup) and answered 201.
if [[ "$codes" == " 12 201;" ]]; then
  ok "12 concurrent creates that each need a daemon lookup are all answered (no deadlock)"
else
  not_ok "12 concurrent creates that each need a daemon lookup are all answered: $codes"
  detail "$(head -c 600 "$SB_DIR/par-1.out")"
fi
# Containers made by the concurrency check are removed; they never ran.
for f in "$SB_DIR"/par-*.out; do
  id=$(jq -r '.Id // empty' "$f" 2>/dev/null || true)
  [[ -z "$id" ]] || api local DELETE "$V/containers/$id?force=1"
done
# The lookup header is not a key: without this process's token, or on anything but a GET of a
# volume or exec instance, the policy decides as usual.
deny "alice: create with a forged X-Portcullis-Lookup header: same rule as plain" "$PLAIN_RULE" \
  alice POST "$C" "${JSON[@]}" -H 'X-Portcullis-Lookup: 0000' \
  --data-binary "$(create_body "{\"Binds\":[\"$adm_vol:/x:ro\"]}")"
lookups=$(jq -r 'select(.rule == "portcullis-lookup") | "\(.allow) \(.method) \(.action)"' \
  "$SB_DIR/decisions.log" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
if [[ "$lookups" =~ ^(\ [0-9]+\ true\ GET\ (container|volume)\.inspect\;)+$ &&
  "$lookups" == *volume.inspect* ]]; then
  ok "the plugin's own lookups are in the decision log as GET container/volume.inspect ($lookups)"
else
  not_ok "the plugin's own lookups are in the decision log as GET container/volume.inspect: '$lookups'"
fi

# --- exec --privileged -----------------------------------------------------------------------
run_as alice run -d --network none "$IMG" sleep 600
cid=$(tail -n 1 <<<"$LAST_OUT")
if ((LAST_RC == 0)) && [[ "$cid" =~ ^[0-9a-f]{64}$ ]]; then
  ok "alice: docker run -d (a legitimately created, running container for exec)"
else
  not_ok "alice: docker run -d (exit $LAST_RC)"
  detail "$LAST_OUT"
  cid=nonexistent
fi
E=$V/containers/$cid/exec
allow "bob (operator): exec {\"Cmd\":[\"true\"]} into alice's container" bob POST "$E" \
  "${JSON[@]}" --data-binary '{"Cmd":["true"]}'
plain "bob: exec {\"Privileged\":true}" "$RULE_PRIV_EXEC" bob POST "$E" "${JSON[@]}" \
  --data-binary '{"Privileged":true,"Cmd":["true"]}'
P=$PLAIN_RULE
expect_denied "plain form via the CLI: bob docker exec --privileged" "$P" "" \
  bob exec --privileged "$cid" true
deny "alice: exec {\"Privileged\":true}: same rule as plain" "$P" alice POST "$E" "${JSON[@]}" \
  --data-binary '{"Privileged":true,"Cmd":["true"]}'
deny "bob: exec lower-case keys {\"privileged\":true}: same rule as plain" "$P" bob POST "$E" \
  "${JSON[@]}" --data-binary '{"privileged":true,"cmd":["true"]}'
deny "bob: exec chunked body with Privileged: same rule as plain" "$P" bob POST "$E" \
  "${JSON[@]}" -H 'Transfer-Encoding: chunked' --data-binary '{"Privileged":true,"Cmd":["true"]}'
deny "bob: exec percent-encoded path .../%65xec: same rule as plain" "$P" bob POST \
  "$V/containers/$cid/%65xec" "${JSON[@]}" --data-binary '{"Privileged":true,"Cmd":["true"]}'
deny "bob: exec absolute-form URI: same rule as plain" "$P" bob POST / \
  --request-target "http://x$E" "${JSON[@]}" --data-binary '{"Privileged":true,"Cmd":["true"]}'
# exec start is tied to the exec it starts (looked up on the daemon): an exec an admin created
# privileged cannot be started by bob, whose own exec-create of it is refused.
api local POST "$E" "${JSON[@]}" --data-binary '{"Privileged":true,"Cmd":["id"]}'
adm_exec=$(jq -r '.Id // empty' <<<"$API_BODY" 2>/dev/null || true)
if [[ "$API_CODE" == 201 && "$adm_exec" =~ ^[0-9a-f]{64}$ ]]; then
  ok "control: local (admin) creates a privileged exec (HTTP 201)"
else
  not_ok "control: local (admin) creates a privileged exec (HTTP $API_CODE)"
  detail "${API_BODY:0:400}"
  adm_exec=nonexistent
fi
deny "bob: POST /exec/{admin's privileged exec}/start: same rule as plain exec --privileged" "$P" \
  bob POST "$V/exec/$adm_exec/start" "${JSON[@]}" --data-binary '{"Detach":true}'
deny "bob: POST /exec/{it}/start percent-encoded path .../%73tart: same rule" "$P" bob POST \
  "$V/exec/$adm_exec/%73tart" "${JSON[@]}" --data-binary '{"Detach":true}'
api bob POST "$E" "${JSON[@]}" --data-binary '{"Cmd":["true"]}'
bob_exec=$(jq -r '.Id // empty' <<<"$API_BODY" 2>/dev/null || true)
allow "bob: POST /exec/{his own exec}/start" bob POST "$V/exec/${bob_exec:-none}/start" \
  "${JSON[@]}" --data-binary '{"Detach":true}'
deny "bob: POST /exec/{no such exec}/start: daemon-lookup" daemon-lookup bob POST \
  "$V/exec/0000000000000000000000000000000000000000000000000000000000000000/start" "${JSON[@]}" \
  --data-binary '{"Detach":true}'
# An exec shares its container's access: into an admin's privileged container, or one with the
# host's /etc mounted, an operator's plain `docker exec` is refused. (Privileged containers
# cannot start in every sandbox; the plugin decides before the daemon checks that the container
# runs, so a created one is enough.)
run_as local create --privileged --network none "$IMG" sleep 600
priv_cid=$(tail -n 1 <<<"$LAST_OUT")
run_as local run -d --network none -v /etc:/hostetc:ro "$IMG" sleep 600
etc_cid=$(tail -n 1 <<<"$LAST_OUT")
expect_denied "bob: docker exec (not --privileged) into an admin's privileged container" \
  "$RULE_PRIV_EXEC" "" bob exec "$priv_cid" true
deny "bob: exec {\"Cmd\":[\"true\"]} into it, raw: same rule" "$RULE_PRIV_EXEC" bob POST \
  "$V/containers/$priv_cid/exec" "${JSON[@]}" --data-binary '{"Cmd":["true"]}'
expect_denied "bob: docker exec into an admin's container with the host's /etc mounted" \
  ops-exec "host path /etc" bob exec "$etc_cid" true
run_as local create --security-opt systempaths=unconfined --network none "$IMG" sleep 600
unmasked_cid=$(tail -n 1 <<<"$LAST_OUT")
expect_denied "bob: docker exec into an admin's container with /proc unmasked (systempaths=unconfined)" \
  ops-exec "MaskedPaths" bob exec "$unmasked_cid" true
deny "bob: POST .../attach to an admin's privileged container: same rule as exec into it" \
  "$RULE_PRIV_EXEC" bob POST "$V/containers/$priv_cid/attach?stream=1&stdin=1&stdout=1"
run_as local rm -f "$priv_cid" "$etc_cid" "$unmasked_cid"
deny "bob: exec duplicate keys {\"Privileged\":false,\"privileged\":true}: invalid-request" \
  "$RULE_INVALID" bob POST "$E" "${JSON[@]}" \
  --data-binary '{"Privileged":false,"privileged":true,"Cmd":["true"]}'
padded_file "$pad" '{"Cmd":["true"],"Env":["PAD=' '"],"Privileged":true}'
deny "bob: exec >1 MiB body with Privileged (not forwarded): invalid-request" "$RULE_INVALID" \
  bob POST "$E" "${JSON[@]}" --data-binary "@$pad"
rm -f "$pad"
deny "bob: exec form-encoded Content-Type: invalid-request" "$RULE_INVALID" bob POST "$E" \
  -H 'Content-Type: application/x-www-form-urlencoded' \
  --data-binary '{"Privileged":true,"Cmd":["true"]}'

# --- plugin disable (would drop portcullis from the chain) -----------------------------------
expect_denied "plain form via the CLI: alice docker plugin disable $SB_PLUGIN" "$RULE_PLUGINS" "" \
  alice plugin disable "$SB_PLUGIN"
P=$RULE_PLUGINS
deny "POST $V/plugins/$SB_PLUGIN/disable: same rule as the CLI" "$P" alice POST \
  "$V/plugins/$SB_PLUGIN/disable"
deny "POST $V/plugins/$SB_PLUGIN/disable?force=1: same rule" "$P" alice POST \
  "$V/plugins/$SB_PLUGIN/disable?force=1"
deny "POST /plugins/$SB_PLUGIN/disable (unversioned): same rule" "$P" alice POST \
  "/plugins/$SB_PLUGIN/disable"
deny "POST $V/plugins/$SB_PLUGIN/%64isable (percent-encoded): same rule" "$P" alice POST \
  "$V/plugins/$SB_PLUGIN/%64isable"
deny "POST $V/%70lugins/$SB_PLUGIN/disable (percent-encoded): same rule" "$P" alice POST \
  "$V/%70lugins/$SB_PLUGIN/disable"
deny "POST absolute-form http://x$V/plugins/$SB_PLUGIN/disable: same rule" "$P" alice POST / \
  --request-target "http://x$V/plugins/$SB_PLUGIN/disable"
deny "bob (operator): POST $V/plugins/$SB_PLUGIN/disable: same rule" "$P" bob POST \
  "$V/plugins/$SB_PLUGIN/disable"

# --- published ports (host_ports) ------------------------------------------------------------
expect_denied "plain form via the CLI: alice docker create -p 80:80 (a privileged host port)" \
  "$RULE_DEV_RUN" "host port 80" alice create -p 80:80 "$IMG" true
P=$RULE_DEV_RUN
deny "alice: lower-case keys {\"portbindings\":{\"80/tcp\":[{\"hostport\":\"80\"}]}}: same rule" \
  "$P" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"portbindings":{"80/tcp":[{"hostport":"80"}]}}')"
deny "alice: HostPort range 1000-1100 (the daemon picks one): same rule" "$P" alice POST "$C" \
  "${JSON[@]}" --data-binary "$(create_body '{"PortBindings":{"80/tcp":[{"HostPort":"1000-1100"}]}}')"
deny "alice: HostPort \"eighty\": invalid-request" "$RULE_INVALID" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"PortBindings":{"80/tcp":[{"HostPort":"eighty"}]}}')"
run_as alice create -p 127.0.0.1:18080:80 "$IMG" true
if ((LAST_RC == 0)); then
  ok "control: alice docker create -p 127.0.0.1:18080:80 (a port above 1023) is allowed"
  run_as local rm -f "$(tail -n 1 <<<"$LAST_OUT")"
else
  not_ok "control: alice docker create -p 127.0.0.1:18080:80 (exit $LAST_RC)"
  detail "$LAST_OUT"
fi

# --- per-user host paths ({user}) ------------------------------------------------------------
deny "alice: Mounts bind /home/bob/src (another user's home, {user} is alice): dev rule" \
  "$RULE_DEV_RUN" alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"Mounts":[{"Type":"bind","Source":"/home/bob/src","Target":"/s","ReadOnly":true}]}')"
# Her own home passes the plugin; the daemon then refuses the missing path itself (nothing is
# created on the host), which shows the request reached it.
api alice POST "$C" "${JSON[@]}" \
  --data-binary "$(create_body '{"Mounts":[{"Type":"bind","Source":"/home/alice/portcullis-e2e-missing","Target":"/s","ReadOnly":true}]}')"
if [[ "$API_CODE" == 400 && "$API_BODY" == *"does not exist"* ]]; then
  ok "alice: Mounts bind /home/alice/... passes the plugin (the daemon answers: path does not exist)"
else
  not_ok "alice: Mounts bind /home/alice/... passes the plugin (HTTP $API_CODE)"
  detail "${API_BODY:0:400}"
fi

# --- still enforcing afterwards ----------------------------------------------------------------
deny "after all of the above: plain Privileged create still denied by the same rule" \
  "$RULE_DEV_RUN" alice POST "$C" "${JSON[@]}" --data-binary "$PRIV_BODY"
expect_allowed "after all of the above: alice docker run --rm true still allowed" \
  alice run --rm --network none "$IMG" true
if kill -0 "$SB_PORTCULLIS_PID" 2>/dev/null; then
  ok "portcullis still running (pid $SB_PORTCULLIS_PID)"
else
  not_ok "portcullis still running"
  detail "$(tail -n 20 "$SB_PORTCULLIS_LOG")"
fi

echo "# bypass e2e took $((SECONDS - START)) s" >&2
FINISHED=1
