#!/usr/bin/env bash
# A kcp control plane for kcp-ingress: a real kcp on loopback ports, with one
# workspace that serves what kcp-ingress needs.
#
# Usage:
#   hack/kcp-env.sh up     --dir DIR [--workspace NAME] [--port-base P]
#                          [--timeout SECONDS] [--crd-dir PATH] [--owner-pid PID]
#   hack/kcp-env.sh down   --dir DIR [--purge]
#   hack/kcp-env.sh status --dir DIR
#   hack/kcp-env.sh --help
#
# up starts "kcp start" (the binary hack/build-tools.sh --with-kcp builds)
# with its embedded etcd, everything on 127.0.0.1 and recorded under DIR,
# waits until it is ready, creates the workspace root:NAME (type universal,
# so it has a "default" namespace) and waits until it is Ready, then applies
# to that workspace every CustomResourceDefinition in <repo>/config/kcp/
# (Ingress, Service and Deployment: a kcp workspace serves none of them), in
# the CRD directory (the project's Cluster and GlobalIngress) and the Gateway
# API CRDs (standard channel of the release the data plane speaks, from the
# Go module cache: gateway_api_crd_dir in hack/lib/tools.sh; and TLSRoute,
# TCPRoute, UDPRoute from its experimental channel: gateway_api_stage_crds),
# and waits
# until each is Established and listed by discovery. It returns once all of
# that is ready; kcp keeps running in the background until "down". If
# anything fails, up stops what it started, prints the end of the relevant
# log to stderr and exits non-zero.
#
# Options:
#   --dir DIR          the environment's directory (required). Created if
#                      missing; it must be empty or a previous environment's.
#   --workspace NAME   the workspace to create under root (default kcp-ingress)
#   --port-base P      use ports P (embedded etcd client), P+1 (etcd peer)
#                      and P+2 (kcp) instead of free ports picked at random.
#                      A port already in use is an error.
#   --timeout SECONDS  (up) give up (and clean up) when not ready after this
#                      long (default 180, or $KCP_INGRESS_KCP_ENV_TIMEOUT)
#   --crd-dir PATH     the project's CRD YAML (*.yaml, *.yml; documents of
#                      other kinds are skipped). Default $KCP_INGRESS_CRD_DIR,
#                      else <repo>/config/crd; the default may be absent.
#   --owner-pid PID    also start a watcher that runs "down" when process PID
#                      exits (for test harnesses that have no teardown hook)
#   --purge            (down) also delete DIR afterwards
#
# Files written by up:
#   DIR/control-plane.kubeconfig
#       self-contained (kcp's CA and the kcp-admin token embedded); server
#       https://127.0.0.1:PORT/clusters/root:NAME; context "control-plane"
#   DIR/kcp/admin.kubeconfig
#       kcp's own admin kubeconfig (contexts root, base, system:admin)
#   DIR/env    KEY=value lines: KCP_SERVER, KCP_PORT, KCP_WORKSPACE,
#              KCP_WORKSPACE_PATH, CONTROL_PLANE_SERVER,
#              CONTROL_PLANE_KUBECONFIG, KCP_ADMIN_KUBECONFIG, ETCD_PORT,
#              ETCD_PEER_PORT, KCP_PID, KCP_LOG, CA_CERT, KCP (the binary);
#              in a shell: . DIR/env
#   DIR/logs/  kcp.log, setup.log (requests made by up and their answers),
#              watcher.log
#   DIR/run/   NAME.pid files ("PID STARTTIME")
#   DIR/kcp/   kcp's root directory: its certificates, admin kubeconfig and
#              the embedded etcd's data
#
# down stops exactly the processes that up recorded in DIR (a pid counts only
# while its start time matches and its command line mentions DIR): SIGTERM,
# then SIGKILL after 20 s; it waits until they are gone. Running it again, or
# on a directory where nothing runs, is fine. DIR stays unless --purge.
#
# status prints each recorded process and whether it runs; exit 0 when all
# of them run, 1 otherwise.
#
# Environment:
#   KCP_INGRESS_KCP    the kcp binary (default: the one hack/build-tools.sh
#                      --with-kcp builds)
#   KCP_INGRESS_CACHE, KCP_INGRESS_CRD_DIR, KCP_INGRESS_KCP_ENV_TIMEOUT
#
# Exit status: 0 success, 1 failure, 2 usage error.
set -euo pipefail
export LC_ALL=C

