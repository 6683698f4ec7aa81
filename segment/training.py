"""Train, save and load: `train_model` runs `model.fit` with the paper's schedule and safe files.

A run folder after `train_model(model, train_ds, val_ds, TrainConfig(epochs=30), "runs/x")`
(`RunFolder` owns the names; see run_folder.py):

    runs/x/model.keras    the best epoch on validation dice (written atomically)
    runs/x/best.json      which epoch that was and its validation dice
    runs/x/log.csv        one row per epoch: loss, dice, val_loss, val_dice, learning_rate,
                          epoch_seconds
    runs/x/tensorboard/   TensorBoard logs (where TensorFlow is installed)
    runs/x/config.json    the settings and library versions
    runs/x/backup/        only while training: a killed run resumes from here when restarted

`load_model` reads `.keras` files, legacy tensorflow-addons `.h5` files and, for inference
only, TensorFlow SavedModel folders.
"""

import dataclasses
import importlib.metadata
import importlib.util
import json
import logging
import math
import platform
import shutil
import tempfile
import time
import warnings
import zipfile
from pathlib import Path, PurePosixPath

import keras

from ._version import __version__
from .config import PRECISIONS, TrainConfig, with_overrides
from .distribute import OneDevice, is_chief, task_id
from .errors import ModelLoadError
from .files import atomic_path, write_json_atomic
from .layers import InstanceNormalization
from .losses import get_loss
from .metrics import DiceCoefficient
from .run_folder import RunFolder

__all__ = [
    "compile_model",
    "cpu_has_native_bf16",
    "library_versions",
    "load_model",
    "resolve_precision",
    "save_model",
    "set_seed",
    "train_model",
]

logger = logging.getLogger(__name__)

# Distributions whose installed version config.json records, by the name it records.
_VERSIONED = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",),
              "numpy": ("numpy",), "pillow": ("pillow",)}
# Names under which other code saved instance normalization; all load as ours.
_LEGACY_OBJECTS = {
    "Addons>InstanceNormalization": InstanceNormalization,
    "InstanceNormalization": InstanceNormalization,
}


def set_seed(seed):
    """Seed Python, NumPy and the backend, so CPU training with the same data is repeatable.

    Example:
        >>> set_seed(0)
    """
    keras.utils.set_random_seed(int(seed))


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
        has_gpu = _backend_has_gpu()
    if precision == "mixed":
        precision = "mixed_float16" if has_gpu else "mixed_bfloat16"
    if precision == "mixed_bfloat16" and not has_gpu and not cpu_has_native_bf16():
        logger.warning("this CPU has no native bfloat16 (no avx512_bf16/amx_bf16 flag), where "
                       "mixed_bfloat16 trains several times slower: using float32 instead")
        return "float32"
    return precision


def compile_model(model, *, learning_rate=TrainConfig.learning_rate, loss=TrainConfig.loss):
    """Compile with Adam, a per-image loss and the per-image `DiceCoefficient` metric ("dice").

    A model whose layers compute in float16 gets Keras' dynamic loss scaling.

    Example:
        >>> model = compile_model(create_model((32, 32, 3), base_filters=4, depth=3),
        ...                       learning_rate=1e-3, loss="bce_dice")  # doctest: +SKIP
    """
    optimizer = keras.optimizers.Adam(learning_rate)
    if any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=get_loss(loss), metrics=[DiceCoefficient()])
    return model


