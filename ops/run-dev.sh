#!/usr/bin/env bash
# `make run`: the metrics stack on loopback (Prometheus with the alert rules, the Pushgateway), then `dagster dev`;
# when dagster dev exits, on its own or on Ctrl-C / SIGTERM, the stack stops with it.
#
#   ops/run-dev.sh DAGSTER_BIN [dagster dev arguments ...]
#
# Environment: DAGSTER_HOME (required), AGENT_PIPELINE_HOME (default ~/.agent_pipeline), PROMETHEUS_PORT (9090),
# PUSHGATEWAY_PORT (9091), AGENT_PIPELINE_PUSHGATEWAY_URL (default: the local gateway, unless config.toml's
# [metrics] gateway_url names another). A component that cannot start (port taken, package missing) is reported
# and left out; the Dagster UI starts regardless.
set -uo pipefail

OPS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DAGSTER_BIN="${1:?usage: $0 DAGSTER_BIN [dagster dev arguments ...]}"
shift
: "${DAGSTER_HOME:?DAGSTER_HOME must name the folder of the Dagster instance}"
export AGENT_PIPELINE_HOME="${AGENT_PIPELINE_HOME:-$HOME/.agent_pipeline}"
export PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}" PUSHGATEWAY_PORT="${PUSHGATEWAY_PORT:-9091}"
STATE_DIR="$AGENT_PIPELINE_HOME/observability"
DEV_YAML="$OPS_DIR/dagster.dev.yaml"
# sha256 of the dagster.dev.yaml that earlier releases copied (no retention): such an untouched copy is replaced
OLD_DEV_YAMLS="8b71eae6fbcd66d7686637ee0d1645ad77eb0d9c0268475c08f9e8031760cb81"

say() { echo "make run: $*" >&2; }

install_instance_config() {
  # An untouched copy of an older dagster.dev.yaml is replaced; one that was edited is kept.
  local target="$DAGSTER_HOME/dagster.yaml"
  mkdir -p "$DAGSTER_HOME" "$AGENT_PIPELINE_HOME"
  if [ ! -f "$target" ]; then
    cp "$DEV_YAML" "$target"
  elif ! grep -q '^retention:' "$target"; then
    if grep -qxF -- "$(sha256sum "$target" | cut -d ' ' -f 1)" <<<"$OLD_DEV_YAMLS"; then
      cp "$DEV_YAML" "$target"
      say "updated $target from ops/dagster.dev.yaml (run and tick retention)"
    else
      say "note: $target has no retention settings; compare it with ops/dagster.dev.yaml"
    fi
  fi
}

configured_gateway() {  # [metrics] gateway_url from config.toml, if any (python3 >= 3.11 reads TOML)
  local cfg="$AGENT_PIPELINE_HOME/config.toml"
  [ -f "$cfg" ] || return 0
  python3 - "$cfg" <<'PY' 2>/dev/null || true
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    url = tomllib.load(f).get("metrics", {}).get("gateway_url")
if isinstance(url, str):
    print(url)
PY
}

stack() { bash "$OPS_DIR/start-local-stack.sh" "$1" "$STATE_DIR"; }

with_default_sigint() {  # exec "$@" with SIGINT at its default action
  # Started in the background (`make run &`, a service script), this script inherits SIGINT ignored, which bash cannot
  # undo for its children; dagster dev would then ignore Ctrl-C, and SIGTERM too (it maps SIGTERM to SIGINT's handler).
  if env --default-signal=INT true 2>/dev/null; then exec env --default-signal=INT "$@"; fi
  exec python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

dev_pid="" interrupted=""
interrupt_dev() {  # what a Ctrl-C in its terminal does: SIGINT to dagster dev's process group
  if [ -n "$dev_pid" ]; then kill -INT -- "-$dev_pid" 2>/dev/null || kill -INT "$dev_pid" 2>/dev/null; fi
  return 0
}
forward() {  # Ctrl-C, SIGTERM or SIGHUP reached this script; dagster dev has a process group of its own
  interrupted=1
  interrupt_dev
}
finish() {
  # SIGPIPE ignored: whoever read our output may be gone (`make run | tee log` after Ctrl-C), and the stack must
  # still stop
  trap - EXIT INT TERM HUP
  trap '' PIPE
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then interrupt_dev; wait "$dev_pid"; fi
  stack stop
  say "stopped the metrics stack" 2>/dev/null || true
}
trap forward INT TERM HUP
trap finish EXIT

install_instance_config
if ! stack start; then
  say "continuing without the parts of the metrics stack reported above; the Dagster UI is unaffected"
fi
if [ -z "${AGENT_PIPELINE_PUSHGATEWAY_URL:-}" ]; then
  configured="$(configured_gateway)"
  if [ -n "$configured" ]; then
    say "pushing metrics to $configured ([metrics] gateway_url in config.toml)"
  else
    export AGENT_PIPELINE_PUSHGATEWAY_URL="http://127.0.0.1:${PUSHGATEWAY_PORT}"
  fi
fi
if [ -n "${AGENT_PIPELINE_PUSHGATEWAY_URL:-}" ]; then say "pushing metrics to $AGENT_PIPELINE_PUSHGATEWAY_URL"; fi
if [ -n "$interrupted" ]; then exit 130; fi  # interrupted while the stack started: no dagster dev

# `dagster dev` says `dg dev` supersedes it; dg is not a dependency of this project, so that warning only adds noise.
export PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Function \`dev_command\` is superseded"

# Job control puts dagster dev in a process group of its own, where a Ctrl-C meant for make reaches it only through
# forward(), and keeps SIGINT at its default there (a plain background job of a script starts with it ignored).
set -m
with_default_sigint "$DAGSTER_BIN" "$@" &
dev_pid=$!
set +m
status=0
while :; do
  wait "$dev_pid"
  status=$?
  kill -0 "$dev_pid" 2>/dev/null || break  # a signal interrupted the wait: keep waiting for dagster dev to exit
done
exit "$status"
