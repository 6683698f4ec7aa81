"""After the network: test-time flips and mask clean-up.

ISIC lesion masks are one filled region, so keeping the largest connected component and
filling its holes removes speckles and pin-holes from a prediction.
"""

import numpy as np
from scipy import ndimage

__all__ = ["fill_holes", "flip_views", "keep_largest_component", "postprocess_mask",
           "predict_with_flips"]


def predict_with_flips(model, images):
    """Average the model's probabilities over the identity and three flips (test-time).

    Each flipped prediction is flipped back before averaging: identity, left-right,
    up-down, and both.

    Args:
        model: Keras model, images -> probabilities.
        images: float32 (batch, height, width, 3) in [0, 1].

    Returns:
        numpy float32 (batch, height, width, classes) probabilities.

    Example:
        >>> probabilities = predict_with_flips(model, np.zeros((4, 32, 32, 3), np.float32))
        >>> probabilities.shape  # (batch, height, width, 1)
        (4, 32, 32, 1)
    """
    return flip_views(model, images).mean(axis=0)


def flip_views(model, images):
    """The model's probabilities under the identity and the three flips, each flipped back.

    Args:
        model: Keras model, images -> probabilities.
        images: float32 (batch, height, width, 3) in [0, 1].

    Returns:
        numpy float32 (4, batch, height, width, classes): identity, left-right, up-down, both.

    Example:
        >>> flip_views(model, np.zeros((2, 32, 32, 3), np.float32)).shape
        (4, 2, 32, 32, 1)
    """
    images = np.asarray(images, dtype=np.float32)
    views = []
    for axes in [(), (2,), (1,), (1, 2)]:
        flipped = np.flip(images, axis=axes) if axes else images
        probabilities = np.asarray(model.predict_on_batch(flipped), dtype=np.float32)
        views.append(np.flip(probabilities, axis=axes) if axes else probabilities)
    return np.stack(views)


def keep_largest_component(mask):
    """Keep only the largest 8-connected lesion region of a (height, width) mask.

    Example:
        >>> mask = np.array([[1, 1, 0, 1],
        ...                  [1, 1, 0, 0]], np.uint8)
        >>> keep_largest_component(mask)
        array([[1, 1, 0, 0],
               [1, 1, 0, 0]], dtype=uint8)
    """
    labels, num_regions = ndimage.label(np.asarray(mask) > 0, structure=np.ones((3, 3)))
    if num_regions <= 1:
        return (labels > 0).astype(np.uint8)
    sizes = np.bincount(labels.ravel())[1:]  # pixels per region, regions 1..num_regions
    return (labels == 1 + int(np.argmax(sizes))).astype(np.uint8)


def fill_holes(mask):
    """Fill background regions of a (height, width) mask that do not touch the image edge.

    Example:
        >>> ring = np.ones((3, 3), np.uint8); ring[1, 1] = 0
        >>> int(fill_holes(ring)[1, 1])
        1
    """
    return ndimage.binary_fill_holes(np.asarray(mask) > 0).astype(np.uint8)


def postprocess_mask(mask):
    """`keep_largest_component` then `fill_holes`: (height, width) uint8 {0, 1} in and out.

    Example:
        >>> mask = np.array([[1, 1, 1, 0, 1],
        ...                  [1, 0, 1, 0, 0],
        ...                  [1, 1, 1, 0, 0]], np.uint8)
        >>> postprocess_mask(mask)  # the speck goes, the hole is filled
        array([[1, 1, 1, 0, 0],
               [1, 1, 1, 0, 0],
               [1, 1, 1, 0, 0]], dtype=uint8)
    """
    return fill_holes(keep_largest_component(mask))
