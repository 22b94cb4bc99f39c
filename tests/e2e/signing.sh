#!/usr/bin/env bash
# End-to-end tests of image signature enforcement (docs/IMAGE-TRUST.md): a REAL docker-registry on
# loopback (Debian's distribution 2.8, in-memory storage), a REAL dockerd with portcullis as its
# authorization plugin, images pushed there and signed with `portcullis image sign`. Needs root.
#
#   tests/e2e/signing.sh             # uses build/portcullis (builds it when missing)
#   SB_KEEP=1 tests/e2e/signing.sh   # keep the temp dir (logs, decision log, registry log)
#
# Users: dana (role developer: signed images only), bob (role breakglass: no signature needed),
# local (unix socket, role admin, no signature needed: pushes and prepares images).
# Prints "ok - ..." / "not ok - ..." per check and, last, "N passed, N failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/sandbox.sh
source "$HERE/../../scripts/lib/sandbox.sh"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

REGISTRY_PID=""
e2e_cleanup_hook() {
  [[ -z "$REGISTRY_PID" ]] || kill "$REGISTRY_PID" 2>/dev/null || true
}

command -v docker-registry >/dev/null || "$SB_REPO/scripts/install-deps.sh"
e2e_start portcullis-e2e-signing


# --- registry -----------------------------------------------------------------------------------
RPORT=$(sb_free_port)
R=127.0.0.1:$RPORT
cat >"$SB_DIR/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {inmemory: {}}
http: {addr: $R}
EOF
start_registry() {
  docker-registry serve "$SB_DIR/registry.yml" >>"$SB_DIR/registry.log" 2>&1 &
  REGISTRY_PID=$!
  sb_wait_until 30 curl -fsS "http://$R/v2/" >/dev/null || sb_die "the registry did not start"
}
start_registry

# --- keys and policy ----------------------------------------------------------------------------
mkdir -p "$SB_DIR/keys"
for k in ci release rogue; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$SB_DIR/keys/$k.key" 2>/dev/null
  openssl pkey -in "$SB_DIR/keys/$k.key" -pubout -out "$SB_DIR/keys/$k.pub"
done
DEV_ACTIONS="[system.ping, system.version, system.info, container.create, container.start,
              container.attach, container.wait, container.remove, container.inspect,
              container.list, container.commit, image.pull, image.inspect, image.list,
              image.load, image.import]"
cat >"$SB_DIR/policy.yaml" <<EOF
version: 1
image_trust:
  keys:
    ci: {file: keys/ci.pub}
    release: {file: keys/release.pub}
  rules:
    - name: apps
      images: ["$R/apps/**"]
      keys: [ci, release]
    - name: critical
      images: ["$R/apps/critical"]
      keys: [ci, release]
      threshold: 2
roles:
  admin:
    require_signed_images: false
    rules:
      - name: admin-all
        actions: ["*"]
  developer:
    rules:
      - name: dev-run
        actions: $DEV_ACTIONS
  breakglass:
    require_signed_images: false
    rules:
      - name: breakglass-run
        actions: $DEV_ACTIONS
bindings:
  - {role: admin, users: [local]}
  - {role: developer, users: [dana]}
  - {role: breakglass, users: [bob]}
EOF
printf 'users:\n  dana: []\n  bob: []\n' >"$SB_DIR/users.yaml"
sb_gen_certs dana bob
sb_write_config "$SB_DIR/portcullis.yaml" "$SB_DIR/policy.yaml" "$SB_DIR/users.yaml" \
  "registries: {timeout_ms: 3000, unsigned_ttl_s: 0, error_ttl_s: 0}"
sb_start_portcullis "$SB_DIR/portcullis.yaml" "$SB_DIR/portcullis.log"
sb_start_dockerd "$SB_PLUGIN"

# --- images ---------------------------------------------------------------------------------------
sb_import_busybox local
# make_image NAME: a distinct image (its own digest) pushed to $R/NAME:1; prints the digest.
make_image() {
  sb_docker local tag "$SB_IMAGE" "seed/$1:1" >/dev/null
  # A label gives each image its own config, hence its own manifest digest.
  sb_docker local commit -c "LABEL name=$1" \
    "$(sb_docker local create --network none "seed/$1:1" true)" "$R/$1:1" >/dev/null
  sb_docker local push "$R/$1:1" >/dev/null
  curl -fsSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$R/v2/$1/manifests/1" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}'
}
sign() { "$PORTCULLIS_BIN" image sign --key "$SB_DIR/keys/$1.key" "${@:2}" >/dev/null; }