def train_model(model, train_ds, val_ds, config, run_dir, *, callbacks=(), strategy=None,
                overwrite=False, settings=None, verbose=1, **overrides):
    """Train `model`, keep the best epoch, and make a killed run resumable.

    Compiles the model (Adam, the loss, per-image dice) unless it is already compiled.
    Callbacks: the learning rate schedule, TerminateOnNaN, a checkpoint of the best epoch on
    validation dice (`model.keras`, written atomically), a CSV log, a TensorBoard log (where
    TensorFlow is installed), optional early stopping, and BackupAndRestore: started again
    with the same `run_dir` and settings after being killed, training resumes after the last
    completed epoch and runs to `config.epochs` in total. When training ends the model holds
    the best epoch's weights. The run folder (`RunFolder`) decides what an earlier run left
    there may be kept.

    Args:
        model: Keras model, e.g. from `create_model`.
        train_ds: Training data set of (images, masks) batches, e.g. from `create_generator`.
        val_ds: Validation data set, or None (then the best epoch is chosen on training dice).
        config: `TrainConfig`, or an int as shorthand for `TrainConfig(epochs=n)`. Its
            schedule: "exponential" gives epoch e the rate learning_rate * lr_decay ** e;
            "cosine" learning_rate * (1 + cos(pi * e / epochs)) / 2; "plateau" halves the rate
            after 5 epochs without a lower validation loss. `precision` is not applied here:
            build the model with it (`create_model(dtype_policy=...)`).
        run_dir: Folder (or `RunFolder`) for the model, logs and backup.
        callbacks: Further Keras callbacks, run after the built-in ones.
        strategy: The tf.distribute strategy the model was built under (see
            `segment.create_strategy`); None uses the model's own. Under several workers only
            the chief writes `run_dir`; the others write to temporary folders they remove.
        overwrite: Clear a finished run, a model or a killed run with other settings found in
            `run_dir` (everything the earlier run wrote). Defaults to False.
        settings: Optional dict of further settings recorded in `config.json` (and compared
            when resuming: "data", "model" and "pairs").
        verbose: Keras' progress output: 0 silent, 1 progress bar, 2 one line per epoch.
        **overrides: `TrainConfig` fields to replace, e.g. `learning_rate=1e-3`.

    Returns:
        keras.callbacks.History of the epochs run in this call. Its attribute
        `stopped_on_nan` is True when training stopped because the loss became NaN.

    Raises:
        RunFolderError: `run_dir` holds another run's results and `overwrite` is False.
        ValueError: the model was not built under `strategy`, or is an inference-only
            SavedModel.

    Example:
        >>> history = train_model(model, train_ds, val_ds, TrainConfig(epochs=30),
        ...                       "runs/first")  # doctest: +SKIP
        >>> history = train_model(model, train_ds, None, 2, "runs/quick",
        ...                       learning_rate=1e-3)  # doctest: +SKIP
    """
    if isinstance(config, int) and not isinstance(config, bool):
        config = TrainConfig(epochs=config)
    config = with_overrides(config, TrainConfig, overrides)
    if any(isinstance(layer, keras.layers.TFSMLayer) for layer in model.layers):
        raise ValueError(f"'{model.name}' is a TensorFlow SavedModel loaded for inference only; "
                         f"it cannot be trained. Train a model from create_model instead")
    strategy = _check_strategy(model, strategy)
    chief = is_chief(strategy)
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
    if run.resuming is None and chief:  # not yet decided by train_and_evaluate
        run.begin({"train": dataclasses.asdict(config), **(settings or {}),
                   "distribution": {"strategy": type(strategy).__name__,
                                    "replicas": strategy.num_replicas_in_sync},
                   "versions": library_versions()}, overwrite=overwrite)
    elif run.resuming is None:
        run.join()
    resuming = run.resuming
    # Every worker makes the same saves (they may need all replicas); only the chief's land in
    # run_dir. Other workers start from a copy of the chief's backup, so all resume alike.
    write_to = run if chief else RunFolder(tempfile.mkdtemp(prefix=f"segment-{task_id(strategy)}-"))
    if not chief and resuming:
        shutil.copytree(run.backup, write_to.backup)
        if run.best.exists():
            shutil.copy(run.best, write_to.best)
    try:
        with strategy.scope():
            if not model.compiled:
                compile_model(model, learning_rate=config.learning_rate, loss=config.loss)
        history = _fit(model, train_ds, val_ds, config, write_to, resuming, callbacks, verbose)
        if write_to.model.exists():
            model.load_weights(write_to.model)
    finally:
        if not chief:
            shutil.rmtree(write_to.path, ignore_errors=True)
    return history


