"""The bf16 instance norms one kernel per sample, a candidate the library tried and withdrew: the
README's bf16 command retrained with it, the steps timed, and whether training repeats.

    .venv/bin/python benchmarks/bench_per_sample_norm.py          # about 20 min, 80 with training
    .venv/bin/python benchmarks/bench_per_sample_norm.py --quick  # a smoke run

Under mixed bfloat16 on TensorFlow, `InstanceNormalization` runs as one FusedBatchNorm over the
samples' channels side by side, between two transposes (segment/layers.py). The candidate runs
one kernel per sample instead, which needs the batch size in the traced graph, so its training
leaves out each epoch's last, smaller batch (`create_generator(..., drop_remainder=True)`; 7 of
the 1,127 training images each epoch). Both live here, in `kernels_per_sample()`:

- the README's bf16 command (`--mixed-precision --validate-every 3`) trained with the candidate
  (run folder isic2018-224-lite0-bf16-static-batch) and the README's run of then (the library
  as it was: isic2018-224-lite0-bf16-folded-f32bias, bench_folded_training.py's), each trained
  when missing, both with the upsampling modules built as then (bench_folded_training.py's
  `upsampling_as_pair`), scored plain and with TTA + post-processing, and paired image by image;
- in one window, the train step and the prediction of one batch (random data, the command's
  batch) in float32, in bf16 as the library runs it and in bf16 per sample, in ROUNDS
  alternating rounds; each variant's best counts;
- one epoch of `fit` on the README run's training part (its pipeline and settings, seed 0),
  REPEATS times for each of the library and the candidate, each in a fresh process: whether
  the weights after it are equal, bit for bit. The candidate's are not (its kernels side by
  side), which is why the library does not use it.

On a CPU without native bf16 the benchmark says so and measures nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import concurrent.futures
import contextlib
import hashlib
import multiprocessing
from unittest import mock

import segment
from segment import workflow
from segment.batch_norm_folding import folded_for_prediction
from segment.layers import InstanceNormalization, _float32_scale_and_offset

import bench_isic2018 as isic
import numpy as np
import tensorflow as tf
from bench_bf16_retrain import POLICY, without_native_bf16
from bench_encoders import BASELINE, QUICK
from bench_folded_training import built_as_before, retrain_against_readme, upsampling_as_pair
from measure import best_rates, random_batch

ROUNDS, STEPS, REPEATS = 6, 8, 2
RUN = "static-batch"  # run folder isic2018-224-lite0-bf16-static-batch
README_RUN = "folded-f32bias"  # the README's run
LIBRARY_KERNEL = InstanceNormalization._fused_batch_norm


def per_sample_kernels(layer, inputs):
    """The candidate `InstanceNormalization._fused_batch_norm`: with the batch size in the graph
    and bf16 maps, one FusedBatchNorm per (1, h, w, c) sample, whose batch statistics are that
    sample's; otherwise the library's kernel."""
    if inputs.shape[0] is None or layer.compute_dtype != "bfloat16":
        return LIBRARY_KERNEL(layer, inputs)
    gamma, beta = _float32_scale_and_offset(layer, inputs.shape[3])
    samples = [tf.compat.v1.nn.fused_batch_norm(sample, gamma, beta, epsilon=layer.epsilon,
                                                is_training=True)[0]
               for sample in tf.split(inputs, inputs.shape[0])]
    return tf.cast(tf.concat(samples, 0), "bfloat16")


@contextlib.contextmanager
def kernels_per_sample():
    """A context in which models built run the candidate kernel and the driver trains on whole
    batches (its shuffled training pipelines leave out each epoch's smaller last batch)."""
    make = workflow.create_generator

    def whole_batches(*args, **kwargs):
        return make(*args, **kwargs, drop_remainder=kwargs.get("shuffle", False))

    with mock.patch.object(InstanceNormalization, "_fused_batch_norm", per_sample_kernels), \
            mock.patch.object(workflow, "create_generator", whole_batches):
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
    """{"train"/"predict": {variant: images/s}} of `config`'s network in float32, in bf16 as the
    library runs it and in bf16 per sample, and the ratios the targets read."""
    size, batch = config.data.image_size[0], config.data.batch_size
    images, masks = random_batch(batch, size)
    steps = {}
    for name, policy, candidate in [("float32", None, False), ("bf16, transposed", POLICY, False),
                                    ("bf16, per sample", POLICY, True)]:
        with kernels_per_sample() if candidate else contextlib.nullcontext():
            model = segment.compile_model(
                segment.create_model((size, size, 3), config.model, dtype_policy=policy),
                learning_rate=config.train.learning_rate, loss=config.train.loss)
            for kind, step in zip(("train", "predict"), steps_on(model, images, masks, candidate),
                                  strict=True):
                step()  # traced once, here, inside the context
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


def weights_after_one_epoch(run_path, candidate):
    """SHA-256 (16 hex digits) of the weights of the README run's network after one epoch of
    `fit` on that run's training part, in bf16 from seed 0: the library's kernel, or with
    `candidate` the kernel per sample on whole batches. Runs in a process of its own."""
    run = segment.RunFolder(run_path)
    config = segment.RunConfig.from_dict(run.recorded_settings())
    segment.set_seed(0)
    with kernels_per_sample() if candidate else contextlib.nullcontext():
        model = segment.compile_model(
            segment.create_model((*config.data.image_size, 3), config.model,
                                 dtype_policy=POLICY),
            learning_rate=config.train.learning_rate, loss=config.train.loss)
        model.fit(segment.create_generator(segment.load_split(run.split).train, config.data,
                                           shuffle=True, drop_remainder=candidate),
                  epochs=1, verbose=0)
    weights = b"".join(np.asarray(weight).tobytes() for weight in model.get_weights())
    return hashlib.sha256(weights).hexdigest()[:16]


def repeatability(run_path, variants=None):
    """{variant: {"weights": [REPEATS digests], "equal": bool}}: one epoch each time in a new
    process (spawned: nothing of this one's TensorFlow state carries over), for each of
    `variants` ({name: candidate}; by default the library's kernel and the kernel per sample)."""
    variants = variants or {"library (transposed)": False, "per sample": True}
    results = {}
    for variant, candidate in variants.items():
        digests = []
        for _ in range(REPEATS):
            with concurrent.futures.ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn")) as fresh:
                digests.append(fresh.submit(weights_after_one_epoch, str(run_path),
                                            candidate).result())
        results[variant] = {"weights": digests, "equal": len(set(digests)) == 1}
    return results


def main(data, runs, args):
    if skipped := without_native_bf16():
        return skipped
    retrained = retrain_against_readme(data, runs, args.quick, RUN, README_RUN,
                                       as_candidate=built_as_before(kernels_per_sample,
                                                                    upsampling_as_pair),
                                       as_readme_was=upsampling_as_pair)
    return {**retrained, **step_speeds(QUICK if args.quick else BASELINE, args.quick),
            "one_epoch_twice": repeatability(runs / retrained["readme_run"]["run"])}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
