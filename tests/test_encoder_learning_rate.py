"""`EncoderScaledAdam`, the optimizer that gives a pretrained encoder its own learning rate:
the encoder's steps are the scale times what they would be, the rest's are unchanged. On a
tiny model whose first half of variables stands in for the encoder (the optimizer takes any
variables), so that test_backends.py can run this file under JAX and PyTorch too; training a
model on the real encoder is in test_training.py."""

import segment
from segment.fine_tuning import EncoderScaledAdam

import keras
import numpy as np
import pytest

IMAGES = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
MASKS = (IMAGES[..., :1] > 0.5).astype("float32")


@pytest.fixture(scope="module")
def model():
    """A tiny model without dropout (so a step is repeatable), compiled with an
    `EncoderScaledAdam` over its first half of variables; tests restore its state."""
    keras.utils.set_random_seed(0)
    model = segment.create_model((32, 32, 3), base_filters=4, depth=3, dropout=0.0)
    encoder = model.trainable_variables[:len(model.trainable_variables) // 2]
    model.compile(optimizer=EncoderScaledAdam(1e-3, encoder), loss="binary_crossentropy",
                  run_eagerly=keras.backend.backend() == "tensorflow")  # no graph for a step
    model.optimizer.build(model.trainable_variables)
    return model


def one_step(model, encoder_scale):
    """(encoder, rest): how far a first step at `encoder_scale` moves the trainable variables
    of `model`, whose weights and optimizer state are then restored."""
    everything = model.variables + model.optimizer.variables
    state = [keras.ops.convert_to_numpy(variable) for variable in everything]
    before = [keras.ops.convert_to_numpy(variable) for variable in model.trainable_variables]
    model.optimizer.encoder_scale.assign(encoder_scale)
    model.train_on_batch(IMAGES, MASKS)
    moves = [keras.ops.convert_to_numpy(variable) - old
             for variable, old in zip(model.trainable_variables, before, strict=True)]
    for variable, value in zip(everything, state, strict=True):
        variable.assign(value)
    half = len(model.trainable_variables) // 2
    return [np.concatenate([move.ravel() for move in part]) for part in (moves[:half],
                                                                         moves[half:])]


def test_encoder_steps_scale_and_the_rest_do_not(model):
    # Adam's first step moves a weight by about the learning rate (1e-3) times its gradient's
    # sign; 2e-6 allows for the summation order of threads.
    encoder_full, rest_full = one_step(model, 1.0)
    encoder_tenth, rest_tenth = one_step(model, 0.1)
    encoder_frozen, rest_frozen = one_step(model, 0.0)
    assert np.abs(encoder_full).max() > 5e-4 and np.abs(rest_full).max() > 5e-4
    np.testing.assert_allclose(encoder_tenth, 0.1 * encoder_full, atol=2e-6)
    assert not encoder_frozen.any()
    for rest in (rest_tenth, rest_frozen):
        np.testing.assert_allclose(rest, rest_full, atol=2e-6)


def test_saved_with_a_model_it_loads_as_itself(model, tmp_path):
    segment.save_model(model, tmp_path / "model.keras")
    loaded = segment.load_model(tmp_path / "model.keras", compile=True)
    assert isinstance(loaded.optimizer, EncoderScaledAdam)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.predict_on_batch(IMAGES)),
                               keras.ops.convert_to_numpy(model.predict_on_batch(IMAGES)),
                               atol=1e-6)
