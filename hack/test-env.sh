#!/usr/bin/env bash
# The kcp-ingress test environment: real servers on loopback ports.
#
# Usage:
#   hack/test-env.sh up     --dir DIR [--clusters N] [--port-base P]
#                           [--timeout SECONDS] [--crd-dir PATH] [--owner-pid PID]
#   hack/test-env.sh down   --dir DIR [--purge]
#   hack/test-env.sh status --dir DIR
#   hack/test-env.sh stop   --dir DIR --server NAME
#   hack/test-env.sh start  --dir DIR --server NAME [--timeout SECONDS]
#   hack/test-env.sh --help
#
# up  starts, all on 127.0.0.1 and all recorded under DIR:
#   - one etcd (--unsafe-no-fsync, data in DIR/etcd);
#   - N+1 kube-apiservers sharing it with sibling etcd prefixes:
#     "control-plane" (/control-plane/registry) and "cluster-1" ... "cluster-N"
#     (/cluster-K/registry). RBAC authorization; the admin client certificate
#     is in the group system:masters. No controller-manager runs: no garbage
#     collection, no namespace finalization, no default service accounts;
#   - BIND 9 (named) serving the zone kcp-ingress.test. that accepts RFC 2136
#     updates and zone transfers signed with a fresh TSIG key (hmac-sha256),
#     plus its statistics channel (JSON at /json/v1/server);
#   - a second BIND 9 (named-secondary), a secondary of the zone
#     embedded.kcp-ingress.test. whose primary is a glbc with the embedded
#     DNS server on 127.0.0.1:DNS_EMBEDDED_PORT (started by the tests, not
#     here): it transfers the zone with the same TSIG key, on NOTIFY;
# then applies every CRD under the CRD directory to the control plane, and
# the Gateway API CRDs (standard channel of the release the data plane
# speaks, from the Go module cache: gateway_api_crd_dir in hack/lib/tools.sh;
# plus TLSRoute, TCPRoute and UDPRoute from its experimental channel:
# gateway_api_stage_crds) to the control plane and every cluster, and waits until the CRDs are
# Established and their resources are discoverable.
# It returns once everything is ready; the servers keep running in the
# background until "down". If anything fails, up stops what it started,
# prints the end of the relevant log to stderr and exits non-zero.
#
# Options:
#   --dir DIR          the environment's directory (required). Created if
#                      missing; it must be empty or a previous environment's.
#   --clusters N       physical clusters to start, 1..32 (default 2)
#   --port-base P      use ports P, P+1, ... instead of free ports picked at
#                      random: P etcd client, P+1 etcd peer, P+2 DNS (TCP and
#                      UDP), P+3 DNS statistics, P+4 control plane, P+4+K
#                      cluster-K, then P+5+N the secondary's DNS and P+6+N,
#                      P+7+N two ports kept free for embedded DNS servers.
#                      A port already in use is an error.
#   --timeout SECONDS  (up, start) give up (and clean up) when not ready after
#                      this long (default 90, or $KCP_INGRESS_TEST_ENV_TIMEOUT)
#   --crd-dir PATH     CRD YAML to apply (*.yaml, *.yml; several documents per
#                      file are fine). Default $KCP_INGRESS_CRD_DIR, else
#                      <repo>/config/crd; the default directory may be absent.
#   --owner-pid PID    also start a watcher that runs "down" when process PID
#                      exits (for test harnesses that have no teardown hook)
#   --purge            (down) also delete DIR afterwards
#   --server NAME      (stop, start) one server of the environment: etcd,
#                      named, control-plane or cluster-K
#
# Files written by up:
#   DIR/control-plane.kubeconfig, DIR/cluster-K.kubeconfig
#       self-contained (CA, admin client certificate and key embedded);
#       server https://127.0.0.1:PORT; the context is named like the file
#   DIR/dns.env   KEY=value lines: DNS_SERVER, DNS_PORT, DNS_ZONE,
#                 DNS_TSIG_KEY_NAME, DNS_TSIG_ALGORITHM, DNS_TSIG_SECRET
#                 (base64), DNS_STATS_PORT, DNS_STATS_URL, and for the
#                 embedded server: DNS_EMBEDDED_ZONE, DNS_EMBEDDED_PORT,
#                 DNS_EMBEDDED_PORT_2 (free when up returns),
#                 DNS_SECONDARY_PORT (named-secondary)
#   DIR/env       KEY=value lines: everything above plus ports, pids, paths
#                 (TEST_ENV_*, ETCD_*, CONTROL_PLANE_*, CLUSTER_K_*, NAMED_*,
#                 CA_CERT, ADMIN_CERT, ADMIN_KEY); in a shell: . DIR/env
#                 (give the path: a bare "source env" finds /usr/bin/env)
#   DIR/logs/     etcd.log, control-plane.log, cluster-K.log, named.log,
#                 named-secondary.log,
#                 crds.log (CRD requests and answers), pki.log, watcher.log
#   DIR/run/      NAME.pid files ("PID STARTTIME" of a running server, or
#                 "stopped" after stop); NAME.argv (the server's command line,
#                 NUL-separated) and NAME.ports ("PORT tcp|tcp+udp" lines):
#                 up starts every server from these files, and so does start
#   DIR/pki/      ca.crt, serving.crt/key, admin.crt/key, sa.key/sa.pub
#
# down stops exactly the processes that up recorded in DIR (a pid counts only
# while its start time matches and its command line mentions DIR): SIGTERM,
# then SIGKILL after 10 s; it waits until they are gone. Running it again, or
# on a directory where nothing runs, is fine. DIR and its logs stay unless
# --purge is given.
#
# status prints each recorded process and whether it is running, stopped (by
# stop) or not running (it exited on its own); exit 0 when all of them run,
# 1 otherwise.
#
# stop stops one server the way down does (SIGTERM, SIGKILL after 10 s, only
# the recorded process) and waits until it is gone and its ports can be bound
# again. Its pid file then says "stopped" and its *_PID line in DIR/env is
# emptied; down and the --owner-pid watcher skip it. Stopping a stopped server
# is fine. Its data stays: etcd keeps every apiserver's objects, named keeps
# its zone (dynamic updates are in its journal, zone.db.jnl).
#
# start starts one server of a running environment again, with the very
# command line up used (from DIR/run/NAME.argv: same binary, flags, ports,
# certificates, data directory, etcd prefix), appending to its log, and waits
# until it is ready: etcd /health, kube-apiserver /readyz, named answering SOA
# for the zone. It records the new pid (DIR/run/NAME.pid and DIR/env), so
# down and the watcher stop it as usual. A server that is running already is
# only waited for. An apiserver needs etcd to run. If the server exits or is
# not ready within --timeout, start stops it again, leaves it "stopped",
# prints the end of its log and exits 1. Nothing is started for an
# environment that was brought down.
#
# Environment:
#   KCP_INGRESS_KUBE_APISERVER, KCP_INGRESS_ETCD
#       binaries to use (default: the ones hack/build-tools.sh builds)
#   KCP_INGRESS_CACHE, KCP_INGRESS_CRD_DIR, KCP_INGRESS_TEST_ENV_TIMEOUT
#
# Exit status: 0 success, 1 failure, 2 usage error.
set -euo pipefail
export LC_ALL=C

