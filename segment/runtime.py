"""Start-up: which Keras backend loads, and TensorFlow's settings when it is that backend.

Imported first by `segment/__init__.py`, before anything loads Keras or TensorFlow, because
both read their settings once, when they load. Keras' backend is `KERAS_BACKEND`, else the
"backend" of `$KERAS_HOME/keras.json` (`~/.keras/keras.json`), else "tensorflow"; set it before
`import segment` (the drivers' `--backend` does). Only when it is "tensorflow":

- `TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow's oneDNN kernels train this network about 1.5x faster
  on AVX2 CPUs, where TensorFlow leaves them off by default (benchmarks/RESULTS.md). A value
  the user set wins; importing TensorFlow before segment leaves TensorFlow's own default.
- TensorFlow 2.21 prints its "oneDNN custom operations are on" notice (an INFO line, twice)
  before it applies `TF_CPP_MIN_LOG_LEVEL`. When that level hides INFO (>= 1, as the drivers
  and tests set it), the import runs with stderr pointed at /dev/null, so a one-line error
  stays one line. Python exceptions raised by the import are not affected.

Under JAX or PyTorch nothing here imports TensorFlow: the parts that need it (the tf.data
pipeline, tf.distribute, TensorBoard logs, SavedModel loading) import it where they are used.
"""

import contextlib
import json
import os
import sys
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")


def keras_backend():
    """The backend Keras loads (or has loaded): "tensorflow", "jax", "torch" or "numpy".

    Example:
        >>> keras_backend() in ("tensorflow", "jax", "torch", "numpy")
        True
    """
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


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


if keras_backend() == "tensorflow" and "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if _hides_info():
        with _stderr_to_devnull():
            import tensorflow  # noqa: F401
