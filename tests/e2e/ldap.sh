#!/usr/bin/env bash
# End-to-end tests of the LDAP directory: a REAL slapd (tests/ldap/slapd.sh, fixture in
# tests/ldap/fixture.ldif) and a REAL dockerd with portcullis as its authorization plugin. Needs
# root. Users come in with TLS client certificates; their groups come from slapd.
#
#   tests/e2e/ldap.sh                 # uses build/portcullis (builds it when missing)
#   SB_KEEP=1 tests/e2e/ldap.sh       # keep the temp dir (logs, decision log, slapd dir)
#
# Prints "ok - ..." / "not ok - ..." per check and, last, "N passed, N failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/sandbox.sh
source "$HERE/../../scripts/lib/sandbox.sh"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
SLAPD_SH="$SB_REPO/tests/ldap/slapd.sh"

TTL=3   # cache.positive_ttl (s): how long a removal from a group may take to apply
GRACE=8 # cache.stale_grace (s): how long known users keep working while slapd is down

e2e_cleanup_hook() { [[ -z "${LD:-}" ]] || "$SLAPD_SH" cleanup "$LD" >/dev/null 2>&1 || true; }

# ldif_member OP GROUP_CN USER_DN: adds or deletes one member value as the directory admin.
ldif_member() {
  printf 'dn: cn=%s,ou=groups,dc=example,dc=test\nchangetype: modify\n%s: member\nmember: %s\n-\n' \
    "$2" "$1" "$3" | "$SLAPD_SH" ldapmodify "$LD" - >/dev/null
}

# write_ldap_config FILE URL: portcullis config using the harness's slapd.
write_ldap_config() {
  cat >"$1" <<YAML
socket: $(sb_plugin_socket)
socket_mode: "0600"
policy: $SB_DIR/policy.yaml
decision_log: $SB_DIR/decisions.log
threads: 2
log_level: info
YAML
  sb_ldap_directory_yaml "$2" \
    "{positive_ttl: ${TTL}s, negative_ttl: 1s, refresh_ahead: 0, stale_grace: ${GRACE}s}" >>"$1"
}

# last_record USER: the newest decision-log record of USER (compact JSON).
last_record() { jq -c --arg u "$1" 'select(.user == $u)' "$SB_DIR/decisions.log" | tail -1; }

# ---------------------------------------------------------------------------------------------
[[ "$(id -u)" -eq 0 ]] || {
  echo "e2e-ldap: must run as root (it starts a private dockerd)" >&2
  exit 1
}
sb_require_tools
command -v slapd >/dev/null || PATH=$PATH:/usr/sbin
command -v slapd >/dev/null && command -v ldapmodify >/dev/null || "$SB_REPO/scripts/install-deps.sh"
sb_ensure_built
sb_init portcullis-e2e-ldap
trap e2e_finish EXIT
START=$SECONDS

LD="$SB_DIR/ldap"
"$SLAPD_SH" start "$LD" --rogue >"$SB_DIR/slapd-start.log" 2>&1 || {
  cat "$SB_DIR/slapd-start.log" >&2
  exit 1
}
# shellcheck source=/dev/null
source "$LD/env"
ADMINS_DN="cn=docker-admins,ou=groups,dc=example,dc=test"
DAVE_DN="uid=dave,ou=people,dc=example,dc=test"

cp "$SB_REPO/examples/ldap/policy.yaml" "$SB_DIR/policy.yaml"
write_ldap_config "$SB_DIR/portcullis.yaml" "$LDAP_URL"
sb_gen_certs dave erin carol mallory dup '*' '*)(uid=*' 'star*(paren)'

# --- whoami against the real directory --------------------------------------------------------
out=$("$PORTCULLIS_BIN" whoami --config "$SB_DIR/portcullis.yaml" --user dave 2>&1) || true
if grep -q "entry: *$DAVE_DN" <<<"$out" &&
  grep -Eq "^  $ADMINS_DN .*<- cn=platform-team,ou=groups,dc=example,dc=test <- cn=sre-oncall" <<<"$out" &&
  grep -Eq "^  admin +from binding group $ADMINS_DN" <<<"$out"; then
  ok "whoami: dave is admin through docker-admins <- platform-team <- sre-oncall (3 levels)"
else
  not_ok "whoami: dave is admin through docker-admins <- platform-team <- sre-oncall"
  detail "$out"
fi

# --- StartTLS / LDAPS against a server whose certificate comes from another CA ----------------
for url in "$ROGUE_LDAP_URL" "$ROGUE_LDAPS_URL"; do
  write_ldap_config "$SB_DIR/rogue.yaml" "$url"
  rc=0
  out=$(LDAPTLS_REQCERT=never LDAPTLS_CACERT="$LDAP_ROGUE_CA" \
    "$PORTCULLIS_BIN" whoami --config "$SB_DIR/rogue.yaml" --user dave 2>&1) || rc=$?
  if ((rc == 1)) && grep -qi "certificate" <<<"$out" && ! grep -q "roles:" <<<"$out"; then
    ok "wrong CA on ${url%%://*}:// is refused, even with LDAPTLS_REQCERT=never in the environment"
  else
    not_ok "wrong CA on ${url%%://*}:// is refused (exit $rc)"
    detail "$out"
  fi
