#!/usr/bin/env bash
# Runs a command against a private, throwaway test database:
#   scripts/with-db.sh CMD [ARGS...]
# Starts the database in its own temporary RUN_DIR (so parallel runs never
# collide), exports MONGODB_URI, runs CMD, then always stops the database and
# deletes the directory. Exits with CMD's exit code.
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
DB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/db.sh"

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/agent-runner-db.XXXXXX")"
export RUN_DIR

child=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  [[ -z "$child" ]] || kill -TERM "$child" 2>/dev/null || true
  "$DB" stop >/dev/null 2>&1 || true
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
# On a signal, clean up (via the EXIT trap) and exit 128+signal.
trap 'exit 130' INT
trap 'exit 143' TERM

"$DB" start >&2
MONGODB_URI="$("$DB" uri)"
export MONGODB_URI

# Run CMD in the background and wait, so a signal to this script is handled at
# once (and passed on by cleanup) rather than after CMD ends. `<&0` keeps the
# caller's stdin, which bash would otherwise replace by /dev/null.
"$@" <&0 &
child=$!
status=0
wait "$child" || status=$?
child=""
exit "$status"
