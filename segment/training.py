"""Train: `train_model` runs `model.fit` with the paper's schedule, a best-epoch checkpoint and a
backup a killed run resumes from.

A run folder after `train_model(model, train_ds, val_ds, TrainConfig(epochs=30), "runs/x")`
(`RunFolder` owns the names; see run_folder.py):

    runs/x/model.keras    the best epoch on validation dice (written atomically)
    runs/x/best.json      which epoch that was and its validation dice
    runs/x/log.csv        one row per epoch: loss, dice, val_loss, val_dice, learning_rate,
                          epoch_seconds
    runs/x/tensorboard/   TensorBoard logs (where TensorFlow is installed)
    runs/x/config.json    the settings and library versions
    runs/x/backup/        only while training: a killed run resumes from here when restarted

The model files themselves are written and read by `saving.py`.
"""

import contextlib
import dataclasses
import importlib.util
import logging
import math
import shutil
import sys
import tempfile

import keras

from .callbacks import (
    BestCheckpoint,
    EpochTimer,
    ResumableBackup,
    UnvalidatedAsNaN,
    ValidatedEarlyStopping,
    ValidatedReduceLROnPlateau,
)
from .config import TrainConfig, with_overrides
from .distribute import OneDevice, check_last_batches, is_chief, task_id
from .fine_tuning import (
    EncoderLearningRate,
    EncoderScaledAdam,
    check_encoder_settings,
    inner_optimizer,
)
from .losses import get_loss
from .metrics import DiceCoefficient
from .model import any_input_size, encoder_settings, pretrained_encoder
from .run_folder import RunFolder
from .saving import init_model_record, start_from

__all__ = ["compile_model", "set_seed", "train_model"]

logger = logging.getLogger(__name__)


def set_seed(seed):
    """Seed Python, NumPy and the backend, so CPU training with the same data is repeatable.

    Example:
        >>> set_seed(0)
    """
    keras.utils.set_random_seed(int(seed))


def compile_model(model, *, learning_rate=TrainConfig.learning_rate, loss=TrainConfig.loss,
                  scale_encoder=False):
    """Compile with Adam, a per-image loss and the per-image `DiceCoefficient` metric ("dice").

    A model whose layers compute in float16 gets Keras' dynamic loss scaling. With
    `scale_encoder`, the optimizer is `EncoderScaledAdam` over the model's pretrained encoder,
    whose learning rate `train_model` then sets per epoch (`TrainConfig.encoder_lr_scale` and
    `encoder_frozen_epochs`). The optimizer is built here, over the weights that train now (so
    TensorFlow traces the first training step once; change which weights train, compile again).

    Raises:
        ValueError: `scale_encoder` for a model without a pretrained encoder.

    Example:
        >>> model = compile_model(model, learning_rate=1e-3, loss="bce_dice")
        >>> model.compiled, type(model.optimizer).__name__
        (True, 'Adam')
    """
    if scale_encoder:
        encoder = pretrained_encoder(model)
        if encoder is None:
            raise ValueError(f"model '{model.name}' has no pretrained encoder whose learning "
                             f"rate could be scaled: build it with encoder='efficientnet_lite0'")
        optimizer = EncoderScaledAdam(learning_rate, encoder.trainable_variables)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    if any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=get_loss(loss), metrics=[DiceCoefficient()])
    optimizer.build(model.trainable_variables)  # not in the first step: see train_model
    return model


