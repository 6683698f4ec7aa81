#!/usr/bin/env python
"""Load a saved model and evaluate it or export masks. `python driver_load_evaluate.py --help`."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter

from segment.cli import evaluate_main  # noqa: E402  (after the environment variable)

if __name__ == "__main__":
    sys.exit(evaluate_main())
