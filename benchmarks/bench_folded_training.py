"""The encoder's frozen batch norms folded in training too: the README's bf16 command retrained,
and the train step timed against the batch norms as layers.

    .venv/bin/python benchmarks/bench_folded_training.py          # about 45 min
    .venv/bin/python benchmarks/bench_folded_training.py --quick  # a smoke run

`create_model` now builds each convolution of a pretrained encoder whose batch norms are frozen
(the default) and the batch norm after it as one layer (`FrozenBatchNormConv2D`,
`FrozenBatchNormDepthwiseConv2D` in segment/layers.py), which computes one convolution with a
folded kernel and a bias, in training too. Before, a batch norm layer followed each
convolution and only prediction folded them (`segment.batch_norm_folding`, a copy of the
model). The values are the pair's to float rounding, bf16's rounding moves. So:

- the README's bf16 command (`--mixed-precision --validate-every 3`) is trained again (run
  folder isic2018-224-lite0-bf16-folded-f32bias: the folded bias added in float32; the folder
  isic2018-224-lite0-bf16-folded holds the run that added it in bf16, which a rerun must not
  reuse) and scores its test part, plain and with TTA + post-processing; both runs were
  trained before `UpsamplingConv2D`, and are retrained with the upsampling modules built as
  then (`upsampling_as_pair`);
- so is the README's run as it was trained, with the batch norms as layers (run folder
  isic2018-224-lite0-bf16-depthwise-bf16, bench_depthwise_bf16.py's; trained when missing,
  which reproduces it), scored as the library predicts now, and the two are paired image by
  image;
- in one window, the train step and the prediction of one batch (random data, the command's
  batch) in float32 and in bf16, each with the batch norms as layers (the network before,
  predicting through the library's folded copy as `evaluate` does) and carried by their
  convolutions (now), in ROUNDS alternating rounds; each variant's best counts.

On a CPU without native bf16 the benchmark says so and measures nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import contextlib
import functools
from unittest import mock

import segment
from segment import model as segment_model
from segment.batch_norm_folding import folded_for_prediction

import bench_isic2018 as isic
import keras
from bench_bf16_retrain import without_native_bf16
from bench_encoders import BASELINE, QUICK
from bench_fused_norm import CANDIDATE
from bench_second_look import changes
from measure import best_rates, random_batch

ROUNDS, STEPS = 6, 8
RUN = "folded-f32bias"  # run folder isic2018-224-lite0-bf16-folded-f32bias
README_RUN = "depthwise-bf16"  # the README's run, trained with the batch norms as layers


@contextlib.contextmanager
def batch_norms_as_layers():
    """A context in which `create_model` builds a pretrained encoder as before this change: a
    frozen `FusedBatchNormalization` layer after each convolution."""
    build, blocks = segment_model.create_efficientnet_lite, segment_model.feature_blocks

    def with_layers(*args, fold_batch_norms=False, **kwargs):
        backbone = build(*args, fold_batch_norms=False, **kwargs)
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        return backbone

    with (mock.patch.object(segment_model, "create_efficientnet_lite", with_layers),
          mock.patch.object(segment_model, "feature_blocks",
                            lambda variant, fold_batch_norms=False: blocks(variant))):
        yield


def paired_step_speeds(config, quick, before, after, steps_of):
    """{"step_images_per_s": {"train"/"predict": {"<precision>, <variant>": images/s}},
    "ratios": {"<kind>: <precision> <after> / <before's name>": ...}} of `config`'s network in
    float32 and bf16, built as before a change (`before`: (name, context factory)) and as the
    library builds it now (named `after`), in one window; `steps_of(model, images, masks)`
    gives a model's (train step, predict step), each traced in the context it was built in."""
    size, batch = config.data.image_size[0], config.data.batch_size
    images, masks = random_batch(batch, size)
    before_name, building_before = before
    steps = {}
    for precision, policy in [("float32", None), ("bf16", "mixed_bfloat16")]:
        for variant, building in [(before_name, building_before),
                                  (after, contextlib.nullcontext)]:
            with building():
                model = segment.compile_model(
                    segment.create_model((size, size, 3), config.model, dtype_policy=policy),
                    learning_rate=config.train.learning_rate, loss=config.train.loss)
                for kind, step in zip(("train", "predict"), steps_of(model, images, masks),
                                      strict=True):
                    step()  # traced once, here
                    steps[kind, f"{precision}, {variant}"] = step
    rates = best_rates(steps, batch, 1 if quick else ROUNDS, 1 if quick else STEPS, warmup=2)
    speeds = {kind: {name: rate for (measured, name), rate in rates.items() if measured == kind}
              for kind in ("train", "predict")}
    return {"step_images_per_s": speeds,
            "ratios": {f"{kind}: {precision} {after} / {before_name}":
                       rate[f"{precision}, {after}"] / rate[f"{precision}, {before_name}"]
                       for kind, rate in speeds.items() for precision in ("float32", "bf16")}}


