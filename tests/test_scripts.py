"""scripts/env.sh: sourcing it leaves the caller's shell as it was, and a failure returns."""

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_SH = os.path.join(ROOT, "scripts", "env.sh")


def _bash(script: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_sourcing_sets_no_shell_option_and_puts_the_venv_first():
    if not os.path.exists(os.path.join(ROOT, ".venv", ".installed")):
        pytest.skip("no .venv installed by scripts/env.sh in this checkout")
    proc = _bash(f'before="$-"; source "{ENV_SH}"; echo "rc=$?"; [ "$-" = "$before" ] '
                 f'&& echo same-options; echo "$PATH" | cut -d: -f1; echo "$KERAS_BACKEND"; '
                 f'echo "$ROOT"')
    lines = proc.stdout.split()
    assert lines[:2] == ["rc=0", "same-options"], proc.stdout + proc.stderr
    assert lines[2:] == [os.path.join(ROOT, ".venv", "bin"), "tensorflow", ROOT]


def test_a_wrong_python_returns_an_error_without_closing_the_shell(tmp_path):
    python = tmp_path / "python3.10"
    python.write_text("#!/bin/sh\necho 'Python 3.10.0'\nexit 1\n")
    python.chmod(0o755)
    proc = _bash(f'source "{ENV_SH}"; echo "rc=$?"; false; echo still-here',
                 PYTHON=str(python))
    assert "needs Python 3.11" in proc.stderr
    assert proc.stdout.split() == ["rc=1", "still-here"], proc.stdout + proc.stderr
