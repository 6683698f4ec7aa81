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
  batch) in float32 and in bf16, each with the pair and with the layer, in ROUNDS alternating
  rounds; each variant's best counts;
- one epoch of `fit` on the README run's training part (seed 0), REPEATS times, each in a fresh
  process: whether the weights after it are equal, bit for bit.

On a CPU without native bf16 the benchmark says so and measures nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import contextlib

import segment

import bench_isic2018 as isic
from bench_bf16_retrain import POLICY, without_native_bf16
from bench_encoders import BASELINE, QUICK
from bench_folded_training import retrain_against_readme, upsampling_as_pair
from bench_per_sample_norm import repeatability, steps_on
from measure import best_rates, random_batch

ROUNDS, STEPS = 6, 8
RUN = "upsampling-conv"  # run folder isic2018-224-lite0-bf16-upsampling-conv
README_RUN = "folded-f32bias"  # the README's run before this change


def step_speeds(config, quick):
    """{"step_images_per_s": {"train"/"predict": {variant: images/s}}, "ratios": ...} of
    `config`'s network in float32 and bf16, each with the pair and with the layer."""
    size, batch = config.data.image_size[0], config.data.batch_size
    images, masks = random_batch(batch, size)
    steps = {}
    for precision, policy in [("float32", None), ("bf16", POLICY)]:
        for build, context in [("pair", upsampling_as_pair), ("layer", contextlib.nullcontext)]:
            with context():
                model = segment.compile_model(
                    segment.create_model((size, size, 3), config.model, dtype_policy=policy),
                    learning_rate=config.train.learning_rate, loss=config.train.loss)
            for kind, step in zip(("train", "predict"), steps_on(model, images, masks, False),
                                  strict=True):
                step()  # traced once
                steps[kind, f"{precision}, {build}"] = step
    rates = best_rates(steps, batch, 1 if quick else ROUNDS, 1 if quick else STEPS, warmup=2)
    speeds = {kind: {name: rate for (measured, name), rate in rates.items() if measured == kind}
              for kind in ("train", "predict")}
    return {"step_images_per_s": speeds,
            "ratios": {**{f"{kind}: {precision} layer / pair":
                          rate[f"{precision}, layer"] / rate[f"{precision}, pair"]
                          for kind, rate in speeds.items() for precision in ("float32", "bf16")},
                       "train: bf16 layer / float32 layer": (speeds["train"]["bf16, layer"]
                                                             / speeds["train"]["float32, layer"])}}


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
