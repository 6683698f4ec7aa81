"""What this process runs on: the Keras backend, TensorFlow's start-up settings, the precision
this CPU or GPU trains well in, and the library versions a run records.

Imported first by `segment/__init__.py`, before anything loads Keras or TensorFlow, because
both read their settings once, when they load. Keras' backend is `KERAS_BACKEND`, else the
"backend" of `$KERAS_HOME/keras.json` (`~/.keras/keras.json`), else "tensorflow"; set it before
`import segment`. The drivers and console scripts (`PROGRAMS`) set it from their `--backend`
flag here, before Keras loads, so that `--backend jax` runs where TensorFlow is not installed.
Only when the backend is "tensorflow":

- `TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow's oneDNN kernels train this network about 1.5x faster
  on AVX2 CPUs, where TensorFlow leaves them off by default (benchmarks/RESULTS.md). A value
  the user set wins; importing TensorFlow before segment leaves TensorFlow's own default.
- TensorFlow 2.21 prints its "oneDNN custom operations are on" notice (an INFO line, twice)
  before it applies `TF_CPP_MIN_LOG_LEVEL`. When that level hides INFO (>= 1, as the drivers
  and tests set it), the import runs with stderr pointed at /dev/null, so a one-line error
  stays one line. Python exceptions raised by the import are not affected.
- TensorFlow's import loads JAX where it is installed, for tf.lite's converter of JAX functions
  (a sixth of `import segment`'s time: docs/RESULTS.md). JAX is hidden from that import and
  the converter imports it when first used; `import jax` works as usual.
- Where TensorFlow is not installed, the import fails with a message that says how to pick
  another backend.

`resolve_precision` picks the dtype policy (bfloat16 only where the CPU computes it natively)
and `library_versions` lists what `config.json` records. Under JAX or PyTorch nothing here
imports TensorFlow: the parts that need it (the tf.data
pipeline, tf.distribute, TensorBoard logs, SavedModel loading) import it where they are used.
"""

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import sys
from pathlib import Path

from ._version import __version__
from .config import PRECISIONS, TrainConfig

__all__ = ["BACKENDS", "PROGRAMS", "backend_has_gpu", "cpu_has_native_bf16", "keras_backend",
           "library_versions", "program_backend", "resolve_precision"]

logger = logging.getLogger(__name__)

BACKENDS = ("tensorflow", "jax", "torch")
# The drivers and console scripts (segment.cli): their --backend applies as this module loads.
PROGRAMS = ("driver_train_save_evaluate.py", "driver_load_evaluate.py", "segment-train",
            "segment-evaluate")


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


@contextlib.contextmanager
def _jax_deferred():
    """Hide an installed, not yet imported JAX from the block's imports; afterwards give tf.lite's
    converter of JAX functions, the one part of TensorFlow's import that loads JAX (`from jax
    import jit`), a `jit` that imports JAX when first called."""
    if "jax" in sys.modules or importlib.util.find_spec("jax") is None:
        yield
        return
    sys.modules["jax"] = None  # `import jax` raises ImportError until the block ends
    try:
        yield
    finally:
        del sys.modules["jax"]
    for name in ("tensorflow.lite.python.util", "tensorflow.lite.python.lite"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "_jit", True) is None:
            module._jit = _jit_importing_jax


def _jit_importing_jax(function, *args, **kwargs):
    """`jax.jit`, JAX imported on the first call."""
    from jax import jit

    return jit(function, *args, **kwargs)


def program_backend(argv):
    """The backend that `argv`'s --backend names (its last), where `argv[0]` is one of the
    `PROGRAMS`; else None (a name outside `BACKENDS` is left for argparse to refuse).

    Example:
        >>> program_backend(["/usr/bin/segment-train", "--backend", "jax", "--epochs", "2"])
        'jax'
        >>> program_backend(["my_script.py", "--backend=torch"]) is None
        True
    """
    if not argv or Path(argv[0]).name not in PROGRAMS:
        return None
    named = None
    for argument, following in zip(argv, [*argv[1:], None], strict=True):
        if argument == "--backend":
            named = following
        elif argument.startswith("--backend="):
            named = argument.partition("=")[2]
    return named if named in BACKENDS else None


