"""The README's bf16 command with the full training augmentation over 20 epochs
(`--augment full --epochs 20`).

    .venv/bin/python benchmarks/bench_augmented_training.py          # about 50 min (the other
                                                                     # runs reused)
    .venv/bin/python benchmarks/bench_augmented_training.py --quick  # a smoke run

The README's command trains on the images as they are. Its training dice ends 0.04 above its
validation dice, and 20 epochs instead of 15 (bench_longer_training.py) raised the training dice
and lowered the validation dice: the network fits its 1,127 training images. The candidate is the
README's bf16 command (Lite0 at 224x224, `--mixed-precision --validate-every 3`) with
`--augment full` (flips and 90-degree turns, random crops of 80-100 % of each side, colour
jitter; segment/augment.py) over the 20 epochs of bench_longer_training.py, which keeps the
training within the issue's hour on the 2-core machine (run folder
isic2018-224-lite0-bf16-20augmented). It is scored and paired image by image as
bench_longer_training.py pairs its candidate: with the bf16 run before the norm kernels, with the
README's run (isic2018-224-lite0-bf16-depthwise-bf16, reused), and with the 20 epochs without
augmentation (isic2018-224-lite0-bf16-20epochs, reused), which leaves the augmentation alone as
the difference. On a CPU without native bf16 the benchmark says so and trains nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import bench_isic2018 as isic
from bench_encoders import BASELINE, QUICK
from bench_fused_batch_norm import pair_with_readme_run
from bench_longer_training import EPOCHS, QUICK_EPOCHS, readme_command_variant

KEY = "augmented_training"


def main(data, runs, args):
    results = readme_command_variant(data, runs, args, {"augment": "full"}, "augmented", KEY,
                                     "depthwise-bf16")
    if "skipped" not in results:
        baseline, epochs = (QUICK, QUICK_EPOCHS) if args.quick else (BASELINE, EPOCHS)
        pair_with_readme_run(data, runs, baseline, results["seed 0"], KEY, f"{epochs}epochs",
                             {"epochs": epochs}, "unaugmented")
    return results


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
