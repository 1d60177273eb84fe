import sys

import s3rec_tf  # noqa: F401  (sets the Keras backend and log level)
from s3rec_tf.cli import main

sys.exit(main())
