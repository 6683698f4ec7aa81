#!/usr/bin/env python
"""Train, save and evaluate the Improved UNet. `python driver_train_save_evaluate.py --help`."""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter
# Keras picks its backend when first imported, so --backend must be seen before that (its
# value is checked with the other flags).
_early = argparse.ArgumentParser(add_help=False)
_early.add_argument("--backend")
_backend = _early.parse_known_args()[0].backend
if _backend in ("tensorflow", "jax", "torch"):
    os.environ["KERAS_BACKEND"] = _backend

from segment.cli import train_main  # noqa: E402  (after the environment variables)

if __name__ == "__main__":
    sys.exit(train_main())
