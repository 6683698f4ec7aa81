"""On a CPU without native bf16 nothing got slower: float32 training and prediction of the
library against the library as it was before the bf16 work began, in one window.

    .venv/bin/python benchmarks/bench_without_bf16.py          # 12-13 minutes on 2 cores
    .venv/bin/python benchmarks/bench_without_bf16.py --quick  # a smoke run (72 s)

The bf16 work (the fused norm kernels, the batch norms folded into the encoder's convolutions
in training and in prediction, the upsampling as one transposed convolution, the depthwise
layers' own gradients) began after commit BASE. Several of its layers are built in float32
too, so a CPU without native bf16, which trains and predicts in float32 only, may have gained
or lost by it. This benchmark exports BASE's `segment/` package with `git archive` and times,
in one window:

- the float32 train step (`train_on_batch`: forward, backward, Adam) and the prediction of one
  batch (`predict_on_batch` of the model the library predicts with, its batch norms folded
  where the library folds them) of the EfficientNet-Lite0 U-Net at 224x224 and 128x128 and of
  the Improved UNet at 128x128 (the default network), batch 8, random data, graphs, XLA off;
- in three long-lived processes: the library at BASE, the library as it is, and the library as
  it is again (the control: two copies of one library differ only by the window's noise, which
  shows how small a difference the window can see). Each process builds and traces its models
  once, then measures a round when asked; each round rotates the order by one, so a slower
  moment of the machine, or a place in the order, hits every process alike. Each step's best
  round counts;
- what the library does with a request for `mixed_bfloat16` on this machine: the precision it
  chooses and the line it logs.

The target, on a CPU without avx512_bf16 or amx_bf16: every ratio of either copy of the library
to BASE >= TOLERANCE, and a request for mixed_bfloat16 gets float32. On a CPU with native bf16
the ratios are measured with no target.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = "7dbbb61"  # 2026-12-03 14:34, the last commit before the bf16 work's first change
NETWORKS = [("efficientnet_lite0", 224), ("efficientnet_lite0", 128), (None, 128)]
QUICK_NETWORKS = [("efficientnet_lite0", 32), (None, 32)]
BATCH = 8
ROUNDS = 6
STEPS = 4
TOLERANCE = 0.95  # the least ratio counted as no slower (the control: how far two copies differ)
PROCESSES = ("base", "library", "library again")


def network_name(encoder, size):
    return f"{encoder or 'improved_unet'} {size}x{size}"


def serve(quick, steps):
    """A measuring process: builds and traces each network's two steps with the `segment` on
    its path, prints {"ready": segment's folder}, then prints {step: images/s} for each line
    read from stdin (a round of `steps` timed calls of every step, after one untimed call)."""
    import segment
    from segment.training import compile_model

    import measure

    if quick:
        measure.run_eagerly()
    try:  # the library since the bf16 work: it predicts with a copy, batch norms folded
        from segment.batch_norm_folding import folded_for_prediction
    except ImportError:  # BASE predicts with the model itself
        def folded_for_prediction(model):
            return model

    calls = {}
    for encoder, size in QUICK_NETWORKS if quick else NETWORKS:
        images, masks = measure.random_batch(BATCH, size)
        segment.set_seed(0)
        options = {"encoder": encoder} if encoder else {}
        model = compile_model(segment.create_model((size, size, 3), **options))
        predicting = folded_for_prediction(model)
        name = network_name(encoder, size)
        calls[f"{name} train"] = lambda model=model, i=images, m=masks: model.train_on_batch(i, m)
        calls[f"{name} predict"] = lambda model=predicting, i=images: model.predict_on_batch(i)
    for call in calls.values():  # traces each graph
        call()
    print(json.dumps({"ready": str(Path(segment.__file__).parent)}), flush=True)
    for _ in sys.stdin:
        rates = {name: measure.images_per_second(call, BATCH, steps, warmup=1)[0]
                 for name, call in calls.items()}
        print(json.dumps(rates), flush=True)


def exported_base(folder):
    """BASE's `segment/` package written under `folder` (from the repository's history)."""
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", BASE, "segment"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def start(python_path, quick, steps):
    """A serving process whose `segment` is the one under `python_path` (None: the library's),
    once it is ready; (process, the folder its `segment` was imported from)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(python_path),
                                                         env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", *(["--quick"] if quick else []),
         "--steps", str(steps)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=env, cwd=HERE)
    return process, json.loads(process.stdout.readline())["ready"]


def measured_round(process):
    process.stdin.write("round\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def best_rates(processes, rounds):
    """{process name: {step: best images/s}} over `rounds` rounds, each asking every process in
    turn, the order rotated by one every round (so that each process measures first, between
    and last equally often)."""
    names = list(processes)
    best = {name: {} for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            for step, rate in measured_round(processes[name]).items():
                best[name][step] = max(best[name].get(step, 0.0), rate)
    return best


def mixed_bfloat16_request():
    """{"chooses": the policy, "logged": [lines]}: what the library does on this machine with
    a request for mixed_bfloat16 (a CPU without native bf16 falls back to float32)."""
    from segment.runtime import resolve_precision

    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("segment")
    logger.addHandler(handler)
    try:
        chooses = resolve_precision("mixed_bfloat16", has_gpu=False)
    finally:
        logger.removeHandler(handler)
    return {"chooses": chooses, "logged": lines}


def ratios(best, against):
    """{"<process> / <against>": {step: its best images/s over against's}} for each process
    but `against`."""
    return {f"{name} / {against}": {step: rate / best[against][step]
                                     for step, rate in rates.items()}
            for name, rates in best.items() if name != against}


def measure_all(quick):
    from segment.runtime import cpu_has_native_bf16

    rounds, steps = (1, 1) if quick else (ROUNDS, STEPS)
    processes, imported_from = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        paths = {"base": exported_base(Path(folder)), "library": None, "library again": None}
        try:
            for name in PROCESSES:  # one at a time: each traces its graphs alone
                processes[name], imported_from[name] = start(paths[name], quick, steps)
            if not imported_from["base"].startswith(folder):
                raise RuntimeError(f"the base process imported {imported_from['base']}, not "
                                   f"the export of {BASE} under {folder}")
            best = best_rates(processes, rounds)
        finally:
            for process in processes.values():
                process.stdin.close()
                process.wait()
    imported_from["base"] = f"{BASE} (exported)"
    return {"base": BASE, "batch": BATCH, "rounds": rounds, "steps": steps,
            "native_bf16": cpu_has_native_bf16(), "tolerance": TOLERANCE,
            "segment_imported_from": imported_from, "images_per_s": best,
            "ratios": ratios(best, "base"), "mixed_bfloat16_request": mixed_bfloat16_request()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 32x32, one round of one step, functions eagerly")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.quick, args.steps)
    else:
        print(json.dumps(measure_all(args.quick), indent=2))


if __name__ == "__main__":
    main()
