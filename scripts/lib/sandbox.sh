# shellcheck shell=bash
# Sandbox helpers shared by scripts/demo.sh, tests/e2e/run.sh and the benchmarks.
#
#   source "$(dirname "$0")/../scripts/lib/sandbox.sh"
#   sb_init portcullis-e2e           # temp dir, free port, unique plugin name, trap EXIT cleanup
#   sb_gen_certs alice carol         # CA + server cert + client certs (CN=alice, CN=carol)
#   sb_write_config "$SB_DIR/portcullis.yaml" POLICY USERS
#   sb_start_portcullis "$SB_DIR/portcullis.yaml"
#   sb_start_dockerd "$SB_PLUGIN"    # "" = no --authorization-plugin
#   sb_import_busybox local          # test/busybox:1, imported as `local` (unix socket)
#   sb_docker alice run --rm --network none test/busybox:1 true
#   sb_docker local ps               # "local" = the unix socket, anything else = TLS client cert
#
# Everything lives under one temp dir ($SB_DIR) and one unique plugin name ($SB_PLUGIN), so
# parallel runs never meet. Traffic goes to 127.0.0.1 only. sb_cleanup (installed as the EXIT
# trap by sb_init) stops dockerd, then portcullis, and removes the temp dir and the plugin socket,
# also after failures.
#
# Environment knobs:
#   PORTCULLIS_BIN   portcullis binary (default: <repo>/build/portcullis)
#   SB_KEEP=1        keep $SB_DIR after the run (for debugging)
#   SB_QUIET=1       no progress messages on stderr

SB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SB_DOCKER=/usr/bin/docker # Debian's client, explicitly (see LAB.md)
SB_DOCKERD=${SB_DOCKERD:-dockerd}
SB_PLUGIN_DIR=/run/docker/plugins
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$SB_REPO/build/portcullis}

SB_DIR=""
SB_PORT=""
SB_PLUGIN=""
SB_CERTS=""
SB_PORTCULLIS_PID=""
SB_PORTCULLIS_LOG=""
SB_PORTCULLIS_CONFIG=""
SB_DOCKERD_PID=""
SB_DOCKERD_LOG=""
SB_DOCKER_SOCK=""
SB_IMAGE=test/busybox:1

sb_log() { [[ "${SB_QUIET:-0}" == 1 ]] || echo "sandbox: $*" >&2; }
sb_die() {
  echo "sandbox: ERROR: $*" >&2
  exit 1
}

# sb_wait_until TIMEOUT_SECONDS COMMAND... : polls COMMAND every 0.1 s; returns 1 on timeout.
sb_wait_until() {
  local timeout=$1
  shift
  local deadline=$((SECONDS + timeout))
  while ! "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# sb_free_port: prints a TCP port on 127.0.0.1 that nothing listens on.
sb_free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
    if [[ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]]; then
      echo "$p"
      return 0
    fi
  done
  sb_die "no free port found"
}

# sb_require_tools: runs scripts/install-deps.sh when a tool the sandbox needs is missing.
sb_require_tools() {
  local t
  for t in "$SB_DOCKERD" "$SB_DOCKER" busybox curl jq openssl ss timeout; do
    if ! command -v "$t" >/dev/null; then
      sb_log "$t is missing; running scripts/install-deps.sh"
      "$SB_REPO/scripts/install-deps.sh" >&2
      return 0
    fi
  done
}

# sb_ensure_built: builds $PORTCULLIS_BIN (<repo>/build) when it is missing.
sb_ensure_built() {
  [[ ! -x "$PORTCULLIS_BIN" ]] || return 0
  [[ "$PORTCULLIS_BIN" == "$SB_REPO/build/portcullis" ]] ||
    sb_die "PORTCULLIS_BIN=$PORTCULLIS_BIN does not exist"
  sb_log "building portcullis in $SB_REPO/build"
  command -v cmake >/dev/null || "$SB_REPO/scripts/install-deps.sh" >&2
  cmake -S "$SB_REPO" -B "$SB_REPO/build" >&2
  make -C "$SB_REPO/build" -j2 portcullis >&2
}

