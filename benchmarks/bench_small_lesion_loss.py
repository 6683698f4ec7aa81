"""Small lesions weighted in the loss (`--loss bce_dice_small`) against the README's bf16 run.

    .venv/bin/python benchmarks/bench_small_lesion_loss.py           # about 45 min (the bf16
                                                                     # run reused; twice without)
    .venv/bin/python benchmarks/bench_small_lesion_loss.py --seed 1  # both runs at seed 1, 90 min
    .venv/bin/python benchmarks/bench_small_lesion_loss.py --quick   # a smoke run

The baseline is the README's pretrained command with `--mixed-precision` (bench_encoders.BASELINE
in mixed bfloat16: Lite0 at 224x224, 15 epochs, bce_dice; run folder isic2018-224-lite0-bf16,
the one bench_bf16_retrain.py trains, reused when it holds that finished run, also when the data
were copied again since: "same_files" false then says so). The candidate is
the same command with `--loss bce_dice_small`: an image whose lesion covers under 5 % of the
view weighs 3 times the others in the loss, as if it were shown 3 times an epoch, at no cost in
time (run folder isic2018-224-lite0-bf16-small). Both are scored on the test part (plain and
with TTA + post-processing, with per-size bins and the count below 0.6); the candidate is paired
image by image with the baseline (mean difference ± standard error, over all images, those whose
lesion covers under 5 % of the view and the others; which of its 20 worst images the candidate
fixes and which it breaks). On a CPU without native bf16 the benchmark says so and trains nothing.
Same data, split (6:2:2, seed 0) and test part as bench_isic2018.py.

The image-by-image standard error does not count how much two training runs differ. `--seed N`
trains the pair again with another training seed (shuffling, augmentation, the decoder's initial
weights) and the split kept at seed 0 (run folders ...-seedN): the spread of the gain between
seeds shows how much of it the loss makes. Each seed's results are kept under "seed N"
(run.py merges them).

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import time

import segment
from segment.evaluation import lesion_share
from segment.losses import SMALL_LESION_SHARE

import bench_isic2018 as isic
import pandas as pd
from bench_bf16_retrain import without_native_bf16
from bench_encoders import BASELINE, QUICK
from bench_second_look import changes

CANDIDATE = {"loss": "bce_dice_small"}


def measure(data, runs, baseline, seed, candidate=CANDIDATE, suffix="small",
            key="small_lesion_loss"):
    """The module docstring's runs at training seed `seed`: {"seed <seed>": their results}.

    Another benchmark pairs its own `candidate` (settings replaced in the baseline; run folder
    ...-bf16-<suffix>[-seedN], results under `key`) with the same baseline runs.
    """
    if skipped := without_native_bf16():
        return skipped
    baseline = baseline.replace(precision="mixed", **({"seed": seed, "split_seed": 0}
                                                      if seed else {}))
    base_name = f"{baseline.data.image_size[0]}-lite0-bf16{f'-seed{seed}' if seed else ''}"
    return {f"seed {seed}": paired_with_baseline(
        data, runs, baseline, base_name, candidate, base_name.replace("-bf16", f"-bf16-{suffix}"),
        key)}


def paired_with_baseline(data, runs, baseline, base_name, candidate, name, key):
    """Train (or reuse) `baseline` (run folder isic2018-<base_name>) and it with `candidate`'s
    settings replaced (isic2018-<name>); both scored, the candidate under `key` paired image by
    image with the baseline, over all test images and by lesion size, with the fixes and breaks
    of the baseline's worst."""
    base_model, base_run = isic.trained(data, runs / f"isic2018-{base_name}", baseline,
                                        copied_data=True)
    base_dice = isic.test_dice(base_run)
    scores = isic.changed_runs(data, baseline, runs, {name: candidate}, base_dice, None,
                               against="baseline")[name]
    candidate_dice = isic.test_dice(segment.RunFolder(runs / f"isic2018-{name}"))
    scores.update(changes(candidate_dice, base_dice))
    small = small_lesions(base_run)
    scores["against_baseline_by_size"] = {
        "under 5 %": isic.paired_difference(candidate_dice[small], base_dice),
        "5 % or more": isic.paired_difference(candidate_dice[~small], base_dice)}
    return {"date": time.strftime("%Y-%m-%d"),
            "baseline": {"run": f"isic2018-{base_name}",
                         "same_files": isic.same_files(base_run, data),
                         **isic.run_scores(base_run, base_model)},
            key: {"run": f"isic2018-{name}", "date": time.strftime("%Y-%m-%d"), **scores}}


def small_lesions(run):
    """Boolean Series by test image id: its lesion covers more than 0 and under 5 % of the view."""
    share = lesion_share(pd.read_csv(run.evaluation_table).set_index("id"))
    return (share > 0) & (share < SMALL_LESION_SHARE)


if __name__ == "__main__":
    isic.quick_or_full_main(
        __doc__, lambda data, runs, args: measure(data, runs, QUICK if args.quick else BASELINE,
                                                  args.seed),
        lambda parser: parser.add_argument("--seed", type=int, default=0,
                                           help="training seed of both runs (the split stays "
                                                "at seed 0); 0: the README's bf16 run"))
