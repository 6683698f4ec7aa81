"""The README's bf16 command with the instance norms fused into one kernel and validation every
third epoch, against the README's bf16 run trained before that kernel.

    .venv/bin/python benchmarks/bench_fused_norm.py          # about 45 min (the bf16 run reused)
    .venv/bin/python benchmarks/bench_fused_norm.py --quick  # a smoke run

Under mixed precision on TensorFlow each InstanceNormalization runs as one FusedBatchNorm kernel
(segment/layers.py; float32 keeps Keras' GroupNormalization ops). The baseline is the README's
pretrained command in mixed bfloat16 (Lite0 at 224x224, 15 epochs; run folder
isic2018-224-lite0-bf16, trained with Keras' ops before the kernel came, and reused as
bench_small_lesion_loss.py reuses it). The candidate is that command with `--validate-every 3`,
trained with the kernel (run folder isic2018-224-lite0-bf16-fused). Both are scored and paired
image by image as bench_small_lesion_loss.py pairs its candidate. Then, in one window, the train
step (random data, the command's batch) in float32, in bf16 with Keras' ops for the norms and in
bf16 with the kernel, in ROUNDS alternating rounds (each variant's best counts), and the
candidate's mean epoch (its validations and the first epoch's decoding included) against the
bare bf16 step. On a CPU without native bf16 the benchmark says so and trains nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import contextlib
import functools
from unittest import mock

import segment
from segment import efficientnet
from segment import layers as segment_layers
from segment.layers import InstanceNormalization
from segment.training import compile_model

import bench_isic2018 as isic
import keras
from bench_encoders import BASELINE, QUICK
from bench_small_lesion_loss import measure
from measure import best_rates, random_batch

CANDIDATE = {"validate_every": 3}
ROUNDS, STEPS = 3, 8
# (name, dtype policy, the layer classes that may use the fused kernel, whether the encoder's
# depthwise convolutions predict in bf16); the batch norms' kernel (bench_fused_batch_norm.py)
# and the bf16 depthwise prediction (bench_depthwise_bf16.py) came later, so none of these has
# them
VARIANTS = [("float32", None, (), False), ("bf16, Keras' norm ops", "mixed_bfloat16", (), False),
            ("bf16, fused norm kernel", "mixed_bfloat16", (InstanceNormalization,), False)]


@contextlib.contextmanager
def library_layers(fused_kinds, depthwise_bf16_prediction):
    """A context in which `create_model` builds the network with the fused norm kernel in the
    layers of `fused_kinds` (classes) only, and, unless `depthwise_bf16_prediction`, the
    encoder's depthwise convolutions as they were before `Float32TrainingDepthwiseConv2D` (Keras'
    layer in float32, in training and prediction, under mixed precision on a CPU). A layer
    chooses the kernel when its step is traced."""
    fits = segment_layers._fits_fused_batch_norm
    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(
            segment_layers, "_fits_fused_batch_norm",
            lambda layer, inputs: isinstance(layer, fused_kinds) and fits(layer, inputs)))
        if not depthwise_bf16_prediction:
            patches.enter_context(mock.patch.object(
                efficientnet, "Float32TrainingDepthwiseConv2D",
                lambda *args, dtype=None, **kwargs: keras.layers.DepthwiseConv2D(
                    *args, dtype="float32", **kwargs)))
        yield


def step_speeds(config, steps, variants=VARIANTS, kinds=("train",), rounds=ROUNDS):
    """{kind: {variant: images/s}} of `config`'s network in each of `variants`, for each of
    `kinds` ("train": forward, backward and the update; "predict"): the best of `rounds`."""
    size, batch = config.data.image_size[0], config.data.batch_size
    images, masks = random_batch(batch, size)
    calls = {}
    for name, policy, fused, depthwise_bf16_prediction in variants:
        with library_layers(fused, depthwise_bf16_prediction):
            model = compile_model(segment.create_model((size, size, 3), config.model,
                                                       dtype_policy=policy),
                                  learning_rate=config.train.learning_rate, loss=config.train.loss)
            step_of = {"train": functools.partial(model.train_on_batch, images, masks),
                       "predict": functools.partial(model.predict_on_batch, images)}
            for kind in kinds:
                step_of[kind]()  # traced once, here
                calls[kind, name] = step_of[kind]
    rates = best_rates(calls, batch, rounds, steps, warmup=2)
    return {kind: {name: rate for (measured, name), rate in rates.items() if measured == kind}
            for kind in kinds}


def main(data, runs, args):
    baseline = QUICK if args.quick else BASELINE
    results = measure(data, runs, baseline, 0, CANDIDATE, "fused", "fused_norm")
    if "skipped" in results:
        return results
    speeds = step_speeds(baseline, 1 if args.quick else STEPS)["train"]
    candidate = results["seed 0"]["fused_norm"]
    bf16 = speeds["bf16, fused norm kernel"]
    results["train_step_images_per_s"] = speeds
    results["ratios"] = {
        "bf16 fused / float32": bf16 / speeds["float32"],
        "bf16 fused / bf16 Keras' ops": bf16 / speeds["bf16, Keras' norm ops"],
        "candidate's mean epoch / bare bf16 step":  # validation every third epoch included
            candidate["num_train"] * candidate["epochs"] / candidate["train_seconds"] / bf16}
    return results


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
