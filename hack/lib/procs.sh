# shellcheck shell=bash
# Process bookkeeping for the hack/ scripts (sourced, not run).
#
# Every server a script starts is recorded in RUN_DIR/NAME.pid as
# "PID STARTTIME" (STARTTIME: field 22 of /proc/PID/stat, in clock ticks since
# boot). A recorded process counts as ours only while its pid still has that
# start time AND its command line mentions OWNER_MARK (the environment's
# directory followed by a slash). A recycled pid therefore never matches, and
# nothing is ever killed by name.
#
# The caller sets RUN_DIR and OWNER_MARK before using these functions.

# proc_starttime PID: print the start time of PID (fails if PID is gone).
proc_starttime() {
  local stat rest
  # (not $(<file): under set -e a missing file would end the whole script)
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  rest=${stat##*) }
  # shellcheck disable=SC2086 # split the fields on purpose
  set -- $rest
  # after "pid (comm) " the fields start at number 3; starttime is number 22
  [[ $# -ge 20 ]] || return 1
  echo "${20}"
}

# proc_is_ours PID STARTTIME: PID is alive (not a zombie), started at
# STARTTIME and mentions OWNER_MARK on its command line.
proc_is_ours() {
  local pid=$1 start=$2 stat rest cmdline
  read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
  rest=${stat##*) }
  # shellcheck disable=SC2086 # split the fields on purpose
  set -- $rest
  [[ $# -ge 20 && $1 != Z && $1 != X && ${20} == "$start" ]] || return 1
  { cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline"); } 2>/dev/null || return 1
  [[ $cmdline == *"$OWNER_MARK"* ]]
}

# proc_record NAME PID: remember PID as NAME, once it has exec'd into a
# command line that mentions OWNER_MARK (waits up to 2 s for that).
proc_record() {
  local name=$1 pid=$2 start i
  start=$(proc_starttime "$pid") || return 1
  echo "$pid $start" >"$RUN_DIR/$name.pid"
  for ((i = 0; i < 40; i++)); do
    proc_is_ours "$pid" "$start" && return 0
    sleep 0.05
  done
  return 1
}

# proc_pid NAME: print the pid recorded for NAME if that process is still ours.
proc_pid() {
  local pid start
  [[ -r "$RUN_DIR/$1.pid" ]] || return 1
  read -r pid start <"$RUN_DIR/$1.pid" || return 1
  [[ $pid =~ ^[0-9]+$ && -n $start ]] || return 1
  proc_is_ours "$pid" "$start" || return 1
  echo "$pid"
}

# proc_names: the names of every recorded process, one per line.
proc_names() {
  local f
  for f in "$RUN_DIR"/*.pid; do
    [[ -e $f ]] || continue
    f=${f##*/}
    echo "${f%.pid}"
  done
}

# proc_alive_names: the names of the recorded processes that are still ours.
proc_alive_names() {
  local name
  while read -r name; do
    proc_pid "$name" >/dev/null && echo "$name"
  done < <(proc_names)
  return 0
}

# proc_stop GRACE NAME...: SIGTERM each named process that is still ours, wait
# up to GRACE seconds, SIGKILL what is left, and wait until all are gone.
# Removes their pid files. Never signals the calling shell itself. Fails only
# if a process survives SIGKILL for 10 s.
proc_stop() {
  local grace=$1 name pid start i
  shift
  local -a pids=() starts=() names=()
  for name in "$@"; do
    [[ -r "$RUN_DIR/$name.pid" ]] || continue
    read -r pid start <"$RUN_DIR/$name.pid" || pid=
    if [[ $pid =~ ^[0-9]+$ && $pid != "$$" && $pid != "$BASHPID" ]] && proc_is_ours "$pid" "$start"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid") starts+=("$start") names+=("$name")
    else
      rm -f "$RUN_DIR/$name.pid"
    fi
  done
  ((${#pids[@]} > 0)) || return 0
  local -a left
  _proc_left() {
    local j
    left=()
    for j in "${!pids[@]}"; do
      if proc_is_ours "${pids[$j]}" "${starts[$j]}"; then
        left+=("$j")
      fi
    done
  }
  for ((i = 0; i < grace * 10; i++)); do
    _proc_left
    ((${#left[@]} == 0)) && break
    sleep 0.1
  done
  _proc_left
  if ((${#left[@]} > 0)); then
    for i in "${left[@]}"; do
      echo "test-env: ${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for ${grace}s; sending SIGKILL" >&2
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    done
    for ((i = 0; i < 100; i++)); do
      _proc_left
      ((${#left[@]} == 0)) && break
      sleep 0.1
    done
  fi
  _proc_left
  if ((${#left[@]} > 0)); then
    for i in "${left[@]}"; do
      echo "test-env: ${names[$i]} (pid ${pids[$i]}) survived SIGKILL" >&2
    done
    return 1
  fi
  for name in "${names[@]}"; do
    rm -f "$RUN_DIR/$name.pid"
  done
}

# proc_mark_stopped NAME: record that NAME was stopped on purpose (by
# "test-env.sh stop"): its pid file then holds the single word "stopped",
# which proc_pid never takes for a process and proc_stop simply removes.
proc_mark_stopped() {
  echo stopped >"$RUN_DIR/$1.pid"
}

# proc_is_stopped NAME: NAME's pid file says it was stopped on purpose.
proc_is_stopped() {
  local word
  [[ -r "$RUN_DIR/$1.pid" ]] || return 1
  read -r word _ <"$RUN_DIR/$1.pid" || return 1
  [[ $word == stopped ]]
}
