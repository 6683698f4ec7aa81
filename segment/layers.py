"""Custom Keras layers, registered so `.keras` files load by name: InstanceNormalization;
FusedBatchNormalization, a batch norm whose inference runs as one kernel under mixed precision;
Float32TrainingDepthwiseConv2D, a depthwise convolution that trains without oneDNN's bfloat16
backprop kernels and predicts in bfloat16; and FrozenBatchNormConv2D and
FrozenBatchNormDepthwiseConv2D, a convolution and the frozen batch norm after it computed as one
convolution, in training too."""

import keras
from keras import ops

from . import bf16_depthwise

__all__ = ["Float32TrainingDepthwiseConv2D", "FrozenBatchNormConv2D",
           "FrozenBatchNormDepthwiseConv2D", "FusedBatchNormalization", "InstanceNormalization",
           "fold_batch_norm"]

_FUSED_BATCH_NORM_MIN_EPSILON = 1.001e-5  # tf.compat.v1.nn.fused_batch_norm's floor


def _fits_fused_batch_norm(layer, inputs):
    """Whether TensorFlow's FusedBatchNorm kernel computes `layer` on `inputs`: the TensorFlow
    backend, mixed precision (bfloat16 or float16 maps), 2D maps, channels last, and an epsilon
    the kernel takes as given (it raises smaller ones to 1.001e-5).

    In float32 the stock ops stay, so float32 results stay exactly those of earlier versions.
    """
    return (keras.backend.backend() == "tensorflow"
            and layer.compute_dtype in ("bfloat16", "float16") and len(inputs.shape) == 4
            and layer.axis % 4 == 3 and layer.epsilon >= _FUSED_BATCH_NORM_MIN_EPSILON)


def _float32_scale_and_offset(layer, channels):
    """The layer's gamma and beta as float32 (channels,) vectors, ones and zeros where it learns
    none (`scale=False`, `center=False`): the fused kernel takes both."""
    import tensorflow as tf

    gamma = tf.cast(layer.gamma, "float32") if layer.scale else tf.ones([channels])
    beta = tf.cast(layer.beta, "float32") if layer.center else tf.zeros([channels])
    return gamma, beta


@keras.saving.register_keras_serializable(package="segment")
class InstanceNormalization(keras.layers.GroupNormalization):
    """Instance normalization: each sample's each channel normalised over its spatial axes.

    A `GroupNormalization` with one group per channel (`groups=-1`), then a learned per-channel
    scale (gamma) and offset (beta). It replaces `tensorflow_addons.layers.InstanceNormalization`
    with the same weights and defaults, so models trained with tensorflow-addons load into it
    (see `segment.load_model`). Under mixed precision on TensorFlow it runs as one fused
    kernel, with the same result to bfloat16's precision (`_fused_batch_norm`).

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
        if _fits_fused_batch_norm(self, inputs):
            return self._fused_batch_norm(inputs)
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

    def _fused_batch_norm(self, inputs):
        """TensorFlow: the layer as one FusedBatchNorm, (batch, h, w, c) in and out.

        Each sample's channels become channels of one sample, (1, h, w, batch * c), so the
        kernel's batch statistics are each sample's and channel's over h and w. The two
        transposes cost less than `GroupNormalization`'s float32 copy of the maps and its
        separate moments and products: on a 2-core AMD EPYC with native bfloat16 the kernel
        made the bf16 train step of the EfficientNet-Lite0 U-Net at 224x224 1.25x faster
        (benchmarks/RESULTS.md, row 20). The kernel reads bfloat16 or float16 maps and keeps
        its statistics, scale and offset in float32. One kernel per sample was 1.05x faster
        still, but made training differ between two runs of one command (row 29), so the
        samples stay side by side in one kernel whatever the batch size.
        """
        import tensorflow as tf  # this path runs on the TensorFlow backend only

        shape = tf.shape(inputs)
        batch, height, width, channels = shape[0], shape[1], shape[2], inputs.shape[3]
        folded = tf.reshape(tf.transpose(inputs, [1, 2, 0, 3]),
                            [1, height, width, batch * channels])  # (1, h, w, batch * c)
        gamma, beta = _float32_scale_and_offset(self, channels)
        normalized, _, _ = tf.compat.v1.nn.fused_batch_norm(
            folded, tf.tile(gamma, [batch]), tf.tile(beta, [batch]), epsilon=self.epsilon,
            is_training=True)
        outputs = tf.transpose(tf.reshape(normalized, [height, width, batch, channels]),
                               [2, 0, 1, 3])  # (batch, h, w, c)
        return tf.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("groups")  # build() sets it to the channel count; it is not an argument here
        return config


@keras.saving.register_keras_serializable(package="segment")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose inference (normalising by the moving statistics
    outside training) runs as one FusedBatchNorm kernel under mixed precision on TensorFlow.

    Keras' layer copies each bfloat16 map to float32, scales and shifts it in separate ops and
    casts it back. TensorFlow's kernel reads the bfloat16 map and keeps the statistics, scale
    and offset in float32, so the result agrees to bfloat16's precision; on a 2-core AMD EPYC
    with native bfloat16 it made the prediction of the EfficientNet-Lite0 U-Net at 224x224
    5-10 % faster in three windows of four (benchmarks/RESULTS.md, row 21). The pretrained encoders
    (`segment.efficientnet`) use it. The library's prediction now folds these norms into their
    convolutions instead (`segment.batch_norm_folding`), so the kernel serves validation and a
    model's own `predict`. In training, frozen or not, it is Keras' layer unchanged:
    there the kernel gained nothing measurable, and training stays exactly what it was. Float32,
    JAX and PyTorch are Keras' layer too; a model saved with Keras' own layer loads as it was
    saved.

    Args and shapes: those of `keras.layers.BatchNormalization`, (batch, h, w, channels) for
    the kernel.

    Example:
        >>> import numpy as np
        >>> layer = FusedBatchNormalization(dtype="mixed_bfloat16")
        >>> keras.backend.standardize_dtype(layer(np.ones((1, 4, 4, 2), np.float32)).dtype)
        'bfloat16'
    """

    def call(self, inputs, training=None, mask=None):
        if training or mask is not None or not _fits_fused_batch_norm(self, inputs):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # this path runs on the TensorFlow backend only

        gamma, beta = _float32_scale_and_offset(self, inputs.shape[-1])
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=tf.cast(self.moving_mean, "float32"),
            variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon,
            is_training=False)  # (batch, h, w, channels), the maps' own dtype
        return tf.cast(outputs, self.compute_dtype)


