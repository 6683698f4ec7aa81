"""Pairs -> batches of (images, masks) that `model.fit` takes directly, on every backend.

With TensorFlow installed the pipeline is tf.data (on any Keras backend: Keras 3's `fit` takes
a tf.data.Dataset); without it, a `keras.utils.PyDataset` with the same contract. Stages, in
the order of the tf.data performance guide:

    pairs --headers--> readable pairs --map(decode + resize, parallel)--> uint8 (H, W, 3),
          (H, W, 1) --cache (memory or a file on disk; uint8, so 4 bytes a pixel)
          --shuffle--> batch (whole ones only with `drop_remainder`; a last one that
          would leave one of `replicas` without images left out) --map(augment.
          training_batch: lesion crops, then to float and flips and 90-degree turns, with
          "full" also scale/shift crop and colour jitter, per image)--> prefetch

With `lesion_crops` the pairs are decoded at `augment.CROP_SOURCE_SCALE` times the network's
size, so that a crop around a small lesion keeps its detail; every view is resized to the
network's size in the batch step.

Decoding uses the same loaders as the rest of the library (`images.py`), and both pipelines
run the same augmentation (`augment.py`), so training, evaluation and export see identical
pixels whatever the backend. A pair that cannot be read is logged with its file name once,
skipped, and listed in `dataset.skipped`; the rest of the epoch goes on. Every header is read
before the first epoch, so the number of batches is known from the start (Keras' progress
bar and `len()` show it).
"""

import functools
import hashlib
import importlib.util
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from ._version import __version__
from .augment import CROP_SOURCE_SCALE, to_float, training_batch
from .config import DataConfig, with_overrides
from .data import as_pairs, fingerprint_pairs
from .errors import ImageReadError
from .images import load_input_image, load_segmented_image
from .inspection import log_size_mismatches, size_mismatch

__all__ = ["ENGINES", "PAIRS_AS_THEY_ARE", "PairBatches", "create_generator"]

logger = logging.getLogger(__name__)

ENGINES = ("tf.data", "keras")
# The DataConfig fields that change the training images, at the values that leave the pairs as
# they are: a validation or evaluation set made from a training config takes them
# (`create_generator(pairs, config, **PAIRS_AS_THEY_ARE)`), and `create_generator` prepares
# each batch with `augment.training_batch` only where a config differs from them.
PAIRS_AS_THEY_ARE = {"augment": "none", "lesion_crops": 0.0, "artifacts": 0.0}
_MAX_SHUFFLE_BUFFER = 512  # decoded images held for shuffling: bounded, even with a disk cache