done
# (The harness's own admin bind that loaded the fixture is in this log too; ours would name the
# service account.)
if ! grep -qiF "BIND dn=\"$LDAP_BIND_DN\"" "$SLAPD_LOG"; then
  not_ok "the real server's log shows the service account's bind (else the next check is blind)"
elif grep -qiF "BIND dn=\"$LDAP_BIND_DN\"" "$ROGUE_SLAPD_LOG"; then
  not_ok "no bind ever reached the rogue server (no downgrade to cleartext)"
  detail "$(grep -iF "BIND dn=\"$LDAP_BIND_DN\"" "$ROGUE_SLAPD_LOG" | head -3)"
else
  ok "no bind ever reached the rogue server (no downgrade to cleartext)"
fi

# --- through dockerd ----------------------------------------------------------------------------
sb_start_portcullis "$SB_DIR/portcullis.yaml"
sb_start_dockerd "$SB_PLUGIN"

expect_allowed "dave (admin only through 3 levels of nested groups) lists containers" dave ps
rec=$(last_record dave)
if jq -e --arg g "$ADMINS_DN" '(.groups | index($g)) and (.roles == ["admin"]) and .allow' \
  <<<"$rec" >/dev/null; then
  ok "decision log: dave's record carries the nested group DN and role admin"
else
  not_ok "decision log: dave's record carries the nested group DN and role admin"
  detail "$rec"
fi
expect_allowed "erin (developer only through a nested group) lists containers" erin ps
expect_denied "erin may not run a privileged container" dev-containers "" \
  erin run --rm --privileged test/busybox:1 true
expect_allowed "carol (docker-users direct, legacy-ops uniqueMember) lists containers" carol ps
expect_denied "mallory (valid certificate, not in the directory) is denied" identity-error \
  "not in the directory" mallory ps
expect_denied "CN '*' matches nobody (filter value escaped)" identity-error "not in the directory" \
  '*' ps
expect_denied "CN '*)(uid=*' matches nobody (filter injection)" identity-error \
  "not in the directory" '*)(uid=*' ps
expect_denied "CN 'star*(paren)' matches nobody (no substring match)" identity-error \
  "not in the directory" 'star*(paren)' ps
expect_denied "uid 'dup' has two entries: denied, never a guess" identity-error "" dup ps
if [[ "$LAST_OUT" == *entries* || "$LAST_OUT" == *ambiguous* ]]; then
  ok "the duplicate-user denial says why (several entries)"
else
  not_ok "the duplicate-user denial says why (several entries)"
  detail "$LAST_OUT"
fi

# --- revocation takes effect after the TTL ----------------------------------------------------
ldif_member delete sre-oncall "$DAVE_DN"
sleep $((TTL + 1))
expect_denied "dave removed from sre-oncall in LDAP: denied after the cache TTL" default-deny "" \
  dave ps
ldif_member add sre-oncall "$DAVE_DN"
sleep $((TTL + 1))
expect_allowed "dave added back: allowed again after the TTL" dave ps

# --- outage: stale grace for known users, deny for the rest -----------------------------------
t0=$SECONDS
expect_allowed "dave allowed just before the directory goes down" dave ps
"$SLAPD_SH" stop "$LD" >/dev/null 2>&1
sleep $((TTL + 1))
expect_allowed "slapd stopped: dave (cached) keeps working within the stale grace" dave ps
if [[ "$(last_record dave | jq -r '.directory_cache // empty')" == stale ]]; then
  ok "decision log: the record says the groups were served stale"
else
  not_ok "decision log: the record says the groups were served stale"
  detail "$(last_record dave)"
fi
expect_denied "slapd stopped: an uncached user is denied with directory-unreachable" \
  identity-error "unreachable" erin ps
sleep $((TTL + GRACE + 1 - (SECONDS - t0) > 0 ? TTL + GRACE + 1 - (SECONDS - t0) : 0))
expect_denied "slapd stopped beyond the grace: dave is denied too" identity-error "unreachable" \
  dave ps

# --- recovery without restarting portcullis -----------------------------------------------------
"$SLAPD_SH" restart "$LD" >/dev/null 2>&1
if sb_wait_until 15 sb_docker dave ps; then
  ok "slapd restarted: dave is allowed again without restarting portcullis"
else
  not_ok "slapd restarted: dave is allowed again without restarting portcullis"
fi
expect_allowed "slapd restarted: erin resolves again" erin ps

FINISHED=1
echo "# ldap e2e took $((SECONDS - START)) s"
