"""The Improved UNet's architecture, pinned: parameter count, layer counts, module order."""

import collections

import segment
from segment import create_model, load_model, save_model
from segment.provenance import member_record
from segment.upsampling import UpsamplingConv2D

import keras
import numpy as np
import pytest
from conftest import one_scene_under_two_lamps


def conv_params(kernel, channels_in, channels_out):
    return kernel * kernel * channels_in * channels_out + channels_out  # weights + bias


def norm_params(channels):
    return 2 * channels  # gamma + beta


def hand_count(base=16, depth=5):
    """Parameters of the paper's network (docs/REFERENCE.md), derived module by module."""
    f = [base * 2**level for level in range(depth)]  # filters of levels 1..depth
    total = conv_params(3, 3, f[0])  # level 1 input convolution
    total += sum(conv_params(3, f[level - 1], f[level]) for level in range(1, depth))  # stride 2
    total += sum(2 * norm_params(c) + 2 * conv_params(3, c, c) for c in f)  # context modules
    total += sum(conv_params(3, f[level], f[level - 1]) + norm_params(f[level - 1])
                 for level in range(depth - 1, 0, -1))  # upsampling modules
    total += sum(conv_params(3, 2 * f[level], 2 * f[level]) + norm_params(2 * f[level])
                 + conv_params(1, 2 * f[level], f[level]) + norm_params(f[level])
                 for level in range(depth - 2, 0, -1))  # localization modules, levels 4..2
    total += conv_params(3, 2 * base, 2 * base) + norm_params(2 * base)  # level 1 conv
    total += conv_params(1, f[2], 1) + 2 * conv_params(1, f[1], 1)  # segmentation 3, 2, 1
    return total


@pytest.fixture(scope="module")
def paper_model():
    return create_model((128, 128, 3), base_filters=16)


@pytest.mark.graph
def test_parameter_count_matches_hand_derivation(paper_model):
    assert hand_count() == 3_187_923
    assert paper_model.count_params() == hand_count()


@pytest.mark.graph
def test_layer_counts_by_type(paper_model):
    assert paper_model.output_shape == (None, 128, 128, 1)
    counts = collections.Counter(type(layer).__name__ for layer in paper_model.layers)
    assert counts["Conv2D"] == 25  # 15 context + 6 localization + 1 + 3 heads
    assert counts["UpsamplingConv2D"] == 4  # the upsampling modules
    assert counts["InstanceNormalization"] == 21 and counts["LeakyReLU"] == 21
    assert counts["Dropout"] == 5 and counts["Concatenate"] == 4
    assert counts["NearestUpSampling2D"] == 2  # the 2 deep-supervision steps
    assert counts["Add"] == 7  # 5 residual sums + 2 deep-supervision sums
    assert counts["BatchNormalization"] == 0 and counts["Conv2DTranspose"] == 0


@pytest.mark.graph
def test_context_module_is_pre_activation_residual(paper_model):
    names = [layer.name for layer in paper_model.layers if layer.name.startswith("context_3")]
    assert names == ["context_3_in", "context_3_1_norm", "context_3_1_act", "context_3_1_conv",
                     "context_3_dropout", "context_3_2_norm", "context_3_2_act",
                     "context_3_2_conv", "context_3_sum"]
    assert paper_model.get_layer("context_3_in").strides == (2, 2)
    assert paper_model.get_layer("context_1_in").strides == (1, 1)
    assert paper_model.get_layer("context_3_dropout").rate == 0.3
    assert paper_model.get_layer("context_3_1_act").negative_slope == pytest.approx(0.01)


@pytest.mark.graph
def test_upsampling_is_nearest_then_conv(paper_model):
    upsampling = paper_model.get_layer("upsampling_2_conv")  # tests/test_layers.py: its values
    assert isinstance(upsampling, UpsamplingConv2D)
    assert (upsampling.filters, upsampling.kernel_size) == (32, (3, 3))
    assert paper_model.get_layer("localization_2_2_conv").kernel_size == (1, 1)
    assert paper_model.get_layer("localization_1_conv").filters == 32


def test_output_is_sigmoid_probabilities_of_input_size():
    model = create_model((64, 64, 3), base_filters=4)  # the paper's five levels
    assert model.output_shape == (None, 64, 64, 1)
    output = model.predict(np.random.default_rng(0).random((2, 64, 64, 3)), verbose=0)
    assert output.dtype == np.float32 and output.min() >= 0 and output.max() <= 1


