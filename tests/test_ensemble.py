"""Ensembles: several models' probabilities averaged per image at its own size."""

import segment
from segment import Ensemble, evaluate, load_input_image, load_segmented_image, predict_masks
from segment.evaluation import score_masks
from segment.images import resize_probabilities
from segment.postprocess import predict_with_flips

import numpy as np
import pytest
from conftest import constant_model


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


@pytest.mark.parametrize("threshold, lesion", [(0.44, True), (0.46, False)])
def test_an_ensemble_takes_the_arithmetic_mean_of_its_models(synthetic_pairs, threshold,
                                                             lesion):
    # 0.2 and 0.7 average to 0.45: their maximum (0.7) would mark lesion at 0.46; their
    # minimum (0.2) and geometric mean (0.37) would mark none at 0.44.
    ensemble = Ensemble([constant_model(0.2), constant_model(0.7, (32, 48))])
    masks = predict_masks(ensemble, synthetic_pairs[:2], threshold=threshold)
    for pair, mask in zip(synthetic_pairs[:2], masks, strict=True):
        assert mask.shape == load_segmented_image(pair.mask_path).shape
        assert np.all((mask > 0) == lesion)


def test_ensemble_arguments_are_checked(two_models):
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])
    with pytest.raises(ValueError, match="one image size per model"):
        Ensemble(two_models, image_sizes=[None])
    with pytest.raises(ValueError, match="one source per model is needed: 2 models, 1 sources"):
        Ensemble(two_models, sources=[{"path": "a.keras"}])
    square, wide = two_models
    assert Ensemble(two_models, sources=[{"path": "a.keras"}, {}]).members == [
        {"name": square.name, "size": [32, 32], "path": "a.keras"},
        {"name": wide.name, "size": [32, 48]}]
    with pytest.raises(ValueError, match="takes 32x32 images"):
        Ensemble(two_models, image_sizes=[(64, 64), None])
