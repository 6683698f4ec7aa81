"""The upsampling modules as one transposed convolution (`segment.upsampling.UpsamplingConv2D`)
against nearest upsampling then a convolution, the pair the library built before: the README's
bf16 command retrained with it, the steps timed, and whether training repeats.

    .venv/bin/python benchmarks/bench_upsampling_conv.py          # about 15 min, 45 with training
    .venv/bin/python benchmarks/bench_upsampling_conv.py --quick  # a smoke run

- the README's bf16 command (`--mixed-precision --validate-every 3`) trained with the library as
  it is (run folder isic2018-224-lite0-bf16-upsampling-conv) and the README's run before this
  change (isic2018-224-lite0-bf16-folded-f32bias, built in bench_folded_training.py's
  `upsampling_as_pair()`), each trained
  when missing, scored plain and with TTA + post-processing, and paired image by image;
- in one window, the train step and the prediction of one batch (random data, the command's
  batch) in float32 and in bf16, each with the pair and with the layer, in alternating rounds
  (bench_folded_training.py's `paired_step_speeds`); each variant's best counts;
- one epoch of `fit` on the README run's training part (seed 0), REPEATS times, each in a fresh
  process: whether the weights after it are equal, bit for bit.

On a CPU without native bf16 the benchmark says so and measures nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import bench_isic2018 as isic
from bench_bf16_retrain import without_native_bf16
from bench_encoders import BASELINE, QUICK
from bench_folded_training import (
    paired_step_speeds,
    retrain_against_readme,
    upsampling_as_pair,
)
from bench_per_sample_norm import repeatability, steps_on

RUN = "upsampling-conv"  # run folder isic2018-224-lite0-bf16-upsampling-conv
README_RUN = "folded-f32bias"  # the README's run before this change


def against_the_change(data, runs, quick, run_name, before, after):
    """What a benchmark of a change to how the README's bf16 command trains measures: that
    command retrained with the library as it is (run folder ...-<run_name>) and paired with the
    README's run (trained in `before`'s context where missing); `paired_step_speeds` as before
    the change (`before`: (name, context factory)) and as the library is (named `after`), the
    steps as `fit` and `predict` run them (`steps_on`), and bf16's train step against
    float32's as the library is; and one epoch twice in fresh processes."""
    if skipped := without_native_bf16():
        return skipped
    retrained = retrain_against_readme(data, runs, quick, run_name, README_RUN,
                                       as_readme_was=before[1])
    speeds = paired_step_speeds(QUICK if quick else BASELINE, quick, before, after,
                                lambda model, images, masks: steps_on(model, images, masks,
                                                                      False))
    train = speeds["step_images_per_s"]["train"]
    speeds["ratios"][f"train: bf16 {after} / float32 {after}"] = (train[f"bf16, {after}"]
                                                                / train[f"float32, {after}"])
    return {**retrained, **speeds,
            "one_epoch_twice": repeatability(runs / retrained["run"],
                                             variants={"library": False})}


def main(data, runs, args):
    return against_the_change(data, runs, args.quick, RUN, ("pair", upsampling_as_pair),
                              "layer")


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
