"""Where a number came from: command, commit, machine, library versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time


def git_commit(path: str | None = None) -> str | None:
    """The commit of the working tree (with `+dirty` when it has changes)."""
    cwd = path or os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+dirty" if dirty else "")) if commit else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import tensorflow as tf

    from s3rec_tf import runtime
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": __import__("keras").__version__, "platform": platform.platform(),
            "runtime": runtime.settings()}


#: The commit when this process started (code is loaded then, not at the end).
_START_COMMIT = git_commit()


def record(extra: dict | None = None) -> dict:
    """Provenance fields for a results file."""
    import s3rec_tf
    return {"command": " ".join(["s3rec-tf", *sys.argv[1:]]) if sys.argv else None,
            "commit": _START_COMMIT, "library_version": s3rec_tf.__version__,
            "machine": machine(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()),
            **(extra or {})}
