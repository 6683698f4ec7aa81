"""Training-time augmentation of one batch, in NumPy: the one implementation both pipelines run.

`create_generator` runs `augment_batch` inside tf.data (through `tf.numpy_function`, in
parallel with decoding and training) and inside its `keras.utils.PyDataset` (no TensorFlow).
Two kinds (`AUGMENTATIONS`, besides "none"); per image, independently:

    "flips":  flip left-right (p 0.5), flip up-down (p 0.5), transpose (p 0.5, square sizes
              only: with the two flips, all 8 turns and mirrorings) -- image and mask
              together; no pixel value changes, nothing is interpolated.
    "full":   the flips, then
              scale/shift: a random crop of 80-100 % of each side (the same share of both),
              resized back (image bilinear, mask nearest, so it stays binary);
              colour jitter: saturation and contrast x U(0.8, 1.2), brightness + U(-0.1, 0.1).

Before either, `DataConfig.lesion_crops` shows a share of the images as the second look
(`second_look.py`) sees them: `lesion_views` cuts a square box around the lesion of the truth
mask from the image decoded at `CROP_SOURCE_SCALE` times the network's size, with a random
margin and a random shift (a first pass's box is not exact), and resizes it to the network's
size; the other images are whole views. Then `DataConfig.artifacts` draws synthetic ink marks,
rulers and plate rims beside the lesion of a share of them (`artifacts.py`). `training_batch`
chains the steps, in both pipelines.
"""

import numpy as np
from PIL import Image

from .artifacts import draw_artifacts
from .config import AUGMENTATIONS
from .images import resize_image, resize_mask
from .second_look import lesion_box

__all__ = ["AUGMENTATIONS", "CROP_SOURCE_SCALE", "augment_batch", "lesion_views", "to_float",
           "training_batch"]

CROP_SOURCE_SCALE = 2  # lesion crops are cut from images decoded at this times the network size

_SCALE_RANGE = (0.8, 1.0)  # side of the random crop, as a fraction of the image's side
_BRIGHTNESS = 0.1  # added to [0, 1] pixels, +- this
_CONTRAST = 0.2  # contrast factor 1 +- this
_SATURATION = 0.2  # saturation factor 1 +- this
_CROP_MARGIN = (0.25, 1.5)  # a lesion crop's margin: a share of the lesion's size on each side
_CROP_SHIFT = 0.15  # a lesion crop's box moves by up to this share of its side, each way


def training_batch(images, masks, rng, *, kind="none", size=None, lesion_crops=0.0,
                   artifacts=0.0):
    """A decoded batch as the network trains on it: lesion views, artifacts, then `kind`.

    Args:
        images: uint8 (batch, H, W, 3); at `CROP_SOURCE_SCALE` times `size` with lesion crops.
        masks: uint8 (batch, H, W, 1) in {0, 1}.
        rng: numpy Generator; the same state gives the same batch.
        kind: An `AUGMENTATIONS` name. "none".
        size: (height, width) of the network's input; needed with `lesion_crops`.
        lesion_crops: Share of the images shown as a crop around their lesion (`lesion_views`).
        artifacts: Share of the images drawn with synthetic artifacts outside their lesion
            (`artifacts.draw_artifacts`).

    Returns:
        float32 (batch, h, w, 3) images in [0, 1] and float32 (batch, h, w, 1) masks in {0, 1}.

    Example:
        >>> images = np.zeros((2, 16, 16, 3), np.uint8); masks = np.ones((2, 16, 16, 1), np.uint8)
        >>> out = training_batch(images, masks, np.random.default_rng(0), size=(8, 8),
        ...                      lesion_crops=0.5)
        >>> out[0].shape, out[1].dtype
        ((2, 8, 8, 3), dtype('float32'))
    """
    if lesion_crops:
        images, masks = lesion_views(images, masks, rng, size, lesion_crops)
    if artifacts:
        images = draw_artifacts(images, masks, rng, artifacts)
    return to_float(images, masks) if kind == "none" else augment_batch(images, masks, rng, kind)


