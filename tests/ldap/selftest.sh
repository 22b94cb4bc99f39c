#!/usr/bin/env bash
# Self-test of the slapd harness (tests/ldap/slapd.sh) and the fixture directory (fixture.ldif):
# starts a real slapd (+ the rogue-CA one), checks the data and the TLS behaviour with the OpenLDAP
# CLI tools, exercises ldapmodify / pause / resume / restart, and cleans up (also on failure).
# Prints one PASS/FAIL line per check; exit status 1 when any check failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
H="$HERE/slapd.sh"
T=$(mktemp -d /tmp/pcl-ldap.XXXXXX) || exit 1
D="$T/m" # memberof variant, with --rogue
P="$T/p" # plain variant, --sizelimit 5
PASSED=0
FAILED=0

cleanup() {
  "$H" cleanup "$D" >/dev/null 2>&1
  "$H" cleanup "$P" >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() {
  echo "PASS - $1"
  PASSED=$((PASSED + 1))
}
fail() {
  echo "FAIL - $1${2:+ ($2)}"
  FAILED=$((FAILED + 1))
}
check() { # NAME CMD... : passes when CMD exits 0
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
eq() { # NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$2], got [$3]"; fi
}

# ldapsearch as the service account; prints the DNs / requested values, sorted, one per line
dns() { "$H" search "$1" "${@:2}" 1.1 2>/dev/null | sed -n 's/^dn: //p' | sort; }
vals() { # DIR ATTR FILTER
  "$H" search "$1" "$3" "$2" 2>/dev/null | sed -n "s/^$2: //p" | sort
}

# TLS checks: LDAPNOINIT would disable LDAPTLS_*, so isolate from ldaprc files instead and set
# every TLS variable explicitly. tls CAFILE URL [extra ldapwhoami args]
tls() {
  local ca=$1 url=$2
  shift 2
  (cd "$T" && env -u LDAPNOINIT -u LDAPCONF -u LDAPRC HOME="$T" LDAPTLS_CACERT="$ca" \
    LDAPTLS_REQCERT=demand timeout 10 ldapwhoami -x -o nettimeout=3 -H "$url" -D "$LDAP_BIND_DN" \
    -y "$LDAP_BIND_PASSWORD_FILE" "$@") >/dev/null 2>&1
}
not() { ! "$@"; }
quiet() { "$@" >/dev/null 2>&1; }

# is PID still running the slapd of harness dir $2 (ignoring zombies)?
runs() {
  local cmd
  [ -n "$1" ] && cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") && [[ "$cmd" == *"$2/"* ]] &&
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

START=$SECONDS
if ! "$H" start "$D" --rogue 2>"$T/start.err"; then
  fail "slapd.sh start --rogue" "$(tail -3 "$T/start.err")"
  echo "0 passed, 1 failed"
  exit 1
fi
pass "slapd.sh start --rogue"
# shellcheck source=/dev/null
source "$D/env"
check "env.json has the same LDAP_URL as env" \
  test "$(jq -r .LDAP_URL "$D/env.json")" = "$LDAP_URL"
check "env.json: ROGUE_LDAPS_URL set" test -n "$(jq -r .ROGUE_LDAPS_URL "$D/env.json")"
check "slapd pid recorded and running" runs "$SLAPD_PID" "$D"
check "bind password file readable, non-empty" test -s "$LDAP_BIND_PASSWORD_FILE"

# --- data, as the service account ---
eq "alice found (exactly one entry)" "uid=alice,ou=people,dc=example,dc=test" "$(dns "$D" '(uid=alice)')"
eq "dave memberOf via overlay (direct groups only)" "cn=sre-oncall,ou=groups,dc=example,dc=test" \
  "$(vals "$D" memberOf '(uid=dave)')"
eq "uid=dup returns 2 entries" 2 "$(dns "$D" '(uid=dup)' | wc -l)"
eq "metachar uid found only through an escaped filter" \
  'uid=star*(paren)\5Cback,ou=people,dc=example,dc=test' "$(dns "$D" '(uid=star\2a\28paren\29\5cback)')"
eq "escaped '*' lookup matches nothing" "" "$(dns "$D" '(uid=\2a)')"
eq "nesting: platform-team is a member of docker-admins" "cn=docker-admins,ou=groups,dc=example,dc=test" \
  "$(dns "$D" '(member=cn=platform-team,ou=groups,dc=example,dc=test)')"
eq "nesting: sre-oncall is a member of platform-team" "cn=platform-team,ou=groups,dc=example,dc=test" \
  "$(dns "$D" '(member=cn=sre-oncall,ou=groups,dc=example,dc=test)')"
eq "cycle: loop-a and loop-b contain each other" \
  "cn=loop-a,ou=groups,dc=example,dc=test cn=loop-b,ou=groups,dc=example,dc=test" \
  "$(dns "$D" '(|(&(cn=loop-a)(member=cn=loop-b,ou=groups,dc=example,dc=test))(&(cn=loop-b)(member=cn=loop-a,ou=groups,dc=example,dc=test)))' | tr '\n' ' ' | sed 's/ $//')"
eq "two groups named cn=admins" 2 "$(dns "$D" '(cn=admins)' | wc -l)"
eq "groupOfUniqueNames legacy-ops holds carol" "cn=legacy-ops,ou=groups,dc=example,dc=test" \
  "$(dns "$D" '(uniqueMember=uid=carol,ou=people,dc=example,dc=test)')"
eq "posixGroup devs holds memberUid erin" "cn=devs,ou=groups,dc=example,dc=test" \
  "$(dns "$D" '(&(objectClass=posixGroup)(memberUid=erin))')"
eq "grace is in 8 groups" 8 "$(dns "$D" '(member=uid=grace,ou=people,dc=example,dc=test)' | wc -l)"

# --- access control ---
check "anonymous search refused" not quiet env LDAPNOINIT=1 timeout 10 ldapsearch -x -H "$LDAP_URL" \
  -b "$LDAP_BASE" '(uid=alice)' 1.1
check "service DN with empty password refused" not quiet env LDAPNOINIT=1 timeout 10 ldapwhoami -x \
  -H "$LDAP_URL" -D "$LDAP_BIND_DN" -w ''
check "service account cannot read userPassword" \
  test -z "$(vals "$D" userPassword '(cn=svc-portcullis)')"

# --- TLS ---
check "ldaps with the right CA works" tls "$LDAP_CA" "$LDAPS_URL"
check "StartTLS with the right CA works" tls "$LDAP_CA" "$LDAP_URL" -ZZ
check "ldaps with the wrong (rogue) CA fails" not tls "$LDAP_ROGUE_CA" "$LDAPS_URL"
check "ldaps to the rogue server with our CA fails" not tls "$LDAP_CA" "$ROGUE_LDAPS_URL"
check "StartTLS to the rogue server with our CA fails" not tls "$LDAP_CA" "$ROGUE_LDAP_URL" -ZZ
check "rogue server does serve its own CA (control)" tls "$LDAP_ROGUE_CA" "$ROGUE_LDAPS_URL"
check "ldaps to an address not in the SAN fails" not tls "$LDAP_CA" "$LDAPS_SAN_MISMATCH_URL"
check "mTLS: SASL EXTERNAL with the client cert is the service account" test \
  "$(cd "$T" && env -u LDAPNOINIT HOME="$T" LDAPTLS_CACERT="$LDAP_CA" LDAPTLS_REQCERT=demand \
    LDAPTLS_CERT="$LDAP_CLIENT_CERT" LDAPTLS_KEY="$LDAP_CLIENT_KEY" timeout 10 \
    ldapwhoami -Q -Y EXTERNAL -H "$LDAPS_URL" 2>/dev/null)" = "dn:$LDAP_BIND_DN"

# --- ldapmodify / pause / resume / restart ---
printf '%s\n' "dn: cn=sre-oncall,ou=groups,dc=example,dc=test" "changetype: modify" "delete: member" \
  "member: uid=dave,ou=people,dc=example,dc=test" "-" >"$T/rm-dave.ldif"
check "ldapmodify as admin (remove dave from sre-oncall)" "$H" ldapmodify "$D" "$T/rm-dave.ldif" >/dev/null
eq "dave has no memberOf after removal" "" "$(vals "$D" memberOf '(uid=dave)')"

"$H" pause "$D"
t0=$SECONDS
check "paused slapd does not answer" not "$H" status "$D" 2>/dev/null
check "status on a paused slapd returns within 6 s" test $((SECONDS - t0)) -le 6
"$H" resume "$D"
check "resumed slapd answers" "$H" status "$D"

old_pid=$SLAPD_PID
check "restart" "$H" restart "$D" 2>/dev/null
# shellcheck source=/dev/null
source "$D/env"
check "restart: old pid gone" not runs "$old_pid" "$D"
check "restart: new pid running" runs "$SLAPD_PID" "$D"
eq "restart: same URL" "$(jq -r .LDAP_URL "$D/env.json")" "$LDAP_URL"
eq "restart: data kept (dave still removed, alice present)" \
  "uid=alice,ou=people,dc=example,dc=test" "$(dns "$D" '(|(uid=alice)(&(objectClass=inetOrgPerson)(memberOf=cn=sre-oncall,ou=groups,dc=example,dc=test)))')"
check "restart: ldaps with the right CA works" tls "$LDAP_CA" "$LDAPS_URL"

check "stop" "$H" stop "$D"
check "stop: main slapd gone" not runs "$SLAPD_PID" "$D"
check "stop: rogue slapd gone" not runs "$ROGUE_SLAPD_PID" "$D"
check "stopped server refuses connections" not "$H" status "$D" 2>/dev/null
check "restart after stop" "$H" restart "$D" 2>/dev/null
check "restarted server answers" "$H" status "$D"
# shellcheck source=/dev/null
source "$D/env"
main_pid=$SLAPD_PID rogue_pid=$ROGUE_SLAPD_PID

# --- plain variant with a small size limit and AD-like unauthenticated binds ---
if "$H" start "$P" --variant plain --sizelimit 5 --allow-bind-anon-dn 2>"$T/start-plain.err"; then
  pass "slapd.sh start --variant plain --sizelimit 5 --allow-bind-anon-dn"
  "$H" search "$P" '(member=uid=grace,ou=people,dc=example,dc=test)' 1.1 >/dev/null 2>&1
  eq "sizelimit 5: grace's group search fails with sizeLimitExceeded (4)" 4 "$?"
  eq "plain variant: no memberOf" "" "$(vals "$P" memberOf '(uid=dave)')"
  eq "plain variant: same fixture (alice)" "uid=alice,ou=people,dc=example,dc=test" "$(dns "$P" '(uid=alice)')"
  # the bind with DN + empty password succeeds (no "ldap_bind:" error); the WhoAmI after it is refused
  out=$(LDAPNOINIT=1 timeout 10 ldapwhoami -x -H "$(jq -r .LDAP_URL "$P/env.json")" \
    -D "$LDAP_BIND_DN" -w '' 2>&1)
  check "--allow-bind-anon-dn: DN + empty password binds, then needs authc" \
    test "${out/ldap_bind/}" = "$out" -a "${out/authentication required/}" != "$out"
  plain_pid=$(jq -r .SLAPD_PID "$P/env.json")
  check "cleanup (plain)" "$H" cleanup "$P"
  check "cleanup (plain): slapd gone" not runs "$plain_pid" "$P"
  check "cleanup (plain): directory removed" test ! -e "$P"
else
  fail "slapd.sh start --variant plain --sizelimit 5 --allow-bind-anon-dn" "$(tail -3 "$T/start-plain.err")"
fi

check "cleanup" "$H" cleanup "$D"
check "cleanup: nothing left running" not runs "$main_pid" "$D"
check "cleanup: rogue gone too" not runs "$rogue_pid" "$D"
check "cleanup: directory removed" test ! -e "$D"

echo "$PASSED passed, $FAILED failed ($((SECONDS - START)) s)"
((FAILED == 0))
