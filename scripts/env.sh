#!/usr/bin/env bash
# Creates (once) and activates the project's virtualenv in .venv: `source scripts/env.sh`.
# Idempotent: reinstalls only when requirements.txt or pyproject.toml change. Safe to source
# from an interactive shell: it sets no shell options and, on failure, returns instead of
# exiting. Exports ROOT (the checkout), PATH (with .venv/bin first) and KERAS_BACKEND.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_s3rec_env() {
  local venv="$ROOT/.venv" python="${PYTHON:-python3.11}" stamp want
  command -v "$python" >/dev/null 2>&1 || python=python3
  if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
      >/dev/null 2>&1; then
    echo "s3rec-tf needs Python 3.11 (found: $("$python" --version 2>&1)); set PYTHON=..." >&2
    return 1
  fi
  stamp="$venv/.installed"
  want="$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" || return 1
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing the pinned stack into $venv (a few minutes the first time)..." >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check --ignore-requires-python \
      -r "$ROOT/requirements.txt" || return 1
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
      --no-build-isolation -e "$ROOT" || return 1
    echo "$want" > "$stamp"
  fi
  case "$PATH" in
    "$venv/bin:"*) ;;
    *) export PATH="$venv/bin:$PATH" ;;
  esac
  export KERAS_BACKEND=tensorflow
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
}

if _s3rec_env; then
  unset -f _s3rec_env
else
  unset -f _s3rec_env
  return 1 2>/dev/null || exit 1
fi
