"""Train, save and load: `train_model` runs `model.fit` with the paper's schedule and safe files.

A run folder after `train_model(model, train_ds, val_ds, epochs, "runs/x")`:

    runs/x/model.keras    the best epoch on validation dice (written atomically)
    runs/x/best.json      which epoch that was and its validation dice
    runs/x/log.csv        one row per epoch: loss, dice, val_loss, val_dice, learning_rate
    runs/x/tensorboard/   TensorBoard logs
    runs/x/config.json    the settings and library versions
    runs/x/backup/        only while training: a killed run resumes from here when restarted
"""

import json
import logging
import math
import platform
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path, PurePosixPath

import keras
import numpy as np

from .config import TrainConfig
from .distribute import is_chief, task_id
from .errors import ModelLoadError, RunFolderError
from .files import atomic_path, write_json_atomic
from .layers import InstanceNormalization
from .losses import get_loss
from .metrics import DiceCoefficient

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

MODEL_FILE = "model.keras"
LR_SCHEDULES = ("exponential", "cosine", "plateau")
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
    """
    choices = ("float32", "mixed_bfloat16", "mixed_float16", "mixed")
    if precision not in choices:
        raise ValueError(f"Unknown precision. Received: precision={precision!r}; "
                         f"available: {choices}")
    if has_gpu is None:
        import tensorflow as tf
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
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
    """
    optimizer = keras.optimizers.Adam(learning_rate)
    if any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=get_loss(loss), metrics=[DiceCoefficient()])
    return model