def _import_tensorflow():
    """Import TensorFlow with oneDNN on, quietly, without JAX; a clear error where it is
    missing."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    try:
        with _stderr_to_devnull() if _hides_info() else contextlib.nullcontext(), \
                _jax_deferred():
            import tensorflow  # noqa: F401
    except ModuleNotFoundError as error:
        if error.name != "tensorflow":
            raise
        raise ModuleNotFoundError(
            "Keras' backend is TensorFlow, which is not installed here: install "
            "it (pip install -e '.[cpu]'), or run on JAX or PyTorch (KERAS_BACKEND=jax before "
            "import segment, or the programs' --backend jax)", name="tensorflow") from None


def _set_up():
    """Apply a program's --backend while Keras is not loaded; load TensorFlow where it is the
    backend."""
    flag = program_backend(getattr(sys, "argv", []))
    if flag is not None and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = flag
    if keras_backend() == "tensorflow" and "tensorflow" not in sys.modules:
        _import_tensorflow()


_set_up()


# Distributions whose installed version config.json records, by the name it records.
_VERSIONED = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",),
              "numpy": ("numpy",), "pillow": ("pillow",)}


def cpu_has_native_bf16():
    """True if this CPU advertises bfloat16 arithmetic (avx512_bf16 or amx_bf16 in its flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision=TrainConfig.precision, *, has_gpu=None):
    """The dtype policy to build the model with, refusing the slow case.

    Args:
        precision: "float32", "mixed_bfloat16", "mixed_float16" or "mixed" (bf16 on CPU,
            float16 on GPU). Defaults to "float32".
        has_gpu: Whether a GPU is visible; detected when None.

    Returns:
        "float32", "mixed_bfloat16" or "mixed_float16". On a CPU without native bf16,
        where bfloat16 runs several times slower than float32, a bf16 request falls back
        to "float32" with a warning.

    Example:
        >>> resolve_precision("float32")
        'float32'
        >>> resolve_precision("mixed", has_gpu=True)
        'mixed_float16'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision. Received: precision={precision!r}; "
                         f"available: {PRECISIONS}")
    if has_gpu is None:
        has_gpu = backend_has_gpu()
    if precision == "mixed":
        precision = "mixed_float16" if has_gpu else "mixed_bfloat16"
    if precision == "mixed_bfloat16" and not has_gpu and not cpu_has_native_bf16():
        logger.warning("this CPU has no native bfloat16 (no avx512_bf16/amx_bf16 flag), where "
                       "mixed_bfloat16 runs several times slower: using float32 instead")
        return "float32"
    return precision


def library_versions():
    """Versions of Python, the Keras backend and the main libraries, for config.json.

    TensorFlow, JAX and PyTorch are listed when installed (read from their package records,
    so none of them is imported here).

    Example:
        >>> {"python", "segment", "keras", "backend", "numpy"} <= set(library_versions())
        True
    """
    import keras

    versions = {"python": platform.python_version(), "segment": __version__,
                "keras": keras.__version__, "backend": keras.backend.backend()}
    for name, distributions in _VERSIONED.items():
        for distribution in distributions:
            try:
                versions[name] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def backend_has_gpu():
    """Whether the Keras backend sees a GPU (CUDA) device.

    Example:
        >>> isinstance(backend_has_gpu(), bool)
        True
    """
    backend = keras_backend()
    if backend == "tensorflow":
        import tensorflow as tf
        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax
        return any(device.platform == "gpu" for device in jax.devices())
    if backend == "torch":
        import torch
        return torch.cuda.is_available()
    return False