def _fit(model, train_ds, val_ds, config, run, resuming, callbacks, verbose):
    """model.fit with the built-in callbacks writing into the RunFolder `run`."""
    monitor = "val_dice" if val_ds is not None else "dice"
    if config.lr_schedule == "exponential":
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch: float(config.learning_rate * config.lr_decay**epoch))
    elif config.lr_schedule == "cosine":
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch: float(config.learning_rate
                                * (1 + math.cos(math.pi * epoch / config.epochs)) / 2))
    else:
        schedule = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=5)
    all_callbacks = [
        _EpochTimer(),  # first: the later ones (log.csv, TensorBoard) see its epoch_seconds
        schedule,
        keras.callbacks.TerminateOnNaN(),
        _BestCheckpoint(run.model, run.best, monitor, resuming=resuming),
        keras.callbacks.CSVLogger(str(run.log), append=True),
        *_tensorboard(run),
        _ResumableBackup(run.backup, run.log),  # last: saves an epoch
        *callbacks,
    ]
    if config.early_stopping_patience is not None:
        all_callbacks.append(keras.callbacks.EarlyStopping(
            monitor, mode="max", patience=config.early_stopping_patience))
    if resuming:
        logger.info("resuming the interrupted run in '%s'", run.path)
    with warnings.catch_warnings():
        # The pipeline drops unreadable files, so its length is unknown until the first epoch
        # ends; Keras warns about that once per data set, which is expected here.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs,
                            shuffle=False, callbacks=all_callbacks,
                            steps_per_epoch=config.steps_per_epoch, verbose=verbose)
    history.stopped_on_nan = any(not math.isfinite(value)
                                 for value in history.history.get("loss", []))
    if history.stopped_on_nan:
        logger.error("training stopped: the loss became NaN; '%s' keeps the best epoch before "
                     "it (try a lower learning rate)", run.model)
    return history


def _tensorboard(run):
    """The TensorBoard callback, where TensorFlow (which writes its logs) is installed."""
    if importlib.util.find_spec("tensorflow") is None:
        logger.info("TensorFlow is not installed: no TensorBoard logs (log.csv has every epoch)")
        return []
    return [keras.callbacks.TensorBoard(str(run.tensorboard), write_graph=False,
                                        profile_batch=0)]


def _check_strategy(model, strategy):
    if keras.backend.backend() != "tensorflow":  # JAX, PyTorch: one device
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            raise ValueError(f"tf.distribute strategies need the TensorFlow backend; Keras "
                             f"runs on {keras.backend.backend()}")
        return strategy or OneDevice()
    if strategy is None:
        return model.distribute_strategy
    if model.distribute_strategy is not strategy:
        raise ValueError("the model was not built under this strategy: create it inside "
                         "`with strategy.scope():` and pass that same strategy")
    return strategy


