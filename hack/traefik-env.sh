#!/usr/bin/env bash
# Traefik as the ingress controller of every physical cluster of a test
# environment (hack/test-env.sh), with a backend per cluster that answers
# with the cluster's name.
#
# Usage:
#   hack/traefik-env.sh up   --dir DIR --env-dir ENV_DIR [--clusters N]
#                            [--service NAMESPACE/NAME] [--timeout SECONDS]
#   hack/traefik-env.sh down --dir DIR
#   hack/traefik-env.sh stop  --dir DIR --cluster K
#   hack/traefik-env.sh start --dir DIR --env-dir ENV_DIR --cluster K [--timeout SECONDS]
#   hack/traefik-env.sh --help
#
# up, for each cluster-K (K = 1..N, default: every cluster of ENV_DIR):
#   - in the cluster: ServiceAccount kube-system/traefik with the ClusterRole
#     kcp-ingress-traefik (what Traefik's Ingress and Gateway API providers
#     read and the status they write) and the GatewayClass "traefik" (the
#     Gateway API CRDs are there already: hack/test-env.sh applies them);
#   - a token for that ServiceAccount (kubectl create token, one year) in
#     DIR/traefik-K/token: Traefik's providers take a bearer token, an
#     endpoint and a CA file, no client certificate;
#   - a network namespace kcpi-K joined to the host by a veth pair
#     (kcpi-K-h 198.18.K.1/24 here, 198.18.K.2/24 inside): the API server
#     refuses loopback addresses in EndpointSlices, so the backend lives
#     there, as a pod would;
#   - the backend: python3 -m http.server on 198.18.K.2:8080 in kcpi-K,
#     serving DIR/backend-K/ whose index.html is "cluster-K";
#   - an EndpointSlice NAMESPACE/NAME-kcpi for the Service NAMESPACE/NAME
#     (default default/shop, the sample's; port 8080) pointing at 198.18.K.2,
#     as that cluster's own workload would have;
#   - Traefik (hack/build-tools.sh --with-traefik) on 127.0.1.K: entry points
#     web :80, websecure :443 (TLS, certificates from the Ingresses' Secrets)
#     and traefik :8080 (ping); the Ingress provider writes 127.0.1.K into
#     Ingress status, the Gateway provider into Gateway status. Its log is
#     DIR/logs/traefik-K.log, its access log DIR/logs/traefik-K.access.log.
# and waits until every Traefik answers /ping and every backend answers.
#
# down stops the processes up recorded (never by name) and deletes the
# network namespaces and links up made (listed in DIR/run/netns). The
# objects in the clusters stay (they go with the test environment).
#
# stop stops cluster-K's Traefik alone (its backend keeps running); start
# starts it again, as up started it, after stop or after it died (everything
# else up made is still there), and waits until it answers /ping. They are
# what `make bench` uses for its failover scenario.
#
# Environment:
#   KCP_INGRESS_TRAEFIK  the traefik binary (default: the one build-tools builds)
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=hack/lib/tools.sh
source "$here/lib/tools.sh"
PATH=$PATH:/usr/sbin:/sbin

usage() { sed -n '2,49p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "traefik-env: $*" >&2; exit 1; }
usage_error() { echo "traefik-env: $*" >&2; echo "try: hack/traefik-env.sh --help" >&2; exit 2; }
say() { echo "traefik-env: $*" >&2; }

cmd=${1:-}
case $cmd in
  -h|--help|help) usage; exit 0 ;;
  up|down|start|stop) shift ;;
  '') usage_error "missing command (up, down, start or stop)" ;;
  *) usage_error "unknown command '$cmd'" ;;
esac

cluster=
dir=
env_dir=
clusters=
service=default/shop
timeout=60
while [[ $# -gt 0 ]]; do
  case $1 in
    --dir|--env-dir|--clusters|--cluster|--service|--timeout)
      [[ $# -ge 2 ]] || usage_error "$1 needs a value"
      case $1 in
        --dir) dir=$2 ;;
        --env-dir) env_dir=$2 ;;
        --clusters) clusters=$2 ;;
        --cluster) cluster=$2 ;;
        --service) service=$2 ;;
        --timeout) timeout=$2 ;;
      esac
      shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
[[ -n $dir ]] || usage_error "missing --dir DIR"
dir=$(realpath -m "$dir")
# (both read by hack/lib/procs.sh)
# shellcheck disable=SC2034
RUN_DIR=$dir/run
# shellcheck disable=SC2034
OWNER_MARK="$dir/"
logs=$dir/logs

