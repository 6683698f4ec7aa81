"""Pairs -> batches of (images, masks) that `model.fit` takes directly, on every backend.

With TensorFlow installed the pipeline is tf.data (on any Keras backend: Keras 3's `fit` takes
a tf.data.Dataset); without it, a `keras.utils.PyDataset` with the same contract. Stages, in
the order of the tf.data performance guide:

    paths --map(decode + resize, parallel)--> uint8 (H, W, 3), (H, W, 1)
          --filter(readable)--> cache (memory or a file on disk; uint8, so 4 bytes a pixel)
          --shuffle--> batch --map(to float; augment.augment_batch: flips and 90-degree
          turns, with "full" also scale/shift crop and colour jitter, per image)--> prefetch

Decoding uses the same loaders as the rest of the library (`images.py`), and both pipelines
run the same augmentation (`augment.py`), so training, evaluation and export see identical
pixels whatever the backend. A pair that cannot be read is logged with its file name once,
skipped, and listed in `dataset.skipped`; the rest of the epoch goes on.
"""

import hashlib
import importlib.util
import logging
import math
import os
from pathlib import Path

import keras
import numpy as np

from ._version import __version__
from .augment import augment_batch, augmentation_kind, to_float
from .config import DataConfig
from .data import Pair, as_pairs, fingerprint_pairs, size_mismatch
from .errors import ImageReadError
from .images import load_input_image, load_segmented_image

__all__ = ["ENGINES", "PairBatches", "create_generator"]

logger = logging.getLogger(__name__)

ENGINES = ("tf.data", "keras")
_MAX_SHUFFLE_BUFFER = 512  # decoded images held for shuffling: bounded, even with a disk cache


def create_generator(pairs, image_size=DataConfig.image_size, batch_size=DataConfig.batch_size,
                     *, augment=False, shuffle=False, cache="memory", seed=DataConfig.seed,
                     engine=None):
    """Build the input pipeline for training, validation or prediction.

    Args:
        pairs: Sequence of `Pair` (or (image_path, mask_path) tuples).
        image_size: (height, width) the network sees. Defaults to (256, 256).
        batch_size: Images per batch; the last batch may be smaller. Defaults to 16.
        augment: "none" (or False), "flips" (random flips and 90-degree turns of square
            sizes) or "full" (or True: the flips, scale/shift crops of 80-100 % of each side
            and brightness/contrast/saturation jitter; `augment.augment_batch`). Geometric
            changes are identical for an image and its mask; masks stay binary. Defaults to
            False.
        shuffle: Reshuffle the order every epoch. Defaults to False.
        cache: "memory" (default) keeps the decoded, resized uint8 pairs in RAM after the
            first epoch; a folder caches them on disk instead (for sets too big for RAM;
            tf.data only), in a file named by a fingerprint of the ordered pair ids, their
            files' sizes and modification times, `image_size` and the library version, so
            other pairs or another size never read it; None decodes every epoch.
        seed: Seed of the shuffle and the augmentation; same seed, same batches. Defaults to 0.
        engine: "tf.data" (the default where TensorFlow is installed, on any Keras backend)
            or "keras" (a `keras.utils.PyDataset`; the default without TensorFlow).

    Returns:
        tf.data.Dataset or keras.utils.PyDataset of (images, masks): float32
        (batch, height, width, 3) in [0, 1] and float32 (batch, height, width, 1) in {0, 1}.
        Its attribute `skipped` is a list that fills with (path, reason) for each unreadable
        pair as the data set is first read; each file is listed (and logged) once, however
        many epochs read it.

    Example:
        >>> train_ds = create_generator(split.train, (256, 256), 16, augment=True,
        ...                             shuffle=True)  # doctest: +SKIP
        >>> images, masks = next(iter(train_ds))  # doctest: +SKIP
        >>> images.shape, masks.shape  # doctest: +SKIP
        (TensorShape([16, 256, 256, 3]), TensorShape([16, 256, 256, 1]))
    """
    height, width = (int(side) for side in image_size)
    if min(height, width) < 1 or int(batch_size) < 1:
        raise ValueError(f"image_size and batch_size must be positive. Received: "
                         f"image_size={image_size}, batch_size={batch_size}")
    if engine is None:
        engine = "tf.data" if importlib.util.find_spec("tensorflow") else "keras"
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine. Received: engine={engine!r}; available: {ENGINES}")
    kind = augmentation_kind(augment)
    pairs = as_pairs(pairs)
    if not pairs:
        raise ValueError("create_generator needs at least one pair. Received: pairs=[]")
    cache_file = _cache_file(cache, pairs, (height, width))
    if engine == "keras" and cache_file:
        raise ValueError(f"the keras engine caches in memory or not at all. "
                         f"Received: cache={cache!r}")
    loader = _PairLoader((height, width))
    build = _tf_dataset if engine == "tf.data" else PairBatches
    dataset = build(pairs, loader, int(batch_size), augment=kind, shuffle=shuffle,
                    cache_file=cache_file, seed=seed)
    dataset.skipped = loader.skipped
    return dataset


