"""The decoder's upsampling layers: `UpsamplingConv2D`, the upsampling module's nearest-neighbour
x2 upsampling and the 3x3 convolution after it, computed as one stride-2 transposed convolution
without making the upsampled map; and `NearestUpSampling2D`, the deep supervision's upsampling.

In one dimension, nearest upsampling repeats each pixel x[i] twice, and a 3-tap 'same'
convolution (k0, k1, k2) of that then reads, at output 2i and 2i + 1:

    y[2i]     = k0 x[i-1] + (k1 + k2) x[i]
    y[2i + 1] = (k0 + k1) x[i] + k2 x[i+1]

which is a stride-2 transposed convolution of x with the 4-tap kernel (k2, k1 + k2, k0 + k1, k0),
'same' padding (zeros beyond the border on both sides, as the upsampled map's padding). In 2-D
each 4x4 tap is the sum of the 3x3 taps that read the same input pixel: 16 multiply-adds per
input pixel and channel pair instead of 36, in the forward pass and in both gradients.
"""

import keras
import numpy as np
from keras import ops

from .layers import _Float32Weights

__all__ = ["NearestUpSampling2D", "UpsamplingConv2D", "transposed_kernel"]

# _TAPS[a, i] = 1 where tap i of the 3-tap kernel adds into tap a of the 4-tap one
_TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], np.float32)
# the Conv2D settings the layer computes (as Keras normalises them)
_REQUIRED_SETTINGS = {"kernel_size": (3, 3), "strides": (1, 1), "padding": "same",
                      "dilation_rate": (1, 1), "groups": 1, "data_format": "channels_last"}


def transposed_kernel(kernel):
    """The (4, 4, out, in) float32 kernel of the stride-2 transposed convolution that computes
    a (3, 3, in, out) `kernel`'s 'same' convolution of a nearest x2 upsampled map."""
    taps = ops.convert_to_tensor(_TAPS)
    return ops.einsum("ai,bj,ijcf->abfc", taps, taps, ops.cast(kernel, "float32"))


@keras.saving.register_keras_serializable(package="segment")
class UpsamplingConv2D(_Float32Weights, keras.layers.Conv2D):
    """`keras.layers.UpSampling2D(2)` (nearest) and a 3x3 'same' `keras.layers.Conv2D` after it,
    as one layer with the convolution's weights: the same values to float rounding, computed as
    one transposed convolution (module docstring). On a 2-core AMD EPYC with native bfloat16
    it made the EfficientNet-Lite0 U-Net's train step at 224x224 1.05-1.12x as fast in bf16 and
    1.08-1.16x in float32, in two windows (docs/RESULTS.md, "The upsampling modules as one
    transposed convolution").

    Under mixed precision the 4x4 kernel is summed in float32 from the stored kernel and rounded
    once to the compute dtype.

    Args: those of `keras.layers.Conv2D` with kernel_size 3, strides 1, padding "same",
        dilation 1, one group and channels last, which the layer requires.

    Input shape: (batch, height, width, in). Output shape: (batch, 2 height, 2 width, filters).
    Weights: kernel (3, 3, in, filters) and bias (filters,), as the Conv2D's.

    Example:
        >>> layer = UpsamplingConv2D(4, 3, padding="same")
        >>> tuple(layer(np.ones((1, 8, 8, 2), np.float32)).shape)
        (1, 16, 16, 4)
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        wrong = {name: getattr(self, name) for name, required in _REQUIRED_SETTINGS.items()
                 if getattr(self, name) != required}
        if wrong:
            raise ValueError(f"UpsamplingConv2D computes a 3x3 'same' convolution with stride 1, "
                             f"dilation 1, one group, channels last. Received: {wrong}")

    def call(self, inputs):
        kernel = ops.cast(transposed_kernel(self.kernel), self.compute_dtype)
        outputs = ops.conv_transpose(inputs, kernel, strides=2, padding="same")
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, None if height is None else 2 * height,
                None if width is None else 2 * width, self.filters)


@keras.saving.register_keras_serializable(package="segment")
class NearestUpSampling2D(keras.layers.UpSampling2D):
    """`keras.layers.UpSampling2D` (nearest, channels last) made of concatenations and reshapes.

    Keras' layer repeats rows and columns with `ops.repeat`, whose TensorFlow gradient transposes
    an int32 shape tensor where the batch size is unknown, as `fit` traces it. TensorFlow's
    oneDNN pass then logs an error line when training starts ("oneDNN supports DT_INT32 only on
    platforms with AVX-512. Falling back to the default Eigen-based implementation"), harmless
    but alarming. Here each repeat is a concatenation along a new axis, in Keras' order (rows,
    then columns), so the values and gradients are Keras' layer's bit for bit and the graph has
    no such op. Models saved with Keras' layer load and train as before.

    Args: those of `keras.layers.UpSampling2D`, with interpolation "nearest" and channels last,
        which the layer requires.

    Input shape: (batch, height, width, channels). Output shape: (batch, rows * height,
    columns * width, channels) for `size` (rows, columns); no weights.

    Example:
        >>> x = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
        >>> np.asarray(NearestUpSampling2D(2)(x))[0, :, :, 0].astype(int).tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    """

    def __init__(self, size=(2, 2), **kwargs):
        super().__init__(size, **kwargs)
        if self.interpolation != "nearest" or self.data_format != "channels_last":
            raise ValueError(f"NearestUpSampling2D repeats pixels (nearest), channels last. "
                             f"Received: interpolation={self.interpolation!r}, "
                             f"data_format={self.data_format!r}")

    def call(self, inputs):
        rows, columns = self.size
        _, height, width, channels = ops.shape(inputs)
        # The batch stays -1: under tf.distribute a replica can get an empty batch, whose
        # tensors TensorFlow's oneDNN kernels may give another channel count (no values to lose).
        x = ops.concatenate([inputs[:, :, None]] * rows, axis=2)  # (batch, h, rows, w, c)
        x = ops.reshape(x, (-1, height * rows, width, channels))
        x = ops.concatenate([x[:, :, :, None]] * columns, axis=3)  # (batch, rows h, w, columns, c)
        return ops.reshape(x, (-1, height * rows, width * columns, channels))
