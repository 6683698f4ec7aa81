"""TensorFlow start-up: oneDNN kernels on, and its start-up notices kept to the asked log level.

Imported first by `segment/__init__.py`, before anything loads TensorFlow, because TensorFlow
reads both settings once, when it loads:

- `TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow's oneDNN kernels train this network about 1.5x faster
  on AVX2 CPUs, where TensorFlow leaves them off by default (benchmarks/RESULTS.md). A value
  the user set wins; importing TensorFlow before segment leaves TensorFlow's own default.
- TensorFlow 2.21 prints its "oneDNN custom operations are on" notice (an INFO line, twice)
  before it applies `TF_CPP_MIN_LOG_LEVEL`. When that level hides INFO (>= 1, as the drivers
  and tests set it), the import runs with stderr pointed at /dev/null, so a one-line error
  stays one line. Python exceptions raised by the import are not affected.
"""

import contextlib
import os
import sys

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@contextlib.contextmanager
def _stderr_to_devnull():
    """Point file descriptor 2 (where C++ code logs) at /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _hides_info():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= 1
    except ValueError:
        return False


if "tensorflow" not in sys.modules and _hides_info():
    with _stderr_to_devnull():
        import tensorflow  # noqa: F401
