#!/usr/bin/env python
"""Train, save and evaluate the Improved UNet. `python driver_train_save_evaluate.py --help`."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter

from segment.cli import train_main  # noqa: E402  (after the environment variable)

if __name__ == "__main__":
    sys.exit(train_main())