# (sets self and repo, and loads the rest of hack/lib)
# shellcheck source=hack/lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"

PATH=$PATH:/usr/sbin:/sbin

readonly ZONE=kcp-ingress.test.
readonly EMBEDDED_ZONE=embedded.kcp-ingress.test.
readonly TSIG_KEY_NAME=kcp-ingress-test-key
readonly TSIG_ALGORITHM=hmac-sha256
readonly MARKER=.kcp-ingress-test-env
readonly MAX_CLUSTERS=32
readonly ENV_NAME=test-env ENV_SCRIPT=hack/test-env.sh ENV_WHAT="test environment"
readonly ENV_COMMANDS=(up down status stop start)
readonly ENV_OPTIONS=(--clusters --port-base --timeout --crd-dir --owner-pid --server)
readonly FIELD_MANAGER=kcp-ingress-test-env

# ---------------------------------------------------------------- arguments

clusters=2
# (applying the Gateway API CRDs to every apiserver takes 15-25 s of it on a
# loaded 2-core machine)
timeout=${KCP_INGRESS_TEST_ENV_TIMEOUT:-90}
server=

option_allowed() {
  case "$1" in
    --timeout) [[ $cmd == up || $cmd == start ]] || usage_error "option $1 is only for 'up' and 'start'" ;;
    --server) [[ $cmd == stop || $cmd == start ]] || usage_error "option $1 is only for 'stop' and 'start'" ;;
    *) [[ $cmd == up || $cmd == __watch ]] || usage_error "option $1 is only for 'up'" ;;
  esac
}
option_set() {
  case "$1" in
    --clusters) clusters=$2 ;;
    --server) server=$2 ;;
  esac
}

env_parse_args "$@"

if [[ $cmd == up || $cmd == start ]]; then
  env_check_timeout
fi
if [[ $cmd == stop || $cmd == start ]]; then
  [[ -n $server ]] || usage_error "missing --server NAME (etcd, named, control-plane or cluster-K)"
  [[ $server =~ ^(etcd|named|control-plane|cluster-[1-9][0-9]{0,1})$ ]] ||
    usage_error "--server '$server': expected etcd, named, control-plane or cluster-K"
