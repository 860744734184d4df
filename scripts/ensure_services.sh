#!/usr/bin/env bash
# Make sure the services the farm and its tests use are answering on this machine:
# Redis on 127.0.0.1:6379 (installed from Debian and started if absent), and
# PostgreSQL on 127.0.0.1:5432 when it is installed (tests skip it, saying why, if not).
set -euo pipefail

redis_answers() {
  python3 - <<'PY' 2>/dev/null
import socket
s = socket.create_connection(("127.0.0.1", 6379), timeout=2)
s.sendall(b"PING\r\n")
raise SystemExit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
}

if ! redis_answers; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server from Debian…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  echo "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
  redis_answers || { echo "Redis did not start" >&2; exit 1; }
fi

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
fi
exit 0