class _PairLoader:
    """Decode one pair at the network size; an unreadable one is logged and listed once."""

    def __init__(self, size):
        self.size = size
        self.skipped, self._skipped_paths = [], set()

    def __call__(self, image_path, mask_path):
        """(uint8 (h, w, 3) image, uint8 (h, w, 1) mask, readable): zeros when unreadable."""
        height, width = self.size
        try:
            mismatch = size_mismatch(Pair(Path(image_path), Path(mask_path)))
            if mismatch:
                logger.warning("%s; both are resized to %dx%d", mismatch, width, height)
            image = load_input_image(image_path, self.size)
            mask = load_segmented_image(mask_path, self.size)
        except ImageReadError as error:
            if str(error.path) not in self._skipped_paths:  # without a cache, every epoch
                self._skipped_paths.add(str(error.path))
                logger.warning("skipping unreadable pair: %s", error)
                self.skipped.append((str(error.path), str(error)))
            return (np.zeros((height, width, 3), np.uint8), np.zeros((height, width, 1), np.uint8),
                    False)
        return image, mask[..., None], True


def _tf_dataset(pairs, loader, batch_size, *, augment, shuffle, cache_file, seed):
    """The tf.data pipeline (see the module docstring); `augment` is an `AUGMENTATIONS` name."""
    import tensorflow as tf

    height, width = loader.size

    def decode(image_path, mask_path):
        image, mask, readable = tf.numpy_function(
            lambda image, mask: loader(os.fsdecode(image), os.fsdecode(mask)),
            [image_path, mask_path], [tf.uint8, tf.uint8, tf.bool], stateful=False)
        image.set_shape((height, width, 3))
        mask.set_shape((height, width, 1))
        return image, mask, readable

    def augment_in_numpy(batch, seeds):
        images, masks = tf.numpy_function(
            lambda images, masks, seeds: augment_batch(
                images, masks, np.random.default_rng(seeds.astype(np.uint64)), augment),
            [*batch, seeds], [tf.float32, tf.float32], stateful=False)
        images.set_shape((None, height, width, 3))
        masks.set_shape((None, height, width, 1))
        return images, masks

    def to_float_in_graph(images, masks):
        return tf.cast(images, tf.float32) / 255.0, tf.cast(masks, tf.float32)

    # Paths travel as bytes (os.fsencode): TensorFlow strings cannot hold a non-UTF-8 file name.
    image_paths = [os.fsencode(pair.image_path) for pair in pairs]
    mask_paths = [os.fsencode(pair.mask_path) for pair in pairs]
    dataset = tf.data.Dataset.from_tensor_slices((image_paths, mask_paths))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.filter(lambda image, mask, readable: readable)
    dataset = dataset.map(lambda image, mask, readable: (image, mask))
    if cache_file is not None:
        dataset = dataset.cache(cache_file)
    if shuffle:
        dataset = dataset.shuffle(min(len(pairs), _MAX_SHUFFLE_BUFFER), seed=seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment != "none":
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


class PairBatches(keras.utils.PyDataset):
    """The pipeline as a `keras.utils.PyDataset`, for environments without TensorFlow.

    Every pair is decoded once when the data set is first used, which finds the readable ones
    (and so the number of batches); with the memory cache the decoded uint8 pairs are kept.
    Epoch e shuffles with the seed (seed, e) and augments batch i with (seed, e, i).

    Example:
        >>> batches = create_generator(pairs, (64, 64), 8, engine="keras")  # doctest: +SKIP
        >>> images, masks = batches[0]  # doctest: +SKIP
    """

    def __init__(self, pairs, loader, batch_size, *, augment, shuffle, cache_file, seed):
        super().__init__()
        self.pairs, self.loader, self.batch_size = pairs, loader, batch_size
        self.augment, self.shuffle, self.seed = augment, shuffle, seed
        self.keep_decoded = cache_file == ""
        self.epoch, self._readable, self._decoded = 0, None, {}

    def __len__(self):
        return math.ceil(len(self._readable_indices()) / self.batch_size)

    def __getitem__(self, index):
        order = self._readable_indices()
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
        images, masks = (np.stack(part) for part in zip(*map(self._pair, chosen), strict=True))
        if self.augment != "none":
            rng = np.random.default_rng([self.seed, self.epoch, index])
            return augment_batch(images, masks, rng, self.augment)
        return to_float(images, masks)

    def on_epoch_end(self):
        self.epoch += 1

    def _readable_indices(self):
        if self._readable is None:
            self._readable = []
            for index in range(len(self.pairs)):
                decoded = self._decode(index)
                if decoded is not None:
                    self._readable.append(index)
                    if self.keep_decoded:
                        self._decoded[index] = decoded
        return self._readable

    def _pair(self, index):
        return self._decoded[index] if index in self._decoded else self._decode(index)

    def _decode(self, index):
        image, mask, readable = self.loader(*self.pairs[index])
        return (image, mask) if readable else None


def _cache_file(cache, pairs, size):
    """tf.data's cache file name: "" in memory, None for no cache, else a fingerprinted file.

    A lock file left by a run killed while it was writing the cache would make tf.data refuse
    the cache ("a concurrent caching iterator"); it is removed with the half-written data, and
    the cache is written anew.
    """
    if cache is None:
        return None
    if cache == "memory":
        return ""
    if cache in ("disk", "none") or not isinstance(cache, (str, os.PathLike)):
        raise ValueError(f"cache must be 'memory', None, or the folder of a disk cache. "
                         f"Received: cache={cache!r}")
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{fingerprint_pairs(pairs)} {size} {__version__}".encode())
    path = folder / f"pairs-{key.hexdigest()[:16]}"
    for lock in folder.glob(f"{path.name}_*.lockfile"):
        logger.warning("removing '%s', left by a run killed while writing the cache", lock)
        lock.unlink()
        for partial in folder.glob(f"{path.name}_*.tempstate*"):
            partial.unlink()
    return str(path)
