"""Most epochs small, the last ones large (`--first-size 128 --first-epochs 16 --epochs 22`)
against the README's bf16 run.

    .venv/bin/python benchmarks/bench_first_size.py           # about 40 min (the bf16 run
                                                              # reused; twice that without)
    .venv/bin/python benchmarks/bench_first_size.py --seed 1  # both runs at seed 1
    .venv/bin/python benchmarks/bench_first_size.py --quick   # a smoke run

The baseline is bench_small_lesion_loss.py's: the README's pretrained command in mixed bfloat16
(Lite0 at 224x224, 15 epochs, cosine schedule; run folder isic2018-224-lite0-bf16[-seedN]). The
candidate trains the same network in mixed bfloat16 for 22 epochs of one cosine schedule, the
first 16 on the training images at 128x128 (about a third of the pixels, so each such epoch
costs about 0.4 of one at 224x224) and the last 6 at 224x224; it validates, keeps its best epoch
and is saved and scored at 224x224 like the baseline (run folder
isic2018-224-lite0-bf16-first128[-seedN]). Scored and paired with the baseline image by image as
bench_small_lesion_loss.py pairs its candidate, and `--seed N` does the same at training seed N
with the split at seed 0. On a CPU without native bf16 the benchmark says so and trains nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import bench_isic2018 as isic
from bench_encoders import BASELINE, QUICK
from bench_small_lesion_loss import measure

CANDIDATE = {"first_size": (128, 128), "first_epochs": 16, "epochs": 22}
QUICK_CANDIDATE = {"first_size": (32, 32), "first_epochs": 1, "epochs": 2}  # QUICK is 32x32


if __name__ == "__main__":
    isic.quick_or_full_main(
        __doc__, lambda data, runs, args: measure(
            data, runs, QUICK if args.quick else BASELINE, args.seed,
            QUICK_CANDIDATE if args.quick else CANDIDATE, "first128", "first_size"),
        lambda parser: parser.add_argument("--seed", type=int, default=0,
                                           help="training seed of both runs (the split stays "
                                                "at seed 0); 0: the README's bf16 run"))
