#!/usr/bin/env bash
# Runs the test suite (installs the stack into .venv first if needed).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python -m pytest -q "$@"
