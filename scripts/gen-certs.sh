#!/usr/bin/env bash
# gen-certs.sh DIR USER...
# Generates a throw-away PKI for a sandbox dockerd with the openssl CLI:
#   DIR/ca.pem, DIR/ca-key.pem                 the CA
#   DIR/server.pem, DIR/server-key.pem         server cert for 127.0.0.1 (serverAuth)
#   DIR/USER/{ca.pem,cert.pem,key.pem}         one client cert per USER (CN=USER, clientAuth),
#                                              laid out as DOCKER_CERT_PATH expects
# Keys are generated at run time and must never be committed.
set -euo pipefail

if (($# < 1)); then
  echo "usage: $0 DIR [USER...]" >&2
  exit 2
fi
dir=$1
shift
days=${GEN_CERTS_DAYS:-2}

mkdir -p "$dir"
umask 077

ossl() {
  local out
  if ! out=$(openssl "$@" 2>&1); then
    echo "gen-certs: openssl $1 failed:" >&2
    echo "$out" >&2
    exit 1
  fi
}

newkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# CA
if [[ ! -s "$dir/ca.pem" || ! -s "$dir/ca-key.pem" ]]; then
  newkey "$dir/ca-key.pem"
  ossl req -x509 -new -key "$dir/ca-key.pem" -sha256 -days "$days" \
    -subj "/CN=portcullis test CA $$" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem"
fi

# sign CSR_FILE OUT_FILE EXTFILE
sign() {
  ossl x509 -req -in "$1" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -CAserial "$dir/ca.srl" -sha256 -days "$days" -extfile "$3" -out "$2"
}

# Server certificate for 127.0.0.1
newkey "$dir/server-key.pem"
ossl req -new -key "$dir/server-key.pem" -subj "/CN=127.0.0.1" -out "$dir/server.csr"
cat >"$dir/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EXT
sign "$dir/server.csr" "$dir/server.pem" "$dir/server.ext"
rm -f "$dir/server.csr" "$dir/server.ext"

# Client certificates
for user in "$@"; do
  # LDAP filter metacharacters (* ( ) =) are allowed: tests use them as hostile names. Never
  # "/" or "\\" (they would change the subject or the directory) or a leading dot.
  if [[ ! "$user" =~ ^[A-Za-z0-9_@*()=-][A-Za-z0-9._@*()=-]*$ ]]; then
    echo "gen-certs: refusing odd user name '$user'" >&2
    exit 2
  fi
  udir="$dir/$user"
  mkdir -p "$udir"
  newkey "$udir/key.pem"
  ossl req -new -key "$udir/key.pem" -subj "/CN=$user" -out "$udir/client.csr"
  cat >"$udir/client.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT
  sign "$udir/client.csr" "$udir/cert.pem" "$udir/client.ext"
  cp "$dir/ca.pem" "$udir/ca.pem"
  rm -f "$udir/client.csr" "$udir/client.ext"
done

# Certificates are public; keys stay 0600.
chmod 0644 "$dir/ca.pem" "$dir/server.pem"
for user in "$@"; do chmod 0644 "$dir/$user/ca.pem" "$dir/$user/cert.pem"; done