fi
if [[ $cmd == up ]]; then
  if ! [[ $clusters =~ ^[0-9]{1,4}$ ]] || ((10#$clusters < 1)); then
    usage_error "--clusters '$clusters' is not a positive integer"
  fi
  clusters=$((10#$clusters))
  ((clusters <= MAX_CLUSTERS)) || usage_error "--clusters $clusters is more than $MAX_CLUSTERS"
  env_check_port_base $((clusters + 7))
  env_check_owner_pid
fi

env_resolve_dir

# ---------------------------------------------------------------- servers
# Shared by up, start and stop. Every server up starts has two files in
# RUN_DIR besides its pid file: NAME.argv, its command line (NUL-separated,
# written once by up from server_argv), and NAME.ports, "PORT SPEC" lines.
# up and start both launch a server from NAME.argv, so a restarted server
# runs the very command line it ran first.

pki=$DIR/pki
named_dir=$DIR/named
secondary_dir=$DIR/named-secondary
declare -A api_port=()
upper() { local s=${1^^}; echo "${s//-/_}"; }

# server_launch NAME: launch server NAME from RUN_DIR/NAME.argv, appending
# to LOG_DIR/NAME.log.
server_launch() {
  local -a argv=()
  mapfile -d '' -t argv <"$RUN_DIR/$1.argv"
  ((${#argv[@]} > 0)) || fail "" "$RUN_DIR/$1.argv is empty"
  [[ -x ${argv[0]} ]] || fail "" "cannot start $1: ${argv[0]} is not an executable file"
  launch "$1" "$LOG_DIR/$1.log" "${argv[@]}"
}

# server_ports NAME: "PORT SPEC" lines of NAME; server_port NAME: its first
# (main) port.
server_ports() { cat "$RUN_DIR/$1.ports"; }
server_port() {
  local port _spec
  read -r port _spec <"$RUN_DIR/$1.ports" || return 1
  echo "$port"
}

# curl as the admin against one apiserver: kcurl NAME PATH [curl args...]
# Each request may take 5 s; more with many clusters (up applies the large
# Gateway API CRDs to every apiserver at once, and twenty of them share the
# machine).
kcurl() {
  local n=$1 path=$2
  shift 2
  [[ -n ${api_port[$n]:-} ]] || api_port[$n]=$(server_port "$n")
  curl -sS --max-time $((clusters > 4 ? 5 + 2 * clusters : 5)) --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "$@" "https://127.0.0.1:${api_port[$n]}$path"
}

# server_ready NAME: succeed when NAME answers as ready (etcd: /health;
# named: SOA of the zone; an apiserver: /readyz).
server_ready() {
  local port
  port=$(server_port "$1") || return 1
  case "$1" in
    etcd) [[ $(curl -s --max-time 1 "http://127.0.0.1:$port/health" 2>/dev/null) == *'"health":"true"'* ]] ;;
    named) [[ $(dig @127.0.0.1 -p "$port" +short +time=1 +tries=1 "$ZONE" SOA 2>/dev/null) == "ns.$ZONE "* ]] ;;
    # (it has no copy of its zone until the embedded server runs: any answer)
    named-secondary) dig @127.0.0.1 -p "$port" +time=1 +tries=1 "$EMBEDDED_ZONE" SOA >/dev/null 2>&1 ;;
    *) [[ $(kcurl "$1" /readyz 2>/dev/null) == ok ]] ;;
  esac
}

# server_not_ready_why NAME: a short reason for the error message.
server_not_ready_why() {
  case "$1" in
    etcd) echo "etcd was not healthy" ;;
    named) echo "named did not answer SOA $ZONE" ;;
    named-secondary) echo "named-secondary did not answer" ;;
    *) echo "kube-apiserver $1 was not ready (readyz: $(kcurl "$1" '/readyz?verbose' 2>&1 | grep -v '^\[+\]' | tr '\n' ' '))" ;;
  esac
}

# env_set_pid NAME PID: rewrite NAME's *_PID line in DIR/env (PID may be "").
env_set_pid() {
  local key tmp=$DIR/env.tmp
  key="$(upper "$1")_PID"
  [[ -f $DIR/env ]] || return 0
  awk -v k="$key" -v v="$2" 'index($0, k "=") == 1 { print k "=" v; next } { print }' "$DIR/env" >"$tmp" &&
    chmod 600 "$tmp" && mv -f -- "$tmp" "$DIR/env"
}

# log_mark NAME WHAT: a separator line in NAME's log.
log_mark() {
  echo "---- hack/test-env.sh: $2 at $(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) ----" >>"$LOG_DIR/$1.log"
}

# ---------------------------------------------------------------- down/status

do_down() {
  local -a first=() second=() rest=()
  local name
  [[ -d $RUN_DIR ]] || { note "nothing recorded in $DIR; nothing to stop"; return 0; }
  while read -r name; do
    case "$name" in
      watcher|control-plane|cluster-*) first+=("$name") ;;
      etcd|named|named-secondary) second+=("$name") ;;
      *) rest+=("$name") ;;
    esac
  done < <(proc_names)
  local ok=true
  # apiservers first (they need etcd to shut down cleanly), then the rest
  proc_stop 10 ${first[@]+"${first[@]}"} || ok=false
  proc_stop 10 ${second[@]+"${second[@]}"} ${rest[@]+"${rest[@]}"} || ok=false
  $ok || return 1
}

case "$cmd" in
  down) env_down ;;
  status) env_status ;;
esac

# ---------------------------------------------------------------- stop/start

