"""Scaling measurements for docs/SCALING.md: mirrored overhead and training memory per image.

    .venv/bin/python benchmarks/bench_scaling.py            # about 4 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_scaling.py --quick    # a smoke run

1. Training images/s of the base-16 model at 128^2, global batch 16, on one device and under
   MirroredStrategy on 2 logical CPU devices (same cores: this shows the strategy's own
   overhead, not a speed-up). Both in one fresh process, alternating over 3 rounds; the best
   round of each is compared.
2. Peak resident memory of training steps at 256^2 and 512^2 for batch 2 and batch 4, each in a
   fresh process; the difference divided by 2 is the memory one more image in a batch costs.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from measure import child_json, peak_rss_mb, random_batch, seconds  # noqa: E402

BATCH = 16


def build(strategy, size, depth):
    """The base-16 model under `strategy`, traced, and a repeating in-memory data set."""
    import segment

    import tensorflow as tf

    segment.set_seed(0)
    with strategy.scope():
        model = segment.create_model((size, size, 3), base_filters=16, depth=depth)
        segment.compile_model(model)
    images, masks = random_batch(BATCH * 4, size)
    data = tf.data.Dataset.from_tensor_slices((images, masks)).batch(BATCH).repeat()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace and warm up
    return model, data


def throughput(model, data, steps):
    return steps * BATCH / seconds(lambda: model.fit(data, steps_per_epoch=steps, epochs=1,
                                                     verbose=0))


def overhead(args):
    import segment

    mirrored = segment.create_strategy("mirrored", num_cpu_devices=2)
    single = segment.create_strategy("none")
    models = {name: build(strategy, args.size, args.depth)
              for name, strategy in [("single", single), ("mirrored_2_cpu", mirrored)]}
    rounds = {name: [] for name in models}
    for _ in range(args.rounds):  # alternate, so a noisy moment of the machine hits both
        for name, (model, data) in models.items():
            rounds[name].append(throughput(model, data, args.steps))
    print(json.dumps({"best": {name: max(values) for name, values in rounds.items()},
                      "rounds": rounds}))


def memory(args):
    import segment

    import numpy as np

    segment.set_seed(0)
    model = segment.create_model((args.size, args.size, 3), base_filters=16)
    segment.compile_model(model)
    images = np.zeros((args.batch, args.size, args.size, 3), np.float32)
    for _ in range(2):
        model.train_on_batch(images, images[..., :1])
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 32^2, 3 levels, one step")
    parser.add_argument("--part", choices=["overhead", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--depth", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "overhead":
        return overhead(args)
    if args.part == "memory":
        return memory(args)
    steps, size, rounds, depth = (1, 32, 1, 3) if args.quick else (8, 128, 3, 5)
    print(f"mirrored overhead: {size}^2, batch 16, {rounds} rounds of {steps} steps ...",
          file=sys.stderr)
    speeds = child_json(__file__, "--part", "overhead", "--steps", steps, "--size", size,
                        "--rounds", rounds, "--depth", depth)
    best = speeds["best"]
    results = {"images_per_s": speeds,
               "mirrored_relative_speed": best["mirrored_2_cpu"] / best["single"],
               "memory_mb_per_image": {}}
    for size in [] if args.quick else [256, 512]:  # quick: no memory children
        print(f"memory at {size}^2 ...", file=sys.stderr)
        peaks = [child_json(__file__, "--part", "memory", "--size", size,
                            "--batch", batch)["peak_rss_mb"] for batch in (2, 4)]
        results["memory_mb_per_image"][f"{size}x{size}"] = (peaks[1] - peaks[0]) / 2
        results[f"peak_rss_mb_batch_2_4_{size}"] = peaks
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
