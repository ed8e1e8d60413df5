#!/usr/bin/env bash
# Brings up (or reuses) the local e2e cluster: a kwokctl binary-runtime control plane bound to
# 127.0.0.1 (real etcd, kube-apiserver, kube-controller-manager, kube-scheduler), six fake GPU nodes
# in two pools, and Prometheus. Logs go to stderr; stdout ends with KEY=VALUE lines that the pytest
# harness parses and that a shell can `export`:
#   KUBECONFIG, LEADTIME_BIN_DIR, LEADTIME_PROMETHEUS_URL, LEADTIME_PROMETHEUS_TARGETS_DIR
# (the same lines are written to $LEADTIME_STATE_DIR/env for `source`), then LEADTIME_CLUSTER_CREATED.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
started=$SECONDS
take_lock
created=0

BIN="$(bin_dir)"
[ -x "$BIN/kwokctl" ] || die "binaries missing in $BIN; run e2e/cluster/install-deps.sh"
# kwokctl runs `kubectl` from PATH: ours must win over any older system kubectl.
export PATH="$BIN:$PATH"
mkdir -p "$STATE" "$KWOK_WORKDIR"
KC=(kubectl --kubeconfig "$KUBECONFIG_PATH")
# Long-lived processes started below get "9>&-" so they do not inherit (and hold) the lock.

healthy() {
  [ -f "$KUBECONFIG_PATH" ] && "${KC[@]}" get --raw=/readyz --request-timeout=3s >/dev/null 2>&1
}

exists() { kwokctl get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; }

write_config() {  # $1: file
  # Binary paths go into the generated config (per machine, under $STATE), never into the repo.
  cat > "$1" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeAuthorization: true
  kubeApiserverBinary: $BIN/kube-apiserver
  kubeControllerManagerBinary: $BIN/kube-controller-manager
  kubeSchedulerBinary: $BIN/kube-scheduler
  kubectlBinary: $BIN/kubectl
  etcdBinary: $BIN/etcd
  kwokControllerBinary: $BIN/kwok
EOF
  cat "$HERE/stages.yaml" >> "$1"
}

write_config "$STATE/kwokctl.yaml.new"
# A cluster made from other stages or binaries (an edited stages.yaml, a version bump) is stale.
if exists && ! cmp -s "$STATE/kwokctl.yaml.new" "$STATE/kwokctl.yaml"; then
  log "cluster $CLUSTER_NAME was created from a different config; recreating it"
  kwokctl --name "$CLUSTER_NAME" delete cluster >&2 || true
fi
mv "$STATE/kwokctl.yaml.new" "$STATE/kwokctl.yaml"

# A cluster whose processes are gone (a reboot, a killed session) is recreated, not restarted: its
# node Leases are still held by the kwok controller that died, for their full 200 s, and until they
# expire the new controller leaves the old nodes alone, so pods bound to them stay Pending.
if exists && ! healthy; then
  log "cluster $CLUSTER_NAME exists but is not answering; recreating it"
  kwokctl --name "$CLUSTER_NAME" delete cluster >&2 || true
fi

if exists && healthy; then
  log "reusing healthy cluster $CLUSTER_NAME"
else
  log "creating cluster $CLUSTER_NAME (kwokctl binary runtime)"
  kwokctl --name "$CLUSTER_NAME" create cluster \
    --config "$STATE/kwokctl.yaml" \
    --kubeconfig "$KUBECONFIG_PATH" \
    --wait 2m >&2 9>&-
  created=1
fi

# apply is idempotent and also restores nodes a test deleted.
"${KC[@]}" apply -f "$HERE/nodes.yaml" >&2
"${KC[@]}" wait --for=condition=Ready node -l leadtime.dev/capacity-type --timeout=60s >&2

prom_lines="$(bash "$HERE/prometheus.sh" start)"

{
  echo "KUBECONFIG=$KUBECONFIG_PATH"
  echo "LEADTIME_BIN_DIR=$BIN"
  echo "$prom_lines"
} > "$STATE/env.tmp"
mv "$STATE/env.tmp" "$STATE/env"
log "ready in $((SECONDS - started))s; kubeconfig: $KUBECONFIG_PATH"
log "use it with: set -a; source $STATE/env; set +a; export PATH=\$LEADTIME_BIN_DIR:\$PATH"
cat "$STATE/env"
# Lets the pytest harness tear down only a cluster its own session created.
echo "LEADTIME_CLUSTER_CREATED=$created"
