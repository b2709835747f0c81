#!/usr/bin/env bash
# The objects Karmada needs on a test environment (hack/test-env.sh), for the
# side-by-side benchmark (make bench PEERS=1). The benchmark itself starts
# and stops the processes (karmada-webhook, karmada-controller-manager,
# karmada-scheduler, external-dns); this script only writes objects and files.
#
# Usage:
#   hack/karmada-env.sh prepare  --env-dir ENV_DIR --dir DIR
#   hack/karmada-env.sh policies --env-dir ENV_DIR --dir DIR --webhook-port PORT
#
# prepare: the test environment's control-plane kube-apiserver plays
#   karmada-apiserver. It gets Karmada's CRDs (from the karmada module in the
#   Go module cache, charts/karmada/_crds/bases), a CRD for
#   cluster.karmada.io/v1alpha1 Cluster (normally served by
#   karmada-aggregated-apiserver; here a CRD that keeps every field), the
#   namespaces karmada-system and karmada-cluster, and per member cluster-K:
#   a ServiceAccount kube-system/karmada bound to cluster-admin in the member,
#   its token (one year) and the CA in the Secret karmada-cluster/cluster-K
#   (keys token, caBundle) and a Cluster cluster-K in Push mode. Writes
#   DIR/certs/tls.{crt,key} (the environment's serving certificate, for
#   127.0.0.1) for karmada-webhook.
# policies: Karmada's webhook configurations pointed at
#   https://127.0.0.1:PORT (karmada-webhook must be listening), and the
#   PropagationPolicy bench/bench: every Ingress and the Service backend of
#   the namespace bench to cluster-1..N, conflictResolution Overwrite (the
#   namespace and the Service's EndpointSlice exist in the members already).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/tools.sh
source "$here/lib/tools.sh"

die() { echo "karmada-env: $*" >&2; exit 1; }
usage_error() { echo "karmada-env: $*" >&2; sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd=${1:-}
[[ $cmd == prepare || $cmd == policies ]] || usage_error "prepare or policies, not '$cmd'"
shift
env_dir="" dir="" webhook_port=""
while (($#)); do
  case "$1" in
    --env-dir) env_dir=${2:-} ;;
    --dir) dir=${2:-} ;;
    --webhook-port) webhook_port=${2:-} ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
  shift 2 || usage_error "$1 needs a value"
done
[[ -n $env_dir && -f $env_dir/env ]] || usage_error "--env-dir must be a running test environment's directory"
[[ -n $dir ]] || usage_error "--dir is needed"
mkdir -p "$dir"

cp_kc() { kubectl --kubeconfig "$env_dir/control-plane.kubeconfig" "$@"; }
member_kc() { kubectl --kubeconfig "$env_dir/cluster-$1.kubeconfig" "${@:2}"; }
clusters=$(sed -n 's/^TEST_ENV_CLUSTERS=//p' "$env_dir/env")

karmada_module() {
  local v moddir
  v=$(tool_version karmada)
  moddir=$(cd "$here/tools/karmada" && GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod \
    go mod download -json "github.com/karmada-io/karmada@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $moddir/charts/karmada/_crds/bases ]] || die "no charts/karmada/_crds/bases in github.com/karmada-io/karmada@$v"
  echo "$moddir"
}

cluster_crd() {
  cat <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: clusters.cluster.karmada.io
spec:
  group: cluster.karmada.io
  names: {kind: Cluster, listKind: ClusterList, plural: clusters, singular: cluster}
  scope: Cluster
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
            status: {type: object, x-kubernetes-preserve-unknown-fields: true}
YAML
}

if [[ $cmd == prepare ]]; then
  mod=$(karmada_module)
  mkdir -p "$dir/certs"
  cp "$env_dir/pki/serving.crt" "$dir/certs/tls.crt"
  cp "$env_dir/pki/serving.key" "$dir/certs/tls.key"
  for f in "$mod"/charts/karmada/_crds/bases/*/*.yaml; do
    cp_kc apply --server-side -f "$f" >/dev/null
  done
  cluster_crd | cp_kc apply --server-side -f - >/dev/null
  cp_kc wait --for condition=Established --timeout=60s crd --all >/dev/null
  for ns in karmada-system karmada-cluster; do
    cp_kc get namespace "$ns" >/dev/null 2>&1 || cp_kc create namespace "$ns" >/dev/null
  done
  ca=$(base64 -w0 <"$env_dir/pki/ca.crt")
  for ((k = 1; k <= clusters; k++)); do
    member_kc "$k" -n kube-system get serviceaccount karmada >/dev/null 2>&1 ||
      member_kc "$k" -n kube-system create serviceaccount karmada >/dev/null
    member_kc "$k" get clusterrolebinding karmada >/dev/null 2>&1 ||
      member_kc "$k" create clusterrolebinding karmada --clusterrole=cluster-admin \
        --serviceaccount=kube-system:karmada >/dev/null
    token=$(member_kc "$k" -n kube-system create token karmada --duration=8760h)
    server=$(sed -n "s/^CLUSTER_${k}_SERVER=//p" "$env_dir/env")
    cat <<YAML | cp_kc apply --server-side -f - >/dev/null
apiVersion: v1
kind: Secret
metadata: {name: cluster-$k, namespace: karmada-cluster}
data:
  token: $(printf %s "$token" | base64 -w0)
  caBundle: $ca
---
apiVersion: cluster.karmada.io/v1alpha1
kind: Cluster
metadata: {name: cluster-$k}
spec:
  apiEndpoint: $server
  syncMode: Push
  secretRef: {namespace: karmada-cluster, name: cluster-$k}
YAML
  done
  exit 0
fi

[[ $webhook_port =~ ^[0-9]+$ ]] || usage_error "--webhook-port PORT is needed"
mod=$(karmada_module)
ca=$(base64 -w0 <"$env_dir/pki/ca.crt")
sed -e "s|https://karmada-webhook.karmada-system.svc:443|https://127.0.0.1:$webhook_port|" \
  -e "s|{{caBundle}}|$ca|" "$mod/artifacts/deploy/webhook-configuration.yaml" |
  cp_kc apply --server-side -f - >/dev/null
names=""
for ((k = 1; k <= clusters; k++)); do names+="${names:+, }cluster-$k"; done
cat <<YAML | cp_kc apply --server-side -f - >/dev/null
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: bench, namespace: bench}
spec:
  conflictResolution: Overwrite
  resourceSelectors:
    - {apiVersion: networking.k8s.io/v1, kind: Ingress}
    - {apiVersion: v1, kind: Service, name: backend}
  placement:
    clusterAffinity:
      clusterNames: [$names]
YAML
