"""Most epochs small, the last ones large (`--first-size 128 --first-epochs 16 --epochs 22`)
against the README's bf16 run.

    .venv/bin/python benchmarks/bench_first_size.py           # about 40 min (the bf16 run
                                                              # reused; twice that without)
    .venv/bin/python benchmarks/bench_first_size.py --seed 1  # both runs at seed 1
    .venv/bin/python benchmarks/bench_first_size.py --first-epochs 10   # 10 small, 12 large
    .venv/bin/python benchmarks/bench_first_size.py --quick   # a smoke run

The baseline is bench_small_lesion_loss.py's: the README's pretrained command in mixed bfloat16
(Lite0 at 224x224, 15 epochs, cosine schedule; run folder isic2018-224-lite0-bf16[-seedN]). The
candidate trains the same network in mixed bfloat16 for 22 epochs of one cosine schedule, the
first 16 on the training images at 128x128 (about a third of the pixels, so each such epoch
costs about 0.4 of one at 224x224) and the last 6 at 224x224; it validates, keeps its best epoch
and is saved and scored at 224x224 like the baseline (run folder
isic2018-224-lite0-bf16-first128[-seedN]). Scored and paired with the baseline image by image as
bench_small_lesion_loss.py pairs its candidate, and `--seed N` does the same at training seed N
with the split at seed 0. `--first-epochs N` trains another schedule of 22 epochs, the first N
small (run folder ...-first128-Nof22[-seedN], results under `first_size_Nof22`). On a CPU
without native bf16 the benchmark says so and trains nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import bench_isic2018 as isic
from bench_encoders import BASELINE, QUICK
from bench_small_lesion_loss import measure

EPOCHS, FIRST_EPOCHS = 22, 16  # the schedule whose results are the part's `first_size`
QUICK_CANDIDATE = {"first_size": (32, 32), "first_epochs": 1, "epochs": 2}  # QUICK is 32x32


def schedule(first_epochs):
    """(candidate settings, run-folder suffix, results key) of `first_epochs` small of 22."""
    candidate = {"first_size": (128, 128), "first_epochs": first_epochs, "epochs": EPOCHS}
    if first_epochs == FIRST_EPOCHS:
        return candidate, "first128", "first_size"
    name = f"{first_epochs}of{EPOCHS}"
    return candidate, f"first128-{name}", f"first_size_{name}"


def add_arguments(parser):
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed of both runs (the split stays at seed 0); 0: the "
                             "README's bf16 run")
    parser.add_argument("--first-epochs", type=int, default=FIRST_EPOCHS,
                        help=f"epochs at 128x128 of the {EPOCHS} (default {FIRST_EPOCHS})")


def main(data, runs, args):
    if args.quick:  # one epoch small, one large, whatever --first-epochs says
        return measure(data, runs, QUICK, args.seed, QUICK_CANDIDATE, "first128", "first_size")
    return measure(data, runs, BASELINE, args.seed, *schedule(args.first_epochs))


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main, add_arguments)
