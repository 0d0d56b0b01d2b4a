# Sourced by scripts/bench.sh and scripts/load.sh: the CPU time a proxy spends, read from the
# kernel's per-thread accounting, so that a run can report CPU per request next to requests/s.
# On a shared virtual machine the wall clock moves by a third from one run to the next (steal
# time, other work); the CPU a process used per request does not depend on how long it waited
# for a CPU, so it is the steadier measure of what one request costs the proxy.

# cpu_ns PID...: nanoseconds on a CPU so far, summed over every thread of every PID
# (/proc/PID/task/TID/schedstat, first field). Threads that exited are not counted.
cpu_ns() {
  local pid f r rest total=0
  for pid in "$@"; do
    for f in /proc/"$pid"/task/*/schedstat; do
      [ -r "$f" ] || continue
      read -r r rest <"$f" 2>/dev/null || continue
      total=$((total + r))
    done
  done
  echo "$total"
}
