# shellcheck shell=bash
# The frame that hack/test-env.sh and hack/kcp-env.sh share (sourced, not
# run): messages, the arguments common to both, the directory and its lock,
# down, status, the --owner-pid watcher, the start of up and its clean-up when
# up fails, launching a recorded background process, and picking ports.
#
# The script sources this file first (it loads tools.sh, ports.sh, procs.sh
# and crds.sh, and sets here, self and repo: the script's directory and path
# and the repository), then sets, before calling these functions:
#   ENV_NAME     prefix of its messages (test-env, kcp-env)
#   ENV_SCRIPT   its name in messages (hack/test-env.sh)
#   ENV_WHAT     what it runs, in messages ("test environment")
#   ENV_COMMANDS its subcommands, in the order its messages list them
#   ENV_OPTIONS  the options that take a value, besides --dir
#   MARKER       the file up leaves in DIR
# and defines:
#   option_allowed OPT    usage_error unless OPT is allowed for $cmd
#   option_set OPT VALUE  take an option of ENV_OPTIONS other than
#                         --port-base, --timeout, --crd-dir and --owner-pid
#   do_down               stop everything recorded in DIR (fail when
#                         something could not be stopped)
# It also sets timeout (its default) after sourcing this file.

here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[1]}")"
repo=$(cd "$here/.." && pwd)
# shellcheck source=hack/lib/tools.sh
source "$here/lib/tools.sh"
# shellcheck source=hack/lib/ports.sh
source "$here/lib/ports.sh"
# shellcheck source=hack/lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=hack/lib/crds.sh
source "$here/lib/crds.sh"

# The state of one run of the script (the script sets its own defaults of
# timeout and of its own options).
cmd=
dir=
port_base=
timeout=
owner_pid=
purge=false
crd_dir=${KCP_INGRESS_CRD_DIR:-}
crd_dir_explicit=false
if [[ -n $crd_dir ]]; then crd_dir_explicit=true; fi
start_ms=
deadline_ms=0
up_done=false
# pick_ports: what each port is for (port_spec: tcp or tcp+udp) and the result
port_spec=()
port_purpose=()
ports=()
# fail: cut the lines of the log it shows to this many characters (empty: no)
FAIL_LINE_MAX=
# launch: the working directory of what it starts (empty: ours)
LAUNCH_DIR=

# ---------------------------------------------------------------- messages

now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }
past_deadline() { (($(now_ms) > deadline_ms)); }

note() {
  if [[ -n $start_ms ]]; then
    local ms=$(($(now_ms) - start_ms))
    printf '%s: [%d.%d s] %s\n' "$ENV_NAME" $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
  else
    echo "$ENV_NAME: $*" >&2
  fi
}
die() { echo "$ENV_NAME: error: $*" >&2; exit 1; }
usage_error() {
  echo "$ENV_NAME: $*" >&2
  echo "try '$ENV_SCRIPT --help'" >&2
  exit 2
}
# usage: the script's header comment, up to "set -euo".
usage() { sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; }

# fail LOG MESSAGE: report MESSAGE with the end of LOG, then exit 1 (the EXIT
# trap of up, or of test-env.sh start, cleans up).
fail() {
  local log=$1
  shift
  echo "$ENV_NAME: error: $*" >&2
  if [[ -n $log && -s $log ]]; then
    echo "---- last 25 lines of $log ----" >&2
    if [[ -n $FAIL_LINE_MAX ]]; then
      tail -n 25 "$log" | cut -c1-"$FAIL_LINE_MAX" >&2
    else
      tail -n 25 "$log" >&2
    fi
    echo "----" >&2
  fi
  exit 1
}

# ---------------------------------------------------------------- arguments