down() {
  local -a names=()
  if [[ -d $RUN_DIR ]]; then
    mapfile -t names < <(proc_names)
    ((${#names[@]} == 0)) || proc_stop 10 "${names[@]}"
  fi
  if [[ -f $RUN_DIR/netns ]]; then
    local ns
    while read -r ns; do
      [[ -n $ns ]] || continue
      # deleting the namespace deletes its end of the veth pair, and so the pair
      ip link del "$ns-h" 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    done <"$RUN_DIR/netns"
    rm -f "$RUN_DIR/netns"
  fi
  say "stopped"
}

if [[ $cmd == down ]]; then
  down
  exit 0
fi

if [[ $cmd == start || $cmd == stop ]]; then
  [[ $cluster =~ ^[1-9][0-9]{0,2}$ ]] || usage_error "$cmd needs --cluster K (a number), not '$cluster'"
fi
if [[ $cmd == stop ]]; then
  [[ -f $RUN_DIR/traefik-$cluster.pid ]] || die "no Traefik of cluster-$cluster was started in $dir"
  proc_stop 10 "traefik-$cluster"
  say "stopped the Traefik of cluster-$cluster"
  exit 0
fi

# ---------------------------------------------------------------- up, start

[[ -n $env_dir && -f $env_dir/env ]] || usage_error "--env-dir must be a running test environment's directory (hack/test-env.sh up --dir)"
[[ $timeout =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout must be a positive number of seconds"
[[ $service =~ ^[a-z0-9-]+/[a-z0-9-]+$ ]] || usage_error "--service must be NAMESPACE/NAME, not '$service'"
env_clusters=$(sed -n 's/^TEST_ENV_CLUSTERS=//p' "$env_dir/env")
clusters=${clusters:-$env_clusters}
if ! [[ $clusters =~ ^[1-9][0-9]?$ ]] || ((clusters > env_clusters)); then
  usage_error "--clusters must be 1..$env_clusters (the test environment's clusters), not '$clusters'"
fi
((clusters <= 254)) || usage_error "at most 254 clusters"
traefik=${KCP_INGRESS_TRAEFIK:-$(tool_dir traefik)/traefik}
[[ -x $traefik ]] || die "Traefik not found at $traefik; build it with hack/build-tools.sh --with-traefik (make tools-traefik)"

start() { # NAME CMD...
  local name=$1
  shift
  if proc_pid "$name" >/dev/null; then
    say "$name already runs"
    return 0
  fi
  nohup "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  proc_record "$name" "$!" || die "$name exited at once; see $logs/$name.log"
}

# start_traefik K: cluster-K's Traefik on 127.0.1.K, against cluster-K's
# kube-apiserver with the token up issued.
start_traefik() {
  local k=$1 server a
  server=$(sed -n "s/^CLUSTER_${k}_SERVER=//p" "$env_dir/env")
  [[ -n $server ]] || die "no CLUSTER_${k}_SERVER in $env_dir/env"
  [[ -s $dir/traefik-$k/token ]] || die "no token for cluster-$k's Traefik in $dir/traefik-$k (run up first)"
  a=127.0.1.$k
  local kube=(endpoint="$server" token="$dir/traefik-$k/token" certAuthFilePath="$env_dir/pki/ca.crt")
  start "traefik-$k" "$traefik" \
    --global.checkNewVersion=false --global.sendAnonymousUsage=false \
    --log.level=INFO --log.noColor=true \
    --accesslog=true --accesslog.filePath="$logs/traefik-$k.access.log" \
    --entryPoints.web.address="$a:80" \
    --entryPoints.websecure.address="$a:443" --entryPoints.websecure.http.tls=true \
    --entryPoints.traefik.address="$a:8080" --ping=true \
    "${kube[@]/#/--providers.kubernetesingress.}" \
    --providers.kubernetesingress.ingressEndpoint.ip="$a" \
    "${kube[@]/#/--providers.kubernetesgateway.}" \
    --providers.kubernetesgateway.statusAddress.ip="$a"
}

# wait_ready K: until cluster-K's Traefik answers /ping and its backend
# answers, or $deadline (in SECONDS) passes.
wait_ready() {
  local k=$1
  until curl -sf --max-time 1 "http://127.0.1.$k:8080/ping" >/dev/null &&
    [[ $(curl -sf --max-time 1 "http://198.18.$k.2:8080/") == "cluster-$k" ]]; do
    proc_pid "traefik-$k" >/dev/null || { tail -n 20 "$logs/traefik-$k.log" >&2; die "Traefik of cluster-$k exited"; }
    proc_pid "backend-$k" >/dev/null || { tail -n 20 "$logs/backend-$k.log" >&2; die "the backend of cluster-$k exited"; }
    ((SECONDS < deadline)) || die "Traefik or the backend of cluster-$k did not answer within ${timeout}s"
    sleep 0.2
  done
}

if [[ $cmd == start ]]; then
  ((cluster <= clusters)) || usage_error "--cluster must be 1..$clusters, not '$cluster'"
  [[ -d $RUN_DIR ]] || die "nothing was started in $dir (run up first)"
  start_traefik "$cluster"
  deadline=$((SECONDS + timeout))
  wait_ready "$cluster"
  say "cluster-$cluster: Traefik runs again on 127.0.1.$cluster"
  exit 0
fi

((EUID == 0)) || die "up needs root: it creates network namespaces (ip netns add)"
for t in ip python3 kubectl curl; do
  command -v "$t" >/dev/null || die "'$t' is needed on PATH"
done

mkdir -p "$RUN_DIR" "$logs"
# A failed up undoes itself.
on_exit() {
  local rc=$?
  if ((rc != 0)); then down; fi
  exit "$rc"
}
trap on_exit EXIT
svc_ns=${service%/*}
svc_name=${service#*/}

# Every namespace is recorded before it is made, so down removes it even
# when up fails half-way.
ns_made() { grep -qx "$1" "$RUN_DIR/netns" 2>/dev/null; }

setup_netns() { # K
  local k=$1 ns=kcpi-$1
  if ns_made "$ns"; then return 0; fi
  if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
    die "network namespace $ns exists already (another environment? hack/traefik-env.sh down --dir ... removes it)"
  fi
  echo "$ns" >>"$RUN_DIR/netns"
  ip netns add "$ns"
  ip link add "$ns-h" type veth peer name eth0 netns "$ns"
  ip addr add "198.18.$k.1/24" dev "$ns-h"
  ip link set "$ns-h" up
  ip -n "$ns" addr add "198.18.$k.2/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
}

kc() { kubectl --kubeconfig "$env_dir/cluster-$1.kubeconfig" "${@:2}"; }

rbac() {
  cat <<'EOF'
apiVersion: v1
kind: ServiceAccount
metadata:
  name: traefik
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kcp-ingress-traefik
rules:
  - apiGroups: [""]
    resources: [namespaces]
    verbs: [list, watch]
  - apiGroups: [""]
    resources: [services, secrets, configmaps, endpoints, nodes]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
  - apiGroups: [networking.k8s.io, extensions]
    resources: [ingresses, ingressclasses]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io, extensions]
    resources: [ingresses/status]
    verbs: [update]
  - apiGroups: [gateway.networking.k8s.io]
    resources: [gatewayclasses, gateways, httproutes, grpcroutes, tcproutes, tlsroutes, referencegrants, backendtlspolicies]
    verbs: [get, list, watch]
  - apiGroups: [gateway.networking.k8s.io]
    resources: [gatewayclasses/status, gateways/status, httproutes/status, grpcroutes/status, tcproutes/status, tlsroutes/status, referencegrants/status, backendtlspolicies/status]
    verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kcp-ingress-traefik
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kcp-ingress-traefik
subjects:
  - kind: ServiceAccount
    name: traefik
    namespace: kube-system
EOF
}

endpointslice() { # K
  cat <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $svc_name-kcpi
  namespace: $svc_ns
  labels:
    kubernetes.io/service-name: $svc_name
    endpointslice.kubernetes.io/managed-by: kcp-ingress-local-setup
addressType: IPv4
endpoints:
  - addresses: ["198.18.$1.2"]
    conditions: {ready: true}
ports:
  - port: 8080
    protocol: TCP
EOF
}

for ((k = 1; k <= clusters; k++)); do
  kc "$k" apply -f - >/dev/null < <(rbac)
  kc "$k" get namespace "$svc_ns" >/dev/null 2>&1 || kc "$k" create namespace "$svc_ns" >/dev/null
  kc "$k" apply -f - >/dev/null < <(endpointslice "$k")
  mkdir -p "$dir/traefik-$k" "$dir/backend-$k"
  (umask 077 && kc "$k" -n kube-system create token traefik --duration=8760h >"$dir/traefik-$k/token")

  setup_netns "$k"
  echo "cluster-$k" >"$dir/backend-$k/index.html"
  start "backend-$k" ip netns exec "kcpi-$k" python3 -m http.server --bind "198.18.$k.2" \
    --directory "$dir/backend-$k/" 8080

  start_traefik "$k"
  say "cluster-$k: Traefik on 127.0.1.$k (:80, :443), backend on 198.18.$k.2:8080 (namespace kcpi-$k)"
done

# The GatewayClass needs its CRD served; Traefik accepts it once it runs.
for ((k = 1; k <= clusters; k++)); do
  kc "$k" wait --for=condition=Established crd/gatewayclasses.gateway.networking.k8s.io --timeout="${timeout}s" >/dev/null
  kc "$k" apply -f - >/dev/null <<'EOF'
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: traefik
spec:
  controllerName: traefik.io/gateway-controller
EOF
done

deadline=$((SECONDS + timeout))
for ((k = 1; k <= clusters; k++)); do
  wait_ready "$k"
done
say "ready: $clusters cluster(s); stop with: $0 down --dir $dir"