D_SIGNED=$(make_image apps/signed)
D_UNSIGNED=$(make_image apps/unsigned)
make_image apps/rogue >/dev/null
make_image apps/critical >/dev/null
make_image apps/bundled >/dev/null
make_image apps/late >/dev/null
make_image apps/other >/dev/null
D_MIRROR=$(make_image apps/elsewhere)
make_image apps/fresh >/dev/null
make_image apps/fresh-unsigned >/dev/null
[[ "$D_SIGNED" == sha256:* && "$D_UNSIGNED" == sha256:* && "$D_SIGNED" != "$D_UNSIGNED" ]] ||
  sb_die "could not read the pushed images' digests"

sign ci "$R/apps/signed:1"
sign rogue "$R/apps/rogue:1"
sign ci "$R/apps/critical:1"
sign release "$R/apps/bundled:1" --format bundle
sign ci "$R/apps/late:1"
sign ci "$R/apps/elsewhere:1"
sign ci "$R/apps/fresh:1"

# copy_signature SRC_REPO DST_REPO DST_DIGEST: the .sig manifest of SRC_REPO's signed image, put
# where DST_REPO's image DST_DIGEST would have its signature (blobs mounted across repositories).
copy_signature() {
  local src=$1 dst=$2 digest=$3 sig_tag manifest blob
  sig_tag=$(curl -fsS "http://$R/v2/$src/tags/list" | jq -r '.tags[] | select(endswith(".sig"))')
  manifest=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$R/v2/$src/manifests/$sig_tag")
  for blob in $(jq -r '.config.digest, .layers[].digest' <<<"$manifest"); do
    curl -fsS -o /dev/null -X POST "http://$R/v2/$dst/blobs/uploads/?mount=$blob&from=$src"
  done
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "$manifest" "http://$R/v2/$dst/manifests/sha256-${digest#sha256:}.sig"
}
# Another digest: apps/signed's signature (for D_SIGNED) placed as apps/unsigned's.
copy_signature apps/signed apps/unsigned "$D_UNSIGNED"
# Another repository: apps/elsewhere's signature copied to apps/mirror, which holds the same image;
# locally the image is known only as apps/mirror (removed, then pulled from there).
sb_docker local tag "$R/apps/elsewhere:1" "$R/apps/mirror:1" >/dev/null
sb_docker local push "$R/apps/mirror:1" >/dev/null
copy_signature apps/elsewhere apps/mirror "$D_MIRROR"
sb_docker local rmi -f "$R/apps/elsewhere:1" "$R/apps/mirror:1" >/dev/null
sb_docker local pull "$R/apps/mirror:1" >/dev/null
# Not pulled here: the docker CLI pulls them during `docker run`.
sb_docker local rmi -f "$R/apps/fresh:1" "$R/apps/fresh-unsigned:1" >/dev/null
# A local retag of an unsigned image under the signed repository's name.
sb_docker local tag "$R/apps/unsigned:1" "$R/apps/signed:retag" >/dev/null

# --- CLI -------------------------------------------------------------------------------------------
if out=$("$PORTCULLIS_BIN" image verify --config "$SB_DIR/portcullis.yaml" "$R/apps/signed:1" 2>&1) &&
  [[ "$out" == *"verified with key ci"* && "$out" == *"TRUSTED"* ]]; then
  ok "image verify: the signed image is trusted and the key is named"
else
  not_ok "image verify: the signed image is trusted and the key is named"
  detail "$out"
fi
rc=0
out=$("$PORTCULLIS_BIN" image verify --config "$SB_DIR/portcullis.yaml" "$R/apps/rogue:1" 2>&1) || rc=$?
if ((rc == 1)) && [[ "$out" == *"REFUSED"* && "$out" == *"does not verify"* ]]; then
  ok "image verify: a signature by an untrusted key is refused (exit 1)"
else
  not_ok "image verify: a signature by an untrusted key is refused (exit $rc)"
  detail "$out"
fi

