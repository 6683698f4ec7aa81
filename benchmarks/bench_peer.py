"""Side by side with a peer no one here wrote: MONAI's DynUNet (PyTorch) against our network.

    .venv/bin/pip install -e '.[peer]' -c requirements/constraints.txt   # torch (CPU) + monai
    .venv/bin/python benchmarks/bench_peer.py            # about 4 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_peer.py --quick    # a smoke run: 64^2, eager only

Training and prediction speed (float32, batch 16, 128^2, in memory) of our Improved UNet and of
the peer in eager mode and under torch.compile, with FLOPs counted the same way for both (2 per
multiply-add of every convolution, a training step as 3x the forward) and each as a fraction of
the matmul peak measured in this process. The peer's test dice at the same wall-clock budget
comes from bench_quality.py, which trains both on the same batches. Without torch and monai the
benchmark prints a message saying so and reports nothing else.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402

import numpy as np  # noqa: E402
import peer  # noqa: E402
from bench_compute import BATCH, images_per_second, matmul_peak  # noqa: E402
from bench_compute import forward_flops as keras_forward_flops  # noqa: E402


def rates(train, predict, flops, peak):
    return {"forward_gflop_per_image": flops / 1e9,
            "train_images_per_s": train, "train_gflop_per_s": 3 * flops * train / 1e9,
            "train_fraction_of_peak": 3 * flops * train / 1e9 / peak,
            "predict_images_per_s": predict, "predict_gflop_per_s": flops * predict / 1e9,
            "predict_fraction_of_peak": flops * predict / 1e9 / peak}


def measure_ours(size, steps, peak):
    segment.set_seed(0)
    model = segment.compile_model(segment.create_model((size, size, 3)))
    return rates(images_per_second(model, size, steps, train=True),
                 images_per_second(model, size, steps, train=False),
                 keras_forward_flops(model), peak)


def measure_peer(size, steps, peak, compiled):
    model = peer.create_dynunet()
    flops = peer.forward_flops(model, size)
    trainer = peer.Trainer(model, 1e-3, compiled)
    predictor = peer.KerasLikePredictor(trainer.forward, model, size)
    rng = np.random.default_rng(0)
    images = rng.random((BATCH, size, size, 3), dtype=np.float32)
    masks = (rng.random((BATCH, size, size, 1)) > 0.5).astype(np.float32)
    result = {}
    for name, run in [("train", lambda: trainer.step(images, masks)),
                      ("predict", lambda: predictor.predict_on_batch(images))]:
        start = time.perf_counter()
        run(), run()  # compile (torch.compile) and warm up
        result[f"{name}_warmup_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            run()
        result[name] = steps * BATCH / (time.perf_counter() - start)
    return {**rates(result["train"], result["predict"], flops, peak),
            "warmup_seconds": {"train": result["train_warmup_seconds"],
                               "predict": result["predict_warmup_seconds"]}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64^2, eager only")
    args = parser.parse_args()
    missing = peer.available()
    if missing:
        print(json.dumps({"skipped": missing}))
        return
    import torch

    size, steps = (64, 1) if args.quick else (128, 8)
    peak = matmul_peak(512 if args.quick else 2048)
    results = {"matmul_peak_gflop_per_s": peak, "size": size, "batch": BATCH,
               "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
               "ours": measure_ours(size, steps, peak),
               "peer_eager": measure_peer(size, steps, peak, compiled=False)}
    if not args.quick:
        results["peer_compiled"] = measure_peer(size, steps, peak, compiled=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
