#!/usr/bin/env bash
# Installs every Debian 12 package portcullis needs to build, test, demo and benchmark.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git
  libboost-dev libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev
  libspdlog-dev doctest-dev libldap-dev
  clang libclang-rt-14-dev clang-format
  docker.io containerd runc busybox-static
  openssl curl iproute2 procps jq
  wrk hyperfine
  slapd ldap-utils
  docker-registry
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  # docker.io's maintainer scripts try to start services; policy-rc.d keeps them quiet where systemd is absent.
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Tests run their own slapd (tests/ldap/slapd.sh); never leave the system one we just installed running.
  if [[ " ${missing[*]} " == *" slapd "* ]]; then
    $SUDO service slapd stop >/dev/null 2>&1 || true
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now slapd >/dev/null 2>&1 || true
    fi
  fi
  # Likewise the packaged registry (it would listen on :5000): tests run their own on loopback.
  if [[ " ${missing[*]} " == *" docker-registry "* ]]; then
    $SUDO service docker-registry stop >/dev/null 2>&1 || true
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
  fi
else
  echo "install-deps: all packages present"
fi
