"""Ensembles: several models' probabilities averaged per image at its own size."""

import segment
from segment import Ensemble, evaluate, load_input_image, load_segmented_image, predict_masks
from segment.evaluation import score_masks
from segment.postprocess import predict_with_flips
from segment.prediction import resize_probabilities

import numpy as np
import pytest


@pytest.fixture
def two_models():
    """Two different untrained tiny models, one square and one wide."""
    segment.set_seed(0)
    square = segment.create_model((32, 32, 3), base_filters=4, depth=3)
    segment.set_seed(1)
    wide = segment.create_model((32, 48, 3), base_filters=4, depth=3)
    return square, wide


def hand_made_mean(models, image_path, tta):
    """Each model's probabilities at its own size, resized to the image's size, averaged."""
    truth_size = load_input_image(image_path).shape[:2]
    maps = []
    for model in models:
        size = model.input_shape[1:3]
        batch = load_input_image(image_path, size)[None].astype(np.float32) / 255.0
        probabilities = (predict_with_flips(model, batch) if tta
                         else np.asarray(model.predict_on_batch(batch)))[0, ..., 0]
        maps.append(resize_probabilities(probabilities, truth_size))
    return np.mean(maps, axis=0)


@pytest.mark.parametrize("tta", [False, True])
def test_ensemble_averages_each_models_probabilities_at_the_images_own_size(
        two_models, synthetic_pairs, tta):
    pairs = synthetic_pairs[:3]
    masks = predict_masks(Ensemble(two_models), pairs, tta=tta, threshold=0.5)
    for pair, mask in zip(pairs, masks, strict=True):
        expected = hand_made_mean(two_models, pair.image_path, tta) >= 0.5
        assert mask.shape == expected.shape
        assert np.mean(mask == expected) > 0.999  # float32 summation order may differ


def test_evaluating_an_ensemble_scores_its_averaged_masks(two_models, synthetic_pairs):
    pair = synthetic_pairs[0]
    evaluation = evaluate(Ensemble(two_models), [pair], progress=False)
    truth = load_segmented_image(pair.mask_path)
    expected = (hand_made_mean(two_models, pair.image_path, False) >= 0.5).astype(np.uint8)
    assert evaluation.table.loc[pair.id, "dice"] == pytest.approx(
        score_masks(truth, expected)["dice"], abs=1e-3)
    assert evaluation.settings["image_size"] == [[32, 32], [32, 48]]


def test_an_ensemble_of_one_predicts_as_its_model(two_models, synthetic_pairs):
    square, _ = two_models
    alone = predict_masks(square, synthetic_pairs[:4])
    together = predict_masks(Ensemble([square]), synthetic_pairs[:4])
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))


def test_ensemble_arguments_are_checked(two_models):
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])
    with pytest.raises(ValueError, match="one image size per model"):
        Ensemble(two_models, image_sizes=[None])
    with pytest.raises(ValueError, match="takes 32x32 images"):
        Ensemble(two_models, image_sizes=[(64, 64), None])