def save_model(model, path):
    """Save `model` as a `.keras` file, atomically: a failed write leaves any old file intact.

    Args:
        model: Keras model.
        path: Output path ending in `.keras`.

    Example:
        >>> save_model(model, "runs/first/model.keras")  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"save_model writes the .keras format; the path must end in '.keras'. "
                         f"Received: path='{path}'")
    with atomic_path(path) as tmp:
        model.save(tmp)
    logger.info("saved the model to '%s'", path)


def load_model(path, *, compile=False):
    """Load a model saved by this library, by Keras 3, or by old tensorflow-addons code.

    `.keras` files load with `safe_mode=True`: a file carrying Python code (a `Lambda`
    layer) is refused, never executed. Legacy `.h5` files whose config names
    `Addons>InstanceNormalization` load that layer as ours, with its weights. A TensorFlow
    SavedModel folder (what `model.save("dir")` wrote with tf.keras 2.x and
    tensorflow-addons) loads for inference only: its `serving_default` signature wrapped in a
    `keras.layers.TFSMLayer` (TensorFlow backend); `train_model` refuses it.

    Args:
        path: A `.keras` or `.h5` file, or a SavedModel folder.
        compile: Also restore the optimizer, loss and metrics. Defaults to False (enough to
            predict and evaluate; `train_model` compiles what it trains).

    Returns:
        keras.Model.

    Raises:
        ModelLoadError: the path is missing, is not a model file or SavedModel folder, or is
            refused by safe mode.

    Example:
        >>> model = load_model("runs/first/model.keras")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return _load_saved_model(path)
        raise ModelLoadError(f"'{path}' is a folder, not a model file (.keras or .h5) nor a "
                             f"TensorFlow SavedModel (no saved_model.pb)")
    if not path.exists():
        raise ModelLoadError(f"model file '{path}' does not exist")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelLoadError(f"'{path}' is not a model file: expected a .keras or .h5 file")
    if path.suffix == ".keras":
        _check_keras_archive(path)
    try:
        return keras.models.load_model(path, custom_objects=_LEGACY_OBJECTS, compile=compile,
                                       safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise ModelLoadError(f"'{path}' could not be loaded as a Keras model: {error}") from None


def library_versions():
    """Versions of Python, the Keras backend and the main libraries, for config.json.

    TensorFlow, JAX and PyTorch are listed when installed (read from their package records,
    so none of them is imported here).

    Example:
        >>> {"python", "segment", "keras", "backend", "numpy"} <= set(library_versions())
        True
    """
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


def _backend_has_gpu():
    """Whether the Keras backend sees a GPU (CUDA) device."""
    backend = keras.backend.backend()
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


def _load_saved_model(path):
    """An inference-only keras.Model around a SavedModel folder's `serving_default` signature.

    The model takes float32 (batch, height, width, 3) images as the signature declares them
    and returns its one output (probabilities).
    """
    try:
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default",
                                       trainable=False, name="saved_model")
    except (ValueError, OSError, NotImplementedError) as error:
        raise ModelLoadError(f"'{path}' could not be loaded as a TensorFlow SavedModel: "
                             f"{_first_line(error)}") from None
    _, keyword_specs = layer.call_endpoint_fn.structured_input_signature
    if len(keyword_specs) != 1:
        raise ModelLoadError(f"'{path}': its serving_default signature takes "
                             f"{len(keyword_specs)} inputs ({', '.join(keyword_specs)}); "
                             f"an image model takes one")
    (spec,) = keyword_specs.values()
    inputs = keras.Input(shape=tuple(spec.shape[1:]), name="image")
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        if len(outputs) != 1:
            raise ModelLoadError(f"'{path}': its serving_default signature has "
                                 f"{len(outputs)} outputs ({', '.join(outputs)}); expected one")
        (outputs,) = outputs.values()
    logger.info("loaded the SavedModel '%s' for inference only", path)
    return keras.Model(inputs, outputs, name=f"saved_model_{path.name}")


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class _EpochTimer(keras.callbacks.Callback):
    """Add `epoch_seconds` (wall-clock time of the epoch, validation included) to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.started


class _BestCheckpoint(keras.callbacks.Callback):
    """Save the model atomically whenever `monitor` reaches a new maximum.

    The best value so far is kept in `state_path`, so a resumed run only replaces the model
    with a better one. An epoch with a NaN metric or loss never counts as better.
    """

    def __init__(self, path, state_path, monitor, *, resuming):
        super().__init__()
        self.path, self.state_path, self.monitor = Path(path), Path(state_path), monitor
        self.best = -math.inf
        if resuming and self.state_path.exists():
            self.best = json.loads(self.state_path.read_text())[monitor]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        # Diverged weights give NaN probabilities, which threshold to "background" and can still
        # score a finite dice: an epoch only counts if its losses are finite too.
        losses = [logs[name] for name in ("loss", "val_loss") if name in logs]
        if (value is None or not math.isfinite(value) or value <= self.best
                or not all(math.isfinite(loss) for loss in losses)):
            return
        self.best = float(value)
        save_model(self.model, self.path)
        write_json_atomic(self.state_path, {"epoch": epoch + 1, self.monitor: self.best})


class _ResumableBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that survives a backup cut short by a kill and keeps log.csv in step.

    Keras keeps a previous copy of the backup only from the second epoch on, so a process killed
    while writing the first backup leaves it unreadable: then training starts again from the
    first epoch, with a warning, instead of failing at every restart. On resuming, rows of
    log.csv for epochs that will run again are dropped, so each epoch has exactly one row.
    """

    def __init__(self, backup_dir, log_path):
        super().__init__(str(backup_dir))
        self.log_path = Path(log_path)

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError) as error:
            logger.warning("the backup in '%s' cannot be read (%s), probably cut short by a "
                           "kill: training starts again from the first epoch",
                           self.backup_dir, error)
            shutil.rmtree(self.backup_dir, ignore_errors=True)
        # Keras stores the restored epoch here; it is unset when nothing was restored.
        _trim_log(self.log_path, getattr(self.model, "_initial_epoch", None) or 0)


def _trim_log(path, num_epochs):
    """Keep the header and the rows of the first `num_epochs` epochs of a CSVLogger file.

    Trimmed in place, not replaced: CSVLogger already holds the file open for appending.
    """
    if not path.exists():
        return
    with open(path, "r+", encoding="utf-8") as log:
        lines = log.readlines()
        kept = lines[:1] + [row for row in lines[1:] if int(row.split(",", 1)[0]) < num_epochs]
        if len(kept) != len(lines):
            log.seek(0)
            log.writelines(kept)
            log.truncate()


def _check_keras_archive(path):
    """Refuse a `.keras` file that is not a zip or names a member outside its own folder."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelLoadError(f"'{path}' could not be loaded as a Keras model: it is not a "
                             f".keras (zip) archive ({error})") from None
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ModelLoadError(f"'{path}' refused: its member '{name}' points outside the "
                                 f"archive (path traversal)")