def train_model(model, train_ds, val_ds, config, run_dir, *, first_train_ds=None, callbacks=(),
                strategy=None, verbose=None, **overrides):
    """Train `model`, keep the best epoch, and make a killed run resumable.

    Compiles the model (Adam, the loss, per-image dice) unless it is already compiled.
    Callbacks: the learning rate schedule, TerminateOnNaN, a checkpoint of the best epoch on
    validation dice (`model.keras`, written atomically), a CSV log, a TensorBoard log (where
    TensorFlow is installed), optional early stopping, and BackupAndRestore: started again
    with the same `run_dir` and settings after being killed, training resumes after the last
    completed epoch and runs to `config.epochs` in total. When training ends the model holds
    the best epoch's weights. The run folder (`RunFolder`) decides what an earlier run left
    there may be kept: given a folder no run has opened yet, `train_model` opens it with its
    `TrainConfig`, the model's encoder and the SHA-256 of an `init_model` as the settings
    (`RunFolder.open`; a resumed run must start from the same file), so a folder
    holding another run's model is refused; clear it first (`RunFolder(path).clear()`) or
    choose another. The whole workflow (`train_and_evaluate`) opens it with every setting
    and the pairs instead.

    Args:
        model: Keras model, e.g. from `create_model`.
        train_ds: Training data set of (images, masks) batches, e.g. from `create_generator`.
        val_ds: Validation data set, or None (then the best epoch is chosen on training dice).
        config: `TrainConfig`, or an int as shorthand for `TrainConfig(epochs=n)`. Its
            schedule: "exponential" gives epoch e the rate learning_rate * lr_decay ** e;
            "cosine" learning_rate * (1 + cos(pi * e / epochs)) / 2; "plateau" halves the rate
            after 5 epochs without a lower validation loss (training loss without `val_ds`).
            With `validate_every` n > 1, validation runs after every n-th epoch and the last;
            the other epochs log NaN validation values (log.csv, History, callbacks).
            `precision` is not applied here: build the model with it
            (`create_model(dtype_policy=...)`). With `first_epochs`, those epochs train on
            `first_train_ds` (the model takes its other size meanwhile: `any_input_size`).
            With `init_model`, training starts from that trained model's weights
            (`saving.start_from`: the same network, checked weight by weight before the run
            folder is touched; a resumed run restores its backup over them).
        run_dir: Folder (or `RunFolder`, opened or not) for the model, logs and backup.
        first_train_ds: Training data set of the first `config.first_epochs` epochs, e.g.
            from `create_generator` at `config.first_size`; needed exactly when those are set.
        callbacks: Further Keras callbacks, run after the built-in ones.
        strategy: The tf.distribute strategy the model was built under (see
            `segment.create_strategy`); None uses the model's own. Under several workers only
            the chief writes `run_dir`; the others write to temporary folders they remove.
        verbose: Keras' progress output: 0 silent, 1 progress bar, 2 one line per epoch.
            Defaults to the progress bar in a terminal and one line per epoch otherwise (a
            log file then holds no progress-bar redraws).
        **overrides: `TrainConfig` fields to replace, e.g. `learning_rate=1e-3`.

    Returns:
        keras.callbacks.History of the epochs run in this call. Its attribute
        `stopped_on_nan` is True when training stopped because the loss became NaN.

    Raises:
        RunFolderError: `run_dir`, not yet opened, holds another run's results (clear it with
            `RunFolder(run_dir).clear()`, or open it with `RunFolder.open(..., overwrite=True)`),
            or another process trains there (`RunFolder.lock`).
        ValueError: the model was not built under `strategy`, or a data set's last batch
            would leave one of its replicas without images (`check_last_batches`); the model
            is an inference-only SavedModel; `first_train_ds` without `first_epochs` or the
            other way round; encoder settings it would not apply (a model compiled without
            `EncoderScaledAdam`, frozen epochs while the encoder's batch norms train); or an
            `init_model` of another network. ModelLoadError: `init_model` does not load.

    Example:
        >>> train_ds = segment.create_generator(split.train, image_size=(32, 32), batch_size=4)
        >>> val_ds = segment.create_generator(split.val, image_size=(32, 32), batch_size=4)
        >>> history = train_model(model, train_ds, val_ds, TrainConfig(epochs=2), tmp / "run",
        ...                       learning_rate=1e-3, verbose=0)
        >>> sorted(history.history)
        ['dice', 'epoch_seconds', 'learning_rate', 'loss', 'val_dice', 'val_loss']
        >>> (tmp / "run" / "model.keras").exists(), len(history.history["loss"])
        (True, 2)
    """
    if isinstance(config, int) and not isinstance(config, bool):
        config = TrainConfig(epochs=config)
    config = with_overrides(config, TrainConfig, overrides)
    if any(isinstance(layer, keras.layers.TFSMLayer) for layer in model.layers):
        raise ValueError(f"'{model.name}' is a TensorFlow SavedModel loaded for inference only; "
                         f"it cannot be trained. Train a model from create_model instead")
    if (first_train_ds is None) != (config.first_epochs == 0):
        raise ValueError(f"first_train_ds and TrainConfig.first_epochs go together. Received: "
                         f"first_epochs={config.first_epochs}, first_train_ds={first_train_ds}")
    phases = [(first_train_ds, config.first_epochs)] if first_train_ds is not None else []
    phases.append((train_ds, config.epochs))
    strategy = _check_strategy(model, strategy)
    check_last_batches(strategy, training=train_ds, validation=val_ds, first=first_train_ds)
    chief = is_chief(strategy)
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
    if config.init_model:  # before the folder opens: another network leaves it untouched
        with strategy.scope():
            start_from(model, config.init_model)  # a resumed run restores its backup over it
    opened_here = run.resuming is None  # else opened by train_and_evaluate, which releases it
    if opened_here:
        run.open({"model": encoder_settings(model), "train": dataclasses.asdict(config),
                  **init_model_record(config.init_model)}, strategy=strategy)
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
                compile_model(model, learning_rate=config.learning_rate, loss=config.loss,
                              scale_encoder=config.scales_encoder)
            check_encoder_settings(model, config)
            # A model compiled by hand: its optimizer built here, eagerly. Built in the first
            # training step, its variables would make TensorFlow trace that step twice.
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        history = _fit(model, phases, val_ds, config, write_to, resuming, callbacks, verbose)
        if write_to.model.exists():
            model.load_weights(write_to.model)
    finally:
        if not chief:
            shutil.rmtree(write_to.path, ignore_errors=True)
        if opened_here:
            run.release()
    return history