# (sets self and repo, and loads the rest of hack/lib)
# shellcheck source=hack/lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"

readonly MARKER=.kcp-ingress-kcp-env
readonly FIELD_MANAGER=kcp-ingress-kcp-env
readonly ENV_NAME=kcp-env ENV_SCRIPT=hack/kcp-env.sh ENV_WHAT="kcp environment"
readonly ENV_COMMANDS=(up down status)
readonly ENV_OPTIONS=(--workspace --port-base --timeout --crd-dir --owner-pid)
FAIL_LINE_MAX=400
CRD_POLL=0.2
CRD_ALIVE=kcp_alive

# ---------------------------------------------------------------- arguments

workspace=kcp-ingress
timeout=${KCP_INGRESS_KCP_ENV_TIMEOUT:-180}

option_allowed() { [[ $cmd == up || $cmd == __watch ]] || usage_error "option $1 is only for 'up'"; }
option_set() { [[ $1 != --workspace ]] || workspace=$2; }

env_parse_args "$@"

if [[ $cmd == up ]]; then
  env_check_timeout
  # a workspace name: a DNS label that kcp accepts (lower case, digits, '-')
  [[ $workspace =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] ||
    usage_error "--workspace '$workspace': use lower-case letters, digits and '-' (at most 63, starting and ending alphanumeric)"
  env_check_port_base 2
  env_check_owner_pid
fi

env_resolve_dir
KCP_ROOT=$DIR/kcp
PKI=$DIR/pki
# kcp runs in DIR
LAUNCH_DIR=$DIR

# ---------------------------------------------------------------- down/status

do_down() {
  [[ -d $RUN_DIR ]] || { note "nothing recorded in $DIR; nothing to stop"; return 0; }
  local ok=true
  proc_stop 10 watcher || ok=false
  # kcp drains for a few seconds before it exits
  proc_stop 20 kcp || ok=false
  local -a rest=()
  local name
  while read -r name; do rest+=("$name"); done < <(proc_names)
  proc_stop 10 ${rest[@]+"${rest[@]}"} || ok=false
  $ok
}

case "$cmd" in
  down) env_down ;;
  status) env_status ;;
  # Internal: started by "up --owner-pid"; runs "down" when the owner exits.
  __watch) env_watch "kcp environment" ;;
esac

# ---------------------------------------------------------------- up

env_up_begin

kcp_bin=${KCP_INGRESS_KCP:-$(tool_dir kcp)/kcp}
[[ -x $kcp_bin ]] || die "kcp not found at $kcp_bin; build it with hack/build-tools.sh --with-kcp (or set KCP_INGRESS_KCP)"
need_tools curl python3 flock setsid base64 go
kcp_config_dir=$repo/config/kcp
[[ -d $kcp_config_dir ]] || die "$kcp_config_dir is missing (it holds what the workspace needs to serve Ingress, Service and Deployment)"
env_crd_dir "applying only $kcp_config_dir"
gateway_api_crds=$(gateway_api_crd_dir) || die "cannot find the Gateway API CRDs (go mod download sigs.k8s.io/gateway-api@$(gateway_api_version))"

# ports: embedded etcd client, embedded etcd peer, kcp
port_purpose=("embedded etcd client" "embedded etcd peer" "kcp")
port_spec=(tcp tcp tcp)
pick_ports
etcd_port=${ports[0]}
etcd_peer_port=${ports[1]}
kcp_port=${ports[2]}
base_url=https://127.0.0.1:$kcp_port
ws_path=root:$workspace
ws_url=$base_url/clusters/$ws_path

# Start from a clean slate (only what up itself makes).
rm -rf -- "$KCP_ROOT" "$PKI" "$DIR/setup" "$DIR/gateway-api-crds" "$RUN_DIR" "$LOG_DIR"
rm -f -- "$DIR/control-plane.kubeconfig" "$DIR/env"
: >"$DIR/$MARKER"
mkdir -p "$RUN_DIR" "$LOG_DIR" "$KCP_ROOT" "$PKI" "$DIR/setup"
chmod 700 "$PKI"
setup_log=$LOG_DIR/setup.log
: >"$setup_log"

# From here on a failure stops whatever was started.
env_traps on_up_exit