if [[ $cmd == stop || $cmd == start ]]; then
  start_ms=$(now_ms)
  deadline_ms=$((start_ms + timeout * 1000))
  [[ -e $DIR/$MARKER ]] || die "$DIR was not made by hack/test-env.sh up"
  lock_dir "-w 60"
  if [[ ! -f $RUN_DIR/$server.argv || ! -f $RUN_DIR/$server.ports ]]; then
    known=
    for f in "$RUN_DIR"/*.argv; do
      [[ -e $f ]] || continue
      f=${f##*/}
      known+="${known:+, }${f%.argv}"
    done
    die "$DIR has no server '$server'${known:+ (its servers: $known)}"
  fi
  [[ -e $RUN_DIR/$server.pid ]] ||
    die "$server is neither running nor stopped in $DIR: the environment is down (run up)"
  mapfile -t server_port_lines < <(server_ports "$server")
fi

# wait_ports_bindable: until every port of $server can be bound (5 s at most).
wait_ports_bindable() {
  local line port spec i
  for line in "${server_port_lines[@]}"; do
    read -r port spec <<<"$line"
    for ((i = 0; ; i++)); do
      ports_bindable "$port" "$spec" && break
      ((i < 50)) || return 1
      sleep 0.1
    done
  done
}

# start: when start fails after launching, stop the server again.
on_start_exit() {
  local rc=$?
  if ! $start_done; then
    ((rc != 0)) || rc=1
    proc_stop 10 "$server" || true
    proc_mark_stopped "$server"
    env_set_pid "$server" ""
    log_mark "$server" "start failed; stopped again"
    echo "test-env: $server is stopped" >&2
  fi
  exit "$rc"
}

if [[ $cmd == stop ]]; then
  if proc_is_stopped "$server"; then
    note "$server is stopped already"
    exit 0
  fi
  if pid=$(proc_pid "$server"); then
    proc_stop 10 "$server" || die "$server (pid $pid) could not be stopped"
    log_mark "$server" "stopped (pid $pid) by stop"
  else
    pid=
    proc_stop 10 "$server" || true # only drops the stale pid file
  fi
  proc_mark_stopped "$server"
  env_set_pid "$server" ""
  if ! wait_ports_bindable; then
    busy=
    for line in "${server_port_lines[@]}"; do
      read -r port spec <<<"$line"
      ports_bindable "$port" "$spec" || busy+="${busy:+, }$port ($spec)$(h=$(ports_holder "$port"); echo "${h:+ held by $h}")"
    done
    die "$server is gone but its port(s) are still in use: $busy"
  fi
  if [[ -n $pid ]]; then
    note "stopped $server (pid $pid); its ports are free"
  else
    note "$server was not running (its process had exited); recorded it as stopped"
  fi
  exit 0
fi

if [[ $cmd == start ]]; then
  if pid=$(proc_pid "$server"); then
    note "$server is running already (pid $pid); waiting until it is ready"
    until server_ready "$server"; do
      past_deadline && fail "$LOG_DIR/$server.log" "$(server_not_ready_why "$server") within ${timeout}s"
      sleep 0.1
    done
    note "$server is ready (pid $pid)"
    exit 0
  fi
  case "$server" in
    etcd|named) ;;
    *)
      proc_pid etcd >/dev/null ||
        die "cannot start $server: etcd is not running in $DIR (start it first: $self start --dir $DIR --server etcd)" ;;
  esac
  for line in "${server_port_lines[@]}"; do
    read -r port spec <<<"$line"
    if ! ports_bindable "$port" "$spec"; then
      holder=$(ports_holder "$port")
      die "cannot start $server: its port $port ($spec) is in use${holder:+ by $holder}"
    fi
  done

  start_done=false
  env_traps on_start_exit

  log_mark "$server" "start"
  server_launch "$server"
  pid=$(proc_pid "$server") || fail "$LOG_DIR/$server.log" "$server exited at once"
  until server_ready "$server"; do
    proc_pid "$server" >/dev/null || fail "$LOG_DIR/$server.log" "$server exited during start-up"
    past_deadline && fail "$LOG_DIR/$server.log" "$(server_not_ready_why "$server") within ${timeout}s"
    sleep 0.1
  done
  start_done=true
  env_set_pid "$server" "$pid"
  note "started $server (pid $pid); it is ready"
  exit 0
fi

# ---------------------------------------------------------------- __watch
# Internal: started by "up --owner-pid"; runs "down" when the owner exits.
if [[ $cmd == __watch ]]; then
  env_watch environment
fi

# ---------------------------------------------------------------- up

env_up_begin

# What the servers need.
kube_apiserver=${KCP_INGRESS_KUBE_APISERVER:-$(tool_dir kube-apiserver)/kube-apiserver}
etcd_bin=${KCP_INGRESS_ETCD:-$(tool_dir etcd)/etcd}
[[ -x $kube_apiserver ]] || die "kube-apiserver not found at $kube_apiserver; build it with hack/build-tools.sh (or set KCP_INGRESS_KUBE_APISERVER)"
[[ -x $etcd_bin ]] || die "etcd not found at $etcd_bin; build it with hack/build-tools.sh (or set KCP_INGRESS_ETCD)"
need_tools openssl curl python3 flock setsid go
env_crd_dir "applying no CRDs"
gateway_api_crds=$(gateway_api_crd_dir) || die "cannot find the Gateway API CRDs (go mod download sigs.k8s.io/gateway-api@$(gateway_api_version))"

