#!/usr/bin/env bash
# A private, throw-away OpenLDAP slapd on loopback for portcullis's LDAP tests.
#
#   tests/ldap/slapd.sh start DIR [--variant memberof|plain] [--rogue] [--sizelimit N]
#                                 [--allow-bind-anon-dn]
#   tests/ldap/slapd.sh stop DIR         # stop the slapd(s) this harness started in DIR (waits)
#   tests/ldap/slapd.sh restart DIR      # stop (if running) + start again: same ports, same data
#   tests/ldap/slapd.sh pause DIR        # SIGSTOP the main slapd (ports stay open, nothing answers)
#   tests/ldap/slapd.sh resume DIR       # SIGCONT
#   tests/ldap/slapd.sh ldapmodify DIR FILE|-   # ldapmodify as the rootdn (admin) on the main server
#   tests/ldap/slapd.sh search DIR [ldapsearch args...]  # ldapsearch as the service account
#   tests/ldap/slapd.sh status DIR       # exit 0 when the main slapd answers
#   tests/ldap/slapd.sh cleanup DIR      # stop + rm -rf DIR
#
# start: DIR must not exist or be empty (keep the path short). It writes DIR/certs/*, the slapd
# config, loads tests/ldap/fixture.ldif ONLINE with ldapadd (the memberof overlay needs that) and
# writes DIR/env (shell, `source DIR/env`) and DIR/env.json (same keys, all values strings).
# slapd's log: DIR/slapd.log (rogue server: DIR/rogue-slapd.log). See tests/ldap/README.md.
#
# Every wait is bounded; every failure exits non-zero with a message on stderr. Only PIDs recorded
# in DIR are ever signalled, and only after checking that they still run OUR slapd.conf.
set -euo pipefail
[ -z "${SLAPD_SH_TRACE:-}" ] || { exec 19>>"$SLAPD_SH_TRACE"; BASH_XTRACEFD=19; PS4='+ ${EPOCHREALTIME} '; set -x; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIXTURE="$HERE/fixture.ldif"
SUFFIX="dc=example,dc=test"
ADMIN_DN="cn=admin,$SUFFIX"
BIND_DN="cn=svc-portcullis,ou=services,$SUFFIX"
BIND_PW="svc-portcullis-test-pw" # must match fixture.ldif
HOST=127.0.0.1
ALT_HOST=127.0.0.2 # same listeners, but NOT in the server certificate's SAN

die() {
  echo "slapd.sh: error: $*" >&2
  exit 1
}
log() { echo "slapd.sh: $*" >&2; }

usage() {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

SLAPD_BIN=$(command -v slapd 2>/dev/null || true)
[ -n "$SLAPD_BIN" ] || [ ! -x /usr/sbin/slapd ] || SLAPD_BIN=/usr/sbin/slapd

need_tools() {
  [ -n "$SLAPD_BIN" ] || die "slapd not found (run scripts/install-deps.sh: packages slapd ldap-utils)"
  local t
  for t in ldapadd ldapmodify ldapsearch ldapwhoami openssl jq ss timeout; do
    command -v "$t" >/dev/null || die "$t not found (run scripts/install-deps.sh)"
  done
}

# Plain-LDAP CLI calls never read ldap.conf/ldaprc/LDAP* variables. -o nettimeout only bounds the
# TCP connect (a paused slapd still accepts), so every call also runs under `timeout`.
CLI_TIMEOUT=15
cli() { LDAPNOINIT=1 timeout "$CLI_TIMEOUT" "$@"; }

# TLS CLI calls: LDAPNOINIT would also disable the LDAPTLS_* variables we need, so instead run in
# DIR with HOME=DIR (no ~/.ldaprc, no ./ldaprc) and set every TLS variable explicitly (they override
# /etc/ldap/ldap.conf). Usage: tls_cli CAFILE cmd args...
tls_cli() {
  local ca=$1
  shift
  (cd "$DIR" && env -u LDAPNOINIT -u LDAPCONF -u LDAPRC HOME="$DIR" LDAPTLS_CACERT="$ca" \
    LDAPTLS_REQCERT=demand timeout "$CLI_TIMEOUT" "$@")
}

shq() { # single-quote for sh
  local q="'\\''"
  printf "'%s'" "${1//\'/$q}"
}

# ---------------------------------------------------------------------------------------------
# certificates

gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }

gen_ca() { # NAME CN
  gen_key "$C/$1.key"
  openssl req -x509 -new -key "$C/$1.key" -days 3 -subj "/O=portcullis-test/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$C/$1.pem" 2>/dev/null
}

gen_leaf() { # NAME CA CN EXTENSIONS...
  local name=$1 ca=$2 cn=$3
  shift 3
  gen_key "$C/$name.key"
  openssl req -new -key "$C/$name.key" -subj "/O=portcullis-test/CN=$cn" -out "$C/$name.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "authorityKeyIdentifier=keyid" "$@" >"$C/$name.ext"
  openssl x509 -req -in "$C/$name.csr" -CA "$C/$ca.pem" -CAkey "$C/$ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 3 -extfile "$C/$name.ext" -out "$C/$name.pem" 2>/dev/null
  rm -f "$C/$name.csr" "$C/$name.ext"
}

gen_certs() {
  C="$DIR/certs"
  mkdir -p "$C"
  local srv_ext=("keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth"
    "subjectAltName=IP:$HOST,DNS:localhost")
  {
    gen_ca ca "portcullis test CA" &&
      gen_ca rogue-ca "portcullis ROGUE CA" &&
      gen_leaf server ca localhost "${srv_ext[@]}" &&
      gen_leaf rogue-server rogue-ca localhost "${srv_ext[@]}" &&
      gen_leaf client ca svc-portcullis "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth"
  } || die "certificate generation with openssl failed"
  chmod 600 "$C"/*.key
}

# ---------------------------------------------------------------------------------------------
# config

write_conf() { # INSTANCE(main|rogue) CERTNAME
  local inst=$1 cert=$2 d="$DIR/$1"
  mkdir -p "$d/db"
  {
    echo "# generated by tests/ldap/slapd.sh ($inst, variant $VARIANT)"
    echo "include /etc/ldap/schema/core.schema"
    echo "include /etc/ldap/schema/cosine.schema"
    echo "include /etc/ldap/schema/inetorgperson.schema"
    echo "include /etc/ldap/schema/nis.schema"
    echo "modulepath /usr/lib/ldap"
    echo "moduleload back_mdb"
    [ "$VARIANT" != memberof ] || echo "moduleload memberof"
    echo "moduleload refint"
    echo "pidfile $d/slapd.pid"
    echo "argsfile $d/slapd.args"
    echo "loglevel stats"
    if [ "$ALLOW_BIND_ANON_DN" = 1 ]; then
      # AD-like: "DN + empty password" binds succeed as anonymous (reads still need authc)
      echo "allow bind_anon_dn"
    else
      echo "disallow bind_anon"
    fi
    echo "require authc"
    echo "TLSCACertificateFile $DIR/certs/ca.pem"
    echo "TLSCertificateFile $DIR/certs/$cert.pem"
    echo "TLSCertificateKeyFile $DIR/certs/$cert.key"
    echo "TLSVerifyClient try"
    # mTLS: SASL EXTERNAL with certs/client.pem authenticates as the service account
    echo "authz-regexp \"^cn=svc-portcullis,o=portcullis-test\$\" \"$BIND_DN\""
    echo "sizelimit $SIZELIMIT"
    echo "timelimit 10"
    echo
    echo "database mdb"
    echo "maxsize 67108864"
    echo "suffix \"$SUFFIX\""
    echo "rootdn \"$ADMIN_DN\""
    echo "rootpw $ADMIN_PW"
    echo "directory $d/db"
    echo "index objectClass eq"
    echo "index uid,cn eq"
    echo "index member,uniqueMember,memberUid eq"
    echo "access to attrs=userPassword by anonymous auth by * none"
    echo "access to * by dn.exact=\"$BIND_DN\" read by * none"
    if [ "$VARIANT" = memberof ]; then
      echo
      echo "overlay memberof"
      echo "memberof-group-oc groupOfNames"
      echo "memberof-member-ad member"
      echo "memberof-memberof-ad memberOf"
      echo "memberof-refint true"
      echo "memberof-dangling error"
    fi
    echo
    echo "overlay refint"
    echo "refint_attributes member uniqueMember"
  } >"$d/slapd.conf"
  "$SLAPD_BIN" -Ttest -u -f "$d/slapd.conf" >"$d/slaptest.out" 2>&1 ||
    die "slaptest rejected $d/slapd.conf: $(tail -5 "$d/slaptest.out")"
}

# ---------------------------------------------------------------------------------------------
# processes

# PID of INSTANCE if it is alive AND is our slapd (guards against PID reuse); else empty.
live_pid() {
  local f="$DIR/$1/pid" pid cmd
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 0
  [[ "$cmd" == *" -f $DIR/$1/slapd.conf "* ]] || return 0
  # a zombie is not running
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 0
  echo "$pid"
}

used_ports() { ss -Htanl 2>/dev/null | awk '{n=split($4,a,":"); print a[n]}'; }

pick_ports() { # N -> prints N distinct free ports
  local want=$1 got=() p i used
  used=" $(used_ports | tr '\n' ' ') "
  for ((i = 0; i < 200 && ${#got[@]} < want; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    [[ "$used" == *" $p "* || " ${got[*]} " == *" $p "* ]] && continue
    got+=("$p")
  done
  ((${#got[@]} == want)) || die "could not find $want free loopback ports"
  echo "${got[@]}"
}

# Launch INSTANCE on ports P (ldap) and Q (ldaps); wait until it answers. Returns 1 (after
# killing it) if it did not come up, e.g. because a port was taken.
launch() {
  local inst=$1 p=$2 q=$3 d="$DIR/$1" logf pid deadline=$((SECONDS + 20)) CLI_TIMEOUT=3
  logf="$DIR/slapd.log"
  [ "$inst" = main ] || logf="$DIR/$inst-slapd.log"
  local urls="ldap://$HOST:$p/ ldaps://$HOST:$q/"
  [ "$inst" != main ] || urls+=" ldap://$ALT_HOST:$p/ ldaps://$ALT_HOST:$q/"
  echo "=== $(date -u +%FT%TZ) starting $inst: $urls" >>"$logf"
  # -d: stay in the foreground (we own the PID); log to stderr -> the log file. Close every other
  # inherited descriptor so slapd never holds a caller's pipe or socket open.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      ((fd <= 2)) || eval "exec $fd>&-" 2>/dev/null || true
    done
    exec "$SLAPD_BIN" -f "$d/slapd.conf" -h "$urls" -d stats
  ) </dev/null >>"$logf" 2>&1 &
  pid=$!
  echo "$pid" >"$d/pid"
  while ((SECONDS < deadline)); do
    if [ -z "$(live_pid "$inst")" ]; then
      wait "$pid" 2>/dev/null || true
      log "$inst slapd exited during startup; last log lines:"
      tail -5 "$logf" >&2
      rm -f "$d/pid"
      return 1
    fi
    if cli ldapwhoami -x -o nettimeout=2 -H "ldap://$HOST:$p" -D "$ADMIN_DN" -w "$ADMIN_PW" \
      >/dev/null 2>&1; then
      # ldaps must answer too (bad TLS files only show up here).
      if tls_cli "$DIR/certs/${4:-ca}.pem" ldapwhoami -x -o nettimeout=2 -H "ldaps://$HOST:$q" \
        -D "$ADMIN_DN" -w "$ADMIN_PW" >/dev/null 2>>"$d/tls-probe.err"; then
        return 0
      fi
    fi
    sleep 0.1
  done
  log "$inst slapd did not become ready within 20 s (see $logf, $d/tls-probe.err)"
  kill_instance "$inst"
  return 1
}

kill_instance() {
  local inst=$1 pid i
  pid=$(live_pid "$inst")
  if [ -n "$pid" ]; then
    kill -CONT "$pid" 2>/dev/null || true # a paused slapd cannot act on SIGTERM
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do # <= 10 s
      [ -n "$(live_pid "$inst")" ] || break
      sleep 0.1
    done
    if [ -n "$(live_pid "$inst")" ]; then
      log "$inst slapd (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        [ -n "$(live_pid "$inst")" ] || break
        sleep 0.1
      done
      [ -z "$(live_pid "$inst")" ] || die "could not stop $inst slapd (pid $pid)"
    fi
    # reap it if it happens to be our child (start + stop in one shell)
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/$inst/pid"
}

load_fixture() { # INSTANCE PORT
  local logf="$DIR/$1/ldapadd.out"
  cli ldapadd -x -H "ldap://$HOST:$2" -D "$ADMIN_DN" -w "$ADMIN_PW" -f "$FIXTURE" >"$logf" 2>&1 ||
    die "loading $FIXTURE into the $1 slapd failed: $(tail -3 "$logf")"
}

# ---------------------------------------------------------------------------------------------
# env files

write_env() {
  local keys=(LDAP_DIR LDAP_VARIANT LDAP_HOST LDAP_PORT LDAPS_PORT LDAP_URL LDAPS_URL
    LDAP_SAN_MISMATCH_URL LDAPS_SAN_MISMATCH_URL LDAP_CA LDAP_ROGUE_CA LDAP_CLIENT_CERT
    LDAP_CLIENT_KEY LDAP_BIND_DN LDAP_BIND_PASSWORD_FILE LDAP_BASE LDAP_USER_BASE LDAP_GROUP_BASE
    LDAP_ADMIN_DN LDAP_ADMIN_PW LDAP_SIZELIMIT SLAPD_PID SLAPD_LOG ROGUE_LDAP_URL ROGUE_LDAPS_URL
    ROGUE_SLAPD_PID ROGUE_SLAPD_LOG LDAP_ROGUE LDAP_ALLOW_BIND_ANON_DN)
  local rogue_pid="" rogue_url="" rogues_url=""
  if [ "$ROGUE" = 1 ]; then
    rogue_pid=$(live_pid rogue)
    rogue_url="ldap://$HOST:$ROGUE_LDAP_PORT"
    rogues_url="ldaps://$HOST:$ROGUE_LDAPS_PORT"
  fi
  local -A v=(
    [LDAP_DIR]="$DIR" [LDAP_VARIANT]="$VARIANT" [LDAP_HOST]="$HOST"
    [LDAP_PORT]="$LDAP_PORT" [LDAPS_PORT]="$LDAPS_PORT"
    [LDAP_URL]="ldap://$HOST:$LDAP_PORT" [LDAPS_URL]="ldaps://$HOST:$LDAPS_PORT"
    [LDAP_SAN_MISMATCH_URL]="ldap://$ALT_HOST:$LDAP_PORT"
    [LDAPS_SAN_MISMATCH_URL]="ldaps://$ALT_HOST:$LDAPS_PORT"
    [LDAP_CA]="$DIR/certs/ca.pem" [LDAP_ROGUE_CA]="$DIR/certs/rogue-ca.pem"
    [LDAP_CLIENT_CERT]="$DIR/certs/client.pem" [LDAP_CLIENT_KEY]="$DIR/certs/client.key"
    [LDAP_BIND_DN]="$BIND_DN" [LDAP_BIND_PASSWORD_FILE]="$DIR/bind-password"
    [LDAP_BASE]="$SUFFIX" [LDAP_USER_BASE]="ou=people,$SUFFIX" [LDAP_GROUP_BASE]="ou=groups,$SUFFIX"
    [LDAP_ADMIN_DN]="$ADMIN_DN" [LDAP_ADMIN_PW]="$ADMIN_PW" [LDAP_SIZELIMIT]="$SIZELIMIT"
    [SLAPD_PID]="$(live_pid main)" [SLAPD_LOG]="$DIR/slapd.log"
    [ROGUE_LDAP_URL]="$rogue_url" [ROGUE_LDAPS_URL]="$rogues_url" [ROGUE_SLAPD_PID]="$rogue_pid"
    [ROGUE_SLAPD_LOG]="${rogue_url:+$DIR/rogue-slapd.log}"
    [LDAP_ROGUE]="$ROGUE" [LDAP_ALLOW_BIND_ANON_DN]="$ALLOW_BIND_ANON_DN"
  )
  local k jqargs=() sh=""
  for k in "${keys[@]}"; do
    sh+="$k=$(shq "${v[$k]}")"$'\n'
    jqargs+=(--arg "$k" "${v[$k]}")
  done
  # internal state for restart (not part of the documented interface)
  sh+="ROGUE_LDAP_PORT=$(shq "${ROGUE_LDAP_PORT:-}")"$'\n'
  sh+="ROGUE_LDAPS_PORT=$(shq "${ROGUE_LDAPS_PORT:-}")"$'\n'
  printf '%s' "$sh" >"$DIR/env.tmp" && mv -f "$DIR/env.tmp" "$DIR/env"
  jq -n '$ARGS.named' "${jqargs[@]}" >"$DIR/env.json.tmp" || die "writing $DIR/env.json failed"
  mv -f "$DIR/env.json.tmp" "$DIR/env.json"
}

load_env() {
  [ -s "$DIR/env" ] || die "$DIR/env not found: was '$0 start $DIR' run?"
  # shellcheck source=/dev/null
  source "$DIR/env"
  VARIANT=$LDAP_VARIANT SIZELIMIT=$LDAP_SIZELIMIT ADMIN_PW=$LDAP_ADMIN_PW ROGUE=$LDAP_ROGUE
  ALLOW_BIND_ANON_DN=$LDAP_ALLOW_BIND_ANON_DN
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_start() {
  VARIANT=memberof SIZELIMIT=500 ROGUE=0 ALLOW_BIND_ANON_DN=0
  while (($#)); do
    case $1 in
    --variant)
      VARIANT=${2:-}
      shift 2 || die "--variant needs a value"
      ;;
    --variant=*) VARIANT=${1#*=} && shift ;;
    --sizelimit)
      SIZELIMIT=${2:-}
      shift 2 || die "--sizelimit needs a value"
      ;;
    --sizelimit=*) SIZELIMIT=${1#*=} && shift ;;
    --rogue) ROGUE=1 && shift ;;
    --allow-bind-anon-dn) ALLOW_BIND_ANON_DN=1 && shift ;;
    *) die "start: unknown option '$1'" ;;
    esac
  done
  [[ "$VARIANT" == memberof || "$VARIANT" == plain ]] || die "--variant must be memberof or plain"
  [[ "$SIZELIMIT" =~ ^[1-9][0-9]{0,5}$ ]] || die "--sizelimit must be a positive integer"
  need_tools
  [ -f "$FIXTURE" ] || die "fixture $FIXTURE missing"
  if [ -e "$DIR" ]; then
    [ -d "$DIR" ] || die "$DIR exists and is not a directory"
    [ -z "$(ls -A "$DIR")" ] || die "$DIR is not empty (give start a fresh directory)"
  fi
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  ADMIN_PW="admin-$(openssl rand -hex 8)"
  (umask 077 && printf '%s' "$BIND_PW" >"$DIR/bind-password")
  gen_certs
  write_conf main server
  [ "$ROGUE" != 1 ] || write_conf rogue rogue-server

  local tries ports
  for ((tries = 0; ; tries++)); do
    ((tries < 5)) || die "main slapd failed to start 5 times (see $DIR/slapd.log)"
    read -r LDAP_PORT LDAPS_PORT <<<"$(pick_ports 2)"
    launch main "$LDAP_PORT" "$LDAPS_PORT" && break
    rm -rf "${DIR:?}/main/db" && mkdir -p "$DIR/main/db"
  done
  # if anything below fails (die/exit), do not leave slapd running
  trap 'kill_instance main; kill_instance rogue' EXIT
  load_fixture main "$LDAP_PORT"
  if [ "$ROGUE" = 1 ]; then
    for ((tries = 0; ; tries++)); do
      ((tries < 5)) || { kill_instance main; die "rogue slapd failed to start 5 times (see $DIR/rogue-slapd.log)"; }
      ports=$(pick_ports 4) # avoid the main ports even if ss raced
      read -r ROGUE_LDAP_PORT ROGUE_LDAPS_PORT _ _ <<<"$ports"
      [[ "$ROGUE_LDAP_PORT" != "$LDAP_PORT" && "$ROGUE_LDAP_PORT" != "$LDAPS_PORT" &&
        "$ROGUE_LDAPS_PORT" != "$LDAP_PORT" && "$ROGUE_LDAPS_PORT" != "$LDAPS_PORT" ]] || continue
      launch rogue "$ROGUE_LDAP_PORT" "$ROGUE_LDAPS_PORT" rogue-ca && break
      rm -rf "${DIR:?}/rogue/db" && mkdir -p "$DIR/rogue/db"
    done
    load_fixture rogue "$ROGUE_LDAP_PORT"
  fi
  write_env
  trap - EXIT
  log "ready: ldap://$HOST:$LDAP_PORT ldaps://$HOST:$LDAPS_PORT (variant $VARIANT, sizelimit $SIZELIMIT$([ "$ROGUE" != 1 ] || echo ", rogue ldap://$HOST:$ROGUE_LDAP_PORT ldaps://$HOST:$ROGUE_LDAPS_PORT")); env in $DIR/env"
}

cmd_stop() {
  [ -d "$DIR" ] || die "$DIR does not exist"
  kill_instance main
  kill_instance rogue
  if [ -s "$DIR/env" ]; then
    load_env
    write_env
  fi
}

cmd_restart() {
  load_env
  need_tools
  kill_instance main
  launch main "$LDAP_PORT" "$LDAPS_PORT" || die "main slapd did not come back on ports $LDAP_PORT/$LDAPS_PORT"
  if [ "$ROGUE" = 1 ]; then
    kill_instance rogue
    launch rogue "$ROGUE_LDAP_PORT" "$ROGUE_LDAPS_PORT" rogue-ca ||
      die "rogue slapd did not come back on ports $ROGUE_LDAP_PORT/$ROGUE_LDAPS_PORT"
  fi
  write_env
  log "restarted (pid $(live_pid main))"
}

cmd_signal() { # SIG
  local pid
  load_env
  pid=$(live_pid main)
  [ -n "$pid" ] || die "main slapd is not running in $DIR"
  kill "-$1" "$pid" || die "kill -$1 $pid failed"
}

cmd_ldapmodify() {
  local f=${1:-}
  [ -n "$f" ] || die "usage: $0 ldapmodify DIR FILE|-"
  load_env
  if [ "$f" = - ]; then
    cli ldapmodify -x -H "$LDAP_URL" -D "$LDAP_ADMIN_DN" -w "$LDAP_ADMIN_PW"
  else
    [ -r "$f" ] || die "cannot read $f"
    cli ldapmodify -x -H "$LDAP_URL" -D "$LDAP_ADMIN_DN" -w "$LDAP_ADMIN_PW" -f "$f"
  fi
}

cmd_search() {
  load_env
  cli ldapsearch -x -LLL -o ldif_wrap=no -o nettimeout=5 -H "$LDAP_URL" -D "$LDAP_BIND_DN" \
    -y "$LDAP_BIND_PASSWORD_FILE" -b "$LDAP_BASE" "$@"
}

cmd_status() {
  local CLI_TIMEOUT=3
  load_env
  [ -n "$(live_pid main)" ] || die "main slapd is not running"
  cli ldapwhoami -x -o nettimeout=2 -H "$LDAP_URL" -D "$LDAP_BIND_DN" -y "$LDAP_BIND_PASSWORD_FILE" \
    >/dev/null 2>&1 || die "main slapd does not answer"
}

cmd_cleanup() {
  [ -e "$DIR" ] || return 0
  [ -d "$DIR" ] || die "$DIR is not a directory"
  kill_instance main
  kill_instance rogue
  # refuse to rm -rf something that does not look like a harness directory
  if [ -n "$(ls -A "$DIR")" ] && [ ! -e "$DIR/env" ] && [ ! -d "$DIR/certs" ] && [ ! -d "$DIR/main" ]; then
    die "$DIR does not look like a slapd.sh directory; not removing it"
  fi
  rm -rf -- "$DIR"
}

(($# >= 2)) || usage
CMD=$1
DIR=$2
shift 2
[ -n "$DIR" ] || die "DIR must not be empty"
case $DIR in /*) ;; *) DIR="$PWD/$DIR" ;; esac
case $CMD in
start) cmd_start "$@" ;;
stop) cmd_stop ;;
restart) cmd_restart ;;
pause) cmd_signal STOP ;;
resume) cmd_signal CONT ;;
ldapmodify) cmd_ldapmodify "$@" ;;
search) cmd_search "$@" ;;
status) cmd_status ;;
cleanup) cmd_cleanup ;;
*) usage ;;
esac
