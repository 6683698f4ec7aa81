"""The README's bf16 command trained for 20 epochs instead of 15 (`--epochs 20`).

    .venv/bin/python benchmarks/bench_longer_training.py          # about 50 min (the 15-epoch
                                                                  # runs reused)
    .venv/bin/python benchmarks/bench_longer_training.py --quick  # a smoke run

The candidate is the README's bf16 command (Lite0 at 224x224, `--mixed-precision --validate-every
3`, one cosine schedule) over 20 epochs, a third more training in the same schedule's shape, which
keeps the whole training within the issue's hour on the 2-core machine (run folder
isic2018-224-lite0-bf16-20epochs). It is scored and paired image by image as
bench_small_lesion_loss.py pairs its candidate (with the bf16 run before the norm kernels), and
with the 15-epoch run of the same code (bench_fused_batch_norm.py's candidate, run folder
isic2018-224-lite0-bf16-fused-bn, reused). On a CPU without native bf16 the benchmark says so and
trains nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import bench_isic2018 as isic
from bench_encoders import BASELINE, QUICK
from bench_fused_batch_norm import pair_with_readme_run
from bench_fused_norm import CANDIDATE as README_BF16
from bench_small_lesion_loss import measure

EPOCHS = 20
QUICK_EPOCHS = 2  # QUICK trains 1


def main(data, runs, args):
    return readme_command_variant(data, runs, args, {}, "epochs", "longer_training", "fused-bn")


def readme_command_variant(data, runs, args, changes, suffix, key, readme_suffix, epochs=EPOCHS):
    """The README's bf16 command with `changes` over `epochs` epochs (run folder
    ...-bf16-<epochs><suffix>, results under `key`), scored, paired with the bf16 run before the
    norm kernels and with the README's run of the same code (run folder ...-bf16-<readme_suffix>,
    trained when missing)."""
    baseline = QUICK if args.quick else BASELINE
    candidate = {**README_BF16, **changes, "epochs": QUICK_EPOCHS if args.quick else epochs}
    results = measure(data, runs, baseline, 0, candidate, f"{candidate['epochs']}{suffix}", key)
    if "skipped" not in results:
        pair_with_readme_run(data, runs, baseline, results["seed 0"], key, readme_suffix)
    return results


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