ensure_bind() {
  if command -v named >/dev/null && command -v dig >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null || die "BIND 9 (named, dig) is not installed and there is no apt-get to install it"
  ((EUID == 0)) || die "BIND 9 (named, dig) is not installed; as root: apt-get install -y bind9 bind9-dnsutils"
  note "installing BIND 9 (apt-get install bind9 bind9-dnsutils); log: $DIR/apt.log"
  # keep the package scripts from starting a system-wide named
  local policy=/usr/sbin/policy-rc.d made_policy=false
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=true
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9 bind9-dnsutils; } \
    >"$DIR/apt.log" 2>&1 || rc=$?
  if $made_policy; then rm -f "$policy"; fi
  if ((rc != 0)) || ! command -v named >/dev/null || ! command -v dig >/dev/null; then
    tail -n 20 "$DIR/apt.log" >&2 || true
    die "installing BIND 9 failed"
  fi
}
ensure_bind

# ---------------------------------------------------------------- ports

names=(control-plane)
for ((k = 1; k <= clusters; k++)); do names+=("cluster-$k"); done

port_purpose=("etcd client" "etcd peer" "DNS (TCP and UDP)" "DNS statistics channel")
port_spec=(tcp tcp tcp+udp tcp)
for n in "${names[@]}"; do
  port_purpose+=("kube-apiserver $n")
  port_spec+=(tcp)
