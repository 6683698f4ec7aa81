"""Shades of Gray colour constancy (Finlayson and Trezzi, 2004) as a registered Keras layer.

Dermoscopes light the skin with lamps of different colours, and cameras balance them
differently; colour constancy removes each image's colour cast before the network sees it.
The layer is part of the model (`ModelConfig.colour_constancy`), so a saved `.keras` corrects
the images it predicts exactly as it corrected those it was trained on.
"""

import math

import keras
from keras import ops

__all__ = ["ShadesOfGray", "corrects_colour"]

_MIN_ESTIMATE = 1e-3  # a channel's illuminant estimate is floored here (an all-dark channel)


@keras.saving.register_keras_serializable(package="segment")
class ShadesOfGray(keras.layers.Layer):
    """Each image's colours corrected to a grey illuminant; nothing is learned.

    The illuminant of channel c is estimated as the Minkowski p-norm mean of its pixels,
    e_c = mean(x_c ** p) ** (1 / p) (p = 1: grey world; p = infinity: white patch), and the
    channel is multiplied by |e| / (sqrt(3) * e_c), so that a grey illuminant is left as it is
    and an image's brightness barely changes; the result is clipped to [0, 1]. Computed in
    float32 whatever the dtype policy.

    Args:
        power: The norm's p. Defaults to 6 (the value used for ISIC images).
        **kwargs: Other `keras.layers.Layer` arguments (name, dtype).

    Input shape:
        (batch, height, width, channels) images in [0, 1], any float dtype.

    Output shape:
        The input's shape, float32, in [0, 1].

    Example:
        >>> import numpy as np
        >>> reddish = np.full((1, 4, 4, 3), [0.8, 0.4, 0.4], dtype="float32")
        >>> np.round(np.asarray(ShadesOfGray()(reddish))[0, 0, 0], 3)
        array([0.566, 0.566, 0.566], dtype=float32)
    """

    def __init__(self, power=6.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(autocast=False, **kwargs)
        if not power >= 1:
            raise ValueError(f"power must be at least 1. Received: power={power}")
        self.power = float(power)

    def call(self, images):
        images = ops.cast(images, "float32")
        estimate = ops.power(ops.mean(ops.power(images, self.power), axis=(1, 2), keepdims=True),
                             1.0 / self.power)  # (batch, 1, 1, channels)
        estimate = ops.maximum(estimate, _MIN_ESTIMATE)
        norm = ops.sqrt(ops.sum(ops.square(estimate), axis=-1, keepdims=True))
        gain = norm / (math.sqrt(images.shape[-1]) * estimate)
        return ops.clip(images * gain, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "power": self.power}


def corrects_colour(model):
    """Whether a built model removes its images' colour cast (holds a `ShadesOfGray` layer).

    Example:
        >>> inputs = keras.Input((8, 8, 3))
        >>> corrects_colour(keras.Model(inputs, ShadesOfGray()(inputs)))
        True
    """
    return any(isinstance(layer, ShadesOfGray) for layer in getattr(model, "layers", ()))
