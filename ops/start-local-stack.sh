#!/usr/bin/env bash
# Prometheus + Pushgateway on loopback from Debian's packages (ops/install-system-deps.sh), for machines
# without Docker. Uses ops/prometheus/prometheus.yml and its alert rules, with the pushgateway target rewritten.
#
#   ops/start-local-stack.sh start [STATE_DIR]   # default STATE_DIR: $AGENT_PIPELINE_HOME/observability
#   ops/start-local-stack.sh stop  [STATE_DIR]
#   ops/start-local-stack.sh status [STATE_DIR]
#
# Environment: PROMETHEUS_PORT (9090), PUSHGATEWAY_PORT (9091), SCRAPE_INTERVAL (15s), EVALUATION_INTERVAL (15s).
# Then publish with `agent-pipeline metrics push --gateway http://127.0.0.1:$PUSHGATEWAY_PORT` (the Dagster
# sensors use $AGENT_PIPELINE_PUSHGATEWAY_URL, default http://127.0.0.1:9091).
set -euo pipefail

OPS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ACTION="${1:-start}"
STATE_DIR="${2:-${AGENT_PIPELINE_HOME:-$HOME/.agent_pipeline}/observability}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
PUSHGATEWAY_PORT="${PUSHGATEWAY_PORT:-9091}"
SCRAPE_INTERVAL="${SCRAPE_INTERVAL:-15s}"
EVALUATION_INTERVAL="${EVALUATION_INTERVAL:-15s}"
PROMETHEUS_BIN="${PROMETHEUS_BIN:-prometheus}"
PUSHGATEWAY_BIN="${PUSHGATEWAY_BIN:-prometheus-pushgateway}"

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

http_ok() {  # curl when installed, else the Python standard library
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null "$1" 2>/dev/null
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
  fi
}

wait_ready() {  # url name pidfile
  for _ in $(seq 1 200); do
    if ! pid_alive "$3"; then echo "$2 exited; see $STATE_DIR/$2.log" >&2; tail -n 20 "$STATE_DIR/$2.log" >&2; return 1; fi
    if http_ok "$1"; then return 0; fi
    sleep 0.1
  done
  echo "$2 not ready at $1 after 20 s" >&2
  return 1
}

start() {
  for bin in "$PROMETHEUS_BIN" "$PUSHGATEWAY_BIN"; do
    command -v "$bin" >/dev/null || { echo "$bin not found; run ops/install-system-deps.sh" >&2; exit 1; }
  done
  mkdir -p "$STATE_DIR/prometheus-data"
  if pid_alive "$STATE_DIR/pushgateway.pid" || pid_alive "$STATE_DIR/prometheus.pid"; then
    echo "already running (state in $STATE_DIR); stop it first" >&2; exit 1
  fi
  sed -e "s#pushgateway:9091#127.0.0.1:${PUSHGATEWAY_PORT}#" \
      -e "s#^  scrape_interval: .*#  scrape_interval: ${SCRAPE_INTERVAL}#" \
      -e "s#^  evaluation_interval: .*#  evaluation_interval: ${EVALUATION_INTERVAL}#" \
      -e "s#^  - rules/\*.yml#  - ${OPS_DIR}/prometheus/rules/*.yml#" \
      "$OPS_DIR/prometheus/prometheus.yml" > "$STATE_DIR/prometheus.yml"
  # No persistence file: Debian's default points at a system path; the store recomputes everything anyway.
  nohup "$PUSHGATEWAY_BIN" --web.listen-address="127.0.0.1:${PUSHGATEWAY_PORT}" --persistence.file="" \
    >"$STATE_DIR/pushgateway.log" 2>&1 &
  echo $! > "$STATE_DIR/pushgateway.pid"
  nohup "$PROMETHEUS_BIN" --config.file="$STATE_DIR/prometheus.yml" \
    --storage.tsdb.path="$STATE_DIR/prometheus-data" \
    --web.listen-address="127.0.0.1:${PROMETHEUS_PORT}" --web.enable-lifecycle \
    >"$STATE_DIR/prometheus.log" 2>&1 &
  echo $! > "$STATE_DIR/prometheus.pid"
  wait_ready "http://127.0.0.1:${PUSHGATEWAY_PORT}/-/ready" pushgateway "$STATE_DIR/pushgateway.pid"
  wait_ready "http://127.0.0.1:${PROMETHEUS_PORT}/-/ready" prometheus "$STATE_DIR/prometheus.pid"
  echo "pushgateway http://127.0.0.1:${PUSHGATEWAY_PORT}  prometheus http://127.0.0.1:${PROMETHEUS_PORT}  (state: $STATE_DIR)"
}

stop() {
  for name in prometheus pushgateway; do
    if pid_alive "$STATE_DIR/$name.pid"; then
      pid="$(cat "$STATE_DIR/$name.pid")"
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$STATE_DIR/$name.pid"
  done
}

status() {
  for name in pushgateway prometheus; do
    if pid_alive "$STATE_DIR/$name.pid"; then echo "$name running (pid $(cat "$STATE_DIR/$name.pid"))"; else echo "$name stopped"; fi
  done
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status [STATE_DIR]" >&2; exit 2 ;;
esac
