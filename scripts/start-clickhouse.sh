#!/usr/bin/env bash
# Starts the Debian clickhouse-server (18.16) on 127.0.0.1:8123 (HTTP) and :9000 (native)
# when it is not already answering. Installs it when missing. Idempotent.
set -euo pipefail
if curl -fsS http://127.0.0.1:8123/ping >/dev/null 2>&1; then
  exit 0
fi
if ! command -v clickhouse-server >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
fi
mkdir -p /var/lib/clickhouse /var/log/clickhouse-server /var/run/clickhouse-server
if id clickhouse >/dev/null 2>&1; then
  chown -R clickhouse:clickhouse /var/lib/clickhouse /var/log/clickhouse-server /var/run/clickhouse-server
  runas=(runuser -u clickhouse --)
else
  runas=()
fi
"${runas[@]}" clickhouse-server --config-file=/etc/clickhouse-server/config.xml \
  --pid-file=/var/run/clickhouse-server/clickhouse-server.pid --daemon
for _ in $(seq 1 60); do
  if curl -fsS http://127.0.0.1:8123/ping >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "clickhouse-server did not come up; see /var/log/clickhouse-server/" >&2
exit 1
