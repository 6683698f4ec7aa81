"""Synthetic artifacts in training (`--artifacts 0.5`) against the README's bf16 run.

    .venv/bin/python benchmarks/bench_artifacts.py          # about 40 min (the README's run
                                                            # reused)
    .venv/bin/python benchmarks/bench_artifacts.py --quick  # a smoke run

Of the 15 test images that six Lite0 224x224 runs all score below 0.6 dice, six are a small,
faint lesion beside ink marks (blots or a box around it, an arrow), a ruler and the rim of a
contact plate, where the network marks far more than the lesion. The candidate is the README's
bf16 command (Lite0 at 224x224, `--mixed-precision --validate-every 3`, 15 epochs) with
`--artifacts 0.5`: each epoch, half the training images get 1-3 such things drawn beside their
lesion, the masks unchanged (segment/artifacts.py; run folder
isic2018-224-lite0-bf16-artifacts50). The baseline is the README's run of the time
(isic2018-224-lite0-bf16-folded-f32bias, reused; trained when missing with the library as it
is, whose stride-1 depthwise gradients differ from that run's: bench_depthwise_gradients.py).
Both are scored on the test part, plain and with TTA + post-processing, and paired image by
image as bench_small_lesion_loss.py pairs its candidate. On a CPU without native bf16 the
benchmark says so and trains nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import bench_isic2018 as isic
from bench_bf16_retrain import without_native_bf16
from bench_encoders import BASELINE, QUICK
from bench_folded_training import RUN as README_RUN
from bench_fused_norm import CANDIDATE as README_BF16
from bench_small_lesion_loss import paired_with_baseline

SHARE = 0.5
KEY = "artifacts"


def main(data, runs, args):
    return against_the_readme_run(data, runs, args.quick, {"artifacts": SHARE},
                                  f"artifacts{round(100 * SHARE)}", KEY)


def against_the_readme_run(data, runs, quick, settings, name, key):
    """The README's bf16 run (reused, or trained) and it with `settings` (run folder
    isic2018-<side>-lite0-bf16-<name>), paired image by image under seed 0's `key`; nothing
    trained on a CPU without native bf16."""
    if skipped := without_native_bf16():
        return skipped
    readme = (QUICK if quick else BASELINE).replace(precision="mixed", **README_BF16)
    side = readme.data.image_size[0]
    return {"seed 0": paired_with_baseline(
        data, runs, readme, f"{side}-lite0-bf16-{README_RUN}", settings,
        f"{side}-lite0-bf16-{name}", key)}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
