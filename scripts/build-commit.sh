#!/usr/bin/env bash
# Writes Sources/CShims/build_commit.h (git-ignored): the commit this tree is
# at, which both executables print with --version, `doctor` shows and /metrics
# exports (agent_runner_build_info). Run by `make` before every build.
# Only the commit is recorded (no time, host or path), so a build stays a
# function of its sources; `-dirty` marks uncommitted changes to tracked files.
# Without git, or outside a work tree, the header is removed and the binaries
# say "unknown". The header is rewritten only when its text changes; then
# build_info.c is touched, because the compiler's dependency list cannot name
# a header that did not exist at the last build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HEADER="$ROOT/Sources/CShims/build_commit.h"
SOURCE="$ROOT/Sources/CShims/build_info.c"

commit=""
if command -v git >/dev/null 2>&1 && commit="$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null)"; then
  if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit="$commit-dirty"
  fi
fi
if [[ -z "$commit" ]]; then
  if [[ -e "$HEADER" ]]; then rm -f "$HEADER"; touch "$SOURCE"; fi
  echo "build-commit: unknown (no git work tree)"
  exit 0
fi
text="#define AGENT_RUNNER_BUILD_COMMIT \"$commit\""
if [[ ! -e "$HEADER" ]] || [[ "$(cat "$HEADER")" != "$text" ]]; then
  printf '%s\n' "$text" >"$HEADER"
  touch "$SOURCE"
fi
echo "build-commit: $commit"
