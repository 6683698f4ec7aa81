"""Custom Keras layers: InstanceNormalization, registered so `.keras` files load by name."""

import keras

__all__ = ["InstanceNormalization"]


@keras.saving.register_keras_serializable(package="segment")
class InstanceNormalization(keras.layers.GroupNormalization):
    """Instance normalization: each sample's each channel normalised over its spatial axes.

    A `GroupNormalization` with one group per channel (`groups=-1`), then a learned per-channel
    scale (gamma) and offset (beta). It replaces `tensorflow_addons.layers.InstanceNormalization`
    with the same weights and defaults, so models trained with tensorflow-addons load into it
    (see `segment.load_model`).

    Args:
        axis: The channel axis. Defaults to -1 (channels last).
        epsilon: Added to the variance. Defaults to 1e-3 (as tensorflow-addons).
        center: Learn an offset beta. Defaults to True.
        scale: Learn a scale gamma. Defaults to True.
        **kwargs: Other `GroupNormalization` arguments (initializers, regularizers, name,
            dtype). A `groups` entry, which configs saved by tensorflow-addons carry, is
            ignored: instance normalization always uses one group per channel.

    Input shape:
        (batch, ..., channels), with a known number of channels.

    Output shape:
        Same as the input.

    Reference:
        Ulyanov et al., "Instance Normalization: The Missing Ingredient for Fast Stylization",
        arXiv:1607.08022.

    Example:
        >>> import numpy as np
        >>> layer = InstanceNormalization()
        >>> tuple(layer(np.ones((1, 4, 4, 2), np.float32)).shape)
        (1, 4, 4, 2)
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        kwargs.pop("groups", None)
        super().__init__(groups=-1, axis=axis, epsilon=epsilon, center=center, scale=scale,
                         **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("groups")  # build() sets it to the channel count; it is not an argument here
        return config
