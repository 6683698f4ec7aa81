"""A whole training epoch (input pipeline, saves, validation) against the bare train step.

    .venv/bin/python benchmarks/bench_epoch.py          # about 20 min
    .venv/bin/python benchmarks/bench_epoch.py --quick  # a smoke run

The settings are the README's pretrained command (bench_encoders.BASELINE: the Lite0 U-Net at
224x224, batch 8, the in-memory cache) in the library's fastest mode on this CPU (`--mixed-
precision`: bf16 where native, else float32), on the training and validation parts of its ISIC 2018
split (6:2:2, seed 0: 1,127 and 376 pairs). In one process: the bare train step (random data,
`train_images_per_second`), then `train_model` for EPOCHS epochs with `validate_every=3`
(validation after epochs 3, 6 and 7), then the bare step again: the machine's speed drifts by 10-20
% within minutes, so the bare step's images/s is the mean of the two. Each epoch is timed from its
start to the end of its last callback, so with its checkpoint and backup saves (log.csv's
epoch_seconds stops before them). Epoch 1 decodes and caches the files and is reported apart. Of
the later epochs, the median seconds of those without validation and of those with it give an
epoch's images/s as a fraction of the bare step's: with validation after every epoch, and over a
cycle of three epochs (two without, one with).

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import segment
from segment.pipeline import PAIRS_AS_THEY_ARE
from segment.training import compile_model

import bench_isic2018 as isic
import keras
import numpy as np
import pandas as pd
from bench_encoders import BASELINE, QUICK
from measure import train_images_per_second

EPOCHS, VALIDATE_EVERY = 7, 3


class WallClock(keras.callbacks.Callback):
    """Each epoch's seconds from its start to the end of every callback after it, so with the
    best-epoch checkpoint and the backup saved (log.csv's epoch_seconds ends before them)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):  # runs after the library's own callbacks
        self.seconds.append(time.perf_counter() - self.started)


def measure(pairs, config, steps, scratch):
    """The module docstring's measurement on the training and validation parts of `pairs`'
    split by `config`: a dict."""
    config = config.replace(epochs=EPOCHS, validate_every=VALIDATE_EVERY, precision="mixed")
    precision = segment.resolve_precision(config.train.precision)
    train, val, _ = segment.train_val_test_split(pairs, config.data)
    size = config.data.image_size[0]
    model = segment.create_model((size, size, 3), config.model,
                                 dtype_policy=None if precision == "float32" else precision)
    compile_model(model, learning_rate=config.train.learning_rate, loss=config.train.loss)
    before = train_images_per_second(model, config.data.batch_size, steps)
    train_ds = segment.create_generator(train, config.data, shuffle=True)
    val_ds = segment.create_generator(val, config.data, **PAIRS_AS_THEY_ARE)
    run = segment.RunFolder(scratch / "run")
    clock = WallClock()
    segment.train_model(model, train_ds, val_ds, config.train, run, callbacks=[clock],
                        verbose=0)
    after = train_images_per_second(model, config.data.batch_size, steps)
    bare = (before + after) / 2
    validated = pd.read_csv(run.log)["val_dice"].notna().to_numpy()
    seconds = np.asarray(clock.seconds)
    plain_seconds = float(np.median(seconds[1:][~validated[1:]]))  # epoch 1 fills the cache
    validated_seconds = float(np.median(seconds[1:][validated[1:]]))
    cycle_seconds = ((VALIDATE_EVERY - 1) * plain_seconds + validated_seconds) / VALIDATE_EVERY
    return {
        "precision": precision, "image_size": size, "train_pairs": len(train),
        "validation_pairs": len(val),
        "bare_step_images_per_s": {"before": before, "after": after, "mean": bare},
        "first_epoch_seconds": float(seconds[0]),
        "epoch_seconds": {"without_validation": plain_seconds,
                          "with_validation": validated_seconds},
        "fraction_of_bare_step": {
            "epoch without validation": len(train) / plain_seconds / bare,
            "validate_every 1": len(train) / validated_seconds / bare,
            f"validate_every {VALIDATE_EVERY}": len(train) / cycle_seconds / bare},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: synthetic data, a tiny network, functions eagerly")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.quick:
            pairs = isic.quick_data(Path(scratch))
            results = measure(pairs, QUICK, 2, Path(scratch))
        else:
            pairs = segment.find_pairs(isic.ISIC2018)
            results = measure(pairs, BASELINE, 20, Path(scratch))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
