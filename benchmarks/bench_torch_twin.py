"""The Lite0 U-Net's speed in the library (Keras on TensorFlow) against its PyTorch twin.

    .venv/bin/python benchmarks/bench_torch_twin.py --compile  # 12 minutes on 2 cores
    .venv/bin/python benchmarks/bench_torch_twin.py            # without torch.compile's mode
    .venv/bin/python benchmarks/bench_torch_twin.py --quick    # a smoke run

(11.5 minutes: a 2-core AMD EPYC with AVX-512 and bf16, 2026-12-04, torch.compile's cache warm;
its first compile took 2.5 and 3.5 minutes more on 2026-12-03.)

The same network (`create_model(encoder="efficientnet_lite0")`, base 16 filters) and its
PyTorch twin (`torch_twin.py`, same weights, same outputs: tests/test_torch_twin.py), at 128x128
and 224x224, batch 8, random data, in one process. Modes:

- keras float32, and keras mixed_bfloat16 where the CPU computes bf16 natively, each traced
  once (`train_on_batch`, `predict_on_batch`: graphs, XLA off, as the library trains); the
  prediction is that of the copy the library predicts with, its batch norms folded into its
  convolutions (`segment.batch_norm_folding.folded_for_prediction`);
- torch float32 eager, torch bf16 autocast eager, and with --compile torch.compile of the float32
  step (its compile time is recorded).

A train step is forward + backward + Adam (lr 1e-3) on the soft dice loss; a predict step is the
forward pass. The modes run in ROUNDS alternating rounds of STEPS steps each, so a slower moment
of the machine hits all of them; each mode's best round is its speed. Ratios between modes are
the result; absolute images/s vary by about 20 % on these machines within an hour.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import time

import segment
from segment.batch_norm_folding import folded_for_prediction
from segment.runtime import cpu_has_native_bf16
from segment.training import compile_model

import measure
import torch
from measure import random_batch
from torch_twin import TorchTwin

SIZES = (128, 224)
BATCH = 8
ROUNDS = 6  # 3 put Keras' bf16 prediction at 224x224 at 1.38x and 1.18x PyTorch's minutes apart
STEPS = 8


def keras_modes(size, bf16):
    """{mode: (train step, predict step)} of the library's model at `size`."""
    images, masks = random_batch(BATCH, size)
    modes = {}
    for name, policy in [("keras float32", None), ("keras mixed_bfloat16", "mixed_bfloat16")]:
        if policy and not bf16:
            continue
        segment.set_seed(0)
        model = compile_model(segment.create_model((size, size, 3), encoder="efficientnet_lite0",
                                                   dtype_policy=policy))
        predicting = folded_for_prediction(model)  # as the library predicts
        modes[name] = (lambda model=model: model.train_on_batch(images, masks),
                       lambda predicting=predicting: predicting.predict_on_batch(images))
    return modes


def soft_dice_loss(probabilities, masks):
    """1 - the soft dice per image (smoothing 1), averaged: the library's dice loss."""
    dims = (1, 2, 3)
    overlap = (probabilities * masks).sum(dims)
    total = probabilities.sum(dims) + masks.sum(dims)
    return (1 - (2 * overlap + 1) / (total + 1)).mean()


def torch_modes(size, compile_float32):
    """{mode: (train step, predict step)} of the twin at `size`; compile seconds if compiled."""
    images, masks = (torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
                     for array in random_batch(BATCH, size))
    modes, compile_seconds = {}, None
    variants = [("torch float32", False, False), ("torch bf16 autocast", True, False)]
    if compile_float32:
        variants.append(("torch.compile float32", False, True))
    for name, bf16, compiled in variants:
        torch.manual_seed(0)
        twin = TorchTwin().train()
        optimizer = torch.optim.Adam([p for p in twin.parameters() if p.requires_grad], 1e-3)
        network = torch.compile(twin) if compiled else twin

        def train(network=network, optimizer=optimizer, bf16=bf16):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = soft_dice_loss(network(images).float(), masks)
            loss.backward()
            optimizer.step()

        def predict(network=network, bf16=bf16):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return network(images)

        if compiled:
            start = time.perf_counter()
            train()
            predict()
            compile_seconds = time.perf_counter() - start
        modes[name] = (train, predict)
    return modes, compile_seconds


def best_rates(modes, rounds, steps):
    """{mode: {"train": images/s, "predict": images/s}}: the best of `rounds` alternating rounds
    of `steps` steps, after one warm-up step of each (which traces or compiles)."""
    for train, predict in modes.values():
        train()
        predict()
    kinds = ("train", "predict")
    rates = measure.best_rates({(name, kind): step for name, pair in modes.items()
                                for kind, step in zip(kinds, pair, strict=True)},
                               BATCH, rounds, steps)
    return {name: {kind: rates[name, kind] for kind in kinds} for name in modes}


def ratios(rates):
    """The project's fastest mode over PyTorch's, and bf16 over float32 in each library."""
    result = {}
    for kind in ("train", "predict"):
        ours = max(rate[kind] for name, rate in rates.items() if name.startswith("keras"))
        theirs = max(rate[kind] for name, rate in rates.items() if name.startswith("torch"))
        result[f"{kind}: project fastest / PyTorch fastest"] = ours / theirs
        for library in ("keras", "torch"):
            low = [rate[kind] for name, rate in rates.items()
                   if name.startswith(library) and ("bf16" in name or "bfloat16" in name)]
            if low:
                result[f"{kind}: {library} bf16 / float32"] = low[0] / rates[
                    f"{library} float32"][kind]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 32x32, 1 round, no torch.compile")
    parser.add_argument("--compile", action="store_true", help="also torch.compile (slow)")
    args = parser.parse_args()
    sizes, rounds, steps = ((32,), 1, 1) if args.quick else (SIZES, ROUNDS, STEPS)
    bf16 = cpu_has_native_bf16()
    results = {"batch": BATCH, "rounds": rounds, "steps": steps, "native_bf16": bf16,
               "torch": torch.__version__, "threads": torch.get_num_threads()}
    for size in sizes:
        modes, compile_seconds = torch_modes(size, args.compile and not args.quick)
        modes = {**keras_modes(size, bf16), **modes}
        rates = best_rates(modes, rounds, steps)
        results[f"{size}x{size}"] = {"images_per_s": rates, "ratios": ratios(rates),
                                     "torch_compile_seconds": compile_seconds}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
