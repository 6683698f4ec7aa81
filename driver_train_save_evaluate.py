#!/usr/bin/env python
"""Train, save and evaluate the Improved UNet (the console script `segment-train` is the same).

`python driver_train_save_evaluate.py --help` lists every flag.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ chatter

from segment.cli import train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_main())