def create_generator(pairs, config=None, *, shuffle=False, drop_remainder=False, replicas=1,
                     cache_dir=None, engine=None, **overrides):
    """Build the input pipeline for training, validation or prediction.

    Args:
        pairs: Sequence of `Pair` (or (image_path, mask_path) tuples).
        config: `DataConfig`; its fields used here, with their defaults:
            image_size: (height, width) the network sees. (256, 256).
            batch_size: Images per batch; the last batch may be smaller (`drop_remainder`). 16.
            augment: "none", "flips" (random flips and 90-degree turns of square sizes) or
                "full" (the flips, scale/shift crops of 80-100 % of each side and
                brightness/contrast/saturation jitter; `augment.augment_batch`). Geometric
                changes are identical for an image and its mask; masks stay binary. "none".
            cache: "memory" keeps the decoded, resized uint8 pairs in RAM after the first
                epoch; "disk" keeps them in `cache_dir` instead (for sets too big for RAM;
                tf.data only), in a file named by a fingerprint of the ordered pair ids,
                their files' sizes and modification times, `image_size` and the library
                version, so other pairs or another size never read it; "none" decodes every
                epoch. "memory".
            seed: Seed of the shuffle and the augmentation; same seed, same batches. 0.
            lesion_crops: Share of the images shown, each epoch, as a square crop around the
                lesion of their mask with a random margin and shift (as the second look
                predicts; `augment.lesion_views`), the others as whole views. 0.0.
            artifacts: Share of the images drawn, each epoch, with synthetic ink marks,
                rulers or a contact plate's rim outside their lesion
                (`artifacts.draw_artifacts`); masks unchanged. 0.0.
        shuffle: Reshuffle the order every epoch. Defaults to False.
        drop_remainder: Leave out each epoch's last batch where it is smaller than
            `batch_size` (with `shuffle`, other images each epoch), so every batch has one
            size and TensorFlow traces the training step with it, as PyTorch's `drop_last`.
            Kept where the pairs fill no whole batch. Defaults to False.
        replicas: How many replicas each batch is split across (a tf.distribute strategy's
            `num_replicas_in_sync`). A last batch that would leave a replica without images
            (`leaves_a_replica_without_images`) is left out as with `drop_remainder`, and
            logged: at most (replicas - 1)² pairs. TensorFlow's oneDNN convolution fails on
            an empty batch. Defaults to 1.
        cache_dir: The folder of the disk cache; required with cache="disk", refused
            otherwise.
        engine: "tf.data" (the default where TensorFlow is installed, on any Keras backend)
            or "keras" (a `keras.utils.PyDataset`; the default without TensorFlow).
        **overrides: `DataConfig` fields to replace, e.g. `image_size=(128, 128)`.

    Returns:
        tf.data.Dataset or keras.utils.PyDataset of (images, masks): float32
        (batch, height, width, 3) in [0, 1] and float32 (batch, height, width, 1) in {0, 1}.
        Its attribute `skipped` is a list that fills with (path, reason) for each unreadable
        pair as the data set is first read; each file is listed (and logged) once, however
        many epochs read it. `last_batch`: the number of pairs in each epoch's last batch.

    Example:
        >>> train_ds = create_generator(pairs, image_size=(32, 32), batch_size=4,
        ...                             augment="flips", shuffle=True)
        >>> images, masks = next(iter(train_ds))
        >>> tuple(images.shape), tuple(masks.shape), str(images.dtype)
        ((4, 32, 32, 3), (4, 32, 32, 1), "<dtype: 'float32'>")
    """
    if config is not None and not isinstance(config, DataConfig):
        raise TypeError(f"create_generator takes a DataConfig or its fields as keywords, e.g. "
                        f"create_generator(pairs, image_size=(128, 128), batch_size=16). "
                        f"Received: config={config!r}")
    config = with_overrides(config, DataConfig, overrides)
    if engine is None:
        engine = "tf.data" if importlib.util.find_spec("tensorflow") else "keras"
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine. Received: engine={engine!r}; available: {ENGINES}")
    if (config.cache == "disk") != (cache_dir is not None):
        raise ValueError(f"cache='disk' needs cache_dir (the cache's folder), and only it "
                         f"takes one. Received: cache={config.cache!r}, cache_dir={cache_dir!r}")
    if engine == "keras" and config.cache == "disk":
        raise ValueError("the keras engine caches in memory or not at all. "
                         "Received: cache='disk'")
    pairs = as_pairs(pairs)
    if not pairs:
        raise ValueError("create_generator needs at least one pair. Received: pairs=[]")
    size = config.image_size
    scale = CROP_SOURCE_SCALE if config.lesion_crops else 1  # crops keep the lesion's detail
    decoded_size = (size[0] * scale, size[1] * scale)
    loader = _PairLoader(pairs, decoded_size)
    cache_file = {"memory": "", "none": None}.get(config.cache) if cache_dir is None else (
        _disk_cache_file(Path(cache_dir), pairs, decoded_size))
    prepare = None  # uint8 batches only become float32
    if any(getattr(config, name) != value for name, value in PAIRS_AS_THEY_ARE.items()):
        prepare = functools.partial(training_batch, kind=config.augment, size=size,
                                    lesion_crops=config.lesion_crops,
                                    artifacts=config.artifacts)
    num_pairs = len(loader.readable)
    last_batch = num_pairs % config.batch_size
    replica_without_images = (num_pairs > config.batch_size
                              and leaves_a_replica_without_images(last_batch, replicas))
    if replica_without_images and not drop_remainder:
        logger.info("leaving out each epoch's last batch, %d of the %d pairs (%s): split across "
                    "%d replicas it would leave one without images", last_batch, num_pairs,
                    "other ones each epoch" if shuffle else "the same ones each epoch", replicas)
    settings = {"prepare": prepare, "shuffle": shuffle, "cache_file": cache_file,
                "seed": config.seed, "drop_remainder": replica_without_images or (
                    drop_remainder and num_pairs >= config.batch_size)}
    if engine == "tf.data":
        dataset = _tf_dataset(loader, config.batch_size, size=size, **settings)
    else:
        dataset = PairBatches(loader, config.batch_size, **settings)
    dataset.skipped = loader.skipped
    dataset.last_batch = config.batch_size if settings["drop_remainder"] or not last_batch else (
        last_batch)
    return dataset


