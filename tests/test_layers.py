"""InstanceNormalization: per-sample, per-channel statistics; serializable by name.
FusedBatchNormalization: Keras' batch norm, one kernel for its moving statistics in bf16.
Float32TrainingDepthwiseConv2D: a depthwise convolution that trains without bf16 backprop kernels
(stride 1: in bf16 with `bf16_depthwise`'s forward-convolution gradients; else float32), bf16
outside training.
FrozenBatchNormConv2D, FrozenBatchNormDepthwiseConv2D: a convolution and its frozen batch norm as
one convolution. UpsamplingConv2D: nearest x2 upsampling and a 3x3 convolution as one."""

from segment import InstanceNormalization, bf16_depthwise
from segment.layers import (
    Float32TrainingDepthwiseConv2D,
    FrozenBatchNormConv2D,
    FrozenBatchNormDepthwiseConv2D,
    FusedBatchNormalization,
)
from segment.upsampling import NearestUpSampling2D, UpsamplingConv2D

import keras
import numpy as np
import pytest


def numpy_instance_norm(x, epsilon=1e-3):
    """Reference: normalise each (sample, channel) over height and width."""
    mean = x.mean(axis=(1, 2), keepdims=True)  # (batch, 1, 1, channels)
    variance = x.var(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon)


def test_matches_numpy_reference_per_sample_and_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 7, 4)).astype(np.float32)  # (batch, h, w, channels)
    x *= np.array([1, 10, 0.1, 3], np.float32)  # channels of very different scales
    x[1] += 50  # one sample with a large offset must not affect the others
    layer = InstanceNormalization()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), numpy_instance_norm(x),
                               atol=1e-4)


def test_learned_scale_and_offset_are_per_channel():
    layer = InstanceNormalization()
    layer.build((None, 4, 4, 3))
    assert [tuple(weight.shape) for weight in layer.weights] == [(3,), (3,)]


def test_config_round_trip_and_registered_name():
    layer = InstanceNormalization(epsilon=1e-5, name="norm")
    layer.build((None, 8, 8, 6))  # build() must not leak the group count into the config
    config = layer.get_config()
    assert "groups" not in config and config["epsilon"] == 1e-5
    clone = InstanceNormalization.from_config(config)
    assert clone.epsilon == 1e-5 and clone.name == "norm"
    assert keras.saving.get_registered_name(InstanceNormalization) == (
        "segment>InstanceNormalization")


def test_tensorflow_addons_config_with_groups_loads():
    tfa_config = {"name": "instance_normalization", "groups": 16, "axis": -1, "epsilon": 1e-3,
                  "center": True, "scale": True, "trainable": True, "dtype": "float32"}
    layer = InstanceNormalization.from_config(tfa_config)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 16)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), numpy_instance_norm(x),
                               atol=1e-4)


def test_unknown_channel_count_is_refused():
    with pytest.raises(ValueError, match="defined dimension"):
        InstanceNormalization().build((None, 4, 4, None))


