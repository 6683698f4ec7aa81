"""Prediction with each batch norm folded into the bias-free convolution before it: the same
probabilities, the copy kept per model and refreshed from its weights on every call."""

import gc
import weakref

import segment
from segment.batch_norm_folding import foldable_pairs, folded_for_prediction
from segment.layers import Float32TrainingDepthwiseConv2D, FusedBatchNormalization

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("keras_eagerly")
IMAGES = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)  # (batch, h, w, rgb)


def network(dtype=None):
    """Conv -> BN -> ReLU6 -> depthwise (x2) -> BN, both foldable; a biased conv -> BN and a
    bias-free conv read twice (by its BN and by an add), neither foldable. Random statistics."""
    layers = keras.layers
    image = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv", dtype=dtype)(image)
    x = FusedBatchNormalization(name="conv_bn", dtype=dtype)(x)
    x = layers.ReLU(6.0, dtype=dtype)(x)
    x = Float32TrainingDepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False,
                                       name="depthwise", dtype=dtype)(x)
    x = layers.BatchNormalization(name="depthwise_bn", dtype=dtype)(x)  # (1, 8, 8, 8)
    x = layers.Conv2D(8, 1, name="biased", dtype=dtype)(x)
    x = layers.BatchNormalization(name="biased_bn", dtype=dtype)(x)
    shared = layers.Conv2D(8, 1, use_bias=False, name="shared", dtype=dtype)(x)
    x = layers.Add(dtype=dtype)([layers.BatchNormalization(name="shared_bn", dtype=dtype)(shared),
                                 shared])
    model = keras.Model(image, layers.Conv2D(1, 1, activation="sigmoid", dtype=dtype)(x))
    randomise_statistics(model, seed=1)
    return model


def randomise_statistics(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for weight, low, high in [(layer.gamma, 0.5, 2.0), (layer.beta, -0.5, 0.5),
                                      (layer.moving_mean, -0.5, 0.5),
                                      (layer.moving_variance, 0.3, 3.0)]:
                weight.assign(rng.uniform(low, high, weight.shape))


def test_only_bias_free_convolutions_read_by_their_norm_alone_are_folded():
    model = network()
    assert [(conv.name, norm.name) for conv, norm in foldable_pairs(model)] == [
        ("conv", "conv_bn"), ("depthwise", "depthwise_bn")]
    folded = folded_for_prediction(model)
    kinds = {layer.name: type(layer).__name__ for layer in folded.layers}
    assert (kinds["conv_bn"], kinds["depthwise_bn"]) == ("Identity", "Identity")
    assert (kinds["biased_bn"], kinds["shared_bn"]) == ("BatchNormalization",) * 2
    assert folded.get_layer("conv").use_bias and folded.get_layer("depthwise").use_bias
    assert not model.get_layer("conv").use_bias  # the model itself is untouched
    np.testing.assert_allclose(folded.predict_on_batch(IMAGES), model.predict_on_batch(IMAGES),
                               atol=1e-5)


def test_the_copy_is_kept_and_follows_the_models_weights():
    model = network()
    folded = folded_for_prediction(model)
    randomise_statistics(model, seed=2)  # as training would change them
    model.get_layer("conv").kernel.assign(model.get_layer("conv").kernel * 1.5)
    again = folded_for_prediction(model)
    assert again is folded
    np.testing.assert_allclose(again.predict_on_batch(IMAGES), model.predict_on_batch(IMAGES),
                               atol=1e-5)
    alive = weakref.ref(model)
    del model, folded, again
    gc.collect()
    assert alive() is None  # the kept copy does not keep its model in memory


def test_under_mixed_bfloat16_the_copy_keeps_the_layers_and_predicts_within_bf16_rounding():
    model = network("mixed_bfloat16")
    folded = folded_for_prediction(model)
    depthwise = folded.get_layer("depthwise")
    assert isinstance(depthwise, Float32TrainingDepthwiseConv2D)
    assert depthwise.dtype_policy.name == "mixed_bfloat16"
    np.testing.assert_allclose(folded.predict_on_batch(IMAGES), model.predict_on_batch(IMAGES),
                               atol=0.02)


class Subclassed(keras.Model):
    """Conv -> BN inside call(): a graph Keras does not record, so nothing is folded."""

    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(2, 1, use_bias=False)
        self.norm = keras.layers.BatchNormalization()

    def call(self, images):
        return self.norm(self.conv(images))


def test_networks_without_a_readable_pair_predict_as_they_are():
    plain = segment.create_model((32, 32, 3), base_filters=2, depth=3)  # instance norms only
    subclassed = Subclassed()
    subclassed(IMAGES)
    for model in (plain, subclassed):
        assert foldable_pairs(model) == [] and folded_for_prediction(model) is model


def test_the_lite0_unets_48_encoder_pairs_fold_and_evaluate_alike(synthetic_pairs):
    from unittest import mock

    carrying = segment.create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=2)
    assert folded_for_prediction(carrying) is carrying  # frozen: folded as built
    model = segment.create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=2,
                                 encoder_batchnorm="train")
    assert len(foldable_pairs(model)) == 48  # every batch norm of Lite0 up to its last block
    folded = segment.evaluate(model, synthetic_pairs[:4], progress=False).table["dice"]
    with mock.patch("segment.prediction.folded_for_prediction", lambda model: model):
        as_built = segment.evaluate(model, synthetic_pairs[:4], progress=False).table["dice"]
    np.testing.assert_allclose(folded, as_built, atol=1e-4)