# sb_init [PREFIX]: creates $SB_DIR, picks $SB_PORT and a unique $SB_PLUGIN, installs the trap.
sb_init() {
  local prefix=${1:-portcullis-sb}
  command -v "$SB_DOCKERD" >/dev/null || sb_die "dockerd not found (run scripts/install-deps.sh)"
  [[ -x "$SB_DOCKER" ]] || sb_die "$SB_DOCKER not found (run scripts/install-deps.sh)"
  # Keep the path short: dockerd's containerd socket lives under it (108-byte sun_path limit).
  SB_DIR=$(mktemp -d /tmp/pc.XXXXXX)
  chmod 0755 "$SB_DIR"
  SB_PORT=$(sb_free_port)
  SB_PLUGIN="$prefix-$$-$RANDOM"
  SB_DOCKER_SOCK="$SB_DIR/docker.sock"
  mkdir -p "$SB_DIR/docker-config"
  trap sb_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  sb_log "dir=$SB_DIR port=$SB_PORT plugin=$SB_PLUGIN"
}

# sb_plugin_socket: the socket path dockerd's v1 discovery looks at for $SB_PLUGIN.
sb_plugin_socket() { echo "$SB_PLUGIN_DIR/$SB_PLUGIN.sock"; }

# sb_gen_certs USER...: CA, server cert for 127.0.0.1 and client certs under $SB_DIR/certs.
sb_gen_certs() {
  SB_CERTS="$SB_DIR/certs"
  "$SB_REPO/scripts/gen-certs.sh" "$SB_CERTS" "$@"
}

# sb_write_config FILE POLICY USERS [EXTRA_YAML]: a portcullis config for this sandbox. The
# policy and users files are referenced by absolute path; the decision log is
# $SB_DIR/decisions.log.
sb_write_config() {
  local file=$1 policy=$2 users=$3 extra=${4:-}
  policy=$(realpath "$policy")
  users=$(realpath "$users")
  cat >"$file" <<EOF
socket: $(sb_plugin_socket)
socket_mode: "0600"
policy: $policy
directory:
  type: file
  path: $users
decision_log: $SB_DIR/decisions.log
threads: 2
log_level: info
limits: {max_request_bytes: 16777216, max_json_depth: 64}
daemon: {socket: $SB_DOCKER_SOCK}
$extra
EOF
}

