"""The README's pretrained command trained in mixed bfloat16, paired with its float32 run.

    .venv/bin/python benchmarks/bench_bf16_retrain.py          # about 35-60 min (the float32
                                                               # run reused; as long again without)
    .venv/bin/python benchmarks/bench_bf16_retrain.py --quick  # a smoke run

The float32 run is the README's pretrained command (bench_encoders.BASELINE: Lite0 at 224x224,
15 epochs; run folder isic2018-224-lite0, reused when it holds that finished run). The bf16 run
is the same command with `--mixed-precision` (run folder isic2018-224-lite0-bf16). Both are
scored on the test part (plain and with TTA + post-processing, with per-size bins and the count
below 0.6); the bf16 run is paired image by image with the float32 one (mean difference ±
standard error; which of its 20 worst images bf16 fixes and which it breaks). The two runs'
times come from different sessions, so the speed ratio is measured here, in one window: the
train step of both networks (random data, the command's batch). On a CPU without native bf16
the library trains `mixed` in float32, so the benchmark says so and trains nothing. Same data,
split (6:2:2, seed 0) and test part as bench_isic2018.py.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import segment
from segment.training import compile_model

import bench_isic2018 as isic
from bench_encoders import BASELINE, QUICK
from bench_second_look import changes
from measure import train_images_per_second

POLICY = "mixed_bfloat16"


def training_speeds(config, steps):
    """Train-step images/s of `config`'s network in float32 and in mixed bfloat16."""
    size = config.data.image_size[0]
    speeds = {}
    for policy in ("float32", POLICY):
        model = segment.create_model((size, size, 3), config.model,
                                     dtype_policy=None if policy == "float32" else policy)
        compile_model(model, learning_rate=config.train.learning_rate, loss=config.train.loss)
        speeds[policy] = train_images_per_second(model, config.data.batch_size, steps)
    return speeds


def without_native_bf16():
    """A bf16 benchmark's result on a CPU without native bf16, where the library trains
    `mixed` in float32 (so it trains nothing); None on a CPU that has it."""
    if segment.resolve_precision("mixed") != POLICY:
        return {"skipped": "no native bf16 on this CPU: the library trains `mixed` in float32"}
    return None


def measure(data, runs, baseline, steps):
    """The module docstring's runs: a dict of their results."""
    if skipped := without_native_bf16():
        return skipped
    base_name = f"{baseline.data.image_size[0]}-lite0"
    bf16_name = f"{base_name}-bf16"
    base_model, base_run = isic.trained(data, runs / f"isic2018-{base_name}", baseline)
    base_dice = isic.test_dice(base_run)
    bf16 = isic.changed_runs(data, baseline, runs, {bf16_name: {"precision": "mixed"}},
                             base_dice, None, against="float32")[bf16_name]
    bf16.update(changes(isic.test_dice(segment.RunFolder(runs / f"isic2018-{bf16_name}")),
                        base_dice))
    speeds = training_speeds(baseline, steps)
    return {"float32": {"run": f"isic2018-{base_name}", **isic.run_scores(base_run, base_model)},
            "bf16": {"run": f"isic2018-{bf16_name}", **bf16},
            "train_images_per_s": speeds, "bf16_speedup": speeds[POLICY] / speeds["float32"]}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, lambda data, runs, args: measure(
        data, runs, *((QUICK, 2) if args.quick else (BASELINE, 20))))
