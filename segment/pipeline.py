"""Pairs -> tf.data.Dataset of (images, masks) batches that `model.fit` takes directly.

Stages, in the order of the tf.data performance guide:

    paths --map(decode + resize, parallel)--> uint8 (H, W, 3), (H, W, 1)
          --filter(readable)--> cache (memory or a file on disk; uint8, so 4 bytes a pixel)
          --shuffle--> batch --map(to float; flips, 90-degree turns, scale/shift crop,
          colour jitter; all per image but computed on the whole batch)--> prefetch

Decoding uses the same loaders as the rest of the library (`images.py`), so training,
evaluation and export see identical pixels. A pair that cannot be read is logged with its file
name, skipped, and listed in `dataset.skipped`; the rest of the epoch goes on.
"""

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from ._version import __version__
from .config import DataConfig
from .data import Pair, as_pairs, fingerprint_pairs, size_mismatch
from .errors import ImageReadError
from .images import load_input_image, load_segmented_image

__all__ = ["create_generator"]

logger = logging.getLogger(__name__)

_MAX_SHUFFLE_BUFFER = 512  # decoded images held for shuffling: bounded, even with a disk cache
_SCALE_RANGE = (0.8, 1.0)  # side of the random crop, as a fraction of the image's side
_BRIGHTNESS = 0.1  # added to [0, 1] pixels, +- this
_CONTRAST = 0.2  # contrast factor 1 +- this
_SATURATION = 0.2  # saturation factor 1 +- this


def create_generator(pairs, image_size=DataConfig.image_size, batch_size=DataConfig.batch_size,
                     *, augment=False, shuffle=False, cache="memory", seed=DataConfig.seed):
    """Build the input pipeline for training, validation or prediction.

    Args:
        pairs: Sequence of `Pair` (or (image_path, mask_path) tuples).
        image_size: (height, width) the network sees. Defaults to (256, 256).
        batch_size: Images per batch; the last batch may be smaller. Defaults to 16.
        augment: Random flips, 90-degree turns (square sizes), scale/shift crops (80-100 %
            of each side) and brightness/contrast/saturation jitter. Geometric changes are
            identical for an image and its mask; masks stay binary. Defaults to False.
        shuffle: Reshuffle the order every epoch. Defaults to False.
        cache: "memory" (default) keeps the decoded, resized uint8 pairs in RAM after the
            first epoch; a folder caches them on disk instead (for sets too big for RAM), in
            a file named by a fingerprint of the ordered pair ids, their files' sizes and
            modification times, `image_size` and the library version, so other pairs or
            another size never read it; None decodes every epoch.
        seed: Seed of the shuffle and the augmentation; same seed, same batches. Defaults to 0.

    Returns:
        tf.data.Dataset of (images, masks): float32 (batch, height, width, 3) in [0, 1] and
        float32 (batch, height, width, 1) in {0, 1}. Its attribute `skipped` is a list that
        fills with (path, reason) for each unreadable pair as the data set is first read;
        each file is listed (and logged) once, however many epochs read it.

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
    pairs = as_pairs(pairs)
    if not pairs:
        raise ValueError("create_generator needs at least one pair. Received: pairs=[]")
    cache_file = _cache_file(cache, pairs, (height, width))
    skipped, skipped_paths = [], set()

    def load_pair(image_path, mask_path):
        image_path, mask_path = os.fsdecode(image_path), os.fsdecode(mask_path)
        try:
            mismatch = size_mismatch(Pair(Path(image_path), Path(mask_path)))
            if mismatch:
                logger.warning("%s; both are resized to %dx%d", mismatch, width, height)
            image = load_input_image(image_path, (height, width))
            mask = load_segmented_image(mask_path, (height, width))
        except ImageReadError as error:
            if str(error.path) not in skipped_paths:  # without a cache, every epoch reads it
                skipped_paths.add(str(error.path))
                logger.warning("skipping unreadable pair: %s", error)
                skipped.append((str(error.path), str(error)))
            return (np.zeros((height, width, 3), np.uint8), np.zeros((height, width, 1), np.uint8),
                    False)
        return image, mask[..., None], True

    def decode(image_path, mask_path):
        image, mask, readable = tf.numpy_function(
            load_pair, [image_path, mask_path], [tf.uint8, tf.uint8, tf.bool], stateful=False)
        image.set_shape((height, width, 3))
        mask.set_shape((height, width, 1))
        return image, mask, readable

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
    dataset = dataset.batch(int(batch_size))
    if augment:
        random_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, random_seeds.batch(2))
        dataset = dataset.map(_augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    # Under several workers each keeps every n-th element: the same seed on every worker gives
    # the same order, so no image is seen twice per epoch (docs/SCALING.md).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
    dataset.skipped = skipped
    return dataset


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


def _to_float(images, masks):
    """uint8 batches -> float32 images in [0, 1] and masks in {0, 1}."""
    return tf.cast(images, tf.float32) / 255.0, tf.cast(masks, tf.float32)


def _augment_batch(batch, seed):
    """Augment a batch; each image draws its own random values from the stateless `seed`."""
    images, masks = _to_float(*batch)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=9)
    num_images = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]

    def uniform(index, low=0.0, high=1.0, shape=None):
        return tf.random.stateless_uniform(
            [num_images] if shape is None else shape, seeds[index], low, high)

    def maybe(index, transform, stacked):
        chosen = uniform(index) < 0.5  # (batch,)
        return tf.where(chosen[:, None, None, None], transform(stacked), stacked)

    # Geometric changes act on image and mask stacked together: (batch, h, w, 4).
    stacked = tf.concat([images, masks], axis=-1)
    stacked = maybe(0, lambda x: tf.reverse(x, axis=[2]), stacked)
    stacked = maybe(1, lambda x: tf.reverse(x, axis=[1]), stacked)
    if height == width:  # a transpose plus the two flips gives all 8 turns and mirrorings
        stacked = maybe(2, lambda x: tf.transpose(x, [0, 2, 1, 3]), stacked)

    # Scale/shift: crop a random square fraction of each side, resize back to (h, w).
    scale = uniform(3, *_SCALE_RANGE)
    top, left = uniform(4) * (1 - scale), uniform(5) * (1 - scale)
    boxes = tf.stack([top, left, top + scale, left + scale], axis=1)  # (batch, 4), normalised
    box_indices = tf.range(num_images)
    images = tf.image.crop_and_resize(stacked[..., :3], boxes, box_indices, (height, width))
    masks = tf.image.crop_and_resize(stacked[..., 3:], boxes, box_indices, (height, width),
                                     method="nearest")

    # Colour jitter, one factor per image: (batch, 1, 1, 1).
    factor_shape = tf.stack([num_images, 1, 1, 1])
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)  # (batch, h, w, 1)
    images = grey + (images - grey) * uniform(6, 1 - _SATURATION, 1 + _SATURATION, factor_shape)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)  # (batch, 1, 1, 1)
    images = (images - mean) * uniform(7, 1 - _CONTRAST, 1 + _CONTRAST, factor_shape) + mean
    images += uniform(8, -_BRIGHTNESS, _BRIGHTNESS, factor_shape)
    return tf.clip_by_value(images, 0.0, 1.0), masks
