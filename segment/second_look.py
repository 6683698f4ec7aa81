"""The second look: predict again in a crop around the lesion the first pass found.

A lesion that covers 1 % of a 512x512 view spans about 22x22 pixels of a 224x224 network input;
cut from the image in a box twice its width and resized to the network's size, it spans about
110x110. With `EvalConfig(second_look=True)` every image is predicted twice:

1. the whole view, as without it;
2. a box around the first pass's largest lesion region (8-connected), widened by `crop_margin`
   of its size on every side and made square in shares of the image (so the crop keeps the
   whole view's aspect, as the network was trained on), is cut from the image at its own
   resolution, resized to the network's size and predicted (with the same flips, by every model
   of an ensemble). Its probabilities are resized to the box and pasted into a map of the image
   that is background (0) elsewhere.

Where the first pass finds no lesion, or its box would cover more than `WHOLE_VIEW_SHARE` of the
view (a zoom of less than 1.4x), the first pass stands. The confidence of a second look is that
of its box (`confidence.mask_confidence` of the pasted region, times the crop's flip agreement).
"""

import logging
import math
from dataclasses import dataclass

import numpy as np

from .confidence import mask_confidence
from .errors import ImageReadError
from .images import load_input_image, read_image_size, resize_image, resize_probabilities
from .metrics import bounding_box
from .postprocess import keep_largest_component

__all__ = ["WHOLE_VIEW_SHARE", "Box", "crop", "lesion_box", "look_again", "paste"]

logger = logging.getLogger(__name__)

WHOLE_VIEW_SHARE = 0.5  # a box covering more of the view than this is not cut


@dataclass(frozen=True)
class Box:
    """A box as shares of an image's height and width: top <= bottom and left <= right, all
    in [0, 1], so that it applies to the image at any resolution."""

    top: float
    left: float
    bottom: float
    right: float

    def pixels(self, size):
        """(top, left, bottom, right) pixel bounds in an image of `size` (height, width), at
        least one pixel each way."""
        height, width = size
        top, left = int(self.top * height), int(self.left * width)
        return (top, left, max(top + 1, math.ceil(self.bottom * height)),
                max(left + 1, math.ceil(self.right * width)))

    def moved(self, down, right):
        """The box moved by `down` and `right` shares of its own height and width, kept inside
        the image.

        Example:
            >>> Box(0.0, 0.5, 0.5, 1.0).moved(0.5, 0.5)  # down a quarter; right is the edge
            Box(top=0.25, left=0.5, bottom=0.75, right=1.0)
        """
        (top, bottom), (left, right) = (
            _centred(low + shift * (high - low), high + shift * (high - low), high - low)
            for low, high, shift in ((self.top, self.bottom, down),
                                     (self.left, self.right, right)))
        return Box(top, left, bottom, right)


def lesion_box(probabilities, threshold=0.5, margin=0.5):
    """The box of the second look, or None where the first pass stands.

    Args:
        probabilities: float (h, w) lesion probabilities of the whole view, at any size.
        threshold: Probability at or above which a pixel is lesion.
        margin: Share of the lesion's larger side added on each side: 0.5 gives a box twice
            its size.

    Returns:
        A square `Box` (in shares of the image) centred on the largest lesion region, moved
        inside the image where it would stick out; None when no pixel reaches `threshold` or
        the box would cover more than `WHOLE_VIEW_SHARE` of the view.

    Example:
        >>> probabilities = np.zeros((100, 100)); probabilities[40:50, 60:70] = 0.9
        >>> lesion_box(probabilities)  # 10 % of each side, widened to 20 %
        Box(top=0.35, left=0.55, bottom=0.55, right=0.75)
    """
    region = keep_largest_component(np.asarray(probabilities) >= threshold)
    if not region.any():
        return None
    height, width = region.shape
    top, bottom, left, right = bounding_box(region)
    extent = [(top / height, bottom / height), (left / width, right / width)]
    side = max(high - low for low, high in extent) * (1 + 2 * margin)
    if side * side > WHOLE_VIEW_SHARE:
        return None
    (top, bottom), (left, right) = (_centred(low, high, side) for low, high in extent)
    return Box(top, left, bottom, right)


