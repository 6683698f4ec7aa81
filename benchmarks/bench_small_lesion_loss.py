"""Small lesions weighted in the loss (`--loss bce_dice_small`) against the README's bf16 run.

    .venv/bin/python benchmarks/bench_small_lesion_loss.py          # about 45 min (the bf16
                                                                    # run reused; twice without)
    .venv/bin/python benchmarks/bench_small_lesion_loss.py --quick  # a smoke run

The baseline is the README's pretrained command with `--mixed-precision` (bench_encoders.BASELINE
in mixed bfloat16: Lite0 at 224x224, 15 epochs, bce_dice; run folder isic2018-224-lite0-bf16,
the one bench_bf16_retrain.py trains, reused when it holds that finished run). The candidate is
the same command with `--loss bce_dice_small`: an image whose lesion covers under 5 % of the
view weighs 3 times the others in the loss, as if it were shown 3 times an epoch, at no cost in
time (run folder isic2018-224-lite0-bf16-small). Both are scored on the test part (plain and
with TTA + post-processing, with per-size bins and the count below 0.6); the candidate is paired
image by image with the baseline (mean difference ± standard error; which of its 20 worst
images the candidate fixes and which it breaks). On a CPU without native bf16 the benchmark
says so and trains nothing. Same data, split (6:2:2, seed 0) and test part as
bench_isic2018.py.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import segment

import bench_isic2018 as isic
from bench_bf16_retrain import without_native_bf16
from bench_encoders import BASELINE, QUICK
from bench_second_look import changes

CANDIDATE = {"loss": "bce_dice_small"}


def measure(data, runs, baseline):
    """The module docstring's runs: a dict of their results."""
    if skipped := without_native_bf16():
        return skipped
    baseline = baseline.replace(precision="mixed")
    base_name = f"{baseline.data.image_size[0]}-lite0-bf16"
    name = f"{base_name}-small"
    base_model, base_run = isic.trained(data, runs / f"isic2018-{base_name}", baseline)
    base_dice = isic.test_dice(base_run)
    scores = isic.changed_runs(data, baseline, runs, {name: CANDIDATE}, base_dice, None,
                               against="baseline")[name]
    scores.update(changes(isic.test_dice(segment.RunFolder(runs / f"isic2018-{name}")),
                          base_dice))
    return {"baseline": {"run": f"isic2018-{base_name}", **isic.run_scores(base_run, base_model)},
            "small_lesion_loss": {"run": f"isic2018-{name}", **scores}}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, lambda data, runs, quick: measure(
        data, runs, QUICK if quick else BASELINE))
