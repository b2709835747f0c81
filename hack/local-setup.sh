#!/usr/bin/env bash
# Local set-up of kcp-ingress: a control plane, physical clusters, a DNS
# server and kcp-ingress itself, all on this machine.
#
# Usage:
#   hack/local-setup.sh up   [--dir DIR] [--provider auto|process|kind] [--clusters N]
#                            [--control-plane kube|kcp] [--data-plane traefik|standin]
#                            [--lb-port PORT] [--dns bind|embedded] [--dry-run]
#   hack/local-setup.sh down [--dir DIR] [--dry-run]
#   hack/local-setup.sh --help
#
# Providers of the physical clusters:
#   process  kube-apiservers started by hack/test-env.sh. Each cluster's data
#            plane (--data-plane) is Traefik (hack/traefik-env.sh: a real
#            ingress controller on 127.0.1.K:80 and :443 with its Ingress and
#            Gateway API providers, in front of a backend in a network
#            namespace that answers with the cluster's name), or the stand-in
#            load balancer standin-lb (gives Ingresses the address 127.0.1.K
#            and answers HTTP there itself). Each Cluster is labelled
#            gateway.kcp-ingress.dev/class=traefik (or standin): the
#            GatewayClass its leaf Gateways get.
#   kind     kind clusters (Docker) with ingress-nginx filling Ingress status.
#   auto     kind when a Docker engine answers and kind is installed, else process.
# The control plane is a kube-apiserver from hack/test-env.sh (kube), or a
# kcp workspace from hack/kcp-env.sh (kcp); BIND 9 always comes from
# hack/test-env.sh. kcp-ingress runs as two processes: the controller with
# push-mode syncers, and the glbc. Which DNS server answers (--dns):
#   bind      the glbc publishes to BIND with RFC 2136 updates (zone
#             kcp-ingress.test, 127.0.0.1:$DNS_PORT of DIR/env/dns.env)
#   embedded  the glbc answers itself (--dns-provider embedded) for the zone
#             kcp-ingress.test on 127.0.0.1:$DNS_EMBEDDED_PORT_2 of
#             DIR/env/dns.env (a free port picked by hack/test-env.sh);
#             BIND still runs, but nothing publishes to it
#
# Options:
#   --dir DIR        where everything lives (default $KCP_INGRESS_LOCAL_DIR or <repo>/.local)
#   --provider P     auto (default), process or kind
#   --clusters N     physical clusters (default 2)
#   --control-plane  kube (default, or $CONTROL_PLANE) or kcp (builds kcp on first use)
#   --data-plane D   process provider: traefik (default, or $DATA_PLANE; builds
#                    Traefik on first use; needs root for ip netns) or standin
#   --lb-port PORT   --data-plane standin: port standin-lb serves HTTP on (default 80)
#   --dns D          bind (default, or $DNS) or embedded: the DNS server that
#                    answers (above); any provider and control plane
#   --dry-run        print the commands that would run; run nothing
#
# Environment:
#   KCP_INGRESS_BIN_DIR  use the kcp-ingress and standin-lb binaries in this
#                        directory instead of building them (cargo build --release)
#
# Running "up" twice is safe (what runs is kept); so is "down" twice.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=hack/lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=hack/lib/tools.sh
source "$here/lib/tools.sh"

usage() { sed -n '2,/^set -euo pipefail$/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "local-setup: $*" >&2; exit 1; }
usage_error() { echo "local-setup: $*" >&2; echo "try: hack/local-setup.sh --help" >&2; exit 2; }
say() { echo "local-setup: $*" >&2; }

cmd=${1:-}
[[ -n $cmd ]] || usage_error "missing command (up or down)"
case $cmd in
  -h|--help|help) usage; exit 0 ;;
  up|down) shift ;;
  *) usage_error "unknown command '$cmd'" ;;
esac

