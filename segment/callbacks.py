"""The callbacks `training.train_model` gives `model.fit`: each epoch's time, NaN validation
values for the epochs that do not validate, early stopping and the plateau schedule counting
validations only, the best epoch's model saved atomically, and a backup a killed run resumes from.
"""

import json
import logging
import math
import shutil
import time
from pathlib import Path

import keras

from .errors import SegmentError
from .files import write_json_atomic
from .saving import save_model

__all__ = ["BestCheckpoint", "EpochTimer", "ResumableBackup", "UnvalidatedAsNaN",
           "ValidatedEarlyStopping", "ValidatedReduceLROnPlateau"]

logger = logging.getLogger(__name__)


class EpochTimer(keras.callbacks.Callback):
    """Add `epoch_seconds` (wall-clock time of the epoch, validation included) to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.started


class UnvalidatedAsNaN(keras.callbacks.Callback):
    """Give an epoch that did not validate (`TrainConfig.validate_every`) NaN validation values,
    so log.csv keeps its columns and History one value per epoch for every name."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for name in [name for name in logs if not name.startswith("val_")]:
            if name not in ("learning_rate", "epoch_seconds"):
                logs.setdefault(f"val_{name}", math.nan)


class ValidatedEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that skips the epochs that did not validate (`validate_every`) instead of
    warning that its value is missing: its patience counts validations."""

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor in (logs or {}):
            super().on_epoch_end(epoch, logs)


class ValidatedReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau that judges only the epochs that validated (`validate_every`), its
    patience counting validations; it logs the learning rate on every epoch, as Keras' does."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or self.monitor in logs:
            super().on_epoch_end(epoch, logs)
        else:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model atomically whenever `monitor` reaches a new maximum.

    The best value so far is kept in `state_path`, so a resumed run only replaces the model
    with a better one. An epoch with a NaN metric or loss never counts as better.
    """

    def __init__(self, path, state_path, monitor, *, resuming):
        super().__init__()
        self.path, self.state_path, self.monitor = Path(path), Path(state_path), monitor
        self.best = -math.inf
        if resuming and self.state_path.exists():
            try:
                self.best = float(json.loads(self.state_path.read_text(encoding="utf-8"))[monitor])
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise SegmentError(f"'{self.state_path}' cannot be read ({type(error).__name__}: "
                                   f"{error}); it keeps the best {monitor} of the run to resume: "
                                   f"repair it, or start the run again (--overwrite)") from None

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


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that survives a backup cut short by a kill and keeps log.csv in step.

    It outlives each `model.fit` (`training.train_model` removes it): a run killed in its second
    phase restores in both phases' `fit`, the first then having no epoch left to run.

    With `double_checkpoint` Keras keeps the previous epoch's backup beside the latest and falls
    back to it when the latest was cut short by a kill. The first backup has no previous copy,
    so a process killed while writing it leaves it unreadable: then training starts again from
    the first epoch, with a warning, instead of failing at every restart. On resuming, rows of
    log.csv for epochs that will run again are dropped, so each epoch has exactly one row.
    """

    def __init__(self, backup_dir, log_path):
        super().__init__(str(backup_dir), double_checkpoint=True, delete_checkpoint=False)
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

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        self.model._initial_epoch = None  # else a later model.fit starts at the restored epoch


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