# sb_ldap_directory_yaml URL CACHE_FLOW_MAP: prints a `directory:` section for the slapd test
# harness (tests/ldap/slapd.sh; source its DIR/env first), e.g.
#   sb_ldap_directory_yaml "$LDAPS_URL" "{positive_ttl: 1h, negative_ttl: 30s}"
# ldap:// URLs get StartTLS.
sb_ldap_directory_yaml() {
  local url=$1 cache=$2 starttls=false
  [[ "$url" == ldap://* ]] && starttls=true
  cat <<YAML
directory:
  type: ldap
  ldap:
    urls: ["$url"]
    starttls: $starttls
    tls: {ca_file: "$LDAP_CA"}
    bind_dn: "$LDAP_BIND_DN"
    bind_password_file: "$LDAP_BIND_PASSWORD_FILE"
    timeouts: {connect: 1s, operation: 2s, decision: 3s}
    pool: {size: 2, backoff_max: 500ms}
    user: {base_dn: "$LDAP_USER_BASE", filter: "(objectClass=inetOrgPerson)"}
    groups: {strategies: [member, posix], base_dn: "$LDAP_GROUP_BASE", max_depth: 5}
  cache: $cache
YAML
}

# sb_plugin_call PATH [CURL_ARGS...]: POST to the plugin socket; prints the body, then a last
# line with the HTTP status ("000" when nothing answered).
sb_plugin_call() {
  local path=$1
  shift
  curl -sS --max-time 10 --unix-socket "$(sb_plugin_socket)" -X POST -w '\n%{http_code}' "$@" \
    "http://plugin.moby.localhost$path" 2>/dev/null || true
}

sb_plugin_ready() {
  [[ -S "$(sb_plugin_socket)" ]] &&
    curl -sf --max-time 2 --unix-socket "$(sb_plugin_socket)" -X POST \
      http://plugin.moby.localhost/Plugin.Activate | grep -q authz
}

# sb_start_portcullis CONFIG [LOG]: starts `portcullis serve` in the background, waits until it
# answers /Plugin.Activate. Sets SB_PORTCULLIS_PID. Appends to LOG (default
# $SB_DIR/portcullis.log) so restarts keep the history.
sb_start_portcullis() {
  local config=$1
  SB_PORTCULLIS_CONFIG=$config
  SB_PORTCULLIS_LOG=${2:-$SB_DIR/portcullis.log}
  [[ -x "$PORTCULLIS_BIN" ]] || sb_die "portcullis binary not found at $PORTCULLIS_BIN"
  mkdir -p "$SB_PLUGIN_DIR"
  "$PORTCULLIS_BIN" serve --config "$config" >>"$SB_PORTCULLIS_LOG" 2>&1 &
  SB_PORTCULLIS_PID=$!
  local deadline=$((SECONDS + 20))
  until sb_plugin_ready; do
    if ! kill -0 "$SB_PORTCULLIS_PID" 2>/dev/null; then
      tail -n 20 "$SB_PORTCULLIS_LOG" >&2 || true
      SB_PORTCULLIS_PID=""
      sb_die "portcullis exited during start-up (log above)"
    fi
    ((SECONDS < deadline)) || {
      tail -n 20 "$SB_PORTCULLIS_LOG" >&2 || true
      sb_die "portcullis did not answer on $(sb_plugin_socket) within 20 s"
    }
    sleep 0.1
  done
  sb_log "portcullis up (pid $SB_PORTCULLIS_PID)"
}

# sb_restart_portcullis: starts portcullis again with the config of the last sb_start_portcullis.
sb_restart_portcullis() { sb_start_portcullis "$SB_PORTCULLIS_CONFIG" "$SB_PORTCULLIS_LOG"; }

# sb_wait_pid_gone PID TIMEOUT: waits for a process to exit (reaps it when it is our child).
sb_wait_pid_gone() {
  local pid=$1 timeout=$2
  local deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null; do
    # A zombie child still answers kill -0; reap it if it has finished.
    if [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* ]]; then break; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
}

# sb_stop_portcullis [SIGNAL]: TERM (default) or KILL; waits for the exit.
sb_stop_portcullis() {
  local sig=${1:-TERM}
  [[ -n "$SB_PORTCULLIS_PID" ]] || return 0
  kill "-$sig" "$SB_PORTCULLIS_PID" 2>/dev/null || true
  if ! sb_wait_pid_gone "$SB_PORTCULLIS_PID" 10; then
    kill -KILL "$SB_PORTCULLIS_PID" 2>/dev/null || true
    sb_wait_pid_gone "$SB_PORTCULLIS_PID" 5 || true
  fi
  SB_PORTCULLIS_PID=""
}

# sb_reload_portcullis: SIGHUP; waits until the log gains a "policy reload" line. Returns 0 when
# the reload succeeded ("policy reloaded"), 1 when it failed or nothing was logged in 10 s.
sb_reload_portcullis() {
  [[ -n "$SB_PORTCULLIS_PID" ]] || sb_die "portcullis is not running"
  local before
  before=$(grep -c "policy reload" "$SB_PORTCULLIS_LOG" || true)
  kill -HUP "$SB_PORTCULLIS_PID"
  local deadline=$((SECONDS + 10))
  while (($(grep -c "policy reload" "$SB_PORTCULLIS_LOG" || true) <= before)); do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
  grep "policy reload" "$SB_PORTCULLIS_LOG" | tail -n 1 | grep -q "policy reloaded"
}

sb_dockerd_ready() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --unix-socket "$SB_DOCKER_SOCK" \
    http://docker/_ping 2>/dev/null || true)
  # Any HTTP answer (even 403 from the plugin) means the daemon is serving.
  [[ -n "$code" && "$code" != 000 ]]
}

# sb_start_dockerd [PLUGIN_NAME [EXTRA_DOCKERD_ARGS...]]: a private dockerd on
# unix://$SB_DOCKER_SOCK and (when sb_gen_certs ran) tcp://127.0.0.1:$SB_PORT with --tlsverify.
# An empty PLUGIN_NAME starts it without --authorization-plugin. The plugin must already be
# listening. Waits (≤ 60 s) until the daemon answers.
sb_start_dockerd() {
  local plugin=${1:-}
  shift || true
  local args=(
    --config-file "$SB_DIR/daemon.json"
    --data-root "$SB_DIR/root"
    --exec-root "$SB_DIR/exec"
    --pidfile "$SB_DIR/docker.pid"
    -H "unix://$SB_DOCKER_SOCK"
    --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none
  )
  if [[ -n "$SB_CERTS" ]]; then
    args+=(-H "tcp://127.0.0.1:$SB_PORT" --tlsverify --tlscacert "$SB_CERTS/ca.pem"
      --tlscert "$SB_CERTS/server.pem" --tlskey "$SB_CERTS/server-key.pem")
  fi
  [[ -z "$plugin" ]] || args+=("--authorization-plugin=$plugin")
  echo '{}' >"$SB_DIR/daemon.json"
  SB_DOCKERD_LOG=$SB_DIR/dockerd.log
  "$SB_DOCKERD" "${args[@]}" "$@" >>"$SB_DOCKERD_LOG" 2>&1 &
  SB_DOCKERD_PID=$!
  local deadline=$((SECONDS + 60))
  until sb_dockerd_ready; do
    if ! kill -0 "$SB_DOCKERD_PID" 2>/dev/null; then
      tail -n 20 "$SB_DOCKERD_LOG" >&2 || true
      SB_DOCKERD_PID=""
      sb_die "dockerd exited during start-up (log above)"
    fi
    ((SECONDS < deadline)) || {
      tail -n 20 "$SB_DOCKERD_LOG" >&2 || true
      sb_die "dockerd did not answer within 60 s"
    }
    sleep 0.2
  done
  sb_log "dockerd up (pid $SB_DOCKERD_PID${plugin:+, authz plugin $plugin})"
}

