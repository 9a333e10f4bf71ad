#!/usr/bin/env bash
# Mutation testing (the expensive test tier, not part of .ci/run): applies every mutant listed in
# tests/mutants/*.txt to a scratch copy of the tree (build-mutants/), rebuilds only the test files
# it names, runs them and prints the kill rate and each survivor's diff. Exit status 0 when all
# are killed. `scripts/mutants.sh --help` for the options; docs/testing.md for the list format.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v python3 >/dev/null 2>&1; then
  echo "mutants.sh: python3 not found; run scripts/setup.sh" >&2
  exit 2
fi
exec python3 "$root/scripts/mutants.py" "$@"
