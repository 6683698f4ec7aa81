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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import peer  # noqa: E402
from bench_compute import BATCH, matmul_peak, measure, rates  # noqa: E402
from measure import images_per_second, random_batch  # noqa: E402


def measure_peer(size, steps, peak, compiled):
    model = peer.create_dynunet()
    trainer = peer.Trainer(model, 1e-3, compiled)
    predictor = peer.KerasLikePredictor(trainer.forward, model, size)
    images, masks = random_batch(BATCH, size)
    train, train_warmup = images_per_second(lambda: trainer.step(images, masks), BATCH, steps)
    predict, predict_warmup = images_per_second(
        lambda: predictor.predict_on_batch(images), BATCH, steps)
    return {**rates(train, predict, peer.forward_flops(model, size), peak),
            "warmup_seconds": {"train": train_warmup, "predict": predict_warmup}}


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
               "ours": measure(size, steps, peak),
               "peer_eager": measure_peer(size, steps, peak, compiled=False)}
    if not args.quick:
        results["peer_compiled"] = measure_peer(size, steps, peak, compiled=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
