"""The stride-1 depthwise convolution that a pretrained encoder trains with under mixed bfloat16 on
a CPU: computed in bfloat16, its gradients made of forward convolutions only.

oneDNN's bfloat16 depthwise *backprop* kernels are slow: on a 2-core AMD EPYC with native bf16,
the filter gradients of EfficientNet-Lite0's twelve stride-1 depthwise convolutions at 224x224
(batch 8) took 78-81 ms in bfloat16 and 29 ms in float32, so these layers trained in float32
between bfloat16 neighbours. Here the input gradient is the forward convolution of the output
gradient with the kernel turned 180 degrees (exact for stride 1 and "same" padding of an odd
kernel), and the filter gradient is one forward depthwise convolution with the batch folded into
the channels: the padded input as a (1, h + kh - 1, w + kw - 1, channels * batch) map, the
output gradient as its (h, w, channels * batch, 1) kernel, so that "valid" padding leaves each
sample's (kh, kw) filter gradient, summed over the batch in float32. That filter gradient took
18-19 ms, and the bf16 train step of the Lite0 U-Net ran 1.06-1.10x as fast as with these layers
in float32 (docs/RESULTS.md, "The depthwise gradients as forward convolutions").

TensorFlow only: the other backends keep the float32 path.
"""

import keras

__all__ = ["depthwise_conv", "fits"]


def fits(layer):
    """Whether `depthwise_conv` computes depthwise convolution `layer` in training: TensorFlow,
    a bfloat16 compute dtype, stride 1, no dilation, "same" padding, an odd kernel, one output
    channel per input channel (channels last is checked by the layers)."""
    height, width = layer.kernel_size
    return (keras.backend.backend() == "tensorflow" and layer.compute_dtype == "bfloat16"
            and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
            and layer.padding == "same" and height % 2 == 1 and width % 2 == 1
            and layer.depth_multiplier == 1)


def depthwise_conv(inputs, kernel):
    """The stride-1, "same" depthwise convolution of `inputs` with `kernel`, in bfloat16.

    Args:
        inputs: (batch, height, width, channels) tensor, any float dtype (cast to bfloat16).
        kernel: (kh, kw, channels, 1) float32 tensor, kh and kw odd.

    Returns:
        (batch, height, width, channels) bfloat16 tensor. Its gradients are computed in
        bfloat16 (the kernel's summed over the batch in float32) and returned in the dtypes of
        `inputs` and `kernel`.

    Example:
        >>> import numpy as np
        >>> x, kernel = np.ones((2, 5, 5, 3), np.float32), np.ones((3, 3, 3, 1), np.float32)
        >>> outputs = depthwise_conv(x, kernel)  # the centre sums 9 ones, a corner 4
        >>> outputs.dtype.name, float(outputs[0, 2, 2, 0]), float(outputs[0, 0, 0, 0])
        ('bfloat16', 9.0, 4.0)
    """
    import tensorflow as tf

    @tf.custom_gradient
    def convolve(inputs, kernel):
        bf16_kernel = tf.cast(kernel, tf.bfloat16)
        outputs = tf.nn.depthwise_conv2d(inputs, bf16_kernel, [1, 1, 1, 1], "SAME")

        def gradients(output_gradients):
            output_gradients = tf.cast(output_gradients, tf.bfloat16)
            input_gradients = tf.nn.depthwise_conv2d(output_gradients, bf16_kernel[::-1, ::-1],
                                                     [1, 1, 1, 1], "SAME")
            return input_gradients, _filter_gradient(inputs, output_gradients, kernel.shape)

        return outputs, gradients

    return convolve(tf.cast(inputs, tf.bfloat16), tf.convert_to_tensor(kernel, tf.float32))


def _filter_gradient(inputs, output_gradients, kernel_shape):
    """The (kh, kw, channels, 1) float32 gradient of a stride-1 "same" depthwise kernel from its
    bfloat16 (batch, h, w, channels) inputs and output gradients: one "valid" depthwise
    convolution whose channels are every sample's channels (channel-major, the batch inner)."""
    import tensorflow as tf

    kernel_height, kernel_width, channels = kernel_shape[:3]
    batch, height, width = tf.unstack(tf.shape(inputs)[:3])
    padded = tf.pad(inputs, [[0, 0], [kernel_height // 2] * 2, [kernel_width // 2] * 2, [0, 0]])
    maps = tf.reshape(tf.transpose(padded, [1, 2, 3, 0]),
                      [1, height + kernel_height - 1, width + kernel_width - 1, -1])
    kernels = tf.reshape(tf.transpose(output_gradients, [1, 2, 3, 0]), [height, width, -1, 1])
    per_sample = tf.nn.depthwise_conv2d(maps, kernels, [1, 1, 1, 1], "VALID")  # (1, kh, kw, c*b)
    per_sample = tf.reshape(tf.cast(per_sample, tf.float32),
                            [kernel_height, kernel_width, channels, batch])
    return tf.reduce_sum(per_sample, axis=-1, keepdims=True)
