#!/usr/bin/env bash
# Local MongoDB-wire test database (SecantusDB from .venv, see bootstrap.sh).
#   scripts/db.sh start   start on a free loopback port, wait until it answers
#   scripts/db.sh stop    stop it and delete its data
#   scripts/db.sh uri     print its connection string
# State (port, pid, log, data) lives in RUN_DIR (default: <repo>/.run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/.run}"
PY="$ROOT/.venv/bin/python"
SERVER="$ROOT/.venv/bin/secantusd-py"

uri() { echo "mongodb://127.0.0.1:$(cat "$RUN_DIR/db.port")/?directConnection=true"; }

# True when the pid recorded in RUN_DIR is a live process.
running() { [[ -f "$RUN_DIR/db.pid" ]] && kill -0 "$(cat "$RUN_DIR/db.pid")" 2>/dev/null; }

# One ping with a short server-selection timeout.
ping_db() {
  "$PY" -c 'import sys, pymongo
pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=1000).admin.command("ping")' \
    "$(uri)" >/dev/null 2>&1
}

start() {
  [[ -x "$SERVER" ]] || { echo "db: $SERVER missing; run scripts/bootstrap.sh" >&2; exit 1; }
  if running; then echo "db: already running at $(uri)"; return; fi
  mkdir -p "$RUN_DIR"
  # Let the kernel choose a free port (a tiny race with other processes remains).
  local port
  port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  echo "$port" >"$RUN_DIR/db.port"
  # No --config flag would mean auto-discovery of ./secantusd.toml and ~/.secantus/;
  # an empty config file keeps the server independent of the caller's machine.
  : >"$RUN_DIR/secantusd.toml"
  "$SERVER" --config "$RUN_DIR/secantusd.toml" --host 127.0.0.1 --port "$port" \
    --storage-path "$RUN_DIR/db-data-$port" --cache-size 256M \
    </dev/null >"$RUN_DIR/db.log" 2>&1 &
  echo $! >"$RUN_DIR/db.pid"
  # Wait up to 30 s for a successful ping; give up early if the server died.
  local deadline=$((SECONDS + 30))
  until ping_db; do
    if ! running || ((SECONDS >= deadline)); then
      echo "db: failed to start on port $port; last lines of $RUN_DIR/db.log:" >&2
      tail -n 30 "$RUN_DIR/db.log" >&2 || true
      stop >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.2
  done
  echo "db: running at $(uri) (pid $(cat "$RUN_DIR/db.pid"))"
}

stop() {
  if running; then
    local pid i
    pid="$(cat "$RUN_DIR/db.pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do          # up to 10 s for a clean shutdown
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [[ -f "$RUN_DIR/db.port" ]]; then
    rm -rf "$RUN_DIR/db-data-$(cat "$RUN_DIR/db.port")"
  fi
  rm -f "$RUN_DIR/db.pid" "$RUN_DIR/db.port" "$RUN_DIR/secantusd.toml"
  echo "db: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  uri) uri ;;
  *) echo "usage: $0 start|stop|uri" >&2; exit 2 ;;
esac
