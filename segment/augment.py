"""Training-time augmentation of one batch, in NumPy: the one implementation both pipelines run.

`create_generator` runs `augment_batch` inside tf.data (through `tf.numpy_function`, in
parallel with decoding and training) and inside its `keras.utils.PyDataset` (no TensorFlow).
Two kinds (`AUGMENTATIONS`, besides "none"); per image, independently:

    "flips":  flip left-right (p 0.5), flip up-down (p 0.5), transpose (p 0.5, square sizes
              only: with the two flips, all 8 turns and mirrorings) -- image and mask
              together; no pixel value changes, nothing is interpolated.
    "full":   the flips, then
              scale/shift: a random square crop of 80-100 % of each side, resized back (image
              bilinear, mask nearest, so it stays binary);
              colour jitter: saturation and contrast x U(0.8, 1.2), brightness + U(-0.1, 0.1).
"""

import numpy as np

__all__ = ["AUGMENTATIONS", "augment_batch", "augmentation_kind", "to_float"]

AUGMENTATIONS = ("none", "flips", "full")

_SCALE_RANGE = (0.8, 1.0)  # side of the random crop, as a fraction of the image's side
_BRIGHTNESS = 0.1  # added to [0, 1] pixels, +- this
_CONTRAST = 0.2  # contrast factor 1 +- this
_SATURATION = 0.2  # saturation factor 1 +- this


def to_float(images, masks):
    """uint8 batches -> float32 images in [0, 1] and float32 masks in {0, 1}.

    Example:
        >>> images, masks = to_float(np.full((1, 2, 2, 3), 255, np.uint8),
        ...                          np.ones((1, 2, 2, 1), np.uint8))
        >>> float(images.max()), masks.dtype
        (1.0, dtype('float32'))
    """
    return images.astype(np.float32) / np.float32(255), masks.astype(np.float32)


def augmentation_kind(augment):
    """The augmentation a setting names: "none", "flips" or "full" (True means "full").

    Raises:
        ValueError: `augment` is none of False, True or `AUGMENTATIONS`.

    Example:
        >>> augmentation_kind(True), augmentation_kind(False), augmentation_kind("flips")
        ('full', 'none', 'flips')
    """
    if isinstance(augment, bool):
        return "full" if augment else "none"
    if augment not in AUGMENTATIONS:
        raise ValueError(f"Unknown augment. Received: augment={augment!r}; "
                         f"available: {AUGMENTATIONS} (or True for 'full', False for 'none')")
    return augment


def augment_batch(images, masks, rng, kind="full"):
    """Augment a batch; each image draws its own random values from `rng`.

    Args:
        images: uint8 (batch, height, width, 3).
        masks: uint8 (batch, height, width, 1) in {0, 1}.
        rng: numpy Generator; the same state gives the same batch.
        kind: "full" (flips, crops, colour jitter) or "flips" (the 8 turns and mirrorings
            only; see the module docstring). Defaults to "full".

    Returns:
        (images, masks): float32 (batch, height, width, 3) in [0, 1] and float32
        (batch, height, width, 1) in {0, 1}, geometrically changed together.

    Example:
        >>> images = np.zeros((2, 8, 8, 3), np.uint8); masks = np.ones((2, 8, 8, 1), np.uint8)
        >>> out_images, out_masks = augment_batch(images, masks, np.random.default_rng(0))
        >>> out_images.shape, sorted(np.unique(out_masks).tolist())
        ((2, 8, 8, 3), [1.0])
    """
    if kind not in AUGMENTATIONS[1:]:
        raise ValueError(f"Unknown augmentation kind. Received: kind={kind!r}; "
                         f"available: {AUGMENTATIONS[1:]}")
    images, masks = to_float(images, masks)
    num_images, height, width = images.shape[:3]
    # Geometric changes act on image and mask stacked together: (batch, h, w, 4).
    stacked = np.concatenate([images, masks], axis=-1)
    for axis in (2, 1):  # left-right, up-down
        chosen = rng.random(num_images) < 0.5
        stacked[chosen] = np.flip(stacked[chosen], axis=axis)
    if height == width:
        chosen = rng.random(num_images) < 0.5
        stacked[chosen] = stacked[chosen].transpose(0, 2, 1, 3)
    if kind == "flips":
        return np.ascontiguousarray(stacked[..., :3]), np.ascontiguousarray(stacked[..., 3:])

    # Scale/shift: sample a random square fraction of each side back onto (h, w).
    scale = rng.uniform(*_SCALE_RANGE, num_images)[:, None]  # (batch, 1)
    top, left = rng.random((2, num_images, 1)) * (1 - scale)
    rows = top * (height - 1) + np.arange(height) * scale  # (batch, h), source coordinates
    columns = left * (width - 1) + np.arange(width) * scale  # (batch, w)
    images = _bilinear(stacked[..., :3], rows, columns)
    masks = _nearest(stacked[..., 3:], rows, columns)

    # Colour jitter, one factor per image: (batch, 1, 1, 1).
    def factor(spread):
        return rng.uniform(1 - spread, 1 + spread, (num_images, 1, 1, 1)).astype(np.float32)

    grey = images.mean(axis=-1, keepdims=True)  # (batch, h, w, 1)
    images = grey + (images - grey) * factor(_SATURATION)
    mean = images.mean(axis=(1, 2, 3), keepdims=True)  # (batch, 1, 1, 1)
    images = (images - mean) * factor(_CONTRAST) + mean
    images += rng.uniform(-_BRIGHTNESS, _BRIGHTNESS, (num_images, 1, 1, 1)).astype(np.float32)
    return np.clip(images, 0.0, 1.0).astype(np.float32), masks


def _bilinear(batch, rows, columns):
    """Sample (batch, h, w, c) at source rows (batch, h) x columns (batch, w), bilinearly."""
    height, width = batch.shape[1:3]
    top = np.clip(np.floor(rows).astype(np.int64), 0, height - 1)
    left = np.clip(np.floor(columns).astype(np.int64), 0, width - 1)
    bottom, right = np.minimum(top + 1, height - 1), np.minimum(left + 1, width - 1)
    row_weight = (rows - top)[:, :, None, None].astype(np.float32)  # (batch, h, 1, 1)
    column_weight = (columns - left)[:, None, :, None].astype(np.float32)  # (batch, 1, w, 1)
    index = np.arange(len(batch))[:, None, None]

    def at(row_index, column_index):  # (batch, h, w, c)
        return batch[index, row_index[:, :, None], column_index[:, None, :]]

    upper = at(top, left) + (at(top, right) - at(top, left)) * column_weight
    lower = at(bottom, left) + (at(bottom, right) - at(bottom, left)) * column_weight
    return upper + (lower - upper) * row_weight


def _nearest(batch, rows, columns):
    """Sample (batch, h, w, c) at the nearest source pixel of rows x columns."""
    height, width = batch.shape[1:3]
    row_index = np.clip(np.rint(rows).astype(np.int64), 0, height - 1)
    column_index = np.clip(np.rint(columns).astype(np.int64), 0, width - 1)
    index = np.arange(len(batch))[:, None, None]
    return batch[index, row_index[:, :, None], column_index[:, None, :]]