def leaves_a_replica_without_images(batch, replicas):
    """True where tf.distribute, splitting a batch of `batch` images across `replicas`, gives
    one replica none: each replica takes ceil(batch / replicas) in turn, so a short last batch
    runs out early (5 across 4 replicas: 2, 2, 1, 0; 1 across 2: 1, 0). On a CPU, TensorFlow's
    oneDNN convolution fails on such an empty batch (it returns its input's channel count).

    Example:
        >>> [leaves_a_replica_without_images(batch, 4) for batch in (4, 5, 6, 7, 9, 13)]
        [False, True, True, False, True, False]
    """
    share = -(-batch // replicas)
    return batch > 0 and (replicas - 1) * share >= batch


class _PairLoader:
    """Decode pairs at the network size, after reading every header once.

    Pairs whose headers cannot be read (missing, empty or foreign files) are logged, listed in
    `skipped` and left out of `readable` before the first epoch, so the number of batches is
    known from the start. A file whose header reads but whose pixels do not (a truncated JPEG)
    is logged and listed once too, and the next readable pair is decoded in its place: an epoch
    always holds `len(readable)` pairs.
    """

    def __init__(self, pairs, size):
        self.size = size
        self.skipped, self._skipped_paths = [], set()
        self.readable, mismatches = [], []
        for pair in pairs:
            try:
                mismatch = size_mismatch(pair)
            except ImageReadError as error:
                self._skip(error)
                continue
            if mismatch:
                mismatches.append(mismatch)
            self.readable.append(pair)
        log_size_mismatches(mismatches, f"both are resized to {size[1]}x{size[0]}")
        if not self.readable:
            raise ValueError(f"none of the {len(pairs)} pairs can be read; first problem: "
                             f"{self.skipped[0][1]}")

    def __call__(self, index):
        """(uint8 (h, w, 3) image, uint8 (h, w, 1) mask) of readable pair `index`."""
        for offset in range(len(self.readable)):
            pair = self.readable[(index + offset) % len(self.readable)]
            try:
                return (load_input_image(pair.image_path, self.size),
                        load_segmented_image(pair.mask_path, self.size)[..., None])
            except ImageReadError as error:
                self._skip(error)
        raise ValueError(f"none of the {len(self.readable)} pairs can be decoded; first "
                         f"problem: {self.skipped[0][1]}")

    def _skip(self, error):
        if str(error.path) not in self._skipped_paths:  # without a cache, every epoch
            self._skipped_paths.add(str(error.path))
            logger.warning("skipping unreadable pair: %s", error)
            self.skipped.append((str(error.path), str(error)))


def _tf_dataset(loader, batch_size, *, size, prepare, shuffle, cache_file, seed, drop_remainder):
    """The tf.data pipeline (see the module docstring). `prepare`: (uint8 images, masks, numpy
    Generator) -> float32 batch at `size` (`augment.training_batch`); None: a cast only."""
    import tensorflow as tf

    height, width = size

    def decode(index):
        image, mask = tf.numpy_function(loader, [index], [tf.uint8, tf.uint8], stateful=False)
        image.set_shape((*loader.size, 3))
        mask.set_shape((*loader.size, 1))
        return image, mask

    def augment_in_numpy(batch, seeds):
        images, masks = tf.numpy_function(
            lambda images, masks, seeds: prepare(
                images, masks, np.random.default_rng(seeds.astype(np.uint64))),
            [*batch, seeds], [tf.float32, tf.float32], stateful=False)
        images.set_shape((batch_size if drop_remainder else None, height, width, 3))
        masks.set_shape((batch_size if drop_remainder else None, height, width, 1))
        return images, masks

    def to_float_in_graph(images, masks):
        return tf.cast(images, tf.float32) / 255.0, tf.cast(masks, tf.float32)

    num_pairs = len(loader.readable)
    dataset = tf.data.Dataset.range(num_pairs)
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    if cache_file is not None:
        dataset = dataset.cache(cache_file)
    if shuffle:
        dataset = dataset.shuffle(min(num_pairs, _MAX_SHUFFLE_BUFFER), seed=seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if prepare is not None:
        random_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, random_seeds.batch(2))
        dataset = dataset.map(augment_in_numpy, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(to_float_in_graph, num_parallel_calls=tf.data.AUTOTUNE)
    # Under several workers each keeps every n-th element: the same seed on every worker gives
    # the same order, so no image is seen twice per epoch (docs/SCALING.md).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # tf.data's autotuning thread sleeps up to a minute between rounds, and Keras deletes each
    # epoch's iterator, which waits for that thread: epochs stalled for up to 60 s with idle
    # CPUs (benchmarks/NOTES.md section 8). Without it, AUTOTUNE means one call per core.
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


# Batches PairBatches makes ahead, each in its own thread (decoding and NumPy release the GIL).
# Keras asks a PyDataset for one batch at a time between two steps: made there, the batches
# made training on a GPU 1.4-2x slower (docs/BACKENDS.md). Keras' own worker threads
# (`PyDataset(workers=n)`) are not used: under `fit` they shift each epoch's batches by one.
BATCHES_AHEAD = min(4, os.cpu_count() or 1)


class PairBatches(keras.utils.PyDataset):
    """The pipeline as a `keras.utils.PyDataset`, for environments without TensorFlow.

    With the memory cache each decoded uint8 pair is kept after its first use. Epoch e shuffles
    with the seed (seed, e) and augments batch i with (seed, e, i). Asked for batch i, it starts
    making the next `batches_ahead` ones of the epoch in threads (the first ones of the next
    epoch at its end); they are the batches indexing would give.

    Example:
        >>> batches = create_generator(pairs, image_size=(32, 32), batch_size=8, engine="keras")
        >>> images, masks = batches[0]
        >>> images.shape, masks.dtype
        ((8, 32, 32, 3), dtype('float32'))
    """

    def __init__(self, loader, batch_size, *, prepare, shuffle, cache_file, seed, drop_remainder):
        super().__init__()
        self.loader, self.batch_size = loader, batch_size
        self.prepare, self.shuffle, self.seed = prepare, shuffle, seed
        self.drop_remainder = drop_remainder
        self.keep_decoded = cache_file == ""
        self.epoch, self._decoded = 0, {}
        self.batches_ahead, self._ahead, self._threads = BATCHES_AHEAD, {}, None

    def __len__(self):
        whole_batches, remainder = divmod(len(self.loader.readable), self.batch_size)
        return whole_batches + (remainder > 0 and not self.drop_remainder)

    def __getitem__(self, index):
        made = self._ahead.pop((self.epoch, index), None)
        self._make_ahead(range(index + 1, index + 1 + self.batches_ahead))
        return made.result() if made is not None else self._batch(self.epoch, index)

    def on_epoch_end(self):
        for made in self._ahead.values():
            made.cancel()
        self._ahead.clear()
        self.epoch += 1
        self._make_ahead(range(self.batches_ahead))

    def _make_ahead(self, indices):
        for index in indices:
            if index < len(self) and (self.epoch, index) not in self._ahead:
                if self._threads is None:
                    self._threads = ThreadPoolExecutor(self.batches_ahead, "pair-batches")
                self._ahead[self.epoch, index] = self._threads.submit(self._batch, self.epoch,
                                                                      index)

    def _batch(self, epoch, index):
        order = np.arange(len(self.loader.readable))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
        images, masks = (np.stack(part) for part in zip(*map(self._pair, chosen), strict=True))
        if self.prepare is None:
            return to_float(images, masks)
        return self.prepare(images, masks, np.random.default_rng([self.seed, epoch, index]))

    def _pair(self, index):
        if index in self._decoded:
            return self._decoded[index]
        decoded = self.loader(index)
        if self.keep_decoded:
            self._decoded[index] = decoded
        return decoded


def _disk_cache_file(folder, pairs, size):
    """tf.data's cache file in `folder`: named by a fingerprint of the pairs, size and version.

    A lock file left by a run killed while it was writing the cache would make tf.data refuse
    the cache ("a concurrent caching iterator"); it is removed with the half-written data, and
    the cache is written anew.
    """
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{fingerprint_pairs(pairs)} {size} {__version__}".encode())
    path = folder / f"pairs-{key.hexdigest()[:16]}"
    for lock in folder.glob(f"{path.name}_*.lockfile"):
        logger.warning("removing '%s', left by a run killed while writing the cache", lock)
        lock.unlink()
        for partial in folder.glob(f"{path.name}_*.tempstate*"):
            partial.unlink()
    return str(path)
