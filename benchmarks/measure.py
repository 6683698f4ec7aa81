"""How the benchmarks measure: time, throughput, seeded batches and resident memory, once for all.

Every `bench_*.py` (and `gpu_check.py`) times with these helpers, so a number in RESULTS.md means
the same thing whichever script made it:

- `seconds(function)`: wall-clock seconds of one call.
- `images_per_second(step, images_per_call, calls, warmup=2)`: `warmup` untimed calls (they
  trace or compile), then `calls` timed ones; the rate and the warm-up seconds.
- `best_rates(steps, images_per_call, rounds, calls, warmup=0)`: each named step's best
  `images_per_second` over `rounds` rounds that take the steps in turn, so a slower moment of
  the machine hits all of them.
- `random_batch(batch, size)`: seeded float32 images in [0, 1] and {0, 1} masks.
- `train_images_per_second(model, batch, steps)`: a compiled Keras model's train step on
  `random_batch` data at its input size.
- `run_eagerly()`: for --quick smoke runs, which check code paths and not speed.
- `child_json(script, *arguments, env=None)`: run a script in a fresh Python (a clean process
  for memory, or another backend) and return the JSON object its last output line prints.
- `peak_rss_mb()` / `current_rss_mb()`: this process's resident memory. `ru_maxrss` is not
  used: Linux keeps it across fork and exec, so a child started by a big benchmark process
  reports its parent's peak; VmHWM (the peak) and VmRSS (now) in /proc/self/status belong to
  the current process image only.
"""

import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def seconds(function):
    """Wall-clock seconds one call of `function()` takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def images_per_second(step, images_per_call, calls, *, warmup=2, synchronize=None):
    """(images/s over `calls` timed calls of `step()`, seconds of the `warmup` calls before).

    `synchronize`, if given, is called before the clock stops (a GPU's queue must be empty).
    """
    warmup_seconds = seconds(lambda: [step() for _ in range(warmup)])
    start = time.perf_counter()
    for _ in range(calls):
        step()
    if synchronize is not None:
        synchronize()
    return images_per_call * calls / (time.perf_counter() - start), warmup_seconds


def best_rates(steps, images_per_call, rounds, calls, warmup=0):
    """{name: images/s}: the best of `rounds` rounds, each timing `calls` calls of every step
    of `steps` ({name: step()}) in turn, after `warmup` untimed calls of it."""
    rates = dict.fromkeys(steps, 0.0)
    for _ in range(rounds):
        for name, step in steps.items():
            rate = images_per_second(step, images_per_call, calls, warmup=warmup)[0]
            rates[name] = max(rates[name], rate)
    return rates


def run_eagerly():
    """Make TensorFlow run every function eagerly from now on (tf.data's stay graphs), so that a
    --quick smoke run, a few steps of each model, spends no time tracing graphs: a Lite0
    network's training step takes about 25 s to trace on 2 cores. Its speeds mean nothing then."""
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)


def random_batch(batch, size, seed=0):
    """Seeded float32 (batch, size, size, 3) images in [0, 1] and (batch, size, size, 1) masks."""
    rng = np.random.default_rng(seed)
    images = rng.random((batch, size, size, 3), dtype=np.float32)
    return images, (rng.random((batch, size, size, 1)) > 0.5).astype(np.float32)


def train_images_per_second(model, batch, steps):
    """Images/s of `steps` timed train steps of a compiled Keras model (after 2 of warm-up), on
    `random_batch(batch, size)` at the model's own square input size."""
    images, masks = random_batch(batch, model.input_shape[1])
    return images_per_second(functools.partial(model.train_on_batch, images, masks), batch,
                             steps)[0]


def _status_mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def peak_rss_mb():
    """Highest resident memory of this process so far, in MB."""
    return _status_mb("VmHWM")


def current_rss_mb():
    """Resident memory of this process now, in MB."""
    return _status_mb("VmRSS")


def child_json(script, *arguments, env=None):
    """The JSON object the last stdout line of `python script *arguments` prints (in `env`,
    else this process's environment); raises CalledProcessError if it fails."""
    done = subprocess.run([sys.executable, str(script), *map(str, arguments)],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