need_value() { [[ $# -ge 2 && -n $2 ]] || usage_error "option $1 needs a value"; }

# env_is_one_of WORD CHOICE...: WORD is one of the CHOICEs.
env_is_one_of() {
  local w=$1 c
  shift
  for c in "$@"; do [[ $w == "$c" ]] && return 0; done
  return 1
}

# env_command_list: "up, down or status".
env_command_list() {
  local n=${#ENV_COMMANDS[@]} i out=
  for ((i = 0; i < n - 1; i++)); do out+="${out:+, }${ENV_COMMANDS[i]}"; done
  echo "$out or ${ENV_COMMANDS[n - 1]}"
}

# env_parse_args ARG...: the subcommand (cmd) and the options; --help prints
# the usage and exits. Ends with a checked --dir.
env_parse_args() {
  local opt
  [[ $# -gt 0 ]] || usage_error "missing subcommand ($(env_command_list))"
  case "$1" in
    -h|--help|help) usage; exit 0 ;;
    -*) usage_error "expected a subcommand ($(env_command_list)) before '$1'" ;;
  esac
  env_is_one_of "$1" "${ENV_COMMANDS[@]}" __watch ||
    usage_error "unknown subcommand '$1' (expected $(env_command_list))"
  cmd=$1
  shift
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -h|--help) usage; exit 0 ;;
      --dir) need_value "$@"; dir=$2; shift 2 ;;
      --purge)
        [[ $cmd == down ]] || usage_error "option --purge is only for 'down'"
        purge=true; shift ;;
      --*=*)
        opt=${1%%=*}
        env_is_one_of "$opt" --dir "${ENV_OPTIONS[@]}" || usage_error "unknown argument '$1' for '$cmd'"
        set -- "$opt" "${1#*=}" "${@:2}" ;;
      *)
        env_is_one_of "$1" "${ENV_OPTIONS[@]}" || usage_error "unknown argument '$1' for '$cmd'"
        option_allowed "$1"
        need_value "$@"
        case "$1" in
          --port-base) port_base=$2 ;;
          --timeout) timeout=$2 ;;
          --crd-dir) crd_dir=$2; crd_dir_explicit=true ;;
          --owner-pid) owner_pid=$2 ;;
          *) option_set "$1" "$2" ;;
        esac
        shift 2 ;;
    esac
  done
  [[ -n $dir ]] || usage_error "missing --dir DIR"
  [[ $dir =~ ^[A-Za-z0-9._/+@:,=-]+$ ]] ||
    usage_error "--dir '$dir': use a path made of letters, digits and ._/+@:,=- only (it goes into config files)"
}

