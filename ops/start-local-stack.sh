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
# sensors use $AGENT_PIPELINE_PUSHGATEWAY_URL, default http://127.0.0.1:9091). `make run` calls it through
# ops/run-dev.sh.
#
# Each component starts on its own: one whose port is taken by another process, whose package is missing or that
# does not become ready is reported and left out, and `start` then exits with status 3 (0 when both run). One
# already running from the same STATE_DIR (a previous run that was killed) is kept. The processes run in a session
# of their own, so a Ctrl-C meant for the caller does not reach them; `stop` ends them.
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

running() {  # pid: alive, and not a zombie waiting to be reaped
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then [ "$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d ' ' -f 1)" != Z ]; fi
}

pid_alive() {  # pidfile binary: the process is running and is that binary (a stale pidfile's pid may be reused)
  local pid
  [ -f "$1" ] && pid="$(cat "$1" 2>/dev/null)" && [[ "$pid" =~ ^[0-9]+$ ]] && running "$pid" || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(basename "$2")"
  fi
}

port_taken() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }  # something accepts connections there

http_ok() {  # curl when installed, else the Python standard library
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null "$1" 2>/dev/null
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
  fi
}

wait_ready() {  # url name pidfile
  # Liveness by pid only: until the forked shell has exec'd the binary, its command line is this script's, so
  # pid_alive's name check would report a process that is still starting as gone.
  local pid
  pid="$(cat "$3")"
  for _ in $(seq 1 200); do
    if ! running "$pid"; then
      echo "$2 exited; see $STATE_DIR/$2.log" >&2; tail -n 20 "$STATE_DIR/$2.log" >&2; rm -f "$3"; return 1
    fi
    if http_ok "$1"; then return 0; fi
    sleep 0.1
  done
  echo "$2 not ready at $1 after 20 s; see $STATE_DIR/$2.log" >&2
  return 1
}

launch() {  # name binary port pidfile args... -> 0 started or kept, 1 left out
  local name="$1" bin="$2" port="$3" pidfile="$4"
  shift 4
  if pid_alive "$pidfile" "$bin"; then
    echo "$name already running from $STATE_DIR (pid $(cat "$pidfile")); keeping it" >&2
    return 0
  fi
  rm -f "$pidfile"
  if ! command -v "$bin" >/dev/null; then
    echo "$name not started: $bin not found (ops/install-system-deps.sh installs it)" >&2
    return 1
  fi
  if port_taken "$port"; then
    echo "$name not started: port $port on 127.0.0.1 is taken by another process (set ${name^^}_PORT to use another)" >&2
    return 1
  fi
  $SESSION nohup "$bin" "$@" >"$STATE_DIR/$name.log" 2>&1 &
  echo $! > "$pidfile"
  wait_ready "http://127.0.0.1:${port}/-/ready" "$name" "$pidfile"
}

start() {
  mkdir -p "$STATE_DIR/prometheus-data"
  sed -e "s#pushgateway:9091#127.0.0.1:${PUSHGATEWAY_PORT}#" \
      -e "s#^  scrape_interval: .*#  scrape_interval: ${SCRAPE_INTERVAL}#" \
      -e "s#^  evaluation_interval: .*#  evaluation_interval: ${EVALUATION_INTERVAL}#" \
      -e "s#^  - rules/\*.yml#  - ${OPS_DIR}/prometheus/rules/*.yml#" \
      "$OPS_DIR/prometheus/prometheus.yml" > "$STATE_DIR/prometheus.yml"
  SESSION=""
  if command -v setsid >/dev/null; then SESSION="setsid"; fi
  local ok=0 urls=""
  # No persistence file: Debian's default points at a system path; the store recomputes everything anyway.
  if launch pushgateway "$PUSHGATEWAY_BIN" "$PUSHGATEWAY_PORT" "$STATE_DIR/pushgateway.pid" \
      --web.listen-address="127.0.0.1:${PUSHGATEWAY_PORT}" --persistence.file=""; then
    urls="pushgateway http://127.0.0.1:${PUSHGATEWAY_PORT}  "
  else
    ok=3
  fi
  if launch prometheus "$PROMETHEUS_BIN" "$PROMETHEUS_PORT" "$STATE_DIR/prometheus.pid" \
      --config.file="$STATE_DIR/prometheus.yml" --storage.tsdb.path="$STATE_DIR/prometheus-data" \
      --web.listen-address="127.0.0.1:${PROMETHEUS_PORT}" --web.enable-lifecycle; then
    urls="${urls}prometheus http://127.0.0.1:${PROMETHEUS_PORT}  "
  else
    ok=3
  fi
  echo "${urls:-nothing started  }(state: $STATE_DIR)"
  return "$ok"
}

stop() {
  for name in prometheus pushgateway; do
    bin="$PROMETHEUS_BIN"; [ "$name" = pushgateway ] && bin="$PUSHGATEWAY_BIN"
    if pid_alive "$STATE_DIR/$name.pid" "$bin"; then
      pid="$(cat "$STATE_DIR/$name.pid")"
      kill "$pid"
      for _ in $(seq 1 100); do running "$pid" || break; sleep 0.1; done
      if running "$pid"; then kill -9 "$pid"; fi
    fi
    rm -f "$STATE_DIR/$name.pid"
  done
}

status() {
  for name in pushgateway prometheus; do
    bin="$PROMETHEUS_BIN"; [ "$name" = pushgateway ] && bin="$PUSHGATEWAY_BIN"
    if pid_alive "$STATE_DIR/$name.pid" "$bin"; then echo "$name running (pid $(cat "$STATE_DIR/$name.pid"))"; else echo "$name stopped"; fi
  done
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status [STATE_DIR]" >&2; exit 2 ;;
esac
