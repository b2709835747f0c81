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
# (Ingress, Service and Deployment: a kcp workspace serves none of them) and
# in the CRD directory (the project's Cluster and GlobalIngress), and waits
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

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
repo=$(cd "$here/.." && pwd)
# shellcheck source=hack/lib/tools.sh
source "$here/lib/tools.sh"
# shellcheck source=hack/lib/ports.sh
source "$here/lib/ports.sh"
# shellcheck source=hack/lib/procs.sh
source "$here/lib/procs.sh"

readonly MARKER=.kcp-ingress-kcp-env
readonly FIELD_MANAGER=kcp-ingress-kcp-env

now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }
start_ms=
note() {
  if [[ -n $start_ms ]]; then
    local ms=$(($(now_ms) - start_ms))
    printf 'kcp-env: [%d.%d s] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
  else
    echo "kcp-env: $*" >&2
  fi
}
die() { echo "kcp-env: error: $*" >&2; exit 1; }
usage_error() {
  echo "kcp-env: $*" >&2
  echo "try 'hack/kcp-env.sh --help'" >&2
  exit 2
}
usage() { sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; }

# ---------------------------------------------------------------- arguments

cmd=
dir=
workspace=kcp-ingress
port_base=
timeout=${KCP_INGRESS_KCP_ENV_TIMEOUT:-180}
crd_dir=${KCP_INGRESS_CRD_DIR:-}
crd_dir_explicit=false
[[ -n $crd_dir ]] && crd_dir_explicit=true
owner_pid=
purge=false

need_value() { [[ $# -ge 2 && -n $2 ]] || usage_error "option $1 needs a value"; }

[[ $# -gt 0 ]] || usage_error "missing subcommand (up, down or status)"
case "$1" in
  -h|--help|help) usage; exit 0 ;;
  up|down|status|__watch) cmd=$1; shift ;;
  -*) usage_error "expected a subcommand (up, down or status) before '$1'" ;;
  *) usage_error "unknown subcommand '$1' (expected up, down or status)" ;;
esac

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --dir) need_value "$@"; dir=$2; shift 2 ;;
    --workspace|--port-base|--timeout|--crd-dir|--owner-pid)
      [[ $cmd == up || $cmd == __watch ]] || usage_error "option $1 is only for 'up'"
      need_value "$@"
      case "$1" in
        --workspace) workspace=$2 ;;
        --port-base) port_base=$2 ;;
        --timeout) timeout=$2 ;;
        --crd-dir) crd_dir=$2; crd_dir_explicit=true ;;
        --owner-pid) owner_pid=$2 ;;
      esac
      shift 2 ;;
    --dir=*|--workspace=*|--port-base=*|--timeout=*|--crd-dir=*|--owner-pid=*)
      opt=${1%%=*}
      set -- "$opt" "${1#*=}" "${@:2}" ;;
    --purge)
      [[ $cmd == down ]] || usage_error "option --purge is only for 'down'"
      purge=true; shift ;;
    *) usage_error "unknown argument '$1' for '$cmd'" ;;
  esac
done

[[ -n $dir ]] || usage_error "missing --dir DIR"
[[ $dir =~ ^[A-Za-z0-9._/+@:,=-]+$ ]] ||
  usage_error "--dir '$dir': use a path made of letters, digits and ._/+@:,=- only (it goes into config files)"

