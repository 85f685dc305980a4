#!/usr/bin/env bash
# End-to-end demo: seed a job for the sample e-commerce diagram, let the
# runner generate it offline (scaffold generator) and push it to a local bare
# repository, then check that the job is done and its commit is on the remote.
# Run under scripts/with-db.sh (needs MONGODB_URI); binaries in BIN_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${MONGODB_URI:?run me under scripts/with-db.sh}"
BIN_DIR="$(cd "$ROOT" && cd "${BIN_DIR:-.build/release}" && pwd)"
SPEC="$ROOT/examples/ecommerce-seed-shape.json"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/agent-runner-demo.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
REMOTE="$TMP/remote.git"
git init -q --bare -b main "$REMOTE"

export WORKDIR_ROOT="$TMP/work" MONGO_DB_NAME=architex_demo
export GENERATORS=scaffold CLINE_ENABLED=false
# The demo's bare remote lies below its temp dir: local remotes are allowed there only.
export GIT_LOCAL_REMOTE_ROOTS="$TMP"
# Run from the temp dir so a developer's ./.env cannot change the demo.
cd "$TMP"

echo "== seed"
JOB_ID="$("$BIN_DIR/agent-runner" seed --spec "$SPEC" --repo "file://$REMOTE" --project "Demo shop")"
echo "job $JOB_ID"

echo "== run until idle"
AGENT_RUNNER_JOB_PATH="$BIN_DIR/agent-runner-job" "$BIN_DIR/agent-runner" run --exit-when-idle

echo "== job"
"$BIN_DIR/agent-runner" show "$JOB_ID" --json | tee "$TMP/job.json"

echo "== remote history"
git -C "$REMOTE" log --format='%H %s%n%b' main
echo "== remote tree"
git -C "$REMOTE" ls-tree -r --name-only main

# The job must be done and must name the commit now at the tip of main.
HEAD_SHA="$(git -C "$REMOTE" rev-parse main)"
python3 - "$TMP/job.json" "$HEAD_SHA" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
job = job.get("job", job)  # accept a bare job document or {"job": {...}}
status = job.get("status")
sha = (job.get("metadata") or {}).get("commitSha")
if status != "done" or sha != sys.argv[2]:
    sys.exit(f"DEMO FAILED: status={status!r} commitSha={sha!r} remote main={sys.argv[2]}")
PY
echo "DEMO OK: job $JOB_ID done, commit $HEAD_SHA"