class _Float32Weights:
    """A mixin of a Keras layer whose weights are never cast to its compute dtype on reading:
    its call() casts them where it needs."""

    def add_weight(self, *args, **kwargs):
        return super().add_weight(*args, **{**kwargs, "autocast": False})


@keras.saving.register_keras_serializable(package="segment")
class Float32TrainingDepthwiseConv2D(_Float32Weights, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` that, under mixed precision, trains without oneDNN's
    bfloat16 depthwise backprop kernels, which took 2.3 to 4.4 times as long as float32's on a
    2-core AMD EPYC with native bfloat16 (benchmarks/bench_step_trace.py): a stride-1 layer in
    bfloat16 with gradients made of forward convolutions (`segment.bf16_depthwise`,
    TensorFlow), any other in float32 between its bfloat16 neighbours (the name is from before
    the first kind; saved models load by it). Prediction convolves in bfloat16 like its
    neighbours: that made the bf16 prediction of the EfficientNet-Lite0 U-Net at 224x224 3-5 %
    faster on that CPU (benchmarks/RESULTS.md, row 23), with the same test dice. Under a
    float32 policy both are Keras' layer's float32 result. The pretrained encoders use it under
    "mixed_bfloat16" on a CPU (`segment.model.float32_depthwise_training`).

    Args: those of `keras.layers.DepthwiseConv2D`, channels last.

    Input shape:
        (batch, height, width, channels), any float dtype.

    Output shape:
        (batch, height / strides, width / strides, channels * depth_multiplier), the compute
        dtype.

    Example:
        >>> import numpy as np
        >>> layer = Float32TrainingDepthwiseConv2D(3, padding="same", dtype="mixed_bfloat16")
        >>> keras.backend.standardize_dtype(layer(np.ones((1, 8, 8, 2), np.float32)).dtype)
        'bfloat16'
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _require_channels_last(self)

    def call(self, inputs, training=None):
        return _depthwise_conv(self, inputs, self.kernel, self.bias if self.use_bias else None,
                               training, without_bf16_backprop=bool(training))


def _require_channels_last(layer):
    """Refuse a convolution `layer` built for channels-first maps: the layers here compute on
    (batch, h, w, channels) only."""
    if layer.data_format != "channels_last":
        raise ValueError(f"{type(layer).__name__} takes channels-last maps. Received: "
                         f"data_format={layer.data_format!r}")


def _depthwise_conv(layer, inputs, kernel, bias, training, without_bf16_backprop=False):
    """The depthwise convolution of `layer` (its strides, padding, activation) with this float32
    kernel (kh, kw, in, multiplier) and bias (in * multiplier,) or None (added as `_plus_bias`
    does), in the layer's compute dtype; with `without_bf16_backprop` (training under mixed
    precision on a CPU), in bfloat16 with `bf16_depthwise`'s gradients where that module
    `fits` the layer (stride 1), in float32 elsewhere. Returned in the compute dtype."""
    if without_bf16_backprop and bf16_depthwise.fits(layer):
        outputs, dtype = bf16_depthwise.depthwise_conv(inputs, kernel), "bfloat16"
    else:
        dtype = "float32" if without_bf16_backprop else layer.compute_dtype
        outputs = ops.depthwise_conv(ops.cast(inputs, dtype), ops.cast(kernel, dtype),
                                     strides=layer.strides, padding=layer.padding,
                                     data_format=layer.data_format,
                                     dilation_rate=layer.dilation_rate)
    if bias is not None:
        outputs = _plus_bias(outputs, bias, dtype, training)
    return ops.cast(layer.activation(outputs), layer.compute_dtype)


def _plus_bias(outputs, bias, dtype, training):
    """`outputs` (..., channels) of `dtype` plus the float32 `bias` (channels,), in `dtype`.

    In training the sum is taken in float32 and rounded once: a bias rounded to bfloat16 first
    shifts every pixel of its channel by the same error, and the README's bf16 run trained so
    scored about 0.004 mean dice lower (docs/RESULTS.md, "The frozen batch norms folded in
    training"). Outside training the bias is rounded to `dtype` first, as Keras' convolutions
    add theirs: the test dice moved by 0.0001 at most, and the float32 sum made the bf16
    prediction 0.88x as fast in one window.
    """
    if training:
        return ops.cast(ops.cast(outputs, "float32") + ops.cast(bias, "float32"), dtype)
    return outputs + ops.cast(bias, dtype)


def fold_batch_norm(kernel, gamma, beta, moving_mean, moving_variance, epsilon, depthwise=False):
    """A bias-free convolution's kernel and the batch norm after it, outside training (moving
    statistics), as one convolution's float32 (kernel', bias'):

        kernel' = kernel * s,  bias' = beta - moving_mean * s,
        s = gamma / sqrt(moving_variance + epsilon)

    A Conv2D kernel is (kh, kw, in, out); a DepthwiseConv2D's (kh, kw, in, multiplier), whose
    outputs are in * multiplier channels. The four batch norm vectors have one entry per output
    channel. Takes numpy arrays or backend tensors, returns backend tensors.
    """
    scale = ops.cast(gamma, "float32") * ops.rsqrt(ops.cast(moving_variance, "float32") + epsilon)
    per_output = tuple(kernel.shape[2:]) if depthwise else (-1,)
    folded_kernel = ops.cast(kernel, "float32") * ops.reshape(scale, per_output)
    return folded_kernel, ops.cast(beta, "float32") - ops.cast(moving_mean, "float32") * scale


class _FrozenBatchNorm(_Float32Weights):
    """What a convolution needs to carry the frozen batch norm after it: the norm's gamma,
    beta and moving statistics as float32 weights that never train, read by its
    `kernel_and_bias` folded into its kernel (`fold_batch_norm`). A mixin of a bias-free Keras
    convolution whose weights are not autocast."""

    # (name, initializer) of each, in `keras.layers.BatchNormalization`'s order
    BATCH_NORM_WEIGHTS = (("gamma", "ones"), ("beta", "zeros"), ("moving_mean", "zeros"),
                          ("moving_variance", "ones"))

    def _check_settings(self, epsilon):
        if self.use_bias:
            raise ValueError(f"{type(self).__name__} carries its batch norm's offset as the "
                             f"bias; it takes use_bias=False. Received: use_bias=True")
        _require_channels_last(self)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        super().build(input_shape)
        channels = self.kernel.shape[2] * self.kernel.shape[3] if self._depthwise else (
            self.kernel.shape[3])
        for name, initializer in self.BATCH_NORM_WEIGHTS:
            setattr(self, name, self.add_weight(shape=(channels,), initializer=initializer,
                                                trainable=False, name=name))

    def kernel_and_bias(self):
        """The folded float32 kernel and bias, computed from the weights at each call, so the
        kernel trains as the unfolded convolution's would."""
        return fold_batch_norm(self.kernel, self.gamma, self.beta, self.moving_mean,
                               self.moving_variance, self.epsilon, depthwise=self._depthwise)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}

    # Keras' convolutions save their kernel and bias only: these save and load every weight.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)


@keras.saving.register_keras_serializable(package="segment")
class FrozenBatchNormConv2D(_FrozenBatchNorm, keras.layers.Conv2D):
    """A bias-free `keras.layers.Conv2D` and the frozen `BatchNormalization` after it (moving
    statistics, gamma and beta that never train) as one layer, computed as one convolution with
    a folded kernel and a bias (`fold_batch_norm`), in training too.

    The kernel is stored unfolded and trains; the fold is recomputed at each call (one multiply
    of the kernel), so the values and gradients are those of the pair, to float rounding. Under
    mixed precision the bias is added to the bfloat16 convolution in float32 in training, as the
    batch norm did (`_plus_bias`). On a 2-core AMD EPYC with native bfloat16 the fold made the bf16
    train step of the EfficientNet-Lite0 U-Net at 224x224 1.00-1.08x as fast in four windows
    (docs/RESULTS.md, "The frozen batch norms folded in training").
    The pretrained encoders (`segment.efficientnet`) use it for `encoder_batchnorm="frozen"`.

    Args:
        *args, **kwargs: those of `keras.layers.Conv2D`, with use_bias=False (the default
            here) and channels last.
        epsilon: The batch norm's, added to its moving variance. Defaults to 1e-3.

    Weights: kernel (kh, kw, in, filters), trainable; gamma, beta, moving_mean and
    moving_variance, (filters,) float32, not trainable.

    Example:
        >>> import numpy as np
        >>> layer = FrozenBatchNormConv2D(4, 3, padding="same")
        >>> tuple(layer(np.ones((1, 8, 8, 2), np.float32)).shape)
        (1, 8, 8, 4)
        >>> [weight.name for weight in layer.weights]
        ['kernel', 'gamma', 'beta', 'moving_mean', 'moving_variance']
    """

    _depthwise = False

    def __init__(self, *args, epsilon=1e-3, use_bias=False, **kwargs):
        super().__init__(*args, use_bias=use_bias, **kwargs)
        self._check_settings(epsilon)

    def call(self, inputs, training=None):
        kernel, bias = self.kernel_and_bias()
        outputs = self.convolution_op(inputs, ops.cast(kernel, self.compute_dtype))
        return self.activation(_plus_bias(outputs, bias, self.compute_dtype, training))


@keras.saving.register_keras_serializable(package="segment")
class FrozenBatchNormDepthwiseConv2D(_FrozenBatchNorm, keras.layers.DepthwiseConv2D):
    """`FrozenBatchNormConv2D` for a bias-free depthwise convolution: a
    `keras.layers.DepthwiseConv2D` and the frozen batch norm after it as one convolution.

    With `float32_training` it trains and predicts as `Float32TrainingDepthwiseConv2D`; without,
    it computes in its compute dtype throughout, as Keras' layer.

    Args:
        *args, **kwargs: those of `keras.layers.DepthwiseConv2D`, with use_bias=False (the
            default here) and channels last.
        epsilon: The batch norm's. Defaults to 1e-3.
        float32_training: Train as `Float32TrainingDepthwiseConv2D` (named as that).
            Defaults to False.

    Weights: kernel (kh, kw, in, multiplier), trainable; gamma, beta, moving_mean and
    moving_variance, (in * multiplier,) float32, not trainable.
    """

    _depthwise = True

    def __init__(self, *args, epsilon=1e-3, use_bias=False, float32_training=False, **kwargs):
        super().__init__(*args, use_bias=use_bias, **kwargs)
        self._check_settings(epsilon)
        self.float32_training = bool(float32_training)

    def call(self, inputs, training=None):
        return _depthwise_conv(self, inputs, *self.kernel_and_bias(), training,
                               without_bf16_backprop=bool(training and self.float32_training))

    def get_config(self):
        return {**super().get_config(), "float32_training": self.float32_training}
