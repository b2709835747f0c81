#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, when missing:
# BIND 9 and its tools (the DNS server of the test environment), openssl and
# curl (certificates and readiness checks), python3 (free ports; the backends
# of hack/traefik-env.sh), iproute2 (their network namespaces) and the script
# linter shellcheck. Go and Rust come with the machine; the Go-built servers
# are made by hack/build-tools.sh.
set -euo pipefail

declare -A need=(
  [named]=bind9 [dig]=bind9-dnsutils [nsupdate]=bind9-dnsutils
  [openssl]=openssl [curl]=curl [python3]=python3 [shellcheck]=shellcheck
  [ip]=iproute2
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "install-deps: installing ${packages[*]}"
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"
