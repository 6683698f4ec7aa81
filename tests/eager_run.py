"""Helper of the tests: run a driver with Keras' functions eager (not collected by pytest).

    python tests/eager_run.py SCRIPT [ARGUMENT ...]

Runs SCRIPT as `python SCRIPT ARGUMENT ...` would, but with TensorFlow running Keras' training
and prediction functions eagerly (tf.data's stay graphs), as conftest.keras_eagerly does in the
test process. For the short driver runs whose tests check files, flags and records (the real
ISIC sample's, the mirrored strategy's): a run skips tracing its graphs (4-8 s for a tiny
network on an AVX2-only CPU). A run that predicts hundreds of images gains nothing: eagerly,
each batch costs what the trace saved. The drivers' traced runs, as users run them, are
test_drivers.py's fixture and the reliability tests'.
"""

import runpy
import sys

import segment  # noqa: F401  (first: sets TensorFlow up, as the drivers' own import does)

import tensorflow as tf

if __name__ == "__main__":
    sys.argv = sys.argv[1:]  # as the script sees them: its path, then its arguments
    tf.config.run_functions_eagerly(True)
    runpy.run_path(sys.argv[0], run_name="__main__")
