"""Training losses, computed per image (never pooled over the batch), in keras.ops."""

import keras
from keras import ops

__all__ = ["bce_dice_loss", "dice_loss", "get_loss"]

SMOOTH = 1.0  # added to numerator and denominator: an empty truth with an empty prediction -> 0


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


_LOSSES = {"dice": dice_loss, "bce_dice": bce_dice_loss}


def get_loss(name):
    """The loss function called `name`: "dice" or "bce_dice"."""
    if name not in _LOSSES:
        raise ValueError(f"Unknown loss. Received: loss={name!r}; available: {sorted(_LOSSES)}")
    return _LOSSES[name]