def lesion_views(images, masks, rng, size, share):
    """Each image, with probability `share`, cut to a square box around its lesion; resized.

    The box is the second look's (`second_look.lesion_box` of the truth mask: its largest
    region, made square in shares of the view) with a margin drawn from U(0.25, 1.5) of the
    lesion's size, moved by up to 15 % of its side each way. An image not drawn, without a
    lesion, or whose box would cover over half the view (where the second look keeps the first
    pass) stays a whole view.

    Args:
        images: uint8 (batch, H, W, 3).
        masks: uint8 (batch, H, W, 1) in {0, 1}.
        rng: numpy Generator.
        size: (height, width) of the output.
        share: Probability in [0, 1] that an image is cut.

    Returns:
        uint8 (batch, height, width, 3) images and uint8 (batch, height, width, 1) masks.

    Example:
        >>> masks = np.zeros((1, 40, 40, 1), np.uint8); masks[0, 18:22, 18:22] = 1
        >>> _, views = lesion_views(np.zeros((1, 40, 40, 3), np.uint8), masks,
        ...                         np.random.default_rng(0), (20, 20), share=1.0)
        >>> float(views.mean()) > float(masks.mean())  # the lesion fills more of the crop
        True
    """
    out_images = np.empty((len(images), *size, 3), np.uint8)
    out_masks = np.empty((len(images), *size, 1), np.uint8)
    for index, (image, mask) in enumerate(zip(images, masks[..., 0], strict=True)):
        box = lesion_box(mask, margin=rng.uniform(*_CROP_MARGIN)) if rng.random() < share else None
        if box is not None:
            top, left, bottom, right = box.moved(
                *rng.uniform(-_CROP_SHIFT, _CROP_SHIFT, 2)).pixels(mask.shape)
            image, mask = image[top:bottom, left:right], mask[top:bottom, left:right]
        out_images[index] = resize_image(image, size)
        out_masks[index, ..., 0] = resize_mask(mask, size)
    return out_images, out_masks


def to_float(images, masks):
    """uint8 batches -> float32 images in [0, 1] and float32 masks in {0, 1}.

    Example:
        >>> images, masks = to_float(np.full((1, 2, 2, 3), 255, np.uint8),
        ...                          np.ones((1, 2, 2, 1), np.uint8))
        >>> float(images.max()), masks.dtype
        (1.0, dtype('float32'))
    """
    return images.astype(np.float32) / np.float32(255), masks.astype(np.float32)


def augment_batch(images, masks, rng, kind="full"):
    """Augment a batch; each image draws its own random values from `rng`.

    The geometric changes run on the uint8 pixels (a quarter of float32's memory traffic), the
    crop-resize in Pillow's C code (which releases the GIL, so tf.data's parallel calls
    overlap), and only the colour jitter in float32.

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
        >>> out_images.shape, out_images.dtype, np.unique(out_masks).tolist()
        ((2, 8, 8, 3), dtype('float32'), [1.0])
    """
    if kind not in AUGMENTATIONS[1:]:
        raise ValueError(f"Unknown augmentation kind. Received: kind={kind!r}; "
                         f"available: {AUGMENTATIONS[1:]}")
    num_images, height, width = images.shape[:3]
    # Geometric changes act on image and mask stacked together: uint8 (batch, h, w, 4).
    stacked = np.concatenate([images, masks], axis=-1)
    flips = rng.random((num_images, 3)) < 0.5  # left-right, up-down, transpose
    for index, (left_right, up_down, transpose) in enumerate(flips):
        pair = stacked[index, :, ::-1] if left_right else stacked[index]
        pair = pair[::-1] if up_down else pair
        stacked[index] = pair.transpose(1, 0, 2) if transpose and height == width else pair
    if kind == "flips":
        return to_float(stacked[..., :3], stacked[..., 3:])

    # Scale/shift: a random square fraction of each side, resized back onto (h, w).
    scale = rng.uniform(*_SCALE_RANGE, num_images)  # (batch,)
    corner = rng.random((num_images, 2)) * (1 - scale)[:, None]  # top, left as fractions
    for index in range(num_images):
        top, left = corner[index] * (height, width)
        box = (left, top, left + scale[index] * width, top + scale[index] * height)
        image = Image.fromarray(np.ascontiguousarray(stacked[index, ..., :3]))
        mask = Image.fromarray(np.ascontiguousarray(stacked[index, ..., 3]))
        stacked[index, ..., :3] = image.resize((width, height), Image.Resampling.BILINEAR, box)
        stacked[index, ..., 3] = mask.resize((width, height), Image.Resampling.NEAREST, box)
    images, masks = to_float(stacked[..., :3], stacked[..., 3:])

    # Colour jitter, one factor per image: saturation s blends each pixel x with its grey g,
    # contrast c blends with the image's mean m (which saturation keeps), brightness adds b:
    # c * (g + s * (x - g) - m) + m + b  =  c*s * x + c*(1 - s) * g + (1 - c) * m + b.
    def per_image(values):  # (batch,) -> (batch, 1, 1, 1) float32
        return values.astype(np.float32).reshape(num_images, 1, 1, 1)

    saturation = rng.uniform(1 - _SATURATION, 1 + _SATURATION, num_images)
    contrast = rng.uniform(1 - _CONTRAST, 1 + _CONTRAST, num_images)
    brightness = rng.uniform(-_BRIGHTNESS, _BRIGHTNESS, num_images)
    grey = images.mean(axis=-1, keepdims=True)  # (batch, h, w, 1)
    mean = grey.mean(axis=(1, 2, 3))  # (batch,)
    grey *= per_image(contrast * (1 - saturation))
    grey += per_image((1 - contrast) * mean + brightness)
    images *= per_image(contrast * saturation)
    images += grey
    return np.clip(images, 0.0, 1.0, out=images), masks
