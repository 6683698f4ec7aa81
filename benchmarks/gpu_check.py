"""One command that measures the library on a GPU machine with JAX and PyTorch but no TensorFlow.

    python benchmarks/gpu_check.py --data data/gpu-check --out gpu_check.json  # < 9 minutes
    python benchmarks/gpu_check.py --dry-run --out /tmp/check.json             # CPU, tiny sizes
    python benchmarks/gpu_check.py --data data/gpu-check --backends jax --precisions mixed_float16

For the JAX and the PyTorch backend (each in its own process, as Keras picks its backend once):
first a short real-data run on `--data` (image/mask pairs as `find_pairs` reads them, e.g. 400
of the ISIC 2018 set): 256^2, batch 16, a few epochs, the validation dice of each epoch, so a GPU
run is checked for correctness and not just speed; then training and prediction images/s of the
base-16 model at 128^2 and 256^2, batch 16 and 64, in float32, mixed bfloat16 and mixed
float16, with the peak GPU memory of each. Nothing is downloaded; without TensorFlow the input
pipeline is the library's `keras.utils.PyDataset`. Each backend stops at
`--seconds-per-backend` and keeps what it measured by then. Writes one JSON file (again after
each backend) and prints a table; the exit status is 1 if a backend stopped early.
docs/BACKENDS.md ("Run on a GPU without TensorFlow") says how to carry the code, the data and a
`keras` wheel to such a machine, and what one H200 measured.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKENDS = ["jax", "torch"]
PRECISIONS = ["float32", "mixed_bfloat16", "mixed_float16"]


def speed(size, batch, precision, steps, network):
    """Training and prediction images/s and peak device memory of one setting."""
    import segment


    _reset_peak_memory()
    segment.set_seed(0)
    model = segment.training.compile_model(segment.create_model(
        (size, size, 3), dtype_policy=None if precision == "float32" else precision, **network))
    from measure import images_per_second, random_batch

    images, masks = random_batch(batch, size)
    result = {"size": size, "batch": batch, "precision": precision}
    for name, step in [("train", lambda: model.train_on_batch(images, masks)),
                       ("predict", lambda: model.predict_on_batch(images))]:
        result[f"{name}_images_per_s"] = images_per_second(step, batch, steps,
                                                           synchronize=_synchronize)[0]
    return {**result, "peak_memory_mb": _peak_memory_mb()}


def real_data_run(data, size, epochs, batch, network):
    """Train on `data` for a few epochs; the validation dice per epoch and the time."""
    import segment

    split = segment.train_val_test_split(segment.find_pairs(data), seed=0)
    train_ds = segment.create_generator(split.train, image_size=(size, size), batch_size=batch,
                                        augment="full",
                                        shuffle=True)
    val_ds = segment.create_generator(split.val, image_size=(size, size), batch_size=batch)
    segment.set_seed(0)
    model = segment.create_model((size, size, 3), **network)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        history = segment.train_model(model, train_ds, val_ds, segment.TrainConfig(
            epochs=epochs, learning_rate=1e-3, lr_schedule="cosine", loss="bce_dice"),
            run_dir, verbose=0)
    train_seconds = time.perf_counter() - start
    test = segment.evaluate(model, split.test, progress=False).summary
    return {"pairs": [len(part) for part in split], "size": size, "epochs": epochs,
            "train_seconds": train_seconds, "val_dice": history.history["val_dice"],
            "test_mean_dice": test["dice"]["mean"], "pipeline": type(train_ds).__name__}


def child(settings, lines):
    """Everything for one backend, in this process: one JSON line per result, appended to
    `lines` as soon as it is measured, so a backend stopped at its time limit keeps the rest."""
    import segment

    import keras

    def record(**result):
        with open(lines, "a") as file:
            file.write(json.dumps(result) + "\n")
        print(f"{keras.backend.backend()}: {json.dumps(result)[:200]}", file=sys.stderr,
              flush=True)

    record(backend=keras.backend.backend(), devices=_devices(),
           versions=segment.runtime.library_versions())
    record(real_data=real_data_run(settings["data"], settings["real_size"], settings["epochs"],
                                   settings["real_batch"], settings["network"]))
    for precision in settings["precisions"]:
        for size in settings["sizes"]:
            for batch in settings["batches"]:
                try:
                    row = speed(size, batch, precision, settings["steps"], settings["network"])
                except Exception as error:  # noqa: BLE001  (e.g. out of memory: record, go on)
                    row = {"size": size, "batch": batch, "precision": precision,
                           "error": str(error)[:300]}
                record(speed=row)


def run_backend(backend, settings, seconds, scratch):
    """The results of one backend's child process, stopped after `seconds`: {"backend",
    "devices", "versions", "real_data", "speed": [rows]}, with "stopped" if it did not finish."""
    lines = Path(scratch) / f"{backend}.jsonl"
    # the child sees the packages this process sees (run with -S and PYTHONPATH, as the tests
    # run it, its site-packages stay hidden: a machine without TensorFlow on a CPU)
    command = [sys.executable, *(["-S"] if sys.flags.no_site else []), __file__, "--child",
               json.dumps(settings), "--lines", str(lines)]
    result = {"backend": backend, "speed": []}
    try:
        done = subprocess.run(command, env=_environment(backend), timeout=seconds)
        if done.returncode != 0:
            result["stopped"] = f"exit status {done.returncode}"
    except subprocess.TimeoutExpired:
        result["stopped"] = f"time limit of {seconds} s"
    for line in lines.read_text().splitlines() if lines.exists() else []:
        row = json.loads(line)
        if "speed" in row:
            result["speed"].append(row["speed"])
        else:
            result.update(row)
    return result


def _devices():
    import keras

    if keras.backend.backend() == "jax":
        import jax
        return [str(device) for device in jax.devices()]
    import torch
    return ([torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
            or ["cpu"])


def _reset_peak_memory():
    import keras

    if keras.backend.backend() == "torch":
        import torch
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def _peak_memory_mb():
    """Peak device memory in MB (JAX: since the process started), None on the CPU."""
    import keras

    if keras.backend.backend() == "torch":
        import torch
        return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    import jax
    stats = jax.devices()[0].memory_stats() or {}
    return stats["peak_bytes_in_use"] / 2**20 if "peak_bytes_in_use" in stats else None


def _synchronize():
    import keras

    if keras.backend.backend() == "torch":
        import torch
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def table(results):
    lines = [f"{'backend':<7} {'precision':<15} {'size':>5} {'batch':>5} {'train/s':>9} "
             f"{'predict/s':>9} {'peak MB':>8}"]
    for backend in results["backends"]:
        for row in backend["speed"]:
            if "error" in row:
                lines.append(f"{backend['backend']:<7} {row['precision']:<15} {row['size']:>5} "
                             f"{row['batch']:>5}  error: {row['error'][:60]}")
                continue
            memory = f"{row['peak_memory_mb']:.0f}" if row["peak_memory_mb"] else "-"
            lines.append(f"{backend['backend']:<7} {row['precision']:<15} {row['size']:>5} "
                         f"{row['batch']:>5} {row['train_images_per_s']:>9.1f} "
                         f"{row['predict_images_per_s']:>9.1f} {memory:>8}")
        if "stopped" in backend:
            lines.append(f"{backend['backend']:<7} stopped: {backend['stopped']}")
        if "real_data" not in backend:
            continue
        real = backend["real_data"]
        lines.append(f"{backend['backend']:<7} real data {real['size']}^2, {real['epochs']} "
                     f"epochs in {real['train_seconds']:.0f} s: val dice "
                     f"{', '.join(f'{dice:.3f}' for dice in real['val_dice'])}; test "
                     f"{real['test_mean_dice']:.3f}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder of image/mask pairs for the real-data run "
                                       "(default with --dry-run: a small synthetic set)")
    parser.add_argument("--out", default="gpu_check.json", help="the JSON file to write")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the real-data run")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes and network, float32 and float16, one epoch: checks the "
                             "script on a CPU")
    parser.add_argument("--seconds-per-backend", type=int, default=240,
                        help="each backend's time limit; what it measured by then is kept "
                             "(default 240)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS,
                        help="the backends to measure, in this order (default: both)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=PRECISIONS,
                        help="the precisions of the speed rows (default: all three; --dry-run "
                             "leaves out mixed_bfloat16)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--lines", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child), args.lines)
        return 0
    settings = {"sizes": [128, 256], "batches": [16, 64], "precisions": args.precisions,
                "steps": 10,
                "data": args.data, "real_size": 256, "real_batch": 16, "epochs": args.epochs,
                "network": {"base_filters": 16, "depth": 5}}
    with tempfile.TemporaryDirectory() as scratch:
        if args.dry_run:
            settings.update(sizes=[32], batches=[2], steps=1,
                            precisions=[name for name in args.precisions
                                        if name != "mixed_bfloat16"],
                            real_size=32, real_batch=4, epochs=1,
                            network={"base_filters": 4, "depth": 2})
            if settings["data"] is None:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
                settings["data"] = str(Path(scratch) / "synthetic")
                subprocess.run([sys.executable, "-c", "import segment, sys; "
                                "segment.make_synthetic_dataset(sys.argv[1], 20, size=(40, 40))",
                                settings["data"]], check=True, env=_environment("jax"))
        if settings["data"] is None:
            parser.error("--data is required (a folder of image/mask pairs)")
        results = {"settings": settings, "backends": []}
        for backend in args.backends:
            results["backends"].append(run_backend(backend, settings, args.seconds_per_backend,
                                                   scratch))
            Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"wrote {args.out}")
    return 1 if any("stopped" in backend for backend in results["backends"]) else 0


def _environment(backend):
    root = str(Path(__file__).resolve().parents[1])  # the checkout: `import segment` works
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": path,
            "TF_CPP_MIN_LOG_LEVEL": "2"}


if __name__ == "__main__":
    sys.exit(main())
