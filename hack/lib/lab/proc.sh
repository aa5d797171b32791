# Processes the lab starts: each one recorded in a pid file (pid and start time, so a recycled
# pid is never mistaken for ours), its output in a log file. Sourced by hack/lab.
# shellcheck shell=bash

# lab_start NAME NETNS CMD...: start CMD in the network namespace NETNS (empty: the host's),
# in a session of its own, logging to $LAB_LOGS/NAME.log; record it in $LAB_RUN/NAME.pid.
# `nsenter --net` switches only the network namespace: `ip netns exec` would remount /sys in a
# new mount namespace and hide the cgroup v1 hierarchies the kubelet and runc need.
lab_start() {
  local name=$1 ns=$2; shift 2
  mkdir -p "$LAB_RUN" "$LAB_LOGS"
  local pre=()
  [ -n "$ns" ] && pre=(nsenter "--net=/run/netns/$ns")
  setsid "${pre[@]}" "$@" >>"$LAB_LOGS/$name.log" 2>&1 </dev/null &
  local pid=$!
  printf '%s %s\n' "$pid" "$(lab_proc_start_time "$pid")" >"$LAB_RUN/$name.pid"
}

# lab_proc_start_time PID: its start time (clock ticks since boot); "gone" for a zombie (an
# ended process whose parent — PID 1 here, which reaps late — has not collected it yet).
lab_proc_start_time() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || { echo gone; return 0; }
  # Fields after the command name (which may hold spaces): state is the 3rd field, the start
  # time the 22nd.
  # shellcheck disable=SC2086
  set -- ${stat##*) }
  if [ "$1" = Z ]; then echo gone; else echo "${20}"; fi
}

# lab_pid NAME: the recorded pid when that process is still the one we started; else fails.
lab_pid() {
  local f=$LAB_RUN/$1.pid pid start
  [ -f "$f" ] || return 1
  read -r pid start <"$f"
  [ -n "$pid" ] && [ "$start" != gone ] && [ "$(lab_proc_start_time "$pid")" = "$start" ] || return 1
  echo "$pid"
}

lab_running() { lab_pid "$1" >/dev/null; }

# lab_stop NAME [SIGNAL]: end a recorded process (TERM, then KILL after 5 s).
lab_stop() {
  local name=$1 sig=${2:-TERM} pid i
  if pid=$(lab_pid "$name"); then
    kill "-$sig" "$pid" 2>/dev/null || true
    for i in $(seq 50); do
      lab_running "$name" || break
      sleep 0.1
    done
    lab_running "$name" && kill -KILL "$pid" 2>/dev/null
    for i in $(seq 50); do lab_running "$name" || break; sleep 0.1; done
  fi
  rm -f "$LAB_RUN/$name.pid"
}

# lab_stop_all: end every recorded process at once (TERM, KILL after 3 s), for teardown.
lab_stop_all() {
  local f name pids=() i pid
  for f in "$LAB_RUN"/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if pid=$(lab_pid "$name"); then kill -TERM "$pid" 2>/dev/null && pids+=("$pid"); fi
  done
  for i in $(seq 30); do
    local alive=0
    for pid in "${pids[@]}"; do
      [ "$(lab_proc_start_time "$pid")" != gone ] && alive=1
    done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$LAB_RUN"/*.pid
}

# lab_wait TIMEOUT WHAT CMD...: run CMD until it succeeds; fail naming WHAT after TIMEOUT s.
lab_wait() {
  local timeout=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { log "timed out after ${timeout}s waiting for $what"; return 1; }
    sleep 0.5
  done
}

# lab_ns NETNS CMD...: run CMD in a lab network namespace (see lab_start for why nsenter).
lab_ns() { local ns=$1; shift; nsenter "--net=/run/netns/$ns" "$@"; }

now_ms() { date +%s%3N; }
