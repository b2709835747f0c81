#!/usr/bin/env bash
# Builds the peers of the side-by-side benchmark (make bench PEERS=1) from
# the wrapper Go modules under hack/tools/, into the tool cache keyed by
# version (as hack/build-tools.sh builds the test servers): Karmada's
# karmada-controller-manager, karmada-scheduler and karmada-webhook
# (hack/tools/karmada) and external-dns (hack/tools/external-dns). A binary
# already in the cache is not rebuilt. `make test` and CI never run this.
#
# Usage: hack/build-peers.sh [--print-dir]
#
# Environment:
#   KCP_INGRESS_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kcp-ingress)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/tools.sh
source "$here/lib/tools.sh"

if [[ ${1:-} == --print-dir ]]; then
  echo "karmada=$(tool_dir karmada)"
  echo "external-dns=$(tool_dir external-dns)"
  exit 0
fi
[[ $# -eq 0 ]] || { echo "build-peers: unknown argument '$1' (try --print-dir)" >&2; exit 2; }
command -v go >/dev/null || { echo "build-peers: 'go' is not on PATH" >&2; exit 1; }

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false

build() { # TOOL BINARY PACKAGE LDFLAGS
  local tool=$1 name=$2 pkg=$3 ldflags=$4 dir out tmp
  dir=$(tool_dir "$tool")
  out="$dir/$name"
  if [[ -x "$out" ]]; then
    echo "build-peers: $name is cached at $out"
    return 0
  fi
  mkdir -p "$dir"
  tmp="$out.tmp.$$"
  echo "build-peers: building $name ($(tool_version "$tool")) into $dir; a cold build takes many minutes"
  local start=$SECONDS
  (cd "$here/tools/$tool" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
  mv "$tmp" "$out"
  echo "build-peers: built $name in $((SECONDS - start)) s"
}

kv=$(tool_version karmada)
kl="-X github.com/karmada-io/karmada/pkg/version.gitVersion=$kv -X github.com/karmada-io/karmada/pkg/version.gitTreeState=clean"
build karmada karmada-controller-manager github.com/karmada-io/karmada/cmd/controller-manager "$kl"
build karmada karmada-scheduler github.com/karmada-io/karmada/cmd/scheduler "$kl"
build karmada karmada-webhook github.com/karmada-io/karmada/cmd/webhook "$kl"
ev=$(tool_version external-dns)
build external-dns external-dns sigs.k8s.io/external-dns \
  "-X sigs.k8s.io/external-dns/pkg/apis/externaldns.Version=$ev"
