"""InstanceNormalization: per-sample, per-channel statistics; serializable by name."""

from segment import InstanceNormalization

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
