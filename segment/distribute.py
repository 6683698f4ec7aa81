"""Scale out with TensorFlow's own engine: tf.distribute strategies, and who writes the files.

    strategy = create_strategy("mirrored")              # all local GPUs (or N logical CPUs)
    with strategy.scope():
        model = create_model((256, 256, 3))
    replicas = strategy.num_replicas_in_sync
    train_ds = create_generator(train, shuffle=True, replicas=replicas)
    val_ds = create_generator(val, replicas=replicas)
    train_model(model, train_ds, val_ds, 50, "runs/x", strategy=strategy)

`--batch-size` / the pipeline's batch is the *global* batch: each step splits it across the
replicas (`replicas` leaves out a last batch that would give one of them no images). The
learning rate is not changed with the number of replicas; if you grow the global batch k
times, the linear scaling rule (learning rate x k) is the usual starting point.
With MultiWorkerMirroredStrategy every worker runs the same program with its own `TF_CONFIG`;
only the chief writes the run folder, the others write to temporary folders they remove
(see docs/SCALING.md).
"""

import contextlib
import functools
import json
import logging
import os

from .pipeline import leaves_a_replica_without_images
from .runtime import keras_backend

__all__ = ["STRATEGIES", "OneDevice", "check_last_batches", "check_replica_batches",
           "create_strategy", "is_chief", "task_id"]

logger = logging.getLogger(__name__)

STRATEGIES = ("none", "mirrored", "multiworker")


def create_strategy(kind="none", *, num_cpu_devices=None):
    """Create the tf.distribute strategy to build and train the model under.

    Args:
        kind: "none" (TensorFlow's default, one device), "mirrored" (MirroredStrategy: all
            local GPUs, or `num_cpu_devices` logical CPUs) or "multiworker"
            (MultiWorkerMirroredStrategy over the workers named in the `TF_CONFIG`
            environment variable).
        num_cpu_devices: Split the CPU into this many logical devices first (must be called
            before TensorFlow has started its runtime); with "mirrored" these devices are the
            replicas. For trying distribution on a machine without GPUs.

    Returns:
        tf.distribute.Strategy; under the JAX and PyTorch backends, "none" gives a `OneDevice`
        (those backends train on one device here).

    Raises:
        ValueError: an unknown kind, "multiworker" without TF_CONFIG, or logical devices asked
            for after TensorFlow started.

    Example:
        Skipped under doctest: logical devices can only be made before TensorFlow starts,
        which it has in a test run (tests/test_distribute.py runs this in a fresh process).

        >>> strategy = create_strategy("mirrored", num_cpu_devices=2)  # doctest: +SKIP
        >>> strategy.num_replicas_in_sync  # doctest: +SKIP
        2
    """
    if kind not in STRATEGIES:
        raise ValueError(f"Unknown strategy. Received: kind={kind!r}; available: {STRATEGIES}")
    backend = keras_backend()
    if backend != "tensorflow":
        if kind != "none" or num_cpu_devices:
            raise ValueError(f"tf.distribute needs the TensorFlow backend; Keras runs on "
                             f"{backend}. Received: kind={kind!r}")
        return OneDevice()
    import tensorflow as tf  # here: under the JAX and PyTorch backends nothing else needs it

    if num_cpu_devices:
        _split_cpu(int(num_cpu_devices))
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = ([f"/cpu:{index}" for index in range(int(num_cpu_devices))]
                   if num_cpu_devices and not tf.config.list_physical_devices("GPU") else None)
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    else:
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--distribute multiworker needs the TF_CONFIG environment variable "
                             "naming the cluster and this worker (see docs/SCALING.md)")
        strategy = _multi_worker_strategy_class()()
    logger.info("%s with %d replicas", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


class OneDevice:
    """What training asks of a strategy, on one device: for the JAX and PyTorch backends.

    Example:
        >>> with OneDevice().scope():
        ...     pass
    """

    num_replicas_in_sync = 1
    cluster_resolver = None

    def scope(self):
        return contextlib.nullcontext()


def check_replica_batches(strategy, batch_size, split):
    """Raise ValueError where `strategy`'s replicas cannot share the batches of `split` (a
    `Split`): Keras averages the first batch over the replicas to learn its shapes, so the
    global batch must be a multiple of the replicas and neither the train nor the validation
    part smaller than one batch."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return
    if batch_size % replicas:
        raise ValueError(f"batch size {batch_size} must be a multiple of the {replicas} "
                         f"replicas (it is the global batch, split evenly across them)")
    small = [name for name, part in [("train", split.train), ("validation", split.val)]
             if 0 < len(part) < batch_size]
    if small:
        raise ValueError(f"with {replicas} replicas each part needs at least one full batch "
                         f"of {batch_size}; too small: {', '.join(small)} (lower the batch size)")


def check_last_batches(strategy, **datasets):
    """Raise ValueError where one of `datasets` (name=data set, from `create_generator`) ends
    each epoch with a batch that would leave one of `strategy`'s replicas without images,
    which TensorFlow's oneDNN convolution fails on; `create_generator(..., replicas=n)` leaves
    such a batch out. Data sets made otherwise, and None, pass unchecked.

    Example:
        >>> check_last_batches(OneDevice(), training=None)
    """
    replicas = strategy.num_replicas_in_sync
    for name, dataset in datasets.items():
        last = getattr(dataset, "last_batch", None)
        if last is not None and leaves_a_replica_without_images(last, replicas):
            raise ValueError(f"the {name} data's last batch of {last} would leave one of the "
                             f"{replicas} replicas without images: build it with "
                             f"create_generator(..., replicas={replicas}), which leaves it out")


def is_chief(strategy):
    """True for the one process that writes the run folder (TensorFlow's chief rule).

    The chief is the task of type "chief", or worker 0 when the cluster has no chief; every
    single-process strategy is its own chief.

    Example:
        >>> is_chief(create_strategy("none"))
        True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def task_id(strategy):
    """The "<type>-<index>" of this process in a multi-worker cluster, else "local"."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return "local"
    return f"{resolver.task_type}-{resolver.task_id}"


@functools.cache
def _multi_worker_strategy_class():
    """MultiWorkerMirroredStrategy whose `reduce` takes what Keras 3's `fit` gives it.

    With TensorFlow 2.21 and Keras 3.15, `fit` under this strategy fails twice in `reduce`:
    it reduces an (images, masks) batch, a nested structure, which the collective reduce
    rejects although `Strategy.reduce` documents nested values; and it reduces each step's
    scalar logs with `axis=0`, which a scalar does not have. So each element is reduced in
    turn (every worker issues the same collectives in the same order), and for a scalar the
    mean over replicas is taken, which is what "mean along axis 0" means for one. (Defined on
    first use, so importing this module does not import TensorFlow.)
    """
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            def reduce_one(item):
                local = self.experimental_local_results(item)[0]
                item_axis = None if local.shape.rank == 0 else axis
                return super(MultiWorkerMirroredStrategy, self).reduce(reduce_op, item,
                                                                       item_axis)

            return tf.nest.map_structure(reduce_one, value)

    return MultiWorkerMirroredStrategy


def _split_cpu(count):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError as error:
        raise ValueError(f"cannot split the CPU into {count} logical devices once TensorFlow "
                         f"has started; create the strategy first ({error})") from None
