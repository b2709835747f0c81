# shellcheck shell=bash
# Shared by the hack/ scripts: where the Go-built test servers live.
# The version of each tool is the one its wrapper module under hack/tools/
# requires; the cache directory is keyed by it.

tools_root() {
  echo "${KCP_INGRESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kcp-ingress}/bin"
}

# tool_version NAME: the version pinned in hack/tools/NAME/go.mod.
tool_version() {
  local mod
  local module=$1
  [[ $module == kubectl ]] && module=kube-apiserver
  mod="$(dirname "${BASH_SOURCE[0]}")/../tools/$module/go.mod"
  case "$1" in
    kube-apiserver|kubectl) awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$mod" ;;
    etcd) awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$mod" ;;
    kcp) awk '$1 == "require" && $2 == "github.com/kcp-dev/kcp" {print $3}' "$mod" ;;
    traefik) awk '$1 == "require" && $2 == "github.com/traefik/traefik/v3" {print $3}' "$mod" ;;
    # the peers of the side-by-side benchmark (hack/build-peers.sh; never `make test`)
    karmada) awk '$1 == "require" && $2 == "github.com/karmada-io/karmada" {print $3}' "$mod" ;;
    external-dns) awk '$1 == "require" && $2 == "sigs.k8s.io/external-dns" {print $3}' "$mod" ;;
    # a crates.io crate (hack/gateway-types.sh installs it with cargo install --locked)
    kopium) echo 0.24.1 ;;
    *) echo "unknown tool $1" >&2; return 1 ;;
  esac
}

# kcp_kube_version: the Kubernetes version kcp's fork is based on (the
# k8s.io/kubernetes version kcp requires, as recorded in hack/tools/kcp/go.mod).
kcp_kube_version() {
  awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' \
    "$(dirname "${BASH_SOURCE[0]}")/../tools/kcp/go.mod"
}

# tool_dir NAME: the cache directory holding NAME at its pinned version.
tool_dir() {
  echo "$(tools_root)/$1-$(tool_version "$1")"
}

# gateway_api_version: the Gateway API release of the data plane (the
# sigs.k8s.io/gateway-api that Traefik requires in hack/tools/traefik/go.mod).
gateway_api_version() {
  local mod v
  mod="$(dirname "${BASH_SOURCE[0]}")/../tools/traefik/go.mod"
  v=$(awk '$1 == "sigs.k8s.io/gateway-api" {print $2; exit}' "$mod")
  [[ -n $v ]] || { echo "no sigs.k8s.io/gateway-api in $mod" >&2; return 1; }
  echo "$v"
}

# gateway_api_crd_dir: the standard-channel CRDs of that release, from the Go
# module cache; `go mod download` fetches the module from the Go module proxy
# the first time.
gateway_api_crd_dir() {
  local v moddir
  v=$(gateway_api_version) || return 1
  moddir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools/traefik" && GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod \
    go mod download -json "sigs.k8s.io/gateway-api@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $moddir/config/crd/standard ]] || { echo "no config/crd/standard in the module sigs.k8s.io/gateway-api@$v" >&2; return 1; }
  echo "$moddir/config/crd/standard"
}

# gateway_api_experimental_routes: the route kinds kcp-ingress takes from
# the experimental channel of that release (plurals): TLSRoute, TCPRoute and
# UDPRoute have no standard-channel CRD. They are distinct kinds, so serving
# them beside the standard CRDs leaves those as they are.
gateway_api_experimental_routes() {
  echo tlsroutes tcproutes udproutes
}

# gateway_api_stage_crds DEST: copy the CRDs the test environments apply into
# the (new) directory DEST: the standard channel (gateway_api_crd_dir, less
# its kustomization.yaml) and the experimental route kinds
# (gateway_api_experimental_routes).
gateway_api_stage_crds() {
  local dest=$1 std p f
  std=$(gateway_api_crd_dir) || return 1
  mkdir -p "$dest" || return 1
  for f in "$std"/*.yaml; do
    [[ ${f##*/} == kustomization.yaml ]] || cp "$f" "$dest/" || return 1
  done
  for p in $(gateway_api_experimental_routes); do
    f=${std%/standard}/experimental/gateway.networking.k8s.io_$p.yaml
    [[ -f $f ]] || { echo "no $f" >&2; return 1; }
    cp "$f" "$dest/" || return 1
  done
  chmod u+w "$dest"/*.yaml
}
