#!/usr/bin/env python
"""Load a saved model and evaluate it or export masks (`segment-evaluate` is the same program).

`python driver_load_evaluate.py --help` lists every flag.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ chatter

from segment.cli import evaluate_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(evaluate_main())