def train_model(model, train_ds, val_ds, epochs, run_dir, *,
                learning_rate=TrainConfig.learning_rate, lr_decay=TrainConfig.lr_decay,
                lr_schedule=TrainConfig.lr_schedule, loss=TrainConfig.loss,
                early_stopping_patience=TrainConfig.early_stopping_patience,
                steps_per_epoch=None, callbacks=(), strategy=None, overwrite=False,
                settings=None, verbose=1):
    """Train `model`, keep the best epoch, and make a killed run resumable.

    Compiles the model (Adam, `loss`, per-image dice) unless it is already compiled. Callbacks:
    the learning rate schedule, TerminateOnNaN, a checkpoint of the best epoch on validation
    dice (`run_dir/model.keras`, written atomically), a CSV and a TensorBoard log, optional
    early stopping, and BackupAndRestore: started again with the same `run_dir` after being
    killed, training resumes after the last completed epoch and runs to `epochs` in total.
    When training ends the model holds the best epoch's weights.

    Args:
        model: Keras model, e.g. from `create_model`.
        train_ds: Training data set of (images, masks) batches, e.g. from `create_generator`.
        val_ds: Validation data set, or None (then the best epoch is chosen on training dice).
        epochs: Total number of epochs, counting those of a resumed run.
        run_dir: Folder for the model, logs and backup.
        learning_rate: Adam's initial learning rate. Defaults to 5e-4.
        lr_decay: With lr_schedule="exponential", the rate of epoch e is
            learning_rate * lr_decay ** e. Defaults to 0.985.
        lr_schedule: "exponential" (the paper's), "cosine" (from `learning_rate` at epoch 0
            down to 0 at `epochs`: learning_rate * (1 + cos(pi * e / epochs)) / 2) or
            "plateau" (halve after 5 epochs without a lower validation loss). Defaults to
            "exponential".
        loss: "dice" or "bce_dice" (used when compiling here). Defaults to "dice".
        early_stopping_patience: Stop after this many epochs without a better validation
            dice; None never stops early. Defaults to None.
        steps_per_epoch: Batches per epoch; None runs through `train_ds`.
        callbacks: Further Keras callbacks, run after the built-in ones.
        strategy: The tf.distribute strategy the model was built under (see
            `segment.create_strategy`); None uses the model's own. Under several workers only
            the chief writes `run_dir`; the others write to temporary folders they remove.
        overwrite: Replace a finished run found in `run_dir`. Defaults to False.
        settings: Optional dict of further settings to record in `config.json`.
        verbose: Keras' progress output: 0 silent, 1 progress bar, 2 one line per epoch.

    Returns:
        keras.callbacks.History of the epochs run in this call. Its attribute
        `stopped_on_nan` is True when training stopped because the loss became NaN.

    Raises:
        RunFolderError: `run_dir` holds a finished model and `overwrite` is False.
        ValueError: the model was not built under `strategy`.

    Example:
        >>> history = train_model(model, train_ds, val_ds, 30, "runs/first")  # doctest: +SKIP
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"Unknown lr_schedule. Received: lr_schedule={lr_schedule!r}; "
                         f"available: {LR_SCHEDULES}")
    strategy = _check_strategy(model, strategy)
    chief = is_chief(strategy)
    run_dir = Path(run_dir)
    resuming = (run_dir / "backup").exists()
    if (run_dir / MODEL_FILE).exists() and not resuming:
        if not overwrite:
            raise RunFolderError(f"'{run_dir}' already holds a finished model ({MODEL_FILE}); "
                                 f"pass overwrite=True (--overwrite) or choose another run folder")
        if chief:
            for stale in ["log.csv", "best.json", "tensorboard"]:
                _remove(run_dir / stale)
    # Every worker makes the same saves (they may need all replicas); only the chief's land in
    # run_dir. Other workers start from a copy of the chief's backup, so all resume alike.
    write_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix=f"segment-{task_id(strategy)}-"))
    write_dir.mkdir(parents=True, exist_ok=True)
    if not chief and resuming:
        shutil.copytree(run_dir / "backup", write_dir / "backup")
        if (run_dir / "best.json").exists():
            shutil.copy(run_dir / "best.json", write_dir / "best.json")
    try:
        with strategy.scope():
            if not model.compiled:
                compile_model(model, learning_rate=learning_rate, loss=loss)
        if chief:
            write_json_atomic(run_dir / "config.json", {
                "train": {"epochs": epochs, "learning_rate": learning_rate, "lr_decay": lr_decay,
                          "lr_schedule": lr_schedule, "loss": loss,
                          "steps_per_epoch": steps_per_epoch,
                          "early_stopping_patience": early_stopping_patience,
                          "strategy": type(strategy).__name__,
                          "replicas": strategy.num_replicas_in_sync},
                **(settings or {}),
                "versions": library_versions(),
            })
        history = _fit(model, train_ds, val_ds, epochs, write_dir, resuming, learning_rate,
                       lr_decay, lr_schedule, early_stopping_patience, steps_per_epoch,
                       callbacks, verbose)
        if (write_dir / MODEL_FILE).exists():
            model.load_weights(write_dir / MODEL_FILE)
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    return history


def _fit(model, train_ds, val_ds, epochs, write_dir, resuming, learning_rate, lr_decay,
         lr_schedule, early_stopping_patience, steps_per_epoch, callbacks, verbose):
    """model.fit with the built-in callbacks writing into `write_dir`."""
    monitor = "val_dice" if val_ds is not None else "dice"
    if lr_schedule == "exponential":
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch: float(learning_rate * lr_decay**epoch))
    elif lr_schedule == "cosine":
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch: float(learning_rate * (1 + math.cos(math.pi * epoch / epochs)) / 2))
    else:
        schedule = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=5)
    all_callbacks = [
        schedule,
        keras.callbacks.TerminateOnNaN(),
        _BestCheckpoint(write_dir / MODEL_FILE, write_dir / "best.json", monitor,
                        resuming=resuming),
        keras.callbacks.CSVLogger(str(write_dir / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(write_dir / "tensorboard"), write_graph=False,
                                    profile_batch=0),
        _ResumableBackup(write_dir / "backup", write_dir / "log.csv"),  # last: saves an epoch
        *callbacks,
    ]
    if early_stopping_patience is not None:
        all_callbacks.append(keras.callbacks.EarlyStopping(monitor, mode="max",
                                                           patience=early_stopping_patience))
    if resuming:
        logger.info("resuming the interrupted run in '%s'", write_dir)
    with warnings.catch_warnings():
        # The pipeline drops unreadable files, so its length is unknown until the first epoch
        # ends; Keras warns about that once per data set, which is expected here.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, shuffle=False,
                            callbacks=all_callbacks, steps_per_epoch=steps_per_epoch,
                            verbose=verbose)
    history.stopped_on_nan = any(not math.isfinite(value)
                                 for value in history.history.get("loss", []))
    if history.stopped_on_nan:
        logger.error("training stopped: the loss became NaN; '%s' keeps the best epoch before "
                     "it (try a lower learning rate)", write_dir / MODEL_FILE)
    return history


def _check_strategy(model, strategy):
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
    `Addons>InstanceNormalization` load that layer as ours, with its weights.

    Args:
        path: A `.keras` or `.h5` file.
        compile: Also restore the optimizer, loss and metrics. Defaults to False (enough to
            predict and evaluate; `train_model` compiles what it trains).

    Returns:
        keras.Model.

    Raises:
        ModelLoadError: the path is missing, is a TensorFlow SavedModel folder (the message
            says how to convert it), is not a model file, or is refused by safe mode.

    Example:
        >>> model = load_model("runs/first/model.keras")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            raise ModelLoadError(
                f"'{path}' is a TensorFlow SavedModel folder, which Keras 3 cannot load as a "
                f"model. Convert it where it was made (TensorFlow 2.15 or older): "
                f"`tf.keras.models.load_model('{path}').save('model.h5')`, then load the .h5")
        raise ModelLoadError(f"'{path}' is a folder, not a model file (.keras or .h5)")
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
    """Versions of Python and the main libraries, for config.json and summaries."""
    import PIL
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "pillow": PIL.__version__}


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


def _remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
