"""The `s3rec-tf` command line.

`main` parses the command line (`s3rec_tf.cli.args.build_parser`) and runs
the command (`s3rec_tf.cli.commands.run`). Bad input prints one line,
`s3rec-tf <command>: error: <what>: <reason>`, naming the option, or the
file, line and reason, and exits with 2; nothing is created or changed.
`s3rec-tf bench` is `s3rec_tf.bench.main`.
"""

from __future__ import annotations

import sys

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

