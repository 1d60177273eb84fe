"""The Beam runtime of data preparation: pipeline options, running, and error reporting.

A `DataError` raised inside a Beam worker arrives wrapped (or, from the
multi-processing DirectRunner, as text only); `run_beam` raises it as
itself, and `quiet_beam_logs` holds back Beam's logging of it, so bad data
is reported as one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

from s3rec_tf.errors import DataError


def default_beam_args(num_workers: int = 2) -> list:
    """DirectRunner in multi-processing mode: what the local runs use."""
    return ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
            f"--direct_num_workers={num_workers}"]


@contextlib.contextmanager
def quiet_beam_logs():
    """Beam logs a worker's failure (with its traceback, many times over) at
    ERROR before raising it; the raised error is what `prepare` reports, as
    one line for bad data, so those logs are held back while it runs.

    Workers of the multi-processing DirectRunner are other processes writing
    to the inherited standard error: it is captured too, and written back
    unless the run failed on bad data (a `DataError`, reported as one line).
    """
    logger = logging.getLogger("apache_beam")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    sys.stderr.flush()
    saved = os.dup(2)
    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    bad_data = False
    try:
        yield
    except Exception as e:
        bad_data = find_data_error(e) is not None
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        logger.setLevel(level)
        captured.seek(0)
        text = captured.read()
        captured.close()
        if text and not bad_data:
            sys.stderr.buffer.write(text)
            sys.stderr.flush()


def run_beam(build, options=None, pipeline=None) -> None:
    """Builds and runs a Beam pipeline; a `DataError` from a worker surfaces as itself."""
    import apache_beam as beam
    try:
        if pipeline is None:
            pipeline = beam.Pipeline(options=options)
        with pipeline as p:
            build(p)
    except Exception as e:
        data_error = find_data_error(e)
        if data_error is not None:
            raise data_error from None
        raise


def find_data_error(error):
    """A `DataError` raised inside a Beam worker arrives wrapped; unwrap it."""
    seen, chain = set(), []
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DataError):
            return error
        chain.append(error)
        error = error.__cause__ or error.__context__
    # Beam's multi-processing workers send the error back as text only
    marker = "DataError: "
    for link in chain:
        text = str(link)
        if marker in text:
            line = text.split(marker, 1)[1].splitlines()[0]
            line = re.sub(r" \[while running '[^']*'\]$", "", line)
            path, _, reason = line.partition(": ")
            return DataError(path, reason)
    return None
