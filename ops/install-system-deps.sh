#!/usr/bin/env bash
# Installs the system packages that `make run` starts beside dagster dev and the integration tests start for real:
# Prometheus (with promtool) and the Pushgateway, and PostgreSQL (the shared store's tests start their own server
# from its binaries under /usr/lib/postgresql/<major>/bin), from Debian's packages. Does nothing when they are already there;
# says what is missing and fails when apt-get is not available (`make run` then continues without them).
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing ${missing[*]}, and apt-get is not available: install Prometheus and the Pushgateway yourself, or use" \
       "ops/docker-compose.yml" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
