#!/usr/bin/env bash
# Runs the test suite (installs the stack into .venv first if needed) on two workers
# (pytest-xdist; each test file stays on one worker, so its module fixtures are built once).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow`, or `-n 0` for one process.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python -m pytest -q -n 2 --dist loadfile "$@"
