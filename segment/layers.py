"""Custom Keras layers: InstanceNormalization, registered so `.keras` files load by name."""

import keras
from keras import ops

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

    def call(self, inputs):
        if keras.backend.backend() != "torch":
            return super().call(inputs)
        # Keras' PyTorch `ops.moments` takes the variance as E[x^2] - E[x]^2, which loses most
        # digits when a channel's mean is large against its spread (0.02 off for an offset of
        # 50, tests/test_layers.py); the mean squared deviation keeps them. TensorFlow and JAX
        # compute stable moments and keep Keras' faster path.
        x = ops.cast(inputs, "float32")
        channel_axis = self.axis % len(inputs.shape)
        spatial_axes = [axis for axis in range(1, len(inputs.shape)) if axis != channel_axis]
        mean = ops.mean(x, axis=spatial_axes, keepdims=True)  # (batch, 1, ..., channels)
        variance = ops.mean(ops.square(x - mean), axis=spatial_axes, keepdims=True)
        outputs = (x - mean) * ops.rsqrt(variance + self.epsilon)
        channels_shape = [1] * len(inputs.shape)
        channels_shape[channel_axis] = inputs.shape[channel_axis]  # (1, 1, ..., channels)
        if self.scale:
            outputs = outputs * ops.reshape(ops.cast(self.gamma, "float32"), channels_shape)
        if self.center:
            outputs = outputs + ops.reshape(ops.cast(self.beta, "float32"), channels_shape)
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("groups")  # build() sets it to the channel count; it is not an argument here
        return config
