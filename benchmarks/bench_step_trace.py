"""Where one training step of the Lite0 U-Net spends its time, float32 against mixed_bfloat16.

    .venv/bin/python benchmarks/bench_step_trace.py              # 224x224, batch 8: about 3 min
    .venv/bin/python benchmarks/bench_step_trace.py --size 128
    .venv/bin/python benchmarks/bench_step_trace.py --quick      # a smoke run at 64x64

The network `train_model` trains with `--encoder efficientnet_lite0` (base 16 filters, frozen
batch norms), compiled as it compiles it (Adam, bce_dice), on random data, in three precisions:
float32; mixed_bfloat16 as the library builds it (the encoder's depthwise convolutions train
in float32 on a CPU: `model.float32_depthwise_training`); and mixed_bfloat16 with every layer
in bfloat16, as before that choice. After WARMUP steps,
STEPS steps run under TensorFlow's profiler; its trace (the xplane protobuf TensorFlow writes)
gives each op's time on the executor's threads. Two executor threads run ops side by side, so
the op time of a step adds up to more than its wall time; shares are of the op time. Ops are
grouped two ways:

- by op type (Conv2D, DepthwiseConv2dNative, its backprops, Mul, Cast, ...);
- by part of the network, from the op's name (`PARTS`, first match wins): casts between
  float32 and bfloat16, the optimizer's update, the full-resolution level 1 (its context
  level, the upsampling into it, its localization and segmentation), the encoder's frozen
  batch norms, its depthwise convolutions, its other convolutions, the activations, the
  decoder's instance norms and convolutions, the sums of gradients, and the rest.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import argparse
import collections
import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402
from segment.training import compile_model  # noqa: E402

import tensorflow as tf  # noqa: E402
from measure import random_batch  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

WARMUP, STEPS, TOP = 3, 3, 15
EXECUTOR_LINE = "tf_Compute"  # the host plane's lines on which TensorFlow's executor runs ops
LEVEL_1 = re.compile(r"(context|localization|upsampling|segmentation|concatenate)_1(_|/|$)")
ACTIVATIONS = {"Relu6", "Relu6Grad", "LeakyRelu", "LeakyReluGrad", "Sigmoid", "SigmoidGrad"}
# (part, test on the op's name in lower case and its type), first match wins
PARTS = [("casts", lambda name, kind: kind == "Cast"),
         ("optimizer", lambda name, kind: name.startswith("adam") or "/adam" in name),
         ("level 1 (full resolution)", lambda name, kind: bool(LEVEL_1.search(name))),
         ("encoder batch norms", lambda name, kind: "efficientnet" in name and "_bn" in name),
         ("encoder depthwise convolutions", lambda name, kind: "depthwise_conv" in name),
         ("encoder 1x1 and stem convolutions",
          lambda name, kind: "efficientnet" in name and "conv" in name),
         ("activations", lambda name, kind: kind in ACTIVATIONS),
         ("decoder instance norms", lambda name, kind: "_norm" in name),
         ("decoder convolutions", lambda name, kind: "conv" in name),
         ("gradient sums", lambda name, kind: name.startswith("addn"))]


def op_times(space):
    """{(op name, op type): seconds} summed over the executor's threads of an `XSpace`."""
    times = collections.Counter()
    for plane in space.planes:
        names = {key: metadata.name for key, metadata in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith(EXECUTOR_LINE):
                continue
            for event in line.events:
                label = names.get(event.metadata_id, "")
                name, _, kind = label.rpartition(":")
                if name and kind and "::" not in label:  # an op is "<name>:<type>"; the
                    times[name, kind] += event.duration_ps / 1e12  # executor's own are "A::B"
    return times


def grouped(times, steps):
    """Seconds per step and shares of the op time, by op type (the TOP largest) and by part."""
    total = sum(times.values())
    by_type, by_part = collections.Counter(), collections.Counter()
    for (name, kind), seconds in times.items():
        by_type[kind] += seconds
        lowered = name.lower()
        part = next((part for part, test in PARTS if test(lowered, kind)), "other")
        by_part[part] += seconds
    return {"op_seconds_per_step": total / steps,
            "by_type": {kind: seconds / total for kind, seconds in by_type.most_common(TOP)},
            "by_part": {part: seconds / total for part, seconds in by_part.most_common()}}


PRECISIONS = {"float32": None, "mixed_bfloat16": "mixed_bfloat16",
              "mixed_bfloat16, depthwise in bf16": "mixed_bfloat16"}


def traced_step(size, batch, precision, steps, folder):
    """Wall seconds per step and `grouped` op times of `steps` profiled training steps."""
    policy = PRECISIONS[precision]
    every_layer = mock.patch("segment.model.float32_depthwise_training", lambda policy: False)
    with every_layer if "depthwise in bf16" in precision else contextlib.nullcontext():
        model = compile_model(segment.create_model(
            (size, size, 3), encoder="efficientnet_lite0", dtype_policy=policy),
            learning_rate=1e-3, loss="bce_dice")
    images, masks = random_batch(batch, size)
    for _ in range(WARMUP):
        model.train_on_batch(images, masks)
    tf.profiler.experimental.start(str(folder))
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, masks)
    wall = (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(next(Path(folder).rglob("*.xplane.pb")).read_bytes())
    return {"wall_seconds_per_step": wall, "images_per_s": batch / wall,
            **grouped(op_times(space), steps)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224, help="square input side (default 224)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="a smoke run at 64x64, one step")
    args = parser.parse_args()
    size, steps = (64, 1) if args.quick else (args.size, STEPS)
    results = {"size": size, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as scratch:
        for number, precision in enumerate(PRECISIONS):
            results[precision] = traced_step(size, args.batch_size, precision, steps,
                                             Path(scratch) / str(number))
    results["speedup_over_float32"] = {
        precision: results["float32"]["wall_seconds_per_step"]
        / results[precision]["wall_seconds_per_step"] for precision in PRECISIONS}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
