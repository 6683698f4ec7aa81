"""Training and prediction images/s of the model on Keras' TensorFlow, JAX and PyTorch backends.

    .venv/bin/python benchmarks/bench_backends.py            # about 4 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_backends.py --quick    # a smoke run

The base-16 model at 128^2, batch 16, float32. Keras picks its backend once per process, so each
measurement is a fresh process under KERAS_BACKEND; the rounds alternate between the backends
(tensorflow, jax, torch, tensorflow, ...) so a slow spell of the machine hits all of them, and
the best round of each is reported. Within a process: build, compile, two warm-up steps
(tracing and compilation), then `train_on_batch` and `predict_on_batch` timed on one fixed
in-memory batch (the input pipeline is measured by bench_pipeline.py).

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import os

BACKENDS = ["tensorflow", "jax", "torch"]


def measure(size, batch, steps, depth):
    """In this process (its backend): training and prediction images/s."""
    import segment

    import keras

    segment.training.set_seed(0)
    model = segment.training.compile_model(
        segment.create_model((size, size, 3), base_filters=16, depth=depth))
    from measure import images_per_second, random_batch

    images, masks = random_batch(batch, size)
    rates = {f"{name}_images_per_s": images_per_second(step, batch, steps)[0]
             for name, step in [("train", lambda: model.train_on_batch(images, masks)),
                                ("predict", lambda: model.predict_on_batch(images))]}
    return {"backend": keras.backend.backend(), **rates}


def run_child(backend, size, batch, steps, depth):
    from measure import child_json

    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return child_json(__file__, "--child", size, batch, steps, depth, env=environment)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, 3 levels, one round")
    parser.add_argument("--child", nargs=4, type=int, metavar=("SIZE", "BATCH", "STEPS", "DEPTH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    size, batch, steps, rounds, depth = (32, 4, 2, 1, 3) if args.quick else (128, 16, 6, 2, 5)
    runs = {backend: [] for backend in BACKENDS}
    for _ in range(rounds):
        for backend in BACKENDS:
            runs[backend].append(run_child(backend, size, batch, steps, depth))
    best = {backend: {name: max(run[name] for run in measured)
                      for name in ["train_images_per_s", "predict_images_per_s"]}
            for backend, measured in runs.items()}
    print(json.dumps({"size": size, "batch": batch, "steps": steps, "rounds": rounds,
                      "precision": "float32", "best": best, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
