"""Training losses, computed per image (never pooled over the batch), in keras.ops."""

import math

import keras
from keras import ops

__all__ = ["bce_dice_loss", "dice_loss", "get_loss", "small_lesion_bce_dice_loss"]

SMOOTH = 1.0  # added to numerator and denominator: an empty truth with an empty prediction -> 0
# small_lesion_bce_dice_loss: an image whose lesion covers less than this share of the view
# weighs SMALL_LESION_WEIGHT times as much as the others (as if shown that many times an epoch).
SMALL_LESION_SHARE = 0.05
SMALL_LESION_WEIGHT = 3.0


@keras.saving.register_keras_serializable(package="segment")
def dice_loss(y_true, y_pred, smooth=SMOOTH):
    """Soft dice loss of each image: 1 - (2 sum(t p) + s) / (sum(t) + sum(p) + s).

    Sums run over each image's pixels and channels separately, so a large lesion in one image
    does not outweigh a small one in another; Keras then averages the per-image values.

    Args:
        y_true: Truth masks, (batch, height, width, channels), values in {0, 1}.
        y_pred: Probabilities, same shape, in [0, 1].
        smooth: The smoothing term s. Defaults to 1.0.

    Returns:
        float32 tensor of shape (batch,), each value in [0, 1]; 0 for a perfect prediction and
        for an empty truth predicted empty.

    Example:
        >>> import numpy as np
        >>> truth = np.ones((1, 4, 4, 1), "float32")
        >>> float(dice_loss(truth, truth)[0])
        0.0
    """
    y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
    axes = tuple(range(1, len(y_pred.shape)))
    intersection = ops.sum(y_true * y_pred, axis=axes)  # (batch,)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)  # (batch,)
    return 1.0 - (2.0 * intersection + smooth) / (total + smooth)


@keras.saving.register_keras_serializable(package="segment")
def bce_dice_loss(y_true, y_pred):
    """Per-image mean binary cross-entropy plus per-image soft dice loss.

    Args:
        y_true, y_pred: As for `dice_loss`.

    Returns:
        float32 tensor of shape (batch,).

    Example:
        >>> import numpy as np
        >>> truth = np.ones((1, 4, 4, 1), np.float32)
        >>> float(bce_dice_loss(truth, truth * 0.99)[0]) < 0.05
        True
    """
    y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
    pixel_losses = keras.losses.binary_crossentropy(y_true, y_pred)  # (batch, height, width)
    per_image = ops.mean(pixel_losses, axis=tuple(range(1, len(pixel_losses.shape))))
    return per_image + dice_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="segment")
def small_lesion_bce_dice_loss(y_true, y_pred):
    """`bce_dice_loss` with each image whose lesion covers more than 0 and less than 5 % of the
    view (`SMALL_LESION_SHARE`) weighted 3 times (`SMALL_LESION_WEIGHT`); the others weigh 1.

    Args:
        y_true, y_pred: As for `dice_loss`.

    Returns:
        float32 tensor of shape (batch,).

    Example:
        >>> import numpy as np
        >>> truth = np.zeros((2, 10, 10, 1), np.float32)
        >>> truth[0, :1, :1] = 1  # a lesion of 1 % of the view
        >>> truth[1, :5, :5] = 1  # 25 %
        >>> prediction = np.full_like(truth, 0.5)
        >>> ratio = small_lesion_bce_dice_loss(truth, prediction) / bce_dice_loss(truth, prediction)
        >>> np.round(np.asarray(ratio), 3).tolist()
        [3.0, 1.0]
    """
    y_true = ops.cast(y_true, "float32")
    # Pixel counts, exact in float32, against a bound computed in Python: a lesion of exactly
    # 5 % is not small on any backend (a float32 mean of 0.05 may round below 0.05).
    lesion_pixels = ops.sum(y_true, axis=tuple(range(1, len(y_true.shape))))  # (batch,)
    view_pixels = math.prod(y_true.shape[1:])
    small = ops.logical_and(lesion_pixels > 0, lesion_pixels < SMALL_LESION_SHARE * view_pixels)
    weights = ops.where(small, SMALL_LESION_WEIGHT, 1.0)
    return weights * bce_dice_loss(y_true, y_pred)


_LOSSES = {"dice": dice_loss, "bce_dice": bce_dice_loss,
           "bce_dice_small": small_lesion_bce_dice_loss}


def get_loss(name):
    """The loss function called `name`: "dice", "bce_dice" or "bce_dice_small"."""
    if name not in _LOSSES:
        raise ValueError(f"Unknown loss. Received: loss={name!r}; available: {sorted(_LOSSES)}")
    return _LOSSES[name]