done
port_purpose+=("secondary DNS (TCP and UDP)" "embedded DNS (TCP and UDP)" "second embedded DNS (TCP and UDP)")
port_spec+=(tcp+udp tcp+udp tcp+udp)
pick_ports
etcd_port=${ports[0]}
etcd_peer_port=${ports[1]}
dns_port=${ports[2]}
dns_stats_port=${ports[3]}
for i in "${!names[@]}"; do api_port[${names[$i]}]=${ports[$((i + 4))]}; done
secondary_port=${ports[$((${#names[@]} + 4))]}
embedded_port=${ports[$((${#names[@]} + 5))]}
embedded_port_2=${ports[$((${#names[@]} + 6))]}

# Start from a clean slate (only what up itself makes).
rm -rf -- "$DIR/etcd" "$DIR/pki" "$DIR/named" "$DIR/named-secondary" "$DIR/apiservers" "$DIR/crds" "$DIR/gateway-api-crds" "$RUN_DIR" "$LOG_DIR"
rm -f -- "$DIR"/control-plane.kubeconfig "$DIR"/cluster-*.kubeconfig "$DIR/dns.env" "$DIR/env"
: >"$DIR/$MARKER"
mkdir -p "$RUN_DIR" "$LOG_DIR" "$DIR/pki" "$DIR/named" "$DIR/named-secondary" "$DIR/apiservers" "$DIR/crds"

# From here on a failure stops whatever was started.
env_traps on_up_exit

# ---------------------------------------------------------------- command lines

named_bin=$(command -v named)
case "$named_bin" in /*) ;; *) die "named resolves to '$named_bin', not to a file" ;; esac

# server_argv NAME: set the caller's argv to server NAME's command line.
# The only place where the flags of the servers are listed: server_define
# saves the result for server_launch (up) and for start.
server_argv() {
  case "$1" in
    etcd)
      argv=("$etcd_bin"
        --name=kcp-ingress-test
        --data-dir="$DIR/etcd"
        --listen-client-urls="http://127.0.0.1:$etcd_port"
        --advertise-client-urls="http://127.0.0.1:$etcd_port"
        --listen-peer-urls="http://127.0.0.1:$etcd_peer_port"
        --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port"
        --initial-cluster="kcp-ingress-test=http://127.0.0.1:$etcd_peer_port"
        --initial-cluster-state=new
        --unsafe-no-fsync
        --snapshot-count=100000
        --log-level=warn) ;;
    named)
      argv=("$named_bin" -c "$named_dir/named.conf" -u root -g) ;;
    named-secondary)
      argv=("$named_bin" -c "$secondary_dir/named.conf" -u root -g) ;;
    control-plane|cluster-*)
      argv=("$kube_apiserver"
        --etcd-servers="http://127.0.0.1:$etcd_port"
        --etcd-prefix="/$1/registry"
        --cert-dir="$DIR/apiservers/$1"
        --secure-port="${api_port[$1]}"
        --bind-address=127.0.0.1
        --advertise-address=127.0.0.1
        --tls-cert-file="$pki/serving.crt"
        --tls-private-key-file="$pki/serving.key"
        --client-ca-file="$pki/ca.crt"
        --service-account-issuer="https://127.0.0.1:${api_port[$1]}"
        --service-account-key-file="$pki/sa.pub"
        --service-account-signing-key-file="$pki/sa.key"
        --service-cluster-ip-range=10.0.0.0/24
        --allow-privileged=true
        --authorization-mode=RBAC
        --disable-admission-plugins=ServiceAccount
        --enable-priority-and-fairness=false
        --profiling=false
        --endpoint-reconciler-type=none) ;;
    *) die "internal error: no server $1" ;;
  esac
}

# server_define NAME: save NAME's command line and ports in RUN_DIR.
server_define() {
  local -a argv=()
  server_argv "$1"
  printf '%s\0' "${argv[@]}" >"$RUN_DIR/$1.argv"
  case "$1" in
    etcd) printf '%s tcp\n' "$etcd_port" "$etcd_peer_port" ;;
    named) printf '%s tcp+udp\n%s tcp\n' "$dns_port" "$dns_stats_port" ;;
    named-secondary) printf '%s tcp+udp\n' "$secondary_port" ;;
    *) printf '%s tcp\n' "${api_port[$1]}" ;;
  esac >"$RUN_DIR/$1.ports"
}

# ---------------------------------------------------------------- named

# named_head DIR PORT: the start of a named.conf for a server in DIR on
# 127.0.0.1:PORT: the TSIG key and the options every named here shares. The
# options block is left open for the caller's own lines.
named_head() {
  local dir=$1 port=$2
  cat <<EOF
// generated by hack/test-env.sh
key "$TSIG_KEY_NAME" {
  algorithm $TSIG_ALGORITHM;
  secret "$tsig_secret";
};
options {
  directory "$dir";
  pid-file "$dir/named.pid";
  session-keyfile "$dir/session.key";
  managed-keys-directory "$dir";
  dump-file "$dir/cache_dump.db";
  statistics-file "$dir/named.stats";
  memstatistics-file "$dir/named.memstats";
  listen-on port $port { 127.0.0.1; };
  listen-on-v6 { none; };
  automatic-interface-scan no;
  recursion no;
  allow-query { 127.0.0.0/8; };
  allow-transfer { none; };
  notify no;
  dnssec-validation no;
EOF
}

tsig_secret=$(openssl rand -base64 32)
{
  named_head "$named_dir" "$dns_port"
  cat <<EOF
};
controls { };
statistics-channels {
  inet 127.0.0.1 port $dns_stats_port allow { 127.0.0.1; };
};
zone "$ZONE" {
  type primary;
  file "$named_dir/zone.db";
  allow-update { key "$TSIG_KEY_NAME"; };
  allow-transfer { key "$TSIG_KEY_NAME"; };
};
EOF
} >"$named_dir/named.conf"
cat >"$named_dir/zone.db" <<EOF
\$TTL 60
@   IN SOA ns.$ZONE hostmaster.$ZONE ( 1 60 30 3600 5 )
@   IN NS  ns.$ZONE
ns  IN A   127.0.0.1
EOF
chmod 600 "$named_dir/named.conf"
if ! named-checkconf "$named_dir/named.conf" >"$LOG_DIR/named.log" 2>&1; then
  fail "$LOG_DIR/named.log" "named-checkconf rejected the generated configuration"
fi
note "starting named on 127.0.0.1:$dns_port (statistics on :$dns_stats_port)"
server_define named
server_launch named

# A secondary of the embedded server's zone: transfers signed with the key,
# on NOTIFY (and retried every few seconds until the primary answers).
{
  named_head "$secondary_dir" "$secondary_port"
  cat <<EOF
  min-refresh-time 1;
  max-refresh-time 5;
  min-retry-time 1;
  max-retry-time 2;
};
controls { };
zone "$EMBEDDED_ZONE" {
  type secondary;
  primaries { 127.0.0.1 port $embedded_port key "$TSIG_KEY_NAME"; };
  allow-notify { 127.0.0.1; };
  file "$secondary_dir/secondary.db";
};
EOF
} >"$secondary_dir/named.conf"
chmod 600 "$secondary_dir/named.conf"
if ! named-checkconf "$secondary_dir/named.conf" >"$LOG_DIR/named-secondary.log" 2>&1; then
  fail "$LOG_DIR/named-secondary.log" "named-checkconf rejected the secondary's configuration"
fi
note "starting named-secondary on 127.0.0.1:$secondary_port (primary: 127.0.0.1:$embedded_port)"
server_define named-secondary
server_launch named-secondary

cat >"$DIR/dns.env" <<EOF
DNS_SERVER=127.0.0.1
DNS_PORT=$dns_port
DNS_ZONE=$ZONE
DNS_TSIG_KEY_NAME=$TSIG_KEY_NAME
DNS_TSIG_ALGORITHM=$TSIG_ALGORITHM
DNS_TSIG_SECRET=$tsig_secret
DNS_STATS_PORT=$dns_stats_port
DNS_STATS_URL=http://127.0.0.1:$dns_stats_port/json/v1/server
DNS_EMBEDDED_ZONE=$EMBEDDED_ZONE
DNS_EMBEDDED_PORT=$embedded_port
DNS_EMBEDDED_PORT_2=$embedded_port_2
DNS_SECONDARY_PORT=$secondary_port
EOF
chmod 600 "$DIR/dns.env"

# ---------------------------------------------------------------- etcd

note "starting etcd on 127.0.0.1:$etcd_port"
server_define etcd
server_launch etcd

# ---------------------------------------------------------------- certificates
# (made while etcd and named start; only the kube-apiservers need them)

cat >"$pki/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
make_pki() {
  local cnf=$pki/openssl.cnf log=$LOG_DIR/pki.log
  local -a jobs=()
  # the four RSA keys are independent: make them in parallel
  openssl req -x509 -config "$cnf" -extensions v3_ca -newkey rsa:2048 -nodes \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 365 -subj "/CN=kcp-ingress-test-ca" >>"$log" 2>&1 &
  jobs+=($!)
  openssl req -new -config "$cnf" -newkey rsa:2048 -nodes -keyout "$pki/serving.key" \
    -out "$pki/serving.csr" -subj "/CN=127.0.0.1" >>"$log" 2>&1 &
  jobs+=($!)
  openssl req -new -config "$cnf" -newkey rsa:2048 -nodes -keyout "$pki/admin.key" \
    -out "$pki/admin.csr" -subj "/O=system:masters/CN=kcp-ingress-admin" >>"$log" 2>&1 &
  jobs+=($!)
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" >>"$log" 2>&1 &
  jobs+=($!)
  local j ok=true
  for j in "${jobs[@]}"; do wait "$j" || ok=false; done
  $ok || fail "$log" "generating keys with openssl failed"
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" >>"$log" 2>&1 ||
    fail "$log" "openssl pkey failed"
  local what ext
  for what in serving:v3_server admin:v3_client; do
    ext=${what#*:}
    what=${what%%:*}
    openssl x509 -req -in "$pki/$what.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 365 -extfile "$cnf" -extensions "$ext" \
      -out "$pki/$what.crt" >>"$log" 2>&1 || fail "$log" "signing the $what certificate failed"
  done
  chmod 600 "$pki"/*.key
}
make_pki
note "generated certificates in $pki"

until server_ready etcd; do
  proc_pid etcd >/dev/null || fail "$LOG_DIR/etcd.log" "etcd exited during start-up"
  past_deadline && fail "$LOG_DIR/etcd.log" "etcd was not healthy within ${timeout}s"
  sleep 0.1
done
note "etcd is healthy"

# ---------------------------------------------------------------- kube-apiservers

for n in "${names[@]}"; do
  mkdir -p "$DIR/apiservers/$n"
  note "starting kube-apiserver $n on 127.0.0.1:${api_port[$n]}"
  server_define "$n"
  server_launch "$n"
done

# kubeconfigs and the summary can be written while the servers start
b64() { base64 -w0 <"$1"; }
ca_data=$(b64 "$pki/ca.crt")
cert_data=$(b64 "$pki/admin.crt")
key_data=$(b64 "$pki/admin.key")
for n in "${names[@]}"; do
  kc=$DIR/$n.kubeconfig
  cat >"$kc" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $n
  cluster:
    server: https://127.0.0.1:${api_port[$n]}
    certificate-authority-data: $ca_data
users:
- name: $n-admin
  user:
    client-certificate-data: $cert_data
    client-key-data: $key_data
contexts:
- name: $n
  context:
    cluster: $n
    user: $n-admin
current-context: $n
EOF
  chmod 600 "$kc"
done

# ---------------------------------------------------------------- readiness

dns_ready=false
wait_dns() {
  $dns_ready && return 0
  proc_pid named >/dev/null || fail "$LOG_DIR/named.log" "named exited during start-up"
  proc_pid named-secondary >/dev/null ||
    fail "$LOG_DIR/named-secondary.log" "named-secondary exited during start-up"
  if server_ready named && server_ready named-secondary; then
    dns_ready=true
  fi
}

declare -A ready=()
while true; do
  wait_dns
  pending=()
  for n in "${names[@]}"; do
    [[ -n ${ready[$n]:-} ]] && continue
    proc_pid "$n" >/dev/null || fail "$LOG_DIR/$n.log" "kube-apiserver $n exited during start-up"
    if server_ready "$n"; then
      ready[$n]=1
    else
      pending+=("$n")
    fi
  done
  if ((${#pending[@]} == 0)) && $dns_ready; then
    break
  fi
  if past_deadline; then
    if ! $dns_ready; then
      server_ready named || fail "$LOG_DIR/named.log" "$(server_not_ready_why named) within ${timeout}s"
      fail "$LOG_DIR/named-secondary.log" "$(server_not_ready_why named-secondary) within ${timeout}s"
    fi
    fail "$LOG_DIR/${pending[0]}.log" "not ready within ${timeout}s: ${pending[*]}; $(server_not_ready_why "${pending[0]}")"
  fi
  sleep 0.2
done
note "all kube-apiservers are ready and named answers for $ZONE"

# ---------------------------------------------------------------- CRDs

crd_log=$LOG_DIR/crds.log
: >"$crd_log"
# the apiserver the CRD functions (hack/lib/crds.sh) talk to
crd_server=control-plane
# (the apiservers are polled in parallel: each poll runs python3)
CRD_POLL=0.25
api_request() { kcurl "$crd_server" "$@"; }
crd_ready_line() { echo "ready: $crd_server $1.$2/$3"; }

# apply_crds DIR PREFIX SERVER...: apply every document of the YAML in DIR
# to each SERVER, then wait until each is served there (the servers in
# parallel: an apiserver takes seconds to take in a large CRD).
apply_crds() {
  local from=$1 prefix=$2 files=() doc server c pid
  shift 2
  shopt -s nullglob
  files=("$from"/*.yaml "$from"/*.yml)
  shopt -u nullglob
  # a kustomization.yaml beside the CRDs is for kustomize, not the apiserver
  local -a objects=()
  for doc in "${files[@]}"; do
    [[ ${doc##*/} == kustomization.y*ml ]] || objects+=("$doc")
  done
  files=(${objects[@]+"${objects[@]}"})
  ((${#files[@]} > 0)) || { note "no CRD YAML in $from"; return 0; }
  # split multi-document files on "---" lines; drop documents without content
  crd_split "$DIR/crds/$prefix" 0 "${files[@]}" >/dev/null
  local -a crds=() pids=()
  for server in "$@"; do
    (
      crd_server=$server
      for doc in "$DIR/crds/$prefix"-*.yaml; do
        crd_apply "$doc" "$from" "$crd_log"
      done
      # wait until each CRD is Established and each served version lists it
      for c in "${crds[@]}"; do
        crd_wait_served "$crd_log" "$c"
      done
    ) &
    pids+=("$!")
  done
  # (each failure has been reported by fail in its subshell)
  for pid in "${pids[@]}"; do
    wait "$pid" || die "applying the CRDs from $from failed"
  done
  note "applied $(find "$DIR/crds" -name "$prefix-*.yaml" | wc -l) CRD document(s) from $from to $*"
}
if [[ -n $crd_dir ]]; then
  apply_crds "$crd_dir" doc control-plane
fi
# The Gateway API (the data plane's release, standard channel, and the
# experimental channel's TLSRoute, TCPRoute, UDPRoute: distinct kinds, the
# standard CRDs stay as they are) everywhere: roots in the control plane,
# leaves and their implementation in clusters.
gateway_api_stage_crds "$DIR/gateway-api-crds" || die "cannot stage the Gateway API CRDs from $gateway_api_crds"
apply_crds "$DIR/gateway-api-crds" gateway-api "${names[@]}"

# GatewayClass `standin` in every physical cluster: its implementation is
# standin-lb (controllerName kcp-ingress.dev/standin, labels::standin),
# started by the tests that need it; the class is Accepted once one runs.
standin_class='{"apiVersion":"gateway.networking.k8s.io/v1","kind":"GatewayClass",
  "metadata":{"name":"standin"},"spec":{"controllerName":"kcp-ingress.dev/standin"}}'
for n in "${names[@]:1}"; do
  code=$(kcurl "$n" "/apis/gateway.networking.k8s.io/v1/gatewayclasses/standin?fieldManager=$FIELD_MANAGER&force=true" \
    -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary "$standin_class" \
    -o /dev/null -w '%{http_code}' 2>>"$crd_log") || code=000
  [[ $code == 20[01] ]] || fail "$crd_log" "creating GatewayClass standin in $n failed with HTTP $code"
done
note "GatewayClass standin in ${names[*]:1}"

# ---------------------------------------------------------------- owner watcher

launch_watcher

# ---------------------------------------------------------------- summary

{
  echo "TEST_ENV_DIR=$DIR"
  echo "TEST_ENV_CLUSTERS=$clusters"
  echo "TEST_ENV_CLUSTER_NAMES=$(IFS=,; echo "${names[*]:1}")"
  echo "ETCD_ENDPOINT=http://127.0.0.1:$etcd_port"
  echo "ETCD_PORT=$etcd_port"
  echo "ETCD_PEER_PORT=$etcd_peer_port"
  echo "ETCD_PID=$(proc_pid etcd)"
  for n in "${names[@]}"; do
    u=$(upper "$n")
    echo "${u}_PORT=${api_port[$n]}"
    echo "${u}_SERVER=https://127.0.0.1:${api_port[$n]}"
    echo "${u}_KUBECONFIG=$DIR/$n.kubeconfig"
    echo "${u}_ETCD_PREFIX=/$n/registry"
    echo "${u}_LOG=$LOG_DIR/$n.log"
    echo "${u}_PID=$(proc_pid "$n")"
  done
  echo "NAMED_PID=$(proc_pid named)"
  echo "NAMED_CONF=$named_dir/named.conf"
  echo "NAMED_LOG=$LOG_DIR/named.log"
  env_watcher_lines
  echo "CA_CERT=$pki/ca.crt"
  echo "ADMIN_CERT=$pki/admin.crt"
  echo "ADMIN_KEY=$pki/admin.key"
  echo "KUBE_APISERVER=$kube_apiserver"
  echo "ETCD=$etcd_bin"
  cat "$DIR/dns.env"
} >"$DIR/env"
chmod 600 "$DIR/env"

env_up_done
for n in "${names[@]}"; do
  printf '  %-14s https://127.0.0.1:%s  %s\n' "$n" "${api_port[$n]}" "$DIR/$n.kubeconfig"
done
printf '  %-14s 127.0.0.1:%s zone %s  %s\n' dns "$dns_port" "$ZONE" "$DIR/dns.env"
printf '  stop with: %s down --dir %s\n' "$self" "$DIR"
