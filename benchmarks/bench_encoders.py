"""Stronger encoders of the same family: EfficientNet-Lite1 and -Lite2 against Lite0 on ISIC 2018.

    .venv/bin/python benchmarks/bench_encoders.py                           # both: about 2 h 20 min
    .venv/bin/python benchmarks/bench_encoders.py --only efficientnet_lite2  # one: about 1 h 10 min
    .venv/bin/python benchmarks/bench_encoders.py --quick                   # a smoke run

An interrupted variant resumes when the same command runs again, as long as it plans the same
number of epochs; `--epochs N` fixes that number when the machine's speed has changed since.

The baseline is the README's pretrained command (Lite0 at 224x224, 15 epochs, batch 8, cosine
from 1e-3, bce_dice; run folder isic2018-224-lite0, reused when it holds that finished run, else
trained first). Each larger variant trains at SIDE (256: the multiple of 32 nearest its own 240
and 260 px) with as many epochs as fit in BUDGET_MINUTES, the issue's limit on the training of
everything a prediction uses: its training speed against Lite0's at 224 (random data, batch 8,
measured in this process) times the baseline's median epoch gives its epoch. Same data, split
(6:2:2, seed 0) and test part as bench_isic2018.py. For each run: the test part's mean, median,
ISIC score, pooled dice, size bins and count below 0.6 (plain and with TTA + post-processing),
its training time, the seconds a plain evaluation of the test part takes, the paired difference
image by image with the baseline, and which of the baseline's 20 worst test images it fixes
(dice up by 0.2 or more) and which images it breaks (down by 0.2 or more).

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402
from segment.training import compile_model  # noqa: E402

import bench_isic2018 as isic  # noqa: E402
from bench_second_look import changes  # noqa: E402
from measure import train_images_per_second  # noqa: E402

BASELINE = isic.RECIPE.replace(image_size=(224, 224), epochs=15, encoder="efficientnet_lite0")
VARIANTS = ("efficientnet_lite1", "efficientnet_lite2")
SIDE = 256
BUDGET_MINUTES = 60
QUICK = isic.QUICK.replace(encoder="efficientnet_lite0")  # 32x32, base 2 filters, 1 epoch


def training_speeds(baseline, variants, side, steps):
    """Training images/s of the baseline's network and of each variant's at `side`, compiled
    as `train_model` compiles them (random data, the baseline's batch)."""
    batch = baseline.data.batch_size
    networks = [(baseline.model.encoder, baseline.data.image_size[0]),
                *((variant, side) for variant in variants)]
    speeds = {}
    for encoder, size in networks:
        model = compile_model(
            segment.create_model((size, size, 3), baseline.model, encoder=encoder),
            learning_rate=baseline.train.learning_rate, loss=baseline.train.loss)
        speeds[encoder] = train_images_per_second(model, batch, steps)
    return speeds


def measure(data, runs, baseline, variants, side, budget_seconds, steps, epochs=None):
    """The module docstring's runs: a dict of their results. `epochs`, when given, replaces
    the number of epochs that fit in the budget."""
    base_name = f"{baseline.data.image_size[0]}-lite0"
    _, base_run = isic.trained(data, runs / f"isic2018-{base_name}", baseline)
    base_scores = isic.run_scores(base_run)
    base_dice = isic.test_dice(base_run)
    speeds = training_speeds(baseline, variants, side, steps)
    results = {"baseline": {"run": base_name, **base_scores}, "train_images_per_s": speeds,
               "budget_minutes": budget_seconds / 60}
    for variant in variants:
        epoch_seconds = (base_scores["median_epoch_seconds"] * speeds[baseline.model.encoder]
                         / speeds[variant])
        name = f"{side}-{variant.removeprefix('efficientnet_')}"
        settings = {"encoder": variant, "image_size": (side, side),
                    "epochs": epochs or max(1, math.floor(budget_seconds / epoch_seconds))}
        scores = isic.changed_runs(data, baseline, runs, {name: settings}, base_dice,
                                   None, against="baseline")[name]
        run = segment.RunFolder(runs / f"isic2018-{name}")
        model, test = segment.load_model(run.model), segment.load_split(base_run.split).test
        start = time.perf_counter()
        segment.evaluate(model, test, progress=False)
        scores["evaluate_seconds"] = time.perf_counter() - start
        scores["predicted_epoch_seconds"] = epoch_seconds
        scores["train_images_per_s"] = {encoder: speeds[encoder]
                                        for encoder in (baseline.model.encoder, variant)}
        scores["date"] = time.strftime("%Y-%m-%d")
        scores.update(changes(isic.test_dice(run), base_dice))
        results[name] = scores
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=VARIANTS, help="train and score one variant")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: synthetic data, tiny networks, functions eagerly")
    parser.add_argument("--epochs", type=int,
                        help="train for this many epochs instead of those that fit in the budget "
                             "at this run's measured speed: resumes a run whose machine measured "
                             "another speed when it started")
    args = parser.parse_args()
    variants = (args.only,) if args.only else VARIANTS
    if args.quick:
        with tempfile.TemporaryDirectory() as scratch:
            data = isic.quick_data(Path(scratch))
            results = measure(data, Path(scratch) / "runs", QUICK, variants, 32, 1, 2)
    else:
        results = measure(isic.ISIC2018, isic.HERE.parent / "runs", BASELINE, variants, SIDE,
                          BUDGET_MINUTES * 60, 20, args.epochs)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
