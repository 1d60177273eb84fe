"""The README's Python quick start runs as printed, and prints no warning."""

import os
import re
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "<!-- QUICKSTART:PYTHON -->"


def quickstart_source() -> str:
    """The ```python block that follows `MARKER` in README.md."""
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        text = f.read()
    assert MARKER in text, f"{path}: no {MARKER} line"
    match = re.search(r"```python\n(.*?)\n```", text.split(MARKER, 1)[1], re.S)
    assert match, f"{path}: no ```python block after {MARKER}"
    return match.group(1) + "\n"


def test_the_python_quick_start_runs_without_a_warning(tmp_path):
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart_source())
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONWARNINGS", "S3REC_VERBOSE_LIBRARIES")}
    env["PYTHONPATH"] = ROOT
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TF's C++ start-up notices, as tests/test_quiet.py
    start = time.time()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    noisy = [line for line in output.splitlines()
             if "WARNING" in line or "Warning" in line or "Traceback" in line]
    assert not noisy, "\n".join(noisy)
    assert "val_NDCG@20" in output  # fine-tuning validated in `fit`
    assert (tmp_path / "serving" / "1" / "saved_model.pb").exists()
    assert os.listdir(tmp_path / "logs")
    print(f"quick start: {time.time() - start:.0f}s")
