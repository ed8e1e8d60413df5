#!/usr/bin/env bash
# Stops everything up.sh started: the kwokctl cluster (kwokctl stops the processes it recorded) and
# our Prometheus (by its pidfile). Safe to run when nothing is up.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
take_lock

bash "$HERE/prometheus.sh" stop

BIN="${LEADTIME_BIN_DIR:-}"
if [ -z "$BIN" ] && [ -f "$STATE/env" ]; then
  BIN="$(sed -n 's/^LEADTIME_BIN_DIR=//p' "$STATE/env")"
fi
[ -n "$BIN" ] && [ -x "$BIN/kwokctl" ] || BIN="$(bin_dir)"
export PATH="$BIN:$PATH"

if kwokctl get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  log "deleting cluster $CLUSTER_NAME"
  kwokctl --name "$CLUSTER_NAME" delete cluster >&2
fi

# Anything still running from the cluster's work dir would be a leak: report it by pid, never kill
# by name (other clusters or users may run the same binaries).
deadline=$((SECONDS + 15))
while leftover="$(pgrep -af -- "$KWOK_WORKDIR/clusters/$CLUSTER_NAME/" || true)" \
  && [ -n "$leftover" ] && [ $SECONDS -lt $deadline ]; do
  sleep 0.2
done
if [ -n "$leftover" ]; then
  log "processes still running from $KWOK_WORKDIR/clusters/$CLUSTER_NAME:"
  printf '%s\n' "$leftover" >&2
  exit 1
fi
rm -f "$STATE/env" "$KUBECONFIG_PATH"
log "down"