# --- through dockerd ------------------------------------------------------------------------------
SIG="image-signature"
expect_allowed "signed image by tag" dana create --network none "$R/apps/signed:1" true
expect_allowed "signed image by digest" dana create --network none "$R/apps/signed@$D_SIGNED" true
expect_denied "unsigned image" dev-run "is not signed by 1 of rule apps" \
  dana create --network none "$R/apps/unsigned:1" true
expect_denied "signed by an untrusted key" dev-run "does not verify" \
  dana create --network none "$R/apps/rogue:1" true
expect_denied "local retag of an unsigned image under a signed name" dev-run "is not signed" \
  dana create --network none "$R/apps/signed:retag" true
expect_denied "signature for another digest" dev-run "is for digest $D_SIGNED" \
  dana create --network none "$R/apps/unsigned:1" true
expect_denied "signature for another repository" dev-run "names repository $R/apps/elsewhere" \
  dana create --network none "$R/apps/mirror:1" true
expect_denied "threshold of two keys, one signature" dev-run "only 1 of them signed" \
  dana create --network none "$R/apps/critical:1" true
sign release "$R/apps/critical:1"
expect_allowed "threshold of two keys, both signed" dana create --network none "$R/apps/critical:1" true
expect_allowed "sigstore bundle format (fallback tag on registry 2.8)" \
  dana create --network none "$R/apps/bundled:1" true
expect_allowed "break-glass role: unsigned image allowed" bob create --network none "$R/apps/unsigned:1" true

# docker run of an image that is not here yet: create (judged in the registry), pull, create, start.
expect_allowed "docker run pulls and runs a signed image" \
  dana run --rm --network none "$R/apps/fresh:1" true
expect_denied "docker run of an unsigned image is refused before the pull" dev-run "is not signed" \
  dana run --rm --network none "$R/apps/fresh-unsigned:1" true
if sb_docker local image inspect "$R/apps/fresh-unsigned:1" >/dev/null 2>&1; then
  not_ok "the refused unsigned image was not pulled"
else
  ok "the refused unsigned image was not pulled"
fi

# start is checked too: a container an admin created from an unsigned image.
cid=$(sb_docker local create --network none "$R/apps/unsigned:1" true)
expect_denied "start of a container whose image is unsigned" dev-run "is not signed" dana start "$cid"

# pulls: by digest the signature is checked; a name no rule covers is refused.
expect_allowed "pull of a signed digest" dana pull "$R/apps/signed@$D_SIGNED"
expect_denied "pull of an unsigned digest" dev-run "is not signed" dana pull "$R/apps/unsigned@$D_UNSIGNED"
expect_denied "pull of a name no trust rule covers" dev-run "no image_trust rule covers" \
  dana pull "127.0.0.1:1/other/x:1"

# images made here are refused to the signed-only role.
expect_denied "import by a signed-only role" dev-run "signed images only" \
  dana import - "$R/apps/imported:1" </dev/null
cid=$(sb_docker local create --network none "$R/apps/signed:1" true)
expect_denied "commit by a signed-only role" dev-run "signed images only" dana commit "$cid" x/y:1

# the decision log records the verdict.
rec=$(jq -c 'select(.user == "dana" and .action == "container.create" and .allow == true)
  | .facts.signature' "$SB_DIR/decisions.log" | head -1)
if [[ "$(jq -r '.status + " " + .trust_rule + " " + (.keys | join(","))' <<<"$rec")" == "verified apps ci" ]]; then
  ok "decision log: signature status, trust rule and key of an allowed create"
else
  not_ok "decision log: signature status, trust rule and key of an allowed create"
  detail "$rec"
fi

# registry down: a verdict cached before stands; a digest never verified is refused.
kill "$REGISTRY_PID"
wait "$REGISTRY_PID" 2>/dev/null || true
REGISTRY_PID=""
expect_allowed "registry stopped: cached verdict allowed" dana create --network none "$R/apps/signed:1" true
expect_denied "registry stopped: a new digest is refused" dev-run "cannot check the signatures" \
  dana create --network none "$R/apps/late:1" true

# reload flushes the cache: the same verdict now needs the (stopped) registry.
sb_reload_portcullis
expect_denied "after a reload the cache is flushed" dev-run "cannot check the signatures" \
  dana create --network none "$R/apps/signed:1" true

echo "# signing checks took $((SECONDS - START)) s"
FINISHED=1
