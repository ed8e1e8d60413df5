# Shared settings for the local cluster scripts (sourced, not run).
# Everything a running cluster owns lives under $STATE so that down.sh can remove it all.

CLUSTER_NAME="${LEADTIME_CLUSTER_NAME:-leadtime}"
STATE="${LEADTIME_STATE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leadtime/cluster}"
KUBECONFIG_PATH="$STATE/kubeconfig"
PROM_PORT="${LEADTIME_PROMETHEUS_PORT:-19090}"
PROM_DIR="$STATE/prometheus"
PROM_TARGETS="$PROM_DIR/targets"
PROM_PIDFILE="$PROM_DIR/prometheus.pid"
PROM_URL="http://127.0.0.1:$PROM_PORT"
# kwokctl keeps each cluster's config, pki, logs and pids here; keep them out of ~/.kwok.
export KWOK_WORKDIR="$STATE/kwok"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

# The directory of the built binaries; build-binaries.sh is a no-op (a few seconds) when cached.
bin_dir() {
  local here; here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  bash "$here/build-binaries.sh" | tail -n 1
}

# True when the pid in file $1 is alive and its command line contains $2 (guards against pid reuse).
pid_alive() {
  local pidfile="$1" needle="$2" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$needle"
}

# Serialise up.sh/down.sh: several test sessions may start at once and must not race kwokctl.
take_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 900 9 || die "another up.sh/down.sh has held $STATE/.lock for 15 minutes"
}
