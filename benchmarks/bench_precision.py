"""Mixed precision: bfloat16 (CPU) or float16 (GPU) against float32, speed and dice.

    .venv/bin/python benchmarks/bench_precision.py            # about 3 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_precision.py --quick    # a smoke run

Trains the same small model (base 8, depth 4, 64^2, batch 8) from the same initial weights on
the same synthetic images for the same number of steps, in float32 and in the mixed policy the
hardware calls for, and reports the training speed of each and the per-image mean dice each
reaches on those images. It also reports which case this machine is: native bf16 (CPU flags
avx512_bf16 / amx_bf16), a GPU (float16), or neither, where `resolve_precision("mixed")` warns
and trains in float32 instead.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402
from segment.runtime import cpu_has_native_bf16  # noqa: E402

import tensorflow as tf  # noqa: E402
from measure import seconds  # noqa: E402


def train(policy, pairs, steps, size, network):
    segment.training.set_seed(0)
    model = segment.create_model((size, size, 3), dropout=0.0, **network,
                                 dtype_policy=None if policy == "float32" else policy)
    segment.training.compile_model(model, learning_rate=2e-3)
    data = segment.create_generator(pairs, image_size=(size, size), batch_size=8,
                                    shuffle=True).repeat()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace and warm up
    speed = 8 * steps / seconds(lambda: model.fit(data, steps_per_epoch=steps, epochs=1,
                                                  verbose=0))
    evaluation = segment.evaluate(model, pairs, original_size=False, progress=False)
    return {"train_images_per_s": speed, "mean_dice": evaluation.summary["dice"]["mean"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one step of a 3-level network at 32^2")
    args = parser.parse_args()
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    native = cpu_has_native_bf16()
    mixed = "mixed_float16" if has_gpu else "mixed_bfloat16"
    steps, size, network = ((1, 32, {"base_filters": 4, "depth": 3}) if args.quick else
                            (60, 64, {"base_filters": 8, "depth": 4}))
    with tempfile.TemporaryDirectory() as folder:
        pairs = segment.make_synthetic_dataset(folder, 32, size=(64, 80))
        results = {"case": "gpu" if has_gpu else "native bf16" if native else "no native bf16",
                   "library_choice_for_mixed": segment.resolve_precision("mixed"),
                   "steps": steps, "float32": train("float32", pairs, steps, size, network),
                   mixed: train(mixed, pairs, steps, size, network)}
    results["mixed_speedup"] = (results[mixed]["train_images_per_s"]
                                / results["float32"]["train_images_per_s"])
    results["dice_difference"] = results[mixed]["mean_dice"] - results["float32"]["mean_dice"]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
