#!/usr/bin/env bash
# Builds the servers the test environment runs (kube-apiserver, etcd) and a
# kubectl of the same version from the wrapper Go modules under hack/tools/,
# into a cache outside the repository keyed by version. A binary already in
# the cache is not rebuilt.
#
# Usage: hack/build-tools.sh [--with-kcp] [--with-traefik] [--print-dir]
#   --with-kcp      also build kcp (hack/tools/kcp, for hack/kcp-env.sh)
#   --with-traefik  also build Traefik (hack/tools/traefik, the ingress
#                   controller of each cluster in process mode)
#   --print-dir     print the cache directory of each tool (NAME=DIR) and exit
#
# Environment:
#   KCP_INGRESS_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kcp-ingress)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/tools.sh
source "$here/lib/tools.sh"

print_only=false
with_kcp=false
with_traefik=false
for arg in "$@"; do
  case "$arg" in
    --print-dir) print_only=true ;;
    --with-kcp) with_kcp=true ;;
    --with-traefik) with_traefik=true ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-tools: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if $print_only; then
  echo "kube-apiserver=$(tool_dir kube-apiserver)"
  echo "kubectl=$(tool_dir kubectl)"
  echo "etcd=$(tool_dir etcd)"
  echo "kcp=$(tool_dir kcp)"
  echo "traefik=$(tool_dir traefik)"
  exit 0
fi

command -v go >/dev/null || { echo "build-tools: 'go' is not on PATH; it is needed to build the test servers" >&2; exit 1; }

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false

build() { # NAME PACKAGE LDFLAGS [MODULE]
  local name=$1 pkg=$2 ldflags=$3 module=${4:-$1} dir out tmp
  dir=$(tool_dir "$name")
  out="$dir/$name"
  if [[ -x "$out" ]]; then
    echo "build-tools: $name is cached at $out"
    return 0
  fi
  mkdir -p "$dir"
  tmp="$out.tmp.$$"
  echo "build-tools: building $name ($(tool_version "$name")) into $dir; a cold build takes many minutes"
  local start=$SECONDS
  (cd "$here/tools/$module" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
  mv "$tmp" "$out"
  echo "build-tools: built $name in $((SECONDS - start)) s"
}

kv=$(tool_version kube-apiserver)
kv_minor=${kv#v1.}; kv_minor=${kv_minor%%.*}
kube_ldflags="-X k8s.io/component-base/version.gitVersion=$kv -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kv_minor -X k8s.io/component-base/version.gitTreeState=clean"
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
# kubectl reports its version through client-go's version package.
build kubectl k8s.io/kubernetes/cmd/kubectl \
  "$kube_ldflags ${kube_ldflags//component-base\/version/client-go\/pkg\/version}" kube-apiserver
build etcd go.etcd.io/etcd/server/v3 ""

if $with_kcp; then
  # kcp reports "<kubernetes version of its fork>+kcp-<kcp version>", as its
  # own Makefile sets it, through both version packages it links.
  kcpv=$(tool_version kcp)
  kcp_kv=$(kcp_kube_version)
  kcp_kv_minor=${kcp_kv#v1.}; kcp_kv_minor=${kcp_kv_minor%%.*}
  kcp_ldflags=""
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    kcp_ldflags+=" -X $p.gitVersion=$kcp_kv+kcp-$kcpv -X $p.gitMajor=1 -X $p.gitMinor=$kcp_kv_minor -X $p.gitTreeState=clean"
  done
  build kcp github.com/kcp-dev/kcp/cmd/kcp "$kcp_ldflags"
fi

if $with_traefik; then
  tv=$(tool_version traefik)
  build traefik github.com/traefik/traefik/v3/cmd/traefik \
    "-X github.com/traefik/traefik/v3/pkg/version.Version=$tv -X github.com/traefik/traefik/v3/pkg/version.Codename=kcp-ingress"
fi