def traced_values_and_gradients(layer, x, weights, training=None, batch_size=None):
    """(outputs, gradients of sum(outputs * weights) by the input and the layer's trainable
    weights), and {op type: the dtypes of its outputs} of the traced graph, with the batch size
    `batch_size` in the graph (None: unknown, as under `fit` with a smaller last batch)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((batch_size, *x.shape[1:]), tf.float32)])
    def step(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = tf.cast(layer(images, training=training), tf.float32)
            loss = tf.reduce_sum(outputs * weights)
        return outputs, tape.gradient(loss, [images, *layer.trainable_weights])
    kinds = {}
    for op in step.get_concrete_function().graph.get_operations():
        kinds.setdefault(op.type, set()).update(output.dtype.name for output in op.outputs)
    return step(tf.constant(x)), kinds


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the fused kernel is the TensorFlow backend's")
def test_mixed_precision_runs_one_fused_kernel_with_float32_values_and_gradients():
    import tensorflow as tf

    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6, 5, 4)).astype(np.float32) * np.array([1, 10, 0.1, 3], np.float32)
    x[1] += 50  # a large offset in one sample only
    weights = rng.normal(size=x.shape).astype(np.float32)  # a loss that moves every pixel
    layers = {}
    for policy in ("float32", "mixed_bfloat16"):
        layers[policy] = InstanceNormalization(dtype=policy)
        layers[policy].build(x.shape)
        layers[policy].set_weights([np.array([0.5, 1, 1.5, 2], np.float32),
                                    np.array([-1, 0, 1, 2], np.float32)])

    (reference, reference_grads), float32_kinds = traced_values_and_gradients(
        layers["float32"], x, weights)
    (outputs, grads), bf16_kinds = traced_values_and_gradients(layers["mixed_bfloat16"], x,
                                                               weights)
    assert "FusedBatchNormV3" in bf16_kinds and "FusedBatchNormV3" not in float32_kinds
    scale = np.array([0.5, 1, 1.5, 2], np.float32)
    np.testing.assert_allclose(reference.numpy(), numpy_instance_norm(x) * scale
                               + np.array([-1, 0, 1, 2], np.float32), atol=1e-4)
    # bfloat16 keeps 8 bits: the outputs (|y| up to ~5) agree to 2 of their last bits
    np.testing.assert_allclose(outputs.numpy(), reference.numpy(), atol=0.04)
    for grad, reference_grad in zip(grads, reference_grads, strict=True):
        tolerance = 0.02 * np.abs(reference_grad.numpy()).max()
        np.testing.assert_allclose(tf.cast(grad, tf.float32).numpy(), reference_grad.numpy(),
                                   atol=tolerance)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the fused kernel is the TensorFlow backend's")
def test_with_the_batch_size_in_the_graph_bf16_still_runs_one_kernel_over_all_samples():
    # One kernel per sample, side by side, made bf16 training differ between processes.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 6, 5, 4)).astype(np.float32) * np.array([1, 10, 0.1, 3], np.float32)
    x[2] -= 20
    weights = rng.normal(size=x.shape).astype(np.float32)
    layer = InstanceNormalization(dtype="mixed_bfloat16")
    layer.build(x.shape)
    layer.set_weights([np.array([0.5, 1, 1.5, 2], np.float32), np.array([-1, 0, 1, 2], np.float32)])

    (unknown, unknown_grads), unknown_kinds = traced_values_and_gradients(layer, x, weights)
    (known, known_grads), known_kinds = traced_values_and_gradients(layer, x, weights,
                                                                    batch_size=3)
    assert "Transpose" in known_kinds and "FusedBatchNormV3" in known_kinds
    assert "Split" not in known_kinds and "ConcatV2" not in known_kinds
    np.testing.assert_array_equal(known.numpy(), unknown.numpy())
    for grad, unknown_grad in zip(known_grads, unknown_grads, strict=True):
        np.testing.assert_array_equal(grad.numpy(), unknown_grad.numpy())


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the fused kernel is the TensorFlow backend's")
def test_batch_norm_inference_in_bf16_runs_one_kernel_and_training_keeps_keras_ops():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32) * 4 + np.array([30, -2, 0], np.float32)
    weights = rng.normal(size=x.shape).astype(np.float32)
    statistics = [np.array([0.5, 1, 2], np.float32), np.array([-1, 0, 1], np.float32),  # gamma,
                  np.array([30, -2, 0], np.float32), np.array([16, 9, 4], np.float32)]  # beta,
    layers = {}  # mean and variance, as a pretrained encoder's
    for policy in ("float32", "mixed_bfloat16"):
        layers[policy] = FusedBatchNormalization(epsilon=1e-3, dtype=policy)
        layers[policy].build(x.shape)
        layers[policy].set_weights(statistics)
        layers[policy].trainable = False  # `encoder_batchnorm="frozen"`

    def traced(layer, training):
        (outputs, _), kinds = traced_values_and_gradients(layer, x, weights, training)
        return outputs.numpy(), kinds

    reference, float32_kinds = traced(layers["float32"], training=False)
    outputs, inference_kinds = traced(layers["mixed_bfloat16"], training=False)
    trained, training_kinds = traced(layers["mixed_bfloat16"], training=True)
    assert "FusedBatchNormV3" in inference_kinds
    assert "FusedBatchNormV3" not in float32_kinds | training_kinds
    gamma, beta, mean, variance = statistics
    np.testing.assert_allclose(reference, (x - mean) / np.sqrt(variance + 1e-3) * gamma + beta,
                               atol=1e-5)
    np.testing.assert_allclose(outputs, reference, atol=0.04)  # bfloat16 keeps 8 bits
    np.testing.assert_allclose(trained, reference, atol=0.04)  # frozen: the moving statistics
    learning = layers["mixed_bfloat16"]
    learning.trainable = True  # training with batch statistics updates them, as Keras' layer
    learning(x, training=True)
    assert not np.allclose(learning.moving_mean.numpy(), mean)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the traced graph's op dtypes are TensorFlow's")
def test_depthwise_trains_as_float32_between_bf16_layers_and_predicts_in_bf16():
    import tensorflow as tf

    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
    weights = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)  # stride 2: (2, 4, 3, 3) out

    def bf16(array):  # what a bf16 neighbour hands on: maps forwards, gradients backwards
        return tf.cast(tf.cast(array, tf.bfloat16), tf.float32).numpy()

    layer = Float32TrainingDepthwiseConv2D(3, 2, padding="same", use_bias=False,
                                           dtype="mixed_bfloat16")
    stock = keras.layers.DepthwiseConv2D(3, 2, padding="same", use_bias=False, dtype="float32")
    for each in (layer, stock):
        each.build(x.shape)
    stock.set_weights(layer.get_weights())
    assert layer.kernel.dtype == "float32"

    (trained, trained_grads), training_kinds = traced_values_and_gradients(layer, x, weights,
                                                                           training=True)
    (predicted, _), inference_kinds = traced_values_and_gradients(layer, x, weights,
                                                                  training=False)
    (reference, reference_grads), _ = traced_values_and_gradients(stock, bf16(x),
                                                                  bf16(weights))
    assert training_kinds["DepthwiseConv2dNative"] == {"float32"}
    assert inference_kinds["DepthwiseConv2dNative"] == {"bfloat16"}
    # training: the float32 layer between bf16 ones, its output and kernel gradient
    np.testing.assert_array_equal(trained.numpy(), bf16(reference))
    np.testing.assert_array_equal(trained_grads[1].numpy(), reference_grads[1].numpy())
    np.testing.assert_allclose(predicted.numpy(), reference.numpy(),  # 8 bits of bfloat16
                               atol=0.02 * np.abs(reference.numpy()).max())
    assert not np.array_equal(predicted.numpy(), trained.numpy())
    assert Float32TrainingDepthwiseConv2D.from_config(layer.get_config()).compute_dtype == (
        "bfloat16")
    with pytest.raises(ValueError, match="channels-last"):
        Float32TrainingDepthwiseConv2D(3, data_format="channels_first")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="segment.bf16_depthwise is TensorFlow's")
def test_bf16_depthwise_gradients_are_the_convolutions_own_exactly():
    # Small integers, exact in bfloat16 and in every sum here (|value| <= 2, at most 5 x 4
    # positions), so the forward convolutions that make the gradients must give float32
    # autodiff's values to the bit: a kernel turned the wrong way, a padding off by one or two
    # samples' channels mixed up would not.
    import tensorflow as tf

    rng = np.random.default_rng(7)
    x, upstream = (rng.integers(-2, 3, (3, 5, 4, 2)).astype(np.float32) for _ in range(2))
    kernel = rng.integers(-2, 3, (3, 5, 2, 1)).astype(np.float32)  # odd, not square

    def values_and_gradients(convolve, batch):
        maps = tf.TensorSpec((batch, 5, 4, 2))

        @tf.function(input_signature=[maps, maps, tf.TensorSpec(kernel.shape)])
        def step(images, upstream, kernel):
            with tf.GradientTape() as tape:
                tape.watch([images, kernel])
                outputs = convolve(images, kernel)
            return outputs, *tape.gradient(outputs, [images, kernel],
                                           output_gradients=tf.cast(upstream, outputs.dtype))
        return step(x, upstream, kernel)

    reference = values_and_gradients(
        lambda images, kernel: tf.nn.depthwise_conv2d(images, kernel, [1] * 4, "SAME"), 3)
    for batch in (3, None):  # the batch size in the graph, and unknown (as under `fit`)
        ours = values_and_gradients(bf16_depthwise.depthwise_conv, batch)
        assert [each.dtype.name for each in ours] == ["bfloat16", "float32", "float32"]
        for mine, theirs in zip(ours, reference, strict=True):  # outputs, input and kernel grads
            np.testing.assert_array_equal(tf.cast(mine, tf.float32).numpy(), theirs.numpy())


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the traced graph's op dtypes are TensorFlow's")
@pytest.mark.parametrize("kind", [Float32TrainingDepthwiseConv2D, FrozenBatchNormDepthwiseConv2D])
def test_a_stride_1_depthwise_trains_in_bf16_with_no_backprop_kernel(kind):
    rng = np.random.default_rng(8)
    x, weights = (rng.normal(size=(2, 7, 6, 3)).astype(np.float32) for _ in range(2))
    settings = {"kernel_size": 3, "padding": "same", "use_bias": False}
    if kind is FrozenBatchNormDepthwiseConv2D:
        settings["float32_training"] = True
    layer = kind(dtype="mixed_bfloat16", **settings)
    as_float32 = kind(dtype="float32", **settings)
    for each in (layer, as_float32):
        each.build(x.shape)
    as_float32.set_weights(layer.get_weights())
    (_, grads), training_kinds = traced_values_and_gradients(layer, x, weights, training=True)
    assert training_kinds["DepthwiseConv2dNative"] == {"bfloat16"}
    assert not {"DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter"} & (
        set(training_kinds))
    assert grads[1].dtype == "float32"  # the float32 kernel's
    (_, float32_grads), float32_kinds = traced_values_and_gradients(as_float32, x, weights,
                                                                    training=True)
    assert float32_kinds["DepthwiseConv2dNativeBackpropFilter"] == {"float32"}  # Keras' own
    np.testing.assert_allclose(grads[1].numpy(), float32_grads[1].numpy(),  # bf16's 8 bits
                               atol=0.02 * np.abs(float32_grads[1].numpy()).max())


def convolution_and_frozen_batch_norm(kind, rng, policy="float32", float32_training=False):
    """(the pair: a bias-free stride-2 `kind` and its frozen batch norm, as a model; the same
    as one `FrozenBatchNorm<kind>` holding the same weights), on (batch, 7, 6, 3) maps, with
    random batch norm statistics."""
    settings = {"kernel_size": 3, "strides": 2, "padding": "same", "dtype": policy}
    if kind == "Conv2D":
        settings["filters"] = channels = 4
        folded = FrozenBatchNormConv2D(epsilon=1e-3, **settings)
    else:
        settings["depth_multiplier"], channels = 2, 6
        folded = FrozenBatchNormDepthwiseConv2D(epsilon=1e-3, float32_training=float32_training,
                                                **settings)
    conv = getattr(keras.layers, kind)(use_bias=False, **settings)
    norm = keras.layers.BatchNormalization(epsilon=1e-3, dtype=policy)
    norm.trainable = False
    pair = keras.Sequential([keras.Input((7, 6, 3)), conv, norm])
    folded.build((None, 7, 6, 3))
    statistics = [rng.uniform(0.5, 2, channels), rng.normal(size=channels),  # gamma, beta,
                  rng.normal(size=channels), rng.uniform(0.1, 4, channels)]  # mean, variance
    statistics = [each.astype(np.float32) for each in statistics]
    norm.set_weights(statistics)
    folded.set_weights([conv.get_weights()[0], *statistics])
    return pair, folded


@pytest.mark.parametrize("kind", ["Conv2D", "DepthwiseConv2D"])
def test_a_convolution_carrying_its_frozen_batch_norm_computes_the_pair(kind):
    rng = np.random.default_rng(5)
    pair, folded = convolution_and_frozen_batch_norm(kind, rng)
    x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
    for training in (True, False):  # frozen: the moving statistics in training too
        np.testing.assert_allclose(keras.ops.convert_to_numpy(folded(x, training=training)),
                                   keras.ops.convert_to_numpy(pair(x, training=training)),
                                   atol=1e-5)
    assert [weight.name for weight in folded.trainable_weights] == ["kernel"]
    assert [weight.name for weight in folded.non_trainable_weights] == [
        "gamma", "beta", "moving_mean", "moving_variance"]
    again = type(folded).from_config(folded.get_config())
    assert (again.epsilon, again.use_bias, again.strides) == (1e-3, False, (2, 2))
    shape_args = (4, 3) if kind == "Conv2D" else (3,)
    with pytest.raises(ValueError, match="it takes use_bias=False"):
        type(folded)(*shape_args, use_bias=True)
    with pytest.raises(ValueError, match=f"{type(folded).__name__} takes channels-last"):
        type(folded)(*shape_args, data_format="channels_first")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the traced graph's op dtypes are TensorFlow's")
@pytest.mark.parametrize("kind", ["Conv2D", "DepthwiseConv2D"])
def test_the_folded_convolution_trains_its_kernel_as_the_pair_and_runs_in_bf16(kind):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
    pair, folded = convolution_and_frozen_batch_norm(kind, rng)
    weights = rng.normal(size=pair.output_shape[1:]).astype(np.float32)
    (outputs, grads), _ = traced_values_and_gradients(folded, x, weights, training=True)
    (reference, reference_grads), _ = traced_values_and_gradients(pair, x, weights, training=True)
    np.testing.assert_allclose(outputs.numpy(), reference.numpy(), atol=1e-5)
    for grad, reference_grad in zip(grads, reference_grads, strict=True):  # input, kernel
        np.testing.assert_allclose(grad.numpy(), reference_grad.numpy(), rtol=1e-4, atol=1e-5)
    op = "Conv2D" if kind == "Conv2D" else "DepthwiseConv2dNative"
    _, bf16 = convolution_and_frozen_batch_norm(kind, rng, "mixed_bfloat16",
                                                float32_training=True)
    (predicted, _), inference_kinds = traced_values_and_gradients(bf16, x, weights)
    (_, bf16_grads), training_kinds = traced_values_and_gradients(bf16, x, weights, training=True)
    assert inference_kinds[op] == {"bfloat16"} and bf16.kernel.dtype == "float32"
    assert training_kinds[op] == {"float32" if kind == "DepthwiseConv2D" else "bfloat16"}
    assert bf16_grads[1].dtype == "float32"  # the float32 kernel's


@pytest.mark.parametrize("kind", ["Conv2D", "DepthwiseConv2D"])
def test_under_bf16_the_folded_bias_is_added_in_float32_in_training(kind):
    # a 1x1 identity convolution, scale 1 (variance + epsilon = 1), offset 1 + 2**-8: that
    # offset alone rounds to 1 in bfloat16 (halfway, to even), so an input of 2**-8 gives
    # 1 + 2**-7 (exact in bfloat16) summed in float32, in training, and 1 with the bias rounded
    # first, in prediction (as Keras' convolutions add theirs)
    layer = (FrozenBatchNormConv2D(1, 1, epsilon=0.25, dtype="mixed_bfloat16") if kind == "Conv2D"
             else FrozenBatchNormDepthwiseConv2D(1, epsilon=0.25, dtype="mixed_bfloat16"))
    layer.build((None, 2, 2, 1))
    ones = np.ones(1, np.float32)
    layer.set_weights([np.ones((1, 1, 1, 1), np.float32), ones, ones * (1 + 2**-8), ones * 0,
                       ones * 0.75])  # kernel, gamma, beta, moving mean, moving variance
    x = np.full((1, 2, 2, 1), 2**-8, np.float32)
    for training, expected in [(True, 1 + 2**-7), (False, 1)]:
        outputs = layer(x, training=training)
        assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(keras.ops.cast(outputs, "float32")),
            np.full(x.shape, expected, np.float32))


def upsampling_then_conv(rng, policy="float32"):
    """(nearest x2 upsampling then a 3x3 'same' Conv2D, the UpsamplingConv2D with its weights)."""
    pair = keras.Sequential([keras.layers.UpSampling2D(2, dtype=policy),
                             keras.layers.Conv2D(4, 3, padding="same", dtype=policy)])
    pair.build((None, None, None, 3))
    layer = UpsamplingConv2D(4, 3, padding="same", dtype=policy)
    layer.build((None, None, None, 3))
    weights = [rng.normal(size=weight.shape).astype(np.float32) for weight in pair.weights]
    pair.set_weights(weights)
    layer.set_weights(weights)
    return pair, layer


def test_the_upsampling_convolution_computes_nearest_upsampling_then_the_convolution():
    pair, layer = upsampling_then_conv(np.random.default_rng(6))
    x = np.random.default_rng(7).normal(size=(2, 5, 7, 3)).astype(np.float32)  # odd sides
    outputs = keras.ops.convert_to_numpy(layer(x))
    assert outputs.shape == (2, 10, 14, 4) == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(outputs, keras.ops.convert_to_numpy(pair(x)), atol=1e-5)
    again = UpsamplingConv2D.from_config(layer.get_config())
    assert (again.filters, again.kernel_size, again.padding) == (4, (3, 3), "same")
    with pytest.raises(ValueError, match=r"3x3 'same'.*'strides': \(2, 2\)"):
        UpsamplingConv2D(4, 3, padding="same", strides=2)
    with pytest.raises(ValueError, match="'kernel_size': \\(5, 5\\)"):
        UpsamplingConv2D(4, 5, padding="same")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the gradients are taken with TensorFlow's tape")
def test_the_upsampling_convolution_trains_as_the_pair_in_float32_and_bf16():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    weights = rng.normal(size=(2, 10, 12, 4)).astype(np.float32)
    # bf16: of the largest value; TensorFlow's own bf16 kernels (on CPUs without AVX-512, where
    # oneDNN's are not used) round differently, up to 2.2e-2 here
    for policy, tolerance in [("float32", 1e-6), ("mixed_bfloat16", 4e-2)]:
        pair, layer = upsampling_then_conv(np.random.default_rng(6), policy)
        (outputs, grads), kinds = traced_values_and_gradients(layer, x, weights, training=True)
        (reference, reference_grads), _ = traced_values_and_gradients(pair, x, weights,
                                                                      training=True)
        for value, expected in zip([outputs, *grads], [reference, *reference_grads],
                                   strict=True):  # the maps; gradients by x, kernel, bias
            np.testing.assert_allclose(value, expected, err_msg=policy,
                                       atol=tolerance * np.abs(expected).max())
        assert "Conv2DBackpropInput" in kinds and "Conv2D" in kinds  # forward, input gradient
        assert "bfloat16" in kinds["Conv2DBackpropInput"] or policy == "float32"


@pytest.mark.parametrize("size", [2, (3, 2)])
def test_nearest_upsampling_repeats_pixels_as_keras_upsampling(size):
    x = np.random.default_rng(9).normal(size=(2, 5, 7, 3)).astype(np.float32)  # odd sides
    layer, keras_layer = NearestUpSampling2D(size), keras.layers.UpSampling2D(size)
    outputs = keras.ops.convert_to_numpy(layer(x))
    assert outputs.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_array_equal(outputs, keras.ops.convert_to_numpy(keras_layer(x)))
    again = NearestUpSampling2D.from_config(layer.get_config())
    assert again.size == keras_layer.size and keras.saving.get_registered_object(
        "segment>NearestUpSampling2D") is NearestUpSampling2D
    with pytest.raises(ValueError, match="nearest.*Received: interpolation='bilinear'"):
        NearestUpSampling2D(2, interpolation="bilinear")
    with pytest.raises(ValueError, match="data_format='channels_first'"):
        NearestUpSampling2D(2, data_format="channels_first")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the traced graph's ops are TensorFlow's")
def test_nearest_upsampling_trains_as_keras_upsampling_without_an_integer_transpose():
    # Traced with the batch size unknown, as `fit` traces it: Keras' layer's gradient transposes
    # an int32 shape, which oneDNN refuses with an error line; this one's has no such op.
    rng = np.random.default_rng(10)
    x = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
    weights = rng.normal(size=(2, 10, 14, 3)).astype(np.float32)
    (outputs, (grad,)), kinds = traced_values_and_gradients(NearestUpSampling2D(2), x, weights)
    (expected, (expected_grad,)), keras_kinds = traced_values_and_gradients(
        keras.layers.UpSampling2D(2), x, weights)
    np.testing.assert_array_equal(outputs, expected)
    np.testing.assert_array_equal(grad, expected_grad)  # each 2x2 block summed in the same order
    assert "int32" in keras_kinds["Transpose"] and "Transpose" not in kinds
    # Under tf.distribute a replica's share of a short last batch can be empty; TensorFlow's
    # oneDNN convolution then returns its input's channel count, which the layer passes through.
    import tensorflow as tf

    inputs = keras.Input((4, 4, 8))
    model = keras.Model(inputs, NearestUpSampling2D(2)(keras.layers.Conv2D(1, 1)(inputs)))
    traced = tf.function(model, input_signature=[tf.TensorSpec((None, 4, 4, 8))])
    assert traced(tf.zeros((0, 4, 4, 8))).shape[0] == 0
