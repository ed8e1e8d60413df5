#!/usr/bin/env bash
# Gives every kind worker labelled leadtime.dev/capacity-type fake GPU capacity: a JSON patch on the
# node's /status subresource through `kubectl proxy` (kubectl patch cannot write status on older
# kubectl, and the kubelet leaves extended resources it does not manage alone).
# Usage: KUBECONFIG=... bash e2e/kind/fake-gpus.sh [gpus-per-node, default 8]
# Not exercised by this project's CI (no Docker engine there); see docs/cluster.md.
set -euo pipefail
GPUS="${1:-8}"
PORT="${LEADTIME_KIND_PROXY_PORT:-18001}"

kubectl proxy --address=127.0.0.1 --port="$PORT" >/dev/null 2>&1 &
proxy_pid=$!
trap 'kill "$proxy_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$PORT/api" >/dev/null 2>&1 && break
  sleep 0.2
done

nodes="$(kubectl get nodes -l leadtime.dev/capacity-type -o jsonpath='{.items[*].metadata.name}')"
[ -n "$nodes" ] || { echo "no nodes labelled leadtime.dev/capacity-type; use e2e/kind/kind-config.yaml" >&2; exit 1; }
for node in $nodes; do
  # "~1" escapes the "/" in nvidia.com/gpu inside a JSON pointer.
  curl -fsS -X PATCH -H 'Content-Type: application/json-patch+json' \
    --data "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$GPUS\"},
             {\"op\":\"add\",\"path\":\"/status/allocatable/nvidia.com~1gpu\",\"value\":\"$GPUS\"}]" \
    "http://127.0.0.1:$PORT/api/v1/nodes/$node/status" >/dev/null
  echo "$node: nvidia.com/gpu=$GPUS" >&2
done
