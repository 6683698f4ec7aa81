"""Compute efficiency of training and prediction, as a fraction of this machine's matmul peak.

    .venv/bin/python benchmarks/bench_compute.py            # about 5 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_compute.py --quick    # a smoke run

FLOPs are counted analytically from the model's convolutions: 2 per multiply-add,
k*k*c_in*c_out per output pixel (the base-16 network: 2.78 GFLOP per 128^2 image forward; the
normalisations, activations and additions are left out, a few per cent). A training step counts
as 3x the forward FLOPs (forward, gradient of the input, gradient of the weights). The peak is
the best float32 GFLOP/s of a large matmul measured in the same run. All numbers float32, batch
16, in memory. Runs at 128^2 and 256^2, then 128^2 with XLA (jit_compile=True), then a profile by
ablation: the same network with every InstanceNormalization and LeakyReLU removed, which shows
how much of a step the convolutions take and how close they alone come to the peak.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from measure import images_per_second, random_batch, run_eagerly, seconds  # noqa: E402

BATCH = 16


def forward_flops(model):
    """FLOPs of the model's convolutions for one image (2 per multiply-add)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, channels_out = layer.output.shape
            total += (2 * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1]
                      * channels_out * height * width)
    return total


def matmul_peak(size=2048, repeats=10):
    """Best float32 GFLOP/s of a (size x size) matmul chain, as in a dense BLAS benchmark."""
    a = tf.random.uniform((size, size))
    b = tf.random.uniform((size, size))

    @tf.function
    def chain(x):
        for _ in range(repeats):
            x = tf.matmul(x, b) * 1e-3
        return x

    chain(a).numpy()  # trace
    return max(2 * size**3 * repeats / seconds(lambda: chain(a).numpy()) / 1e9
               for _ in range(3))


def model_images_per_second(model, size, steps, *, train):
    images, masks = random_batch(BATCH, size)
    run = (lambda: model.train_on_batch(images, masks)) if train else (
        lambda: model.predict_on_batch(images))
    return images_per_second(run, BATCH, steps)[0]


def rates(train, predict, flops, peak):
    """Training and prediction images/s as GFLOP/s and fractions of `peak` (FLOPs per image)."""
    return {"forward_gflop_per_image": flops / 1e9,
            "train_images_per_s": train, "train_gflop_per_s": 3 * flops * train / 1e9,
            "train_fraction_of_peak": 3 * flops * train / 1e9 / peak,
            "predict_images_per_s": predict, "predict_gflop_per_s": flops * predict / 1e9,
            "predict_fraction_of_peak": flops * predict / 1e9 / peak}


def measure(size, steps, peak, jit_compile=False, convolutions_only=False):
    segment.set_seed(0)
    if convolutions_only:  # profile by ablation: the same network without IN and LeakyReLU
        original = segment.model._Builder.norm_act
        segment.model._Builder.norm_act = lambda self, x, *, name: x
    try:
        model = segment.create_model((size, size, 3), base_filters=16)
    finally:
        if convolutions_only:
            segment.model._Builder.norm_act = original
    segment.compile_model(model)
    model.jit_compile = jit_compile
    return rates(model_images_per_second(model, size, steps, train=True),
                 model_images_per_second(model, size, steps, train=False), forward_flops(model),
                 peak)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 64^2, one step, functions run eagerly")
    args = parser.parse_args()
    if args.quick:
        run_eagerly()
    peak = matmul_peak(512 if args.quick else 2048)
    results = {"matmul_peak_gflop_per_s": peak,
               "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                           "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                           "cpus": os.cpu_count()}}
    sizes = [(64, 1)] if args.quick else [(128, 8), (256, 4)]
    for size, steps in sizes:
        results[f"{size}x{size}"] = measure(size, steps, peak)
    if not args.quick:
        results["128x128_xla"] = measure(128, 8, peak, jit_compile=True)
        results["128x128_convolutions_only"] = measure(128, 8, peak, convolutions_only=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
