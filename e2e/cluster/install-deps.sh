#!/usr/bin/env bash
# Installs what the local e2e cluster needs, idempotently and without prompts (CI runs it on a fresh
# machine): Prometheus from the Debian package, then the control-plane binaries (build-binaries.sh,
# a no-op when cached).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi

# prometheus.sh probes readiness with curl.
packages=()
command -v prometheus >/dev/null 2>&1 || packages+=(prometheus)
command -v curl >/dev/null 2>&1 || packages+=(curl)

if [ ${#packages[@]} -gt 0 ]; then
  echo "[deps] installing ${packages[*]} (Debian packages)" >&2
  # Refresh the index only when the package is unknown to it (a fresh machine).
  if ! apt-cache show prometheus >/dev/null 2>&1; then
    $SUDO apt-get update -qq
  fi
  # Keep the package's own service from starting (it would listen on every interface); we run
  # Prometheus ourselves on 127.0.0.1. policy-rc.d is only created if absent and always removed.
  policy=/usr/sbin/policy-rc.d
  made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    made_policy=1
  fi
  trap '[ -n "$made_policy" ] && $SUDO rm -f "$policy"' EXIT
  $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # On machines with systemd the unit may still be enabled; stop it only if it runs.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi
prometheus --version 2>&1 | head -n 1 >&2

command -v go >/dev/null 2>&1 || { echo "[deps] error: Go is required to build the binaries" >&2; exit 1; }
bash "$HERE/build-binaries.sh" >/dev/null
echo "[deps] ok" >&2