if [[ $cmd == up ]]; then
  if ! [[ $timeout =~ ^[0-9]{1,6}$ ]] || ((10#$timeout < 1)); then
    usage_error "--timeout '$timeout' is not a positive number of seconds"
  fi
  timeout=$((10#$timeout))
  # a workspace name: a DNS label that kcp accepts (lower case, digits, '-')
  [[ $workspace =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] ||
    usage_error "--workspace '$workspace': use lower-case letters, digits and '-' (at most 63, starting and ending alphanumeric)"
  if [[ -n $port_base ]]; then
    if ! [[ $port_base =~ ^[0-9]{1,5}$ ]] || ((10#$port_base < 1024 || 10#$port_base + 2 > 65535)); then
      usage_error "--port-base '$port_base' must be a number from 1024 to 65533"
    fi
    port_base=$((10#$port_base))
  fi
  if [[ -n $owner_pid ]]; then
    [[ $owner_pid =~ ^[1-9][0-9]{0,9}$ ]] || usage_error "--owner-pid '$owner_pid' is not a process id"
    [[ -d /proc/$owner_pid ]] || die "--owner-pid $owner_pid: no such process"
  fi
fi

# The directory, absolute. Its path followed by a slash marks our processes.
if [[ $cmd == up ]]; then
  mkdir -p -- "$dir" || die "cannot create --dir '$dir'"
fi
if [[ ! -d $dir ]]; then
  if [[ $cmd == down ]]; then
    note "$dir does not exist; nothing to stop"
    exit 0
  fi
  die "$dir does not exist"
fi
DIR=$(cd -- "$dir" && pwd -P)
[[ $DIR != / ]] || usage_error "--dir must not be /"
[[ $DIR =~ ^[A-Za-z0-9._/+@:,=-]+$ ]] ||
  usage_error "--dir resolves to '$DIR': use a path made of letters, digits and ._/+@:,=- only"
RUN_DIR=$DIR/run
OWNER_MARK=$DIR/
LOG_DIR=$DIR/logs
KCP_ROOT=$DIR/kcp
PKI=$DIR/pki

# One kcp-env.sh at a time per directory; the lock is never inherited by kcp.
lock_dir() { # MODE (-n: fail at once; -w N: wait)
  if [[ -e $DIR/.lock || -e $DIR/$MARKER || $cmd == up ]]; then
    exec 9>"$DIR/.lock"
    # shellcheck disable=SC2086
    flock $1 9 || die "another hack/kcp-env.sh is working on $DIR right now"
  fi
}

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

if [[ $cmd == down ]]; then
  lock_dir "-w 60"
  do_down || die "some processes in $DIR could not be stopped"
  note "stopped the kcp environment in $DIR"
  if $purge; then
    if [[ -e $DIR/$MARKER ]]; then
      rm -rf -- "$DIR"
      note "deleted $DIR"
    else
      die "not deleting $DIR: it was not made by hack/kcp-env.sh up"
    fi
  fi
  exit 0
fi

if [[ $cmd == status ]]; then
  all=true
  any=false
  while read -r name; do
    any=true
    if pid=$(proc_pid "$name"); then
      echo "$name running (pid $pid)"
    else
      echo "$name not running"
      all=false
    fi
  done < <(proc_names)
  $any || echo "nothing runs in $DIR"
  $any && $all
  exit
fi

# ---------------------------------------------------------------- __watch
# Internal: started by "up --owner-pid"; runs "down" when the owner exits.
# Its command line carries "$DIR/" so that down recognises it.
if [[ $cmd == __watch ]]; then
  owner_start=$(proc_starttime "$owner_pid") || owner_start=gone
  while [[ $owner_start != gone ]] && [[ $(proc_starttime "$owner_pid" 2>/dev/null) == "$owner_start" ]]; do
    sleep 1
  done
  note "owner process $owner_pid is gone; stopping the kcp environment in $DIR"
  exec 9>&-
  exec bash "$self" down --dir "$DIR"
fi

# ---------------------------------------------------------------- up

start_ms=$(now_ms)
deadline_ms=$((start_ms + timeout * 1000))
past_deadline() { (($(now_ms) > deadline_ms)); }

if [[ ! -e $DIR/$MARKER ]]; then
  for f in "$DIR"/* "$DIR"/.*; do
    case "${f##*/}" in
      .|..|.lock|'*'|'.*') ;;
      *) die "$DIR is not empty and was not made by hack/kcp-env.sh; use an empty or new directory" ;;
    esac
  done
fi
lock_dir -n
alive=
while read -r name; do
  alive+="${alive:+, }$name (pid $(proc_pid "$name"))"
done < <(proc_alive_names 2>/dev/null || true)
[[ -z $alive ]] || die "$DIR already runs a kcp environment ($alive); stop it first: hack/kcp-env.sh down --dir $DIR"

kcp_bin=${KCP_INGRESS_KCP:-$(tool_dir kcp)/kcp}
[[ -x $kcp_bin ]] || die "kcp not found at $kcp_bin; build it with hack/build-tools.sh --with-kcp (or set KCP_INGRESS_KCP)"
for t in curl python3 flock setsid base64; do
  command -v "$t" >/dev/null || die "'$t' is needed but not installed"
done
kcp_config_dir=$repo/config/kcp
[[ -d $kcp_config_dir ]] || die "$kcp_config_dir is missing (it holds what the workspace needs to serve Ingress, Service and Deployment)"
[[ -n $crd_dir ]] || crd_dir=$repo/config/crd
if [[ ! -d $crd_dir ]]; then
  $crd_dir_explicit && die "CRD directory $crd_dir does not exist"
  note "no CRD directory at $crd_dir; applying only $kcp_config_dir"
  crd_dir=
fi

# ports: embedded etcd client, embedded etcd peer, kcp
port_purpose=("embedded etcd client" "embedded etcd peer" "kcp")
if [[ -n $port_base ]]; then
  ports=()
  for i in 0 1 2; do
    p=$((port_base + i))
    if ports_busy "$p" tcp; then
      holder=$(ports_holder "$p")
      die "port $p (needed for the ${port_purpose[$i]}) is already in use${holder:+ by $holder}; choose another --port-base or stop what uses it"
    fi
    ports+=("$p")
  done
else
  read -r -a ports <<<"$(ports_auto tcp tcp tcp)" || die "could not find free loopback ports"
  ((${#ports[@]} == 3)) || die "could not find free loopback ports"
fi
etcd_port=${ports[0]}
etcd_peer_port=${ports[1]}
kcp_port=${ports[2]}
base_url=https://127.0.0.1:$kcp_port
ws_path=root:$workspace
ws_url=$base_url/clusters/$ws_path

# Start from a clean slate (only what up itself makes).
rm -rf -- "$KCP_ROOT" "$PKI" "$DIR/setup" "$RUN_DIR" "$LOG_DIR"
rm -f -- "$DIR/control-plane.kubeconfig" "$DIR/env"
: >"$DIR/$MARKER"
mkdir -p "$RUN_DIR" "$LOG_DIR" "$KCP_ROOT" "$PKI" "$DIR/setup"
chmod 700 "$PKI"
setup_log=$LOG_DIR/setup.log
: >"$setup_log"

# From here on a failure stops whatever was started.
up_done=false
on_up_exit() {
  local rc=$?
  if ! $up_done; then
    ((rc != 0)) || rc=1
    if [[ -n $(proc_names) ]]; then
      note "up failed; stopping what was started"
      do_down || true
    fi
  fi
  exit "$rc"
}
trap on_up_exit EXIT
trap 'note "interrupted"; exit 130' INT
trap 'note "terminated"; exit 143' TERM

# fail LOG MESSAGE: report MESSAGE with the end of LOG, then exit 1.
fail() {
  local log=$1
  shift
  echo "kcp-env: error: $*" >&2
  if [[ -n $log && -s $log ]]; then
    echo "---- last 25 lines of $log ----" >&2
    tail -n 25 "$log" | cut -c1-400 >&2
    echo "----" >&2
  fi
  exit 1
}

# launch NAME LOG CMD...: start CMD in its own session (working directory
# DIR), detached from our stdin/stdout/stderr and lock; record it as NAME.
launch() {
  local name=$1 log=$2 pid
  shift 2
  (cd "$DIR" && exec setsid "$@" </dev/null >>"$log" 2>&1 9>&-) &
  pid=$!
  disown "$pid"
  proc_record "$name" "$pid" || fail "$log" "$name did not start"
}

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

# json_get FILE PATH: print a field of a JSON file (PATH like status.phase);
# empty when absent or not JSON.
json_get() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null || true
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
for k in sys.argv[2].split("."):
    d = d.get(k, {}) if isinstance(d, dict) else {}
print(d if isinstance(d, (str, int)) else "")
PY
}

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

# split_crds OUT-PREFIX FILE...: write each CustomResourceDefinition document
# of FILEs to OUT-PREFIX-NNNN.yaml; print how many documents of other kinds
# were skipped.
split_crds() {
  local out=$1
  shift
  awk -v out="$out" '
    function flush() {
      if (real) {
        if (crd) { n++; file = sprintf("%s-%04d.yaml", out, n); printf "%s", body > file; close(file) }
        else skipped++
      }
      body = ""; real = 0; crd = 0
    }
    FNR == 1 && NR != 1 { flush() }
    /^---/ { flush(); next }
    /^[^#[:space:]]/ { real = 1 }
    /^kind:[[:space:]]*CustomResourceDefinition[[:space:]]*$/ { crd = 1 }
    { body = body $0 "\n" }
    END { flush(); print skipped + 0 }
  ' "$@"
}

crd_info() { # JSON-FILE: print "name group plural version..." of a CRD object
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["spec"]
print(d["metadata"]["name"], s["group"] or "-", s["names"]["plural"],
      *[v["name"] for v in s.get("versions", []) if v.get("served", True)])
PY
}

crd_api=$ws_url/apis/apiextensions.k8s.io/v1/customresourcedefinitions
declare -a crds=()
apply_crd_dir() { # DIR PREFIX
  local from=$1 prefix=$2 files=() doc code name skipped info count=0
  shopt -s nullglob
  files=("$from"/*.yaml "$from"/*.yml)
  shopt -u nullglob
  ((${#files[@]} > 0)) || { note "no YAML in $from"; return 0; }
  skipped=$(split_crds "$DIR/setup/$prefix" "${files[@]}")
  for doc in "$DIR/setup/$prefix"-*.yaml; do
    [[ -e $doc ]] || continue
    code=$(kreq "$crd_api" -X POST -H 'Content-Type: application/yaml' --data-binary "@$doc" \
      -o "$doc.resp.json" -w '%{http_code}' 2>>"$setup_log") || code=000
    echo "POST $doc -> $code" >>"$setup_log"
    if [[ $code == 409 && $(json_get "$doc.resp.json" reason) == AlreadyExists ]]; then
      name=$(json_get "$doc.resp.json" details.name)
      [[ -n $name ]] || fail "$setup_log" "CRD in $doc already exists but its name is unknown"
      code=$(kreq "$crd_api/$name?fieldManager=$FIELD_MANAGER&force=true" \
        -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary "@$doc" \
        -o "$doc.resp.json" -w '%{http_code}' 2>>"$setup_log") || code=000
      echo "APPLY $name -> $code" >>"$setup_log"
    fi
    if [[ $code != 20[01] ]]; then
      cat "$doc.resp.json" >>"$setup_log" 2>/dev/null || true
      echo >>"$setup_log"
      fail "$setup_log" "applying the CRD document $doc (from $from) failed with HTTP $code: $(json_get "$doc.resp.json" message)"
    fi
    info=$(crd_info "$doc.resp.json") || fail "$setup_log" "unexpected answer to the CRD document $doc"
    crds+=("$info")
    count=$((count + 1))
  done
  local extra=
  ((skipped == 0)) || extra=" (skipped $skipped document(s) of other kinds)"
  note "applied $count CRD(s) from $from$extra"
}
apply_crd_dir "$kcp_config_dir" kcp
[[ -z $crd_dir ]] || apply_crd_dir "$crd_dir" crd

# wait until each CRD is Established and discovery lists each served version
for c in ${crds[@]+"${crds[@]}"}; do
  read -r crd group plural versions <<<"$c"
  until [[ $(kreq "$crd_api/$crd" 2>/dev/null |
    python3 -c 'import json,sys; c=json.load(sys.stdin).get("status",{}).get("conditions",[]); print(any(x["type"]=="Established" and x["status"]=="True" for x in c))' 2>/dev/null) == True ]]; do
    kcp_alive
    past_deadline && fail "$setup_log" "CRD $crd was not Established within ${timeout}s"
    sleep 0.2
  done
  for v in $versions; do
    if [[ $group == - ]]; then disc=$ws_url/api/$v; else disc=$ws_url/apis/$group/$v; fi
    until found=$(kreq "$disc" 2>/dev/null |
      python3 -c 'import json,sys; print(sys.argv[1] in [r["name"] for r in json.load(sys.stdin).get("resources",[])])' "$plural" 2>/dev/null) &&
      [[ $found == True ]]; do
      kcp_alive
      past_deadline && fail "$setup_log" "${disc#"$ws_url"} did not list $plural within ${timeout}s"
      sleep 0.2
    done
    echo "ready: $plural ${disc#"$ws_url"}" >>"$setup_log"
  done
done
note "the workspace serves ${#crds[@]} CRD type(s)"

# ---------------------------------------------------------------- owner watcher

if [[ -n $owner_pid ]]; then
  # "$DIR/" (with the slash) marks the watcher as ours, like kcp
  launch watcher "$LOG_DIR/watcher.log" bash "$self" __watch --dir "$DIR/" --owner-pid "$owner_pid"
fi

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
  if [[ -n $owner_pid ]]; then
    echo "WATCHER_PID=$(proc_pid watcher)"
    echo "OWNER_PID=$owner_pid"
  fi
} >"$DIR/env"
chmod 600 "$DIR/env"

up_done=true
elapsed_ms=$(($(now_ms) - start_ms))
printf 'kcp-env: ready in %d.%01d s: %s\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$DIR"
printf '  %-14s %s  %s\n' control-plane "$ws_url" "$kc"
printf '  %-14s %s  %s\n' kcp "$base_url" "$admin_kc"
printf '  stop with: %s down --dir %s\n' "$self" "$DIR"
