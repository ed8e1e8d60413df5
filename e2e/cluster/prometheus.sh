#!/usr/bin/env bash
# Runs Debian's Prometheus as our own process on 127.0.0.1 (never the system service).
#   prometheus.sh start   start (or reuse a healthy one), print LEADTIME_PROMETHEUS_* lines
#   prometheus.sh stop    stop the one we started (by its pidfile) and drop its data
#   prometheus.sh status  exit 0 when ours is up and ready
# Scrape targets are JSON files dropped into $LEADTIME_PROMETHEUS_TARGETS_DIR (file_sd, re-read every
# second), so tests, the emulator and the demo add targets without restarting anything.
set -euo pipefail
# shellcheck source=lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"

ready() { curl -fsS --max-time 2 "$PROM_URL/-/ready" >/dev/null 2>&1; }
running() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
ours() { pid_alive "$PROM_PIDFILE" "--config.file=$PROM_DIR/prometheus.yml"; }

write_config() {
  mkdir -p "$PROM_TARGETS"
  # scrape_interval 1s: cold starts in tests are seconds long and the operator must see them.
  # honor_labels: the emulator exports per-pod series with its own pod/pool/model labels; keep them.
  cat > "$PROM_DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROM_PORT"]
  - job_name: leadtime
    honor_labels: true
    file_sd_configs:
      - files: ["$PROM_TARGETS/*.json"]
        refresh_interval: 1s
EOF
}

start() {
  command -v prometheus >/dev/null || die "prometheus not installed: run e2e/cluster/install-deps.sh"
  if ours && ready; then
    log "reusing Prometheus (pid $(cat "$PROM_PIDFILE")) at $PROM_URL"
  else
    stop_quietly
    if curl -s --max-time 1 "http://127.0.0.1:$PROM_PORT/" >/dev/null 2>&1; then
      die "port $PROM_PORT is taken by another process; set LEADTIME_PROMETHEUS_PORT"
    fi
    write_config
    rm -rf "$PROM_DIR/data"
    log "starting Prometheus on $PROM_URL"
    # setsid: a Ctrl-C in the terminal that ran up.sh must not take Prometheus down with it.
    setsid prometheus \
      --config.file="$PROM_DIR/prometheus.yml" \
      --storage.tsdb.path="$PROM_DIR/data" \
      --storage.tsdb.retention.time=1d \
      --web.listen-address="127.0.0.1:$PROM_PORT" \
      --web.enable-lifecycle \
      > "$PROM_DIR/prometheus.log" 2>&1 < /dev/null 9>&- &
    local pid=$!
    echo "$pid" > "$PROM_PIDFILE"
    local deadline=$((SECONDS + 30))
    until ready; do
      # Not `ours`: until the child has exec'd, its cmdline is still this script's, and a loaded
      # machine can take a while to get there. Alive and not a zombie is what counts here.
      running "$pid" || die "Prometheus exited; see $PROM_DIR/prometheus.log: $(tail -n 3 "$PROM_DIR/prometheus.log")"
      [ $SECONDS -lt $deadline ] || die "Prometheus not ready after 30s; see $PROM_DIR/prometheus.log"
      sleep 0.2
    done
  fi
  echo "LEADTIME_PROMETHEUS_URL=$PROM_URL"
  echo "LEADTIME_PROMETHEUS_TARGETS_DIR=$PROM_TARGETS"
}

stop_quietly() {
  if ours; then
    local pid; pid="$(cat "$PROM_PIDFILE")"
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while [ -d "/proc/$pid" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if [ -d "/proc/$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    log "stopped Prometheus (pid $pid)"
  fi
  rm -f "$PROM_PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop_quietly; rm -rf "$PROM_DIR/data" ;;
  status) ours && ready ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
