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