def test_any_size_model_runs_on_non_square_input():
    model = create_model((None, None, 3), base_filters=4, depth=3)
    assert model.predict(np.zeros((1, 64, 96, 3)), verbose=0).shape == (1, 64, 96, 1)


def test_without_deep_supervision_and_with_softmax():
    plain = create_model((32, 32, 3), base_filters=4, depth=3, deep_supervision=False)
    assert not any(layer.name.startswith("segmentation_2") for layer in plain.layers)
    softmax = create_model((32, 32, 3), base_filters=4, depth=3, num_classes=3)
    output = softmax.predict(np.zeros((1, 32, 32, 3)), verbose=0)
    np.testing.assert_allclose(output.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.graph
def test_l2_adds_one_penalty_per_convolution(paper_model):
    assert len(paper_model.losses) == 29
    assert not create_model((32, 32, 3), base_filters=4, depth=3, l2=0).losses


def test_mixed_precision_keeps_the_output_float32():
    model = create_model((32, 32, 3), base_filters=4, depth=3, dtype_policy="mixed_bfloat16")
    assert model.get_layer("context_1_in").compute_dtype == "bfloat16"
    assert model.output.dtype == "float32"


@pytest.mark.parametrize("arguments, message", [
    ({"input_shape": (100, 128, 3)}, "divisible by 2 \\*\\* \\(depth - 1\\) = 16"),
    ({"depth": 1}, "Received: depth=1"),
    ({"base_filters": 0}, "base_filters=0"),
    ({"dropout": 1.0}, "Received: dropout=1.0"),
    ({"input_shape": (32, 32)}, "Received: input_shape"),
])
def test_bad_arguments_are_refused_with_the_value(arguments, message):
    with pytest.raises(ValueError, match=message):
        create_model(**{"input_shape": (32, 32, 3), **arguments})


def test_functional_and_serializable(tmp_path):
    model = create_model((32, 32, 3), base_filters=4, depth=3)
    assert isinstance(model, keras.Model) and model.__class__.__name__ == "Functional"
    clone = keras.Model.from_config(model.get_config())
    assert clone.count_params() == model.count_params()


def test_input_standardization_gives_each_image_channel_mean_0_std_1_and_survives_saving(
        tmp_path):
    model = create_model((32, 32, 3), base_filters=4, depth=3, standardize_input=True)
    standardize = keras.Model(model.input, model.get_layer("input_standardization").output)
    rng = np.random.default_rng(0)
    images = (rng.random((2, 32, 32, 3)) * [0.2, 0.5, 1.0] + [0.7, 0.3, 0.0]).astype("float32")
    standardized = standardize.predict(images, verbose=0)
    np.testing.assert_allclose(standardized.mean(axis=(1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(standardized.std(axis=(1, 2)), 1, atol=1e-2)
    assert not standardize.trainable_weights  # nothing is learned
    assert "input_standardization" not in [layer.name for layer in create_model(
        (32, 32, 3), base_filters=4, depth=3).layers]
    save_model(model, tmp_path / "model.keras")
    np.testing.assert_allclose(load_model(tmp_path / "model.keras").predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-6)


def test_colour_constancy_turns_a_scene_under_two_lamps_into_one_image_and_survives_saving(
        tmp_path, monkeypatch):
    # loaded as a CPU with native bf16 loads it: elsewhere it computes in float32 (saving.py)
    monkeypatch.setattr(segment.runtime, "cpu_has_native_bf16", lambda: True)
    images = one_scene_under_two_lamps()
    model = create_model((32, 32, 3), base_filters=4, depth=3, colour_constancy=True,
                         dtype_policy="mixed_bfloat16")
    corrected = keras.Model(model.input, model.get_layer("colour_constancy").output).predict(
        images, verbose=0)
    assert corrected.dtype == np.float32  # the p-th powers in float32 under mixed precision
    np.testing.assert_allclose(corrected[0], corrected[1], atol=1e-5)
    grey = (corrected.astype("float64") ** 6).mean(axis=(1, 2)) ** (1 / 6)
    np.testing.assert_allclose(grey, grey[:, :1].repeat(3, axis=1), rtol=1e-4)
    assert not model.get_layer("colour_constancy").weights  # nothing is learned
    assert np.abs(images[0] - images[1]).max() > 0.1
    save_model(model, tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert loaded.get_layer("colour_constancy").power == 6
    assert member_record(tmp_path / "model.keras", loaded)["colour_constancy"] is True
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-6)
