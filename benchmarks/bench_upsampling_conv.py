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


def step_speeds(config, quick):
    """`paired_step_speeds` with the pair and with the layer, the steps as `fit` and `predict`
    run them (`steps_on`), and bf16's train step against float32's with the layer."""
    speeds = paired_step_speeds(config, quick, ("pair", upsampling_as_pair), "layer",
                                lambda model, images, masks: steps_on(model, images, masks,
                                                                      False))
    train = speeds["step_images_per_s"]["train"]
    speeds["ratios"]["train: bf16 layer / float32 layer"] = (train["bf16, layer"]
                                                            / train["float32, layer"])
    return speeds


def main(data, runs, args):
    if skipped := without_native_bf16():
        return skipped
    retrained = retrain_against_readme(data, runs, args.quick, RUN, README_RUN,
                                       as_readme_was=upsampling_as_pair)
    return {**retrained, **step_speeds(QUICK if args.quick else BASELINE, args.quick),
            "one_epoch_twice": repeatability(runs / retrained["run"],
                                             variants={"library": False})}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