# sb_stop_dockerd: SIGTERM, then waits for the pidfile to disappear (≤ 30 s), then SIGKILL.
sb_stop_dockerd() {
  [[ -n "$SB_DOCKERD_PID" ]] || return 0
  kill -TERM "$SB_DOCKERD_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while [[ -e "$SB_DIR/docker.pid" ]] && kill -0 "$SB_DOCKERD_PID" 2>/dev/null; do
    ((SECONDS < deadline)) || break
    sleep 0.2
  done
  if ! sb_wait_pid_gone "$SB_DOCKERD_PID" 10; then
    sb_log "dockerd did not stop; killing it"
    kill -KILL "$SB_DOCKERD_PID" 2>/dev/null || true
    sb_wait_pid_gone "$SB_DOCKERD_PID" 5 || true
  fi
  SB_DOCKERD_PID=""
}

# sb_docker WHO ARGS...: runs Debian's docker client against the sandbox daemon. WHO "local"
# uses the unix socket (no TLS identity); any other WHO uses $SB_CERTS/WHO as DOCKER_CERT_PATH.
# With SB_DOCKER_TIMEOUT=N the client is killed after N seconds (exit status 124).
sb_docker() {
  local who=$1
  shift
  local pre=()
  [[ -z "${SB_DOCKER_TIMEOUT:-}" ]] || pre=(timeout -k 5 "$SB_DOCKER_TIMEOUT")
  if [[ "$who" == local ]]; then
    "${pre[@]}" env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH -u DOCKER_CONTEXT \
      DOCKER_CONFIG="$SB_DIR/docker-config" "$SB_DOCKER" -H "unix://$SB_DOCKER_SOCK" "$@"
  else
    [[ -n "$SB_CERTS" && -d "$SB_CERTS/$who" ]] || sb_die "no client certificate for '$who'"
    "${pre[@]}" env -u DOCKER_CONTEXT DOCKER_HOST="tcp://127.0.0.1:$SB_PORT" DOCKER_TLS_VERIFY=1 \
      DOCKER_CERT_PATH="$SB_CERTS/$who" DOCKER_CONFIG="$SB_DIR/docker-config" "$SB_DOCKER" "$@"
  fi
}

# sb_import_busybox [WHO [IMAGE]]: builds a rootfs from busybox-static and imports it as IMAGE
# (default test/busybox:1) as WHO (default local). `docker import` is the image.import action.
sb_import_busybox() {
  local who=${1:-local} image=${2:-$SB_IMAGE}
  local busybox rootfs=$SB_DIR/busybox-rootfs
  busybox=$(command -v busybox || true)
  [[ -n "$busybox" ]] || sb_die "busybox not found (install busybox-static)"
  rm -rf "$rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
  cp "$busybox" "$rootfs/bin/busybox"
  local applet
  for applet in sh true false cat echo ls id sleep env; do
    ln -sf busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | sb_docker "$who" import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$image" \
    >/dev/null
  sb_log "imported $image as $who"
}

# sb_umount_under DIR: lazily unmounts anything left mounted below DIR (after a crashed daemon).
sb_umount_under() {
  local dir=$1 mnt
  [[ -n "$dir" ]] || return 0
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}

# sb_cleanup: stops everything this sandbox started and removes its files. Idempotent.
sb_cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  sb_stop_dockerd
  sb_stop_portcullis TERM
  if [[ -n "$SB_PLUGIN" ]]; then rm -f "$(sb_plugin_socket)"; fi
  if [[ -n "$SB_DIR" && -d "$SB_DIR" ]]; then
    sb_umount_under "$SB_DIR"
    if [[ "${SB_KEEP:-0}" == 1 ]]; then
      sb_log "kept $SB_DIR"
    else
      rm -rf "$SB_DIR"
    fi
  fi
  SB_DIR=""
  return "$rc"
}