# env_check_timeout: --timeout is a positive number of seconds.
env_check_timeout() {
  if ! [[ $timeout =~ ^[0-9]{1,6}$ ]] || ((10#$timeout < 1)); then
    usage_error "--timeout '$timeout' is not a positive number of seconds"
  fi
  timeout=$((10#$timeout))
}

# env_check_port_base SPAN: --port-base, if given, leaves room for the ports
# P .. P+SPAN.
env_check_port_base() {
  [[ -n $port_base ]] || return 0
  if ! [[ $port_base =~ ^[0-9]{1,5}$ ]] || ((10#$port_base < 1024 || 10#$port_base + $1 > 65535)); then
    usage_error "--port-base '$port_base' must be a number from 1024 to $((65535 - $1))"
  fi
  port_base=$((10#$port_base))
}

# env_check_owner_pid: --owner-pid, if given, is a running process.
env_check_owner_pid() {
  [[ -n $owner_pid ]] || return 0
  [[ $owner_pid =~ ^[1-9][0-9]{0,9}$ ]] || usage_error "--owner-pid '$owner_pid' is not a process id"
  [[ -d /proc/$owner_pid ]] || die "--owner-pid $owner_pid: no such process"
}

# ---------------------------------------------------------------- the directory

# env_resolve_dir: DIR, the directory made absolute (created by up), and
# RUN_DIR, LOG_DIR and OWNER_MARK. Its path followed by a slash marks our
# processes. down on a missing directory exits 0.
env_resolve_dir() {
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
  # (RUN_DIR and OWNER_MARK are for procs.sh)
  # shellcheck disable=SC2034
  RUN_DIR=$DIR/run
  # shellcheck disable=SC2034
  OWNER_MARK=$DIR/
  LOG_DIR=$DIR/logs
}

# lock_dir MODE (-n: fail at once; -w N: wait): one run of the script at a
# time per directory. The lock (fd 9) is never inherited by what launch starts.
lock_dir() {
  if [[ -e $DIR/.lock || -e $DIR/$MARKER || $cmd == up ]]; then
    exec 9>"$DIR/.lock"
    # shellcheck disable=SC2086
    flock $1 9 || die "another $ENV_SCRIPT is working on $DIR right now"
  fi
}

# alive_summary: "NAME (pid PID), ..." of the recorded processes still running.
alive_summary() {
  local name out=
  while read -r name; do
    out+="${out:+, }$name (pid $(proc_pid "$name"))"
  done < <(proc_alive_names 2>/dev/null)
  echo "$out"
}

# ---------------------------------------------------------------- down, status, __watch

# env_down: the down subcommand; exits.
env_down() {
  lock_dir "-w 60"
  do_down || die "some processes in $DIR could not be stopped"
  note "stopped the $ENV_WHAT in $DIR"
  if $purge; then
    if [[ -e $DIR/$MARKER ]]; then
      rm -rf -- "$DIR"
      note "deleted $DIR"
    else
      die "not deleting $DIR: it was not made by $ENV_SCRIPT up"
    fi
  fi
  exit 0
}

# env_status: the status subcommand; exits 0 when everything recorded runs.
env_status() {
  local all=true any=false name pid
  while read -r name; do
    any=true
    if pid=$(proc_pid "$name"); then
      echo "$name running (pid $pid)"
    elif proc_is_stopped "$name"; then
      echo "$name stopped"
      all=false
    else
      echo "$name not running"
      all=false
    fi
  done < <(proc_names)
  $any || echo "nothing runs in $DIR"
  $any && $all
  exit
}

# env_watch WHAT: the internal __watch subcommand, started by "up
# --owner-pid": runs "down" when the owner exits (WHAT names the environment
# in the note). Its command line carries "$DIR/" so that down recognises it.
env_watch() {
  local owner_start
  owner_start=$(proc_starttime "$owner_pid") || owner_start=gone
  while [[ $owner_start != gone ]] && [[ $(proc_starttime "$owner_pid" 2>/dev/null) == "$owner_start" ]]; do
    sleep 1
  done
  note "owner process $owner_pid is gone; stopping the $1 in $DIR"
  exec 9>&-
  exec bash "$self" down --dir "$DIR"
}

# ---------------------------------------------------------------- up

# env_up_begin: start the clock of up, refuse a directory that is not empty
# and not ours, take the lock and refuse an environment that still runs.
env_up_begin() {
  local f alive
  start_ms=$(now_ms)
  deadline_ms=$((start_ms + timeout * 1000))
  if [[ ! -e $DIR/$MARKER ]]; then
    for f in "$DIR"/* "$DIR"/.*; do
      case "${f##*/}" in
        .|..|.lock|'*'|'.*') ;;
        *) die "$DIR is not empty and was not made by $ENV_SCRIPT; use an empty or new directory" ;;
      esac
    done
  fi
  lock_dir -n
  alive=$(alive_summary)
  [[ -z $alive ]] || die "$DIR already runs a $ENV_WHAT ($alive); stop it first: $ENV_SCRIPT down --dir $DIR"
}

# need_tools COMMAND...: each COMMAND is installed.
need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || die "'$t' is needed but not installed"
  done
}

# env_crd_dir WHAT-INSTEAD: settle crd_dir (default <repo>/config/crd); a
# missing default directory leaves it empty, with a note ending in
# WHAT-INSTEAD; a missing --crd-dir or $KCP_INGRESS_CRD_DIR is an error.
env_crd_dir() {
  [[ -n $crd_dir ]] || crd_dir=$repo/config/crd
  if [[ ! -d $crd_dir ]]; then
    $crd_dir_explicit && die "CRD directory $crd_dir does not exist"
    note "no CRD directory at $crd_dir; $1"
    crd_dir=
  fi
}

# pick_ports: ports, one for each entry of port_spec: port_base + i with
# --port-base (a port in use is an error naming port_purpose[i]), else free
# ones at random.
pick_ports() {
  local i p holder
  if [[ -n $port_base ]]; then
    ports=()
    for i in "${!port_spec[@]}"; do
      p=$((port_base + i))
      if ports_busy "$p" "${port_spec[$i]}"; then
        holder=$(ports_holder "$p")
        die "port $p (needed for the ${port_purpose[$i]}) is already in use${holder:+ by $holder}; choose another --port-base or stop what uses it"
      fi
      ports+=("$p")
    done
  else
    read -r -a ports <<<"$(ports_auto "${port_spec[@]}")" || die "could not find free loopback ports"
    ((${#ports[@]} == ${#port_spec[@]})) || die "could not find free loopback ports"
  fi
}

# env_traps ON-EXIT: from here on a failure (or SIGINT, SIGTERM) runs ON-EXIT.
env_traps() {
  # shellcheck disable=SC2064 # $1 is the name of the handler
  trap "$1" EXIT
  trap 'note "interrupted"; exit 130' INT
  trap 'note "terminated"; exit 143' TERM
}

# on_up_exit: the EXIT trap of up: unless up got to the end, stop what it
# started; exit non-zero.
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

# launch NAME LOG CMD...: start CMD in its own session (in LAUNCH_DIR, if
# set), detached from our stdin/stdout/stderr and lock, and record it as NAME.
launch() {
  local name=$1 log=$2 pid
  shift 2
  (
    [[ -z $LAUNCH_DIR ]] || cd "$LAUNCH_DIR" || exit 1
    exec setsid "$@" </dev/null >>"$log" 2>&1 9>&-
  ) &
  pid=$!
  disown "$pid" # no job reports from bash when it is stopped
  proc_record "$name" "$pid" || fail "$log" "$name did not start"
}

# launch_watcher: with --owner-pid, start the watcher ("$DIR/", with the
# slash, marks it as ours, like the servers).
launch_watcher() {
  [[ -n $owner_pid ]] || return 0
  launch watcher "$LOG_DIR/watcher.log" bash "$self" __watch --dir "$DIR/" --owner-pid "$owner_pid"
}

# env_watcher_lines: the lines of DIR/env about the watcher, if there is one.
env_watcher_lines() {
  [[ -n $owner_pid ]] || return 0
  echo "WATCHER_PID=$(proc_pid watcher)"
  echo "OWNER_PID=$owner_pid"
}

# env_up_done: up got to the end; print "NAME: ready in T s: DIR".
env_up_done() {
  local elapsed_ms
  up_done=true
  elapsed_ms=$(($(now_ms) - start_ms))
  printf '%s: ready in %d.%01d s: %s\n' "$ENV_NAME" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$DIR"
}