def _fit(model, phases, val_ds, config, run, resuming, callbacks, verbose):
    """model.fit with the built-in callbacks writing into the RunFolder `run`, once for each
    (training data set, last epoch) of `phases`; the first of two trains at another size."""
    monitor, monitor_loss = ("val_dice", "val_loss") if val_ds is not None else ("dice", "loss")
    if config.lr_schedule == "exponential":
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch: float(config.learning_rate * config.lr_decay**epoch))
    elif config.lr_schedule == "cosine":
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch: float(config.learning_rate
                                * (1 + math.cos(math.pi * epoch / config.epochs)) / 2))
    else:
        schedule = ValidatedReduceLROnPlateau(monitor_loss, factor=0.5,
                                              patience=math.ceil(5 / config.validate_every))
    all_callbacks = [
        EpochTimer(),  # first: the later ones (log.csv, TensorBoard) see its epoch_seconds
        schedule,
        keras.callbacks.TerminateOnNaN(),
        BestCheckpoint(run.model, run.best, monitor, resuming=resuming),
        *_tensorboard(run),
        *([UnvalidatedAsNaN()] if val_ds is not None else []),  # then log.csv and History
        keras.callbacks.CSVLogger(str(run.log), append=True),
        ResumableBackup(run.backup, run.log),  # last: saves an epoch
        *callbacks,
    ]
    if isinstance(inner_optimizer(model.optimizer), EncoderScaledAdam):  # scale from config
        all_callbacks.insert(2, EncoderLearningRate(config.encoder_lr_scale,
                                                     config.encoder_frozen_epochs))
    if config.early_stopping_patience is not None:
        all_callbacks.insert(all_callbacks.index(schedule) + 1, ValidatedEarlyStopping(
            monitor, mode="max",
            patience=math.ceil(config.early_stopping_patience / config.validate_every)))
    if resuming:
        logger.info("resuming the interrupted run in '%s'", run.path)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    validated_epochs = [epoch for epoch in range(1, config.epochs + 1)  # counted from 1
                        if epoch % config.validate_every == 0 or epoch == config.epochs]
    history, first_epoch = None, 0
    for number, (train_ds, last_epoch) in enumerate(phases, 1):
        with any_input_size(model) if number < len(phases) else contextlib.nullcontext():
            phase = model.fit(train_ds, validation_data=val_ds, initial_epoch=first_epoch,
                              epochs=last_epoch, shuffle=False, callbacks=all_callbacks,
                              steps_per_epoch=config.steps_per_epoch,
                              validation_freq=validated_epochs, verbose=verbose)
        if history is not None:  # the phases' epochs in one History
            phase.epoch = history.epoch + phase.epoch
            phase.history = {name: history.history.get(name, []) + phase.history.get(name, [])
                             for name in {**history.history, **phase.history}}
        history, first_epoch = phase, last_epoch
        if model.stop_training:  # early stopping or a NaN loss ends every phase
            break
    shutil.rmtree(run.backup, ignore_errors=True)  # kept between phases (see ResumableBackup)
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