dir=${KCP_INGRESS_LOCAL_DIR:-$repo/.local}
provider=auto
clusters=2
lb_port=80
dry_run=false
control=${CONTROL_PLANE:-kube}
data_plane=${DATA_PLANE:-traefik}
dns=${DNS:-bind}
while [[ $# -gt 0 ]]; do
  case $1 in
    --dir) [[ $# -ge 2 ]] || usage_error "--dir needs a value"; dir=$2; shift 2 ;;
    --provider) [[ $# -ge 2 ]] || usage_error "--provider needs a value"; provider=$2; shift 2 ;;
    --clusters) [[ $# -ge 2 ]] || usage_error "--clusters needs a value"; clusters=$2; shift 2 ;;
    --lb-port) [[ $# -ge 2 ]] || usage_error "--lb-port needs a value"; lb_port=$2; shift 2 ;;
    --data-plane) [[ $# -ge 2 ]] || usage_error "--data-plane needs a value"; data_plane=$2; shift 2 ;;
    --control-plane) [[ $# -ge 2 ]] || usage_error "--control-plane needs a value"; control=$2; shift 2 ;;
    --dns) [[ $# -ge 2 ]] || usage_error "--dns needs a value"; dns=$2; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown flag '$1'" ;;
  esac
done
[[ $clusters =~ ^[1-9][0-9]?$ ]] || usage_error "--clusters must be 1..99, not '$clusters'"
if ! [[ $lb_port =~ ^[0-9]+$ ]] || ((lb_port < 1 || lb_port > 65535)); then
  usage_error "--lb-port must be a port number, not '$lb_port'"
fi
case $provider in
  auto|process|kind) ;;
  *) usage_error "--provider must be auto, process or kind, not '$provider'" ;;
esac
case $data_plane in
  traefik|standin) ;;
  *) usage_error "--data-plane must be traefik or standin, not '$data_plane'" ;;
esac
case $control in
  kube|kcp) ;;
  *) usage_error "--control-plane must be kube or kcp, not '$control'" ;;
esac
case $dns in
  bind|embedded) ;;
  *) usage_error "--dns must be bind or embedded, not '$dns'" ;;
esac
dir=$(realpath -m "$dir")
env_dir=$dir/env
kcp_dir=$dir/kcp
traefik_dir=$dir/traefik
RUN_DIR=$dir/run
OWNER_MARK="$dir/"
logs=$dir/logs

# run CMD...: run it, or print it with --dry-run.
run() {
  if $dry_run; then
    printf '%q ' "$@"
    echo
  else
    "$@"
  fi
}

# start NAME CMD...: start a long-running process in the background, logging
# to logs/NAME.log, unless it already runs.
start() {
  local name=$1
  shift
  if $dry_run; then
    printf '%q ' "$@"
    echo "  >> $logs/$name.log 2>&1 &"
    return 0
  fi
  if proc_pid "$name" >/dev/null; then
    say "$name already runs"
    return 0
  fi
  nohup "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  local pid=$!
  proc_record "$name" "$pid" || die "$name exited at once; see $logs/$name.log"
  say "started $name (pid $pid, log $logs/$name.log)"
}

# glbc_dns_matches: a glbc that already runs answers with the DNS server
# asked for (up keeps what runs, so a different one would be kept silently).
glbc_dns_matches() {
  local pid cmdline runs=bind
  pid=$(proc_pid glbc) || return 0
  { cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline"); } 2>/dev/null || return 0
  [[ $cmdline == *"--dns-provider embedded"* ]] && runs=embedded
  [[ $runs == "$dns" ]] ||
    die "the glbc already runs with --dns $runs, not $dns: stop everything first (make local-teardown), then run up with --dns $dns"
}

docker_answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

pick_provider() {
  if [[ $provider == auto ]]; then
    if docker_answers && command -v kind >/dev/null; then provider=kind; else provider=process; fi
  fi
  if [[ $provider == kind ]] && ! $dry_run; then
    command -v kind >/dev/null || die "the kind provider needs 'kind' on PATH"
    docker_answers || die "the kind provider needs a Docker engine that answers 'docker info'"
  fi
  say "provider: $provider"
}

binaries() {
  if [[ -n ${KCP_INGRESS_BIN_DIR:-} ]]; then
    bin_dir=$KCP_INGRESS_BIN_DIR
  else
    local target=${CARGO_TARGET_DIR:-$repo/target}
    bin_dir=$target/release
    say "building kcp-ingress (cargo build --release)"
    run cargo build --release --bins --manifest-path "$repo/Cargo.toml"
  fi
  if ! $dry_run; then
    [[ -x $bin_dir/kcp-ingress && -x $bin_dir/standin-lb ]] ||
      die "no kcp-ingress and standin-lb binaries in $bin_dir"
  fi
}

control_plane() {
  if ! $dry_run && "$here/test-env.sh" status --dir "$env_dir" >/dev/null 2>&1; then
    say "the test environment (clusters, DNS) already runs"
  else
    local physical=$clusters
    # kind brings its own clusters; the test environment still runs one
    # (unused) cluster because it always starts at least one.
    [[ $provider == kind ]] && physical=1
    run "$here/test-env.sh" up --dir "$env_dir" --clusters "$physical"
  fi
  if [[ $control == kcp ]]; then
    if ! $dry_run && "$here/kcp-env.sh" status --dir "$kcp_dir" >/dev/null 2>&1; then
      say "kcp already runs"
    else
      run "$here/build-tools.sh" --with-kcp
      run "$here/kcp-env.sh" up --dir "$kcp_dir"
    fi
    cp_kubeconfig=$kcp_dir/control-plane.kubeconfig
  else
    cp_kubeconfig=$env_dir/control-plane.kubeconfig
  fi
}

# The ingress controller of the kind clusters (the provider of the original
# KCP Ingress demo); it fills Ingress status with the node's address.
INGRESS_NGINX_MANIFEST=${INGRESS_NGINX_MANIFEST:-https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.11.3/deploy/static/provider/kind/deploy.yaml}

kind_clusters() {
  local k name config=$dir/kind-cluster.yaml
  if ! $dry_run; then
    # One node that can run ingress-nginx (kind's documented ingress set-up).
    cat >"$config" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    kubeadmConfigPatches:
      - |
        kind: InitConfiguration
        nodeRegistration:
          kubeletExtraArgs:
            node-labels: "ingress-ready=true"
EOF
  fi
  for ((k = 1; k <= clusters; k++)); do
    name=kcp-ingress-$k
    if ! $dry_run && kind get clusters 2>/dev/null | grep -qx "$name"; then
      say "kind cluster $name already exists"
    else
      run kind create cluster --name "$name" --config "$config"
    fi
    run kubectl --context "kind-$name" apply -f "$INGRESS_NGINX_MANIFEST"
    run kubectl --context "kind-$name" -n ingress-nginx wait --for=condition=Available \
      deployment/ingress-nginx-controller --timeout=180s
    if $dry_run; then
      echo "kind get kubeconfig --name $name > $dir/cluster-$k.kubeconfig"
    else
      kind get kubeconfig --name "$name" >"$dir/cluster-$k.kubeconfig"
    fi
  done
}

# register K KUBECONFIG: the Cluster cluster-K with its kubeconfig Secret (push mode).
register() {
  local k=$1 kubeconfig=$2 class=${3:-} cp=$cp_kubeconfig
  if $dry_run; then
    echo "kubectl --kubeconfig $cp apply (namespace kcp-ingress-system, Secret cluster-$k-kubeconfig from $kubeconfig, Cluster cluster-$k${class:+ with gateway.kcp-ingress.dev/class=$class})"
    return 0
  fi
  kubectl --kubeconfig "$cp" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: kcp-ingress-system
EOF
  kubectl --kubeconfig "$cp" -n kcp-ingress-system create secret generic "cluster-$k-kubeconfig" \
    --from-file=kubeconfig="$kubeconfig" --dry-run=client -o yaml | kubectl --kubeconfig "$cp" apply -f - >/dev/null
  kubectl --kubeconfig "$cp" apply -f - >/dev/null <<EOF
apiVersion: kcp-ingress.dev/v1alpha1
kind: Cluster
metadata:
  name: cluster-$k
  labels:
    kcp-ingress.dev/sample: "true"
    region: local-$k${class:+
    gateway.kcp-ingress.dev/class: $class}
spec:
  kubeconfigSecretRef:
    namespace: kcp-ingress-system
    name: cluster-$k-kubeconfig
    key: kubeconfig
EOF
  say "registered Cluster cluster-$k"
}

up() {
  command -v kubectl >/dev/null || $dry_run || die "kubectl is needed on PATH"
  $dry_run || mkdir -p "$RUN_DIR" "$logs"
  $dry_run || glbc_dns_matches
  pick_provider
  binaries
  control_plane
  local k cp=$cp_kubeconfig
  if [[ $provider == kind ]]; then
    kind_clusters
    for ((k = 1; k <= clusters; k++)); do register "$k" "$dir/cluster-$k.kubeconfig"; done
  elif [[ $data_plane == traefik ]]; then
    run "$here/build-tools.sh" --with-traefik
    run "$here/traefik-env.sh" up --dir "$traefik_dir" --env-dir "$env_dir" --clusters "$clusters"
    # GatewayClass traefik (traefik-env.sh) names the class of leaf Gateways there
    for ((k = 1; k <= clusters; k++)); do register "$k" "$env_dir/cluster-$k.kubeconfig" traefik; done
  else
    for ((k = 1; k <= clusters; k++)); do
      start "standin-lb-$k" "$bin_dir/standin-lb" --kubeconfig "$env_dir/cluster-$k.kubeconfig" \
        --cluster "cluster-$k" --address "127.0.1.$k" --port "$lb_port"
      # GatewayClass standin (test-env.sh), implemented by standin-lb
      register "$k" "$env_dir/cluster-$k.kubeconfig" standin
    done
  fi

  if $dry_run; then
    echo "source $env_dir/dns.env"
    # shellcheck disable=SC2016 # printed as written, expanded when run
    DNS_PORT='$DNS_PORT' DNS_TSIG_KEY_NAME='$DNS_TSIG_KEY_NAME' DNS_TSIG_ALGORITHM='$DNS_TSIG_ALGORITHM'
    # shellcheck disable=SC2016 # printed as written, expanded when run
    DNS_EMBEDDED_PORT_2='$DNS_EMBEDDED_PORT_2'
  else
    # shellcheck source=/dev/null
    source "$env_dir/dns.env"
    (umask 077 && printf '%s\n' "$DNS_TSIG_SECRET" >"$dir/tsig.secret")
  fi
  start controller "$bin_dir/kcp-ingress" controller --kubeconfig "$cp" --push-syncers
  # Where DNS answers: BIND, which the glbc updates (RFC 2136), or the glbc
  # itself (its embedded server; the TSIG key then signs zone transfers).
  local dns_port glbc_dns
  if [[ $dns == embedded ]]; then
    dns_port=$DNS_EMBEDDED_PORT_2
    glbc_dns=(--dns-provider embedded --dns-listen "127.0.0.1:$dns_port")
  else
    dns_port=$DNS_PORT
    glbc_dns=(--dns-server 127.0.0.1 --dns-port "$DNS_PORT")
  fi
  start glbc "$bin_dir/kcp-ingress" glbc --kubeconfig "$cp" \
    "${glbc_dns[@]}" --zone kcp-ingress.test \
    --tsig-key-name "$DNS_TSIG_KEY_NAME" --tsig-algorithm "$DNS_TSIG_ALGORITHM" \
    --tsig-secret-file "$dir/tsig.secret" --ttl 30

  if ! $dry_run; then
    say "waiting for the Clusters to be Ready"
    kubectl --kubeconfig "$cp" wait --for=condition=Ready cluster --all --timeout=90s >/dev/null ||
      die "the Clusters did not become Ready; see $logs/controller.log"
  fi
  local dp=
  [[ $provider == process ]] && dp=", $data_plane data plane"
  local https=
  if [[ $provider == process && $data_plane == traefik ]]; then
    lb_port=80
    https="
  curl --cacert <(kubectl get secret shop-tls -o jsonpath='{.data.tls\.crt}' | base64 -d) \\
    --resolve shop.kcp-ingress.test:443:<the same address> https://shop.kcp-ingress.test/"
  fi
  # How to ask the DNS server that answers (the same lines in both walkthroughs).
  local dns_says dig source_env=''
  if [[ $dns == embedded ]]; then
    dns_says="the glbc's embedded DNS server on 127.0.0.1:$dns_port answers for kcp-ingress.test (BIND runs too, unused)"
    dig="dig @127.0.0.1 -p $dns_port"
  else
    dns_says="BIND 9 on 127.0.0.1:$dns_port answers for kcp-ingress.test, updated by the glbc (RFC 2136)"
    source_env="
  source $env_dir/dns.env"
    dig="dig @127.0.0.1 -p \$DNS_PORT"
  fi
  cat <<EOF

kcp-ingress runs locally ($provider provider, $clusters clusters$dp, $control control plane).
DNS: $dns_says. Next:

  export KUBECONFIG=$cp
  export PATH=$(tool_dir kubectl):\$PATH   # a kubectl of the servers' version (make tools)
  kubectl apply -f samples/ingress.yaml
  kubectl get ingress shop            # addresses merged from every cluster
  kubectl get globalingress shop -o yaml$source_env
  $dig shop.kcp-ingress.test +short
  curl --resolve shop.kcp-ingress.test:$lb_port:<an address dig gave> http://shop.kcp-ingress.test:$lb_port/$https

Gateway API (process provider): the same flow with a Gateway and an HTTPRoute

  kubectl apply -f samples/gateway.yaml
  kubectl get gateway shop            # addresses merged from every cluster's leaf Gateway
  $dig shop.gw.kcp-ingress.test +short
  curl --resolve shop.gw.kcp-ingress.test:$lb_port:<an address dig gave> http://shop.gw.kcp-ingress.test:$lb_port/

Logs: $logs/   Stop everything: make local-teardown
EOF
}

down() {
  if $dry_run; then
    echo "stop: $(proc_names 2>/dev/null | tr '\n' ' ')"
    echo "$here/traefik-env.sh down --dir $traefik_dir"
    echo "$here/kcp-env.sh down --dir $kcp_dir"
    echo "$here/test-env.sh down --dir $env_dir"
    return 0
  fi
  if [[ -d $RUN_DIR ]]; then
    mapfile -t names < <(proc_names)
    ((${#names[@]} == 0)) || proc_stop 10 "${names[@]}"
  fi
  if [[ -d $traefik_dir ]]; then
    "$here/traefik-env.sh" down --dir "$traefik_dir"
  fi
  if [[ -d $kcp_dir ]]; then
    "$here/kcp-env.sh" down --dir "$kcp_dir"
  fi
  if [[ -d $env_dir ]]; then
    "$here/test-env.sh" down --dir "$env_dir"
  fi
  if command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -q '^kcp-ingress-'; then
    local name
    while read -r name; do
      kind delete cluster --name "$name"
    done < <(kind get clusters 2>/dev/null | grep '^kcp-ingress-')
  fi
  say "stopped"
}

"$cmd"
