"""Helper of tests/test_backends.py, run in fresh processes under KERAS_BACKEND (not collected).

    python tests/backend_run.py train DATA_DIR OUT_DIR
        Trains a tiny model for 2 epochs on the backend Keras runs on, the first at 16x16
        (`TrainConfig.first_size`), killed (simulated) as the second, at 32x32, starts and
        resumed, saves it to OUT_DIR/<backend>/model.keras,
        evaluates it, and prints JSON: the backend, the data set's class, whether TensorFlow
        was imported, the losses of the resumed run, the epochs in log.csv, the mean metrics
        and the probabilities on a fixed batch.
    python tests/backend_run.py load DATA_DIR MODEL... [--probe-only MODEL...]
        Loads each model on this backend and prints, per model, the same metrics and
        probabilities as JSON; those after --probe-only, only their probabilities (a Lite0
        U-Net's evaluation with TTA adds about 7 s of compiling on JAX).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SIZE = (32, 32)
PROBE = np.linspace(0, 1, 2 * 32 * 32 * 3, dtype="float32").reshape(2, 32, 32, 3)
METRICS = ["dice", "jaccard", "sensitivity", "specificity", "hd95"]


def probe(model):
    """{"probe": the model's probabilities on PROBE, as nested lists}."""
    return {"probe": keras.ops.convert_to_numpy(model.predict_on_batch(PROBE)).tolist()}


def scores(model, pairs):
    """Mean metrics on `pairs` (with TTA and post-processing) and probabilities on PROBE."""
    summary = segment.evaluate(model, pairs, tta=True, postprocess=True, progress=False).summary
    return {"metrics": {name: summary[name]["mean"] for name in METRICS}, **probe(model)}


class CrashAtSecondEpoch(keras.callbacks.Callback):
    """Simulates a kill: raises when the second epoch begins."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated crash")


def train(data_dir, out_dir):
    """Train, save, report and score on this process's backend (see the module docstring)."""
    split = segment.train_val_test_split(segment.find_pairs(data_dir), seed=0)
    train_ds = segment.create_generator(split.train, image_size=SIZE, batch_size=4, augment="full",
                                        shuffle=True)
    first_ds = segment.create_generator(split.train, image_size=(16, 16), batch_size=4)
    val_ds = segment.create_generator(split.val, image_size=SIZE, batch_size=4)
    run = os.path.join(out_dir, keras.backend.backend())
    config = segment.TrainConfig(epochs=2, first_epochs=1, first_size=(16, 16))
    segment.set_seed(0)
    try:  # killed while the second epoch starts: the first is backed up
        segment.train_model(segment.create_model((*SIZE, 3), base_filters=2, depth=2),
                            train_ds, val_ds, config, run, first_train_ds=first_ds,
                            callbacks=[CrashAtSecondEpoch()], verbose=0)
    except RuntimeError as error:
        assert "simulated crash" in str(error), error
    model = segment.create_model((*SIZE, 3), base_filters=2, depth=2)
    history = segment.train_model(model, train_ds, val_ds, config, run, first_train_ds=first_ds,
                                  verbose=0)  # resumes in the second phase
    segment.results(model, split.test, run_dir=os.path.join(run, "report"), progress=False)
    return {"backend": keras.backend.backend(), "pipeline": type(train_ds).__name__,
            "tensorflow_imported": "tensorflow" in sys.modules,
            "losses": history.history["loss"],
            "log_epochs": len(pd.read_csv(os.path.join(run, "log.csv"))),
            **scores(model, split.test)}


def load(data_dir, model_paths, probe_only_paths=()):
    """Load each model on this process's backend and score it; the `probe_only_paths` models
    only predict PROBE."""
    split = segment.train_val_test_split(segment.find_pairs(data_dir), seed=0)
    scored = {path: scores(segment.load_model(path), split.test) for path in model_paths}
    probed = {path: probe(segment.load_model(path)) for path in probe_only_paths}
    return {"backend": keras.backend.backend(), "models": {**scored, **probed}}


if __name__ == "__main__":
    command, data_dir, *rest = sys.argv[1:]
    cut = rest.index("--probe-only") if "--probe-only" in rest else len(rest)
    scored, probed = rest[:cut], rest[cut + 1:]
    commands = {"train": lambda: train(data_dir, rest[0]),
                "load": lambda: load(data_dir, scored, probed)}
    print(json.dumps(commands[command]()))