def step_speeds(config, quick):
    """`paired_step_speeds` with the batch norms as layers and folded: `train_on_batch`, and
    `predict_on_batch` of the folded copy the library predicts with."""
    def steps_of(model, images, masks):
        predicting = folded_for_prediction(model)
        return (functools.partial(model.train_on_batch, images, masks),
                functools.partial(predicting.predict_on_batch, images))
    return paired_step_speeds(config, quick, ("as layers", batch_norms_as_layers), "folded",
                              steps_of)


@contextlib.contextmanager
def upsampling_as_pair():
    """A context in which `create_model` builds each upsampling module as before
    `UpsamplingConv2D` (bench_upsampling_conv.py): `UpSampling2D` (nearest, named <module>_up),
    then a 3x3 `Conv2D` (<module>_conv). The runs trained before it are retrained in it."""
    def upsampling_module(self, x, filters, *, name):
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up",
                                      dtype=self.dtype)(x)
        return self.conv_norm_act(x, filters, 3, name=name)

    with mock.patch.object(segment_model._Builder, "upsampling_module", upsampling_module):
        yield


def built_as_before(*contexts):
    """One context (factory) that enters each of `contexts` (factories), in turn."""
    @contextlib.contextmanager
    def entered():
        with contextlib.ExitStack() as stack:
            for context in contexts:
                stack.enter_context(context())
            yield
    return entered


def retrain_against_readme(data, runs, quick, run_name, readme_run_name, *,
                           as_candidate=contextlib.nullcontext,
                           as_readme_was=contextlib.nullcontext):
    """The README's bf16 command trained into run folder isic2018-<side>-lite0-bf16-<run_name>
    and the README's run (folder ...-<readme_run_name>), each inside its context manager
    (`as_candidate`, `as_readme_was`) where missing and reused where finished; each scored,
    and the two paired image by image: what a retrain benchmark reports besides its speeds."""
    baseline = QUICK if quick else BASELINE
    side = baseline.data.image_size[0]
    config = baseline.replace(precision="mixed", **CANDIDATE)
    with as_candidate():
        model, run = isic.trained(data, runs / f"isic2018-{side}-lite0-bf16-{run_name}", config,
                                  copied_data=True)
    with as_readme_was():
        readme_model, readme_run = isic.trained(
            data, runs / f"isic2018-{side}-lite0-bf16-{readme_run_name}", config,
            copied_data=True)
    dice, readme_dice = isic.test_dice(run), isic.test_dice(readme_run)
    return {"run": run.path.name, **isic.run_scores(run, model),
            "against_readme_run": {**isic.paired_difference(dice, readme_dice),
                                   **changes(dice, readme_dice)},
            "readme_run": {"run": readme_run.path.name,
                           **isic.run_scores(readme_run, readme_model)}}


def main(data, runs, args):
    if skipped := without_native_bf16():
        return skipped
    return {**retrain_against_readme(
                data, runs, args.quick, RUN, README_RUN, as_candidate=upsampling_as_pair,
                as_readme_was=built_as_before(batch_norms_as_layers, upsampling_as_pair)),
            **step_speeds(QUICK if args.quick else BASELINE, args.quick)}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
