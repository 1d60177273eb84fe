"""Filters the known, harmless messages of libraries, in one place.

A clean run of the command line or the pipeline would otherwise print
warnings that concern the libraries' own setup, not the user's data or
model. Each filter below names the exact logger (or warning category and
module) and the message it drops; everything else, including every warning
about the data, still shows. `install()` is called by `s3rec_tf.cli.main`
and the pipeline runners (`pipeline/local_runner.py`, which `scripts/demo.sh`
runs, and `pipeline/kubeflow_v2_runner.py`).

To see everything, set `S3REC_VERBOSE_LIBRARIES=1`.
"""

from __future__ import annotations

import logging
import os
import warnings

#: Beam's DirectRunner in multi-processing mode forwards each worker's log
#: lines through this logger, as "Worker: severity: WARN ... message: ...".
_BEAM_WORKER_LOGGER = "apache_beam.runners.portability.local_job_service"

#: `(logger, text)`: a record of that logger whose message contains the text
#: (after unescaping the worker lines' `\\'`) is dropped.
LOG_MESSAGES = (
    # Beam workers started by the DirectRunner have no staging directory:
    # only functions defined in an interactive __main__ could be affected.
    (_BEAM_WORKER_LOGGER, "No semi_persistent_directory found: Functions defined in "
                          "__main__ (interactive session) may fail."),
    # The DirectRunner passes two of its own flags to its workers, which the
    # workers do not know. A user's unknown --beam-arg is still reported.
    (_BEAM_WORKER_LOGGER, "Discarding unparseable args: ['--direct_runner_use_stacked_bundle', "
                          "'--pipeline_type_check']"),
    # A speed notice about an optional package, in workers and in process.
    (_BEAM_WORKER_LOGGER, "Couldn't find python-snappy so the implementation of "
                          "_TFRecordUtil._masked_crc32c is not as fast as it could be."),
    ("apache_beam.io.tfrecordio", "Couldn't find python-snappy so the implementation of "
                                  "_TFRecordUtil._masked_crc32c is not as fast as it could be."),
    # TFX's resolver on the SQLite ML Metadata store: the query falls back to
    # filtering in Python, with the same result.
    ("absl", "ArtifactQuery.property_predicate is not supported."),
)

#: `(category, message regex, module regex)` of Python warnings to ignore.
WARNINGS = (
    # Printed when TFX imports google-cloud-aiplatform: a notice about that
    # package's future requirements (the pinned stack has
    # google-cloud-storage 2.x, which TFX 1.16 requires).
    (FutureWarning, r"Support for google-cloud-storage < 3\.0\.0 will be removed",
     r"google\.cloud\.aiplatform"),
)


class _KnownMessages(logging.Filter):
    """Drops the records of one logger that contain one of `texts`."""

    def __init__(self, texts):
        super().__init__()
        self.texts = tuple(texts)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it
            return True
        message = message.replace("\\'", "'")
        return not any(text in message for text in self.texts)


def install() -> None:
    """Installs the filters; calling it again changes nothing.

    Call before importing TFX so that import-time notices are caught. Does
    nothing when `S3REC_VERBOSE_LIBRARIES` is set to a non-empty value other
    than `0`.
    """
    if os.environ.get("S3REC_VERBOSE_LIBRARIES", "0") not in ("", "0"):
        return
    for category, message, module in WARNINGS:
        # `filterwarnings` replaces an identical filter instead of adding a second one
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    by_logger = {}
    for name, text in LOG_MESSAGES:
        by_logger.setdefault(name, []).append(text)
    for name, texts in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _KnownMessages) for f in logger.filters):
            logger.addFilter(_KnownMessages(texts))
