"""The bf16 instance norms one kernel per sample: training batches of one size, the README's bf16
command retrained, and the steps timed with the batch size in the graph and without.

    .venv/bin/python benchmarks/bench_per_sample_norm.py          # about 45 min
    .venv/bin/python benchmarks/bench_per_sample_norm.py --quick  # a smoke run

Under mixed bfloat16 on TensorFlow, `InstanceNormalization` runs as FusedBatchNorm kernels: one
per sample where the traced graph knows the batch size, else one over the samples' channels
side by side, between two transposes (segment/layers.py). `fit` traces its step with the batch
size only where the data set's batches have one size, so training now leaves out each epoch's
last, smaller batch (`create_generator(..., drop_remainder=True)`; 7 of the 1,127 training
images each epoch, other ones every epoch). That changes what training sees, so:

- the README's bf16 command (`--mixed-precision --validate-every 3`) is trained again (run
  folder isic2018-224-lite0-bf16-static-batch) and scores its test part, plain and with TTA +
  post-processing;
- so is the README's run as it was trained, with each epoch's last batch (run folder
  isic2018-224-lite0-bf16-folded-f32bias, bench_folded_training.py's; trained when missing,
  which reproduces it), and the two are paired image by image;
- in one window, the train step and the prediction of one batch (random data, the command's
  batch) in float32 and in bf16, bf16 traced with the batch size (per sample) and without
  (transposed), in ROUNDS alternating rounds; each variant's best counts.

On a CPU without native bf16 the benchmark says so and measures nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import contextlib
from unittest import mock

import segment
from segment import workflow
from segment.batch_norm_folding import folded_for_prediction

import bench_isic2018 as isic
import tensorflow as tf
from bench_bf16_retrain import POLICY, without_native_bf16
from bench_encoders import BASELINE, QUICK
from bench_folded_training import retrain_against_readme
from measure import best_rates, random_batch

ROUNDS, STEPS = 6, 8
RUN = "static-batch"  # run folder isic2018-224-lite0-bf16-static-batch
README_RUN = "folded-f32bias"  # the README's run, trained with each epoch's smaller last batch


@contextlib.contextmanager
def last_batch_kept():
    """A context in which `train_and_evaluate` trains as before this change: each epoch ends
    with its smaller last batch, so `fit` traces its step without the batch size."""
    make = workflow.create_generator

    def keeping(*args, drop_remainder=False, **kwargs):
        return make(*args, **kwargs)

    with mock.patch.object(workflow, "create_generator", keeping):
        yield


def steps_on(model, images, masks, batch_size_known):
    """(train step, predict step) of `model` traced with or without the batch size: the train
    step as `fit` runs it on a data set of (images, masks) batches, the prediction as `predict`
    runs it, with the library's folded copy (`evaluate`'s)."""
    batches = tf.data.Dataset.from_tensor_slices((images, masks)).repeat().batch(
        len(images), drop_remainder=batch_size_known)
    model.make_train_function()
    train_function, iterator = model.train_function, iter(batches)
    predicting = folded_for_prediction(model)
    spec = tf.TensorSpec((len(images) if batch_size_known else None, *images.shape[1:]))
    predict = tf.function(lambda images: predicting(images, training=False),
                          input_signature=[spec])
    return lambda: train_function(iterator), lambda: predict(images)


def step_speeds(config, quick):
    """{"train"/"predict": {variant: images/s}} of `config`'s network in float32 and in bf16
    with the batch size in the graph and without, and the ratios the targets read."""
    size, batch = config.data.image_size[0], config.data.batch_size
    images, masks = random_batch(batch, size)
    steps = {}
    for name, policy, known in [("float32", None, True), ("bf16, transposed", POLICY, False),
                                ("bf16, per sample", POLICY, True)]:
        model = segment.compile_model(
            segment.create_model((size, size, 3), config.model, dtype_policy=policy),
            learning_rate=config.train.learning_rate, loss=config.train.loss)
        for kind, step in zip(("train", "predict"), steps_on(model, images, masks, known),
                              strict=True):
            step()  # traced once, here
            steps[kind, name] = step
    rates = best_rates(steps, batch, 1 if quick else ROUNDS, 1 if quick else STEPS, warmup=2)
    speeds = {kind: {name: rate for (measured, name), rate in rates.items() if measured == kind}
              for kind in ("train", "predict")}
    return {"step_images_per_s": speeds,
            "ratios": {**{f"{kind}: bf16 per sample / transposed":
                          rate["bf16, per sample"] / rate["bf16, transposed"]
                          for kind, rate in speeds.items()},
                       "train: bf16 per sample / float32": (speeds["train"]["bf16, per sample"]
                                                            / speeds["train"]["float32"])}}


def main(data, runs, args):
    if skipped := without_native_bf16():
        return skipped
    return {**retrain_against_readme(data, runs, args.quick, RUN, README_RUN, last_batch_kept),
            **step_speeds(QUICK if args.quick else BASELINE, args.quick)}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