def _centred(low, high, side):
    """[start, start + side] centred on [low, high], moved inside [0, 1]; rounded to 1e-9."""
    start = min(max((low + high - side) / 2, 0.0), 1.0 - side)
    return round(float(start), 9), round(float(start + side), 9)


def crop(image, box, size):
    """The `box` of an image, resized (bilinear) to the network's `size`: uint8 (h, w, 3).

    Args:
        image: An image path (decoded at the smallest scale that keeps the box at least
            `size`, so a large photograph is not decoded whole) or a uint8 (h, w, 3) array.
        box: `Box` in shares of the image.
        size: (height, width) of the network's input.

    Raises:
        ImageReadError: the file cannot be read.

    Example:
        >>> crop(np.zeros((40, 80, 3), np.uint8), Box(0.25, 0.5, 0.75, 1.0), (16, 16)).shape
        (16, 16, 3)
    """
    if not isinstance(image, np.ndarray):
        own = read_image_size(image)
        scale = min(1.0, max(size[0] / ((box.bottom - box.top) * own[0]),
                             size[1] / ((box.right - box.left) * own[1])))
        image = load_input_image(image, (max(1, round(own[0] * scale)),
                                         max(1, round(own[1] * scale))))
    top, left, bottom, right = box.pixels(image.shape[:2])
    return resize_image(image[top:bottom, left:right], size)


def paste(probabilities, box, size):
    """Float (h, w) probabilities of a crop, resized to `box` in a background (0) map of
    `size` (height, width): float32 `size`.

    Example:
        >>> paste(np.ones((4, 4)), Box(0.0, 0.5, 0.5, 1.0), (4, 8))[:, 3:5]
        array([[0., 1.],
               [0., 1.],
               [0., 0.],
               [0., 0.]], dtype=float32)
    """
    top, left, bottom, right = box.pixels(size)
    canvas = np.zeros(size, np.float32)
    canvas[top:bottom, left:right] = resize_probabilities(probabilities,
                                                          (bottom - top, right - left))
    return canvas


def look_again(members, first_pass, config, predict_batch, target_size):
    """The second look over one batch of first-pass predictions.

    Args:
        members: [(Keras model, (height, width) it is fed)], as `predicting_models` gives.
        first_pass: (item, probabilities, confidence) of each image of the batch.
        config: `EvalConfig` (threshold, crop_margin, tta).
        predict_batch: (model, list of uint8 images, config) -> (float32 (batch, h, w)
            probabilities, flip agreements), as the first pass predicts.
        target_size: item -> (height, width) of the map to paste into.

    Yields:
        (item, probabilities, confidence) in the batch's order: the second look's, at
        `target_size(item)`, where a box was cut; else the first pass's as they are.
    """
    first_pass = list(first_pass)
    boxes, crops = {}, {}
    for index, (item, probabilities, _) in enumerate(first_pass):
        box = lesion_box(probabilities, config.threshold, config.crop_margin)
        if box is None:
            continue
        image = item if isinstance(item, np.ndarray) else getattr(item, "image_path", item)
        try:
            crops[index] = [crop(image, box, size) for _, size in members]
        except ImageReadError as error:  # read for the first pass, unreadable now
            logger.warning("no second look: %s", error)
            continue
        boxes[index] = box
    position_of = {index: position for position, index in enumerate(boxes)}  # in the crops
    per_member = [predict_batch(model, [crops[index][number] for index in boxes], config)
                  for number, (model, _) in enumerate(members)] if boxes else []
    for index, first in enumerate(first_pass):
        if index not in boxes:
            yield first
            continue
        position, box, size = position_of[index], boxes[index], target_size(first[0])
        probabilities = np.mean([paste(each[position], box, size) for each, _ in per_member],
                                axis=0, dtype=np.float32)
        top, left, bottom, right = box.pixels(size)
        agreement = np.mean([agreements[position] for _, agreements in per_member])
        yield first[0], probabilities, mask_confidence(
            probabilities[top:bottom, left:right], config.threshold) * agreement