kcp_log=$LOG_DIR/kcp.log
note "starting kcp on 127.0.0.1:$kcp_port (embedded etcd on :$etcd_port, peer :$etcd_peer_port)"
launch kcp "$kcp_log" "$kcp_bin" start \
  --root-directory="$KCP_ROOT" \
  --bind-address=127.0.0.1 \
  --secure-port="$kcp_port" \
  --external-hostname=127.0.0.1 \
  --embedded-etcd-client-port="$etcd_port" \
  --embedded-etcd-peer-port="$etcd_peer_port" \
  --batteries-included=admin \
  --enable-home-workspaces=false

kcp_alive() { proc_pid kcp >/dev/null || fail "$kcp_log" "kcp exited during start-up"; }

# kcp writes its admin kubeconfig (with the CA of its serving certificate and
# the kcp-admin token) early in its start-up.
admin_kc=$KCP_ROOT/admin.kubeconfig
until [[ -s $admin_kc ]] && grep -q 'token:' "$admin_kc"; do
  kcp_alive
  past_deadline && fail "$kcp_log" "kcp wrote no $admin_kc within ${timeout}s"
  sleep 0.2
done
sleep 0.2 # the file is written in one go, but do not race its last bytes
ca_data=$(awk '$1 == "certificate-authority-data:" {print $2; exit}' "$admin_kc")
token=$(awk '$1 == "-" && $2 == "name:" {user = $3} $1 == "token:" && user == "kcp-admin" {print $2; exit}' "$admin_kc")
[[ -n $ca_data && -n $token ]] || fail "" "cannot read the CA and the kcp-admin token from $admin_kc"
base64 -d <<<"$ca_data" >"$PKI/ca.crt" 2>/dev/null || fail "" "the CA in $admin_kc is not base64"
# the token goes to curl through a file, not on its command line
printf 'Authorization: Bearer %s\n' "$token" >"$PKI/admin-token.header"
chmod 600 "$PKI/admin-token.header"

# kreq URL [curl args...]: a request as kcp-admin; the answer goes to stdout.
kreq() {
  local url=$1
  shift
  curl -sS --max-time 10 --cacert "$PKI/ca.crt" -H "@$PKI/admin-token.header" "$@" "$url"
}

until [[ $(curl -sS --max-time 5 --cacert "$PKI/ca.crt" "$base_url/readyz" 2>/dev/null) == ok ]]; do
  kcp_alive
  if past_deadline; then
    why=$(curl -sS --max-time 5 --cacert "$PKI/ca.crt" "$base_url/readyz?verbose" 2>&1 | grep -v '^\[+\]' | tr '\n' ' ')
    fail "$kcp_log" "kcp was not ready within ${timeout}s (readyz: $why)"
  fi
  sleep 0.3
done
note "kcp is ready"

# ---------------------------------------------------------------- workspace

ws_json=$DIR/setup/workspace.json
cat >"$ws_json" <<EOF
{"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
 "metadata": {"name": "$workspace"},
 "spec": {"type": {"name": "universal", "path": "root"}}}
EOF
ws_api=$base_url/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces
# the root workspace's APIs are bootstrapped right after readyz: retry
while true; do
  code=$(kreq "$ws_api" -X POST -H 'Content-Type: application/json' --data-binary "@$ws_json" \
    -o "$DIR/setup/workspace.resp.json" -w '%{http_code}' 2>>"$setup_log") || code=000
  echo "POST $ws_api ($workspace) -> $code" >>"$setup_log"
  [[ $code == 201 ]] && break
  if [[ $code == 409 ]]; then
    note "workspace $ws_path exists already"
    break
  fi
  kcp_alive
  if past_deadline; then
    cat "$DIR/setup/workspace.resp.json" >>"$setup_log" 2>/dev/null || true
    fail "$setup_log" "creating the workspace $ws_path failed with HTTP $code: $(json_get "$DIR/setup/workspace.resp.json" message)"
  fi
  sleep 0.5
done
phase=
until [[ $phase == Ready ]]; do
  kreq "$ws_api/$workspace" -o "$DIR/setup/workspace.json" 2>>"$setup_log" || true
  phase=$(json_get "$DIR/setup/workspace.json" status.phase)
  [[ $phase == Ready ]] && break
  kcp_alive
  if past_deadline; then
    cat "$DIR/setup/workspace.json" >>"$setup_log" 2>/dev/null || true
    fail "$setup_log" "workspace $ws_path was not Ready within ${timeout}s (phase '${phase:-unknown}')"
  fi
  sleep 0.3
