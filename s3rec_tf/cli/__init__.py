"""The `s3rec-tf` command line.

`main` parses the command line (`s3rec_tf.cli.args.build_parser`) and runs
the command (`s3rec_tf.cli.commands.run`). Bad input prints one line,
`s3rec-tf <command>: error: <what>: <reason>`, naming the option, or the
file, line and reason, and exits with 2; nothing is created or changed.
`s3rec-tf bench` is `s3rec_tf.bench.main`.
"""

from __future__ import annotations

import errno
import re
import signal
import sys
import threading

from s3rec_tf.cli.args import build_parser
from s3rec_tf.cli.commands import run

__all__ = ["build_parser", "main", "run"]


def main(argv=None) -> int:
    """Runs `s3rec-tf argv` (default: `sys.argv[1:]`) and returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from s3rec_tf import quiet
    quiet.install()  # known, harmless library notices only
    if argv[:1] == ["bench"]:
        from s3rec_tf import bench
        return bench.main(argv[1:])
    args = build_parser().parse_args(argv)
    # a termination request unwinds like Ctrl-C: temporary outputs are removed
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        return _run(args)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(args) -> int:
    """`run(args)`, with every expected failure as one line and an exit code."""
    from s3rec_tf.errors import S3RecError
    try:
        return run(args)
    except S3RecError as e:
        print(f"s3rec-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # argument values rejected by the library
        print(f"s3rec-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"s3rec-tf {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  (a full disk: one line, anything else raises)
        reason = disk_full(e)
        if reason is None:
            raise
        print(f"s3rec-tf {args.command}: error: {reason}", file=sys.stderr)
        return 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt


#: What a write that found no room says (errno, or TensorFlow's message).
_FULL = {errno.EFBIG: "File too large", errno.ENOSPC: "No space left on device",
         errno.EDQUOT: "Disk quota exceeded"}


def disk_full(error: BaseException) -> str | None:
    """`<file>: <reason>` when `error` is a write that found no room, else None.

    Every output is written to a temporary sibling and renamed into place,
    so such a failure leaves no partial output and keeps the previous one.
    """
    if isinstance(error, OSError) and error.errno in _FULL:
        return f"{error.filename or 'a file'}: {_FULL[error.errno]} (disk full or file size " \
               f"limit); the earlier output is kept"
    text = str(getattr(error, "message", "") or error)
    for reason in _FULL.values():
        if reason in text:  # TensorFlow's or Beam's message, naming the file
            path = re.search(r"(/[^\s;:'\"]+)", text)
            return f"{path.group(1) if path else 'a file'}: {reason} (disk full or file size " \
                   f"limit); the earlier output is kept"
    return None

