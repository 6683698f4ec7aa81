"""Helper of tests/test_distribute.py, run in fresh processes (not collected by pytest).

    python tests/distributed_run.py compare DATA_DIR EPOCHS
        Trains the same tiny model on the same global batches twice, under MirroredStrategy on
        2 logical CPUs and on one device, and prints both loss curves as JSON, with the sizes
        the 2 replicas get of global batches of 1 to 3 images.
    python tests/distributed_run.py worker DATA_DIR RUN_DIR EPOCHS
        One worker of a MultiWorkerMirroredStrategy cluster (from TF_CONFIG): trains, then
        prints its task, whether it is the chief, its epochs and its model's predictions.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402
from segment.distribute import task_id  # noqa: E402

import numpy as np  # noqa: E402

SIZE = (32, 32)
PROBE = np.linspace(0, 1, 2 * 32 * 32 * 3, dtype="float32").reshape(2, 32, 32, 3)


def data(data_dir, **options):
    split = segment.train_val_test_split(segment.find_pairs(data_dir), seed=0)
    return (segment.create_generator(split.train, image_size=SIZE, batch_size=8, seed=0, **options),
            segment.create_generator(split.val, image_size=SIZE, batch_size=8))


def replica_batches(strategy, batch_sizes):
    """For each global batch size, the sizes tf.distribute gives `strategy`'s replicas."""
    import tensorflow as tf

    return [[int(tf.shape(part)[0]) for part in strategy.experimental_local_results(
        next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.range(size).batch(
            size)))))] for size in batch_sizes]


def build(strategy):
    segment.set_seed(0)
    with strategy.scope():
        model = segment.create_model((*SIZE, 3), base_filters=4, depth=2, dropout=0.0)
        segment.compile_model(model, learning_rate=1e-3)
    return model


def compare(data_dir, epochs):
    mirrored = segment.create_strategy("mirrored", num_cpu_devices=2)
    train_ds, _ = data(data_dir)
    curves = {}
    for name, strategy in [("mirrored", mirrored), ("single", segment.create_strategy("none"))]:
        model = build(strategy)
        curves[name] = model.fit(train_ds, epochs=epochs, verbose=0).history["loss"]
    curves["replicas"] = mirrored.num_replicas_in_sync
    curves["replica_batches"] = replica_batches(mirrored, range(1, 4))
    print(json.dumps(curves))


def worker(data_dir, run_dir, epochs):
    strategy = segment.create_strategy("multiworker")
    train_ds, val_ds = data(data_dir, shuffle=True)
    model = build(strategy)
    history = segment.train_model(model, train_ds, val_ds, epochs, run_dir, strategy=strategy,
                                  verbose=0)
    print(json.dumps({"task": task_id(strategy), "chief": segment.is_chief(strategy),
                      "epochs": len(history.history["loss"]),
                      "prediction": model.predict(PROBE, verbose=0).ravel()[::97].tolist()}))


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "compare":
        compare(arguments[0], int(arguments[1]))
    else:
        worker(arguments[0], arguments[1], int(arguments[2]))