done
url=$(json_get "$DIR/setup/workspace.json" spec.URL)
echo "workspace $ws_path: phase Ready, URL $url" >>"$setup_log"
[[ -z $url || $url == "$ws_url" ]] || note "kcp reports the workspace URL $url; using $ws_url"
# the universal workspace type's initializer makes the "default" namespace
until [[ $(kreq "$ws_url/api/v1/namespaces/default" -o /dev/null -w '%{http_code}' 2>/dev/null) == 200 ]]; do
  kcp_alive
  past_deadline && fail "$setup_log" "workspace $ws_path has no default namespace after ${timeout}s"
  sleep 0.3
done
note "workspace $ws_path is ready"

kc=$DIR/control-plane.kubeconfig
cat >"$kc" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: control-plane
  cluster:
    server: $ws_url
    certificate-authority-data: $ca_data
users:
- name: kcp-admin
  user:
    token: $token
contexts:
- name: control-plane
  context:
    cluster: control-plane
    user: kcp-admin
current-context: control-plane
EOF
chmod 600 "$kc"

# ---------------------------------------------------------------- CRDs

# api_request PATH [curl args...]: a request to the workspace.
api_request() {
  local path=$1
  shift
  kreq "$ws_url$path" "$@"
}
crd_ready_line() { echo "ready: $1 $4"; }

declare -a crds=()
apply_crd_dir() { # DIR PREFIX
  local from=$1 prefix=$2 files=() doc skipped count=0
  shopt -s nullglob
  files=("$from"/*.yaml "$from"/*.yml)
  shopt -u nullglob
  ((${#files[@]} > 0)) || { note "no YAML in $from"; return 0; }
  skipped=$(crd_split "$DIR/setup/$prefix" 1 "${files[@]}")
  for doc in "$DIR/setup/$prefix"-*.yaml; do
    [[ -e $doc ]] || continue
    crd_apply "$doc" "$from" "$setup_log"
    count=$((count + 1))
  done
  local extra=
  ((skipped == 0)) || extra=" (skipped $skipped document(s) of other kinds)"
  note "applied $count CRD(s) from $from$extra"
}
apply_crd_dir "$kcp_config_dir" kcp
[[ -z $crd_dir ]] || apply_crd_dir "$crd_dir" crd
gateway_api_stage_crds "$DIR/gateway-api-crds" || die "cannot stage the Gateway API CRDs from $gateway_api_crds"
apply_crd_dir "$DIR/gateway-api-crds" gateway-api

# wait until each CRD is Established and discovery lists each served version
for c in ${crds[@]+"${crds[@]}"}; do
  crd_wait_served "$setup_log" "$c"
done
note "the workspace serves ${#crds[@]} CRD type(s)"

# ---------------------------------------------------------------- owner watcher

launch_watcher

# ---------------------------------------------------------------- summary

{
  echo "KCP_ENV_DIR=$DIR"
  echo "KCP_SERVER=$base_url"
  echo "KCP_PORT=$kcp_port"
  echo "KCP_WORKSPACE=$workspace"
  echo "KCP_WORKSPACE_PATH=$ws_path"
  echo "CONTROL_PLANE_SERVER=$ws_url"
  echo "CONTROL_PLANE_KUBECONFIG=$kc"
  echo "KCP_ADMIN_KUBECONFIG=$admin_kc"
  echo "ETCD_PORT=$etcd_port"
  echo "ETCD_PEER_PORT=$etcd_peer_port"
  echo "KCP_PID=$(proc_pid kcp)"
  echo "KCP_LOG=$kcp_log"
  echo "CA_CERT=$PKI/ca.crt"
  echo "KCP=$kcp_bin"
  env_watcher_lines
} >"$DIR/env"
chmod 600 "$DIR/env"

env_up_done
printf '  %-14s %s  %s\n' control-plane "$ws_url" "$kc"
printf '  %-14s %s  %s\n' kcp "$base_url" "$admin_kc"
printf '  stop with: %s down --dir %s\n' "$self" "$DIR"
