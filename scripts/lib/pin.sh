# Sourced by scripts/bench.sh and scripts/load.sh: pin shared processes (the peer's upstream,
# the local ClickHouse) to a CPU for a run and put their CPU lists back afterwards. The caller
# declares `repin=()` and calls `restore_pins` from its exit trap.

# pin_process PID CPU: every thread of PID on CPU; its CPU list is remembered in `repin`.
pin_process() {
  local pid=$1 cpu=$2 cpus
  cpus=$(taskset -p -c "$pid" 2>/dev/null | sed -n 's/.*: //p')
  [ -n "$cpus" ] && repin+=("$pid:$cpus")
  taskset -a -p -c "$cpu" "$pid" >/dev/null 2>&1 || true
}

# pin_nginx PIDFILE CPU: the nginx master named by PIDFILE and its workers.
pin_nginx() {
  local master pid
  master=$(cat "$1")
  for pid in "$master" $(pgrep -P "$master" || true); do
    pin_process "$pid" "$2"
  done
}

# restore_pins: every process pinned above back on its former CPU list.
restore_pins() {
  local p
  for p in "${repin[@]}"; do
    taskset -a -p -c "${p#*:}" "${p%%:*}" >/dev/null 2>&1 || true
  done
}
