"""The pretrained encoder's stride-1 depthwise convolutions trained in bfloat16 with gradients
made of forward convolutions (`segment.bf16_depthwise`) against in float32, as the library
trained them before: the README's bf16 command retrained with them, the steps timed, and whether
training repeats.

    .venv/bin/python benchmarks/bench_depthwise_gradients.py          # 15 min, 45 with training
    .venv/bin/python benchmarks/bench_depthwise_gradients.py --quick  # a smoke run

- the README's bf16 command (`--mixed-precision --validate-every 3`) trained with the library as
  it is (run folder isic2018-224-lite0-bf16-depthwise-gradients) and the README's run before
  this change (isic2018-224-lite0-bf16-folded-f32bias, trained in `in_float32()` where
  missing), each scored plain and with TTA + post-processing, and paired image by image;
- in one window, the train step and the prediction of one batch (random data, the command's
  batch) in float32 and in bf16, each with the depthwise convolutions trained in float32 and as
  the library trains them, in alternating rounds (bench_folded_training.py's
  `paired_step_speeds`); each variant's best counts;
- one epoch of `fit` on the new run's training part (seed 0), REPEATS times, each in a fresh
  process: whether the weights after it are equal, bit for bit.

On a CPU without native bf16 the benchmark says so and measures nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import contextlib
from unittest import mock

from segment import bf16_depthwise

import bench_isic2018 as isic
from bench_upsampling_conv import against_the_change

RUN = "depthwise-gradients"  # run folder isic2018-224-lite0-bf16-depthwise-gradients


@contextlib.contextmanager
def in_float32():
    """A context in which every depthwise convolution that trains without bf16 backprop kernels
    trains in float32, as the library's did before `bf16_depthwise`: models traced in it (and
    runs trained in it) train as before."""
    with mock.patch.object(bf16_depthwise, "fits", lambda layer: False):
        yield


def main(data, runs, args):
    return against_the_change(data, runs, args.quick, RUN, ("float32 depthwise", in_float32),
                              "library")


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
