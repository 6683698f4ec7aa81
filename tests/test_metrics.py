"""Per-image metrics and their empty-mask rules, HD95 against a brute-force reference."""

import math

from segment import DiceCoefficient, dice_coefficient, hausdorff_distance_95, jaccard
from segment.evaluation import score_masks, summarize
from segment.metrics import boundary, confusion_counts, scores_from_counts

import keras
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist


def masks(*rows):
    """(batch, 1, width, 1) float32 from lists of pixel values."""
    return np.array(rows, np.float32)[:, None, :, None]


@pytest.mark.parametrize("truth, prediction, dice, iou", [
    ([[1, 1, 0, 0]], [[1, 1, 0, 0]], 1.0, 1.0),         # perfect
    ([[1, 1, 0, 0]], [[0, 0, 1, 1]], 0.0, 0.0),         # fully wrong
    ([[1, 1, 1, 0]], [[0, 1, 1, 1]], 2 * 2 / 6, 2 / 4),  # overlap 2 of 3 and 3
    ([[0, 0, 0, 0]], [[0, 0, 0, 0]], 1.0, 1.0),         # both empty -> 1
    ([[0, 0, 0, 0]], [[0, 1, 0, 0]], 0.0, 0.0),         # truth empty, prediction not -> 0
    ([[1, 0, 0, 0]], [[0.49, 0.5, 0, 0]], 0.0, 0.0),    # threshold: 0.49 is background
])
def test_dice_and_jaccard_hand_computed(truth, prediction, dice, iou):
    assert float(dice_coefficient(masks(*truth), masks(*prediction))[0]) == pytest.approx(dice)
    assert float(jaccard(masks(*truth), masks(*prediction))[0]) == pytest.approx(iou)


def test_per_image_mean_differs_from_pooled():
    # image A: 4 lesion pixels, all found; image B: 12 lesion pixels, all missed (12 elsewhere).
    truth = np.zeros((2, 1, 32, 1), np.float32)
    prediction = np.zeros_like(truth)
    truth[0, 0, :4], prediction[0, 0, :4] = 1, 1
    truth[1, 0, :12], prediction[1, 0, 12:24] = 1, 1
    per_image = np.asarray(dice_coefficient(truth, prediction))
    assert per_image.tolist() == [1.0, 0.0] and per_image.mean() == 0.5
    table = pd.DataFrame([score_masks(truth[index, ..., 0], prediction[index, ..., 0])
                          for index in range(2)])
    summary = summarize(table, {})
    assert summary["dice"]["mean"] == 0.5
    assert summary["pooled_dice"] == pytest.approx(2 * 4 / (16 + 16))  # 0.25: 2 x 4 / (16 + 16)


def test_stateful_metric_averages_images_over_batches():
    metric = DiceCoefficient()
    metric.update_state(masks([1, 0]), masks([1, 0]))  # 1 image, dice 1
    metric.update_state(masks([1, 0], [1, 0], [1, 0]), masks([0, 1], [0, 1], [0, 1]))  # 3 x 0
    assert float(metric.result()) == pytest.approx(0.25)  # (1 + 0 + 0 + 0) / 4, not (1 + 0) / 2
    assert metric.name == "dice" and DiceCoefficient.from_config(metric.get_config()).name == "dice"


def test_scores_sensitivity_specificity_and_isic_threshold():
    truth = masks([1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0])
    prediction = masks([1, 1, 1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0])
    counts = np.asarray(confusion_counts(truth, prediction))
    assert counts.tolist() == [[3, 1, 1, 3], [0, 0, 0, 8]]  # tp, fp, fn, tn
    scores = {name: np.asarray(value) for name, value in scores_from_counts(counts).items()}
    assert scores["sensitivity"][0] == pytest.approx(0.75) and math.isnan(scores["sensitivity"][1])
    assert scores["specificity"].tolist() == [0.75, 1.0]
    assert scores["accuracy"].tolist() == [0.75, 1.0]
    assert scores["jaccard"][0] == pytest.approx(0.6)  # 3 / 5
    assert scores["thresholded_jaccard"].tolist() == [0.0, 1.0]  # 0.6 < 0.65 counts as 0


def test_scores_from_numpy_counts_are_the_backend_tensors_bits():
    # Evaluation scores numpy counts, training backend tensors: one float32 arithmetic.
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 2**24, (2000, 4)).astype(np.float32)
    counts[:100, :3] = 0  # both masks empty
    counts[100:200, 0] = 0  # nothing found
    counts[200:300, 3] = 0  # the truth or the prediction covers the image
    from_numpy = scores_from_counts(counts)
    from_tensor = scores_from_counts(keras.ops.convert_to_tensor(counts))
    for name, values in from_numpy.items():
        assert isinstance(values, np.ndarray) and values.dtype == np.float32, name
        np.testing.assert_array_equal(values, keras.ops.convert_to_numpy(from_tensor[name]),
                                      err_msg=name)


def test_boundary_is_the_mask_less_its_erosion_by_the_cross():
    # The definition, in scipy's words: outside the image counts as background.
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (1, 6), (6, 1), (2, 2), (3, 3), (7, 9), (40, 31)]:
        for share in (0.1, 0.5, 0.9, 1.0):
            mask = rng.random(shape) < share
            np.testing.assert_array_equal(
                boundary(mask), mask & ~ndimage.binary_erosion(mask, border_value=0),
                err_msg=f"{shape}, {share}")


def brute_force_hd95(truth, predicted):
    """Independent reference: boundary points by 4-neighbourhood, all pairwise distances."""
    def border(mask):
        padded = np.pad(mask, 1)
        inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
        return np.argwhere(mask & ~inner)

    a, b = border(truth), border(predicted)
    distances = cdist(a, b)
    return np.percentile(np.concatenate([distances.min(axis=1), distances.min(axis=0)]), 95)


@pytest.mark.parametrize("seed", range(5))
def test_hd95_matches_brute_force_on_random_shapes(seed):
    rng = np.random.default_rng(seed)
    truth = np.zeros((40, 40), bool)
    predicted = np.zeros((40, 40), bool)
    for mask in (truth, predicted):
        for _ in range(2):
            top, left = rng.integers(0, 30, 2)
            mask[top:top + rng.integers(3, 10), left:left + rng.integers(3, 10)] = True
    assert hausdorff_distance_95(truth, predicted) == pytest.approx(
        brute_force_hd95(truth, predicted))


def test_hd95_empty_rules():
    empty, square = np.zeros((5, 5)), np.zeros((5, 5))
    square[1:3, 1:3] = 1
    assert hausdorff_distance_95(empty, empty) == 0.0
    assert math.isnan(hausdorff_distance_95(square, empty))
    assert hausdorff_distance_95(square, square) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        hausdorff_distance_95(square, np.zeros((4, 5)))


def test_hd95_matches_brute_force_on_far_apart_shapes_at_the_edges():
    # Small masks in a large view, touching its edges: the distances must not depend on where
    # the view ends or on the background between the two masks.
    truth, predicted = np.zeros((300, 500), bool), np.zeros((300, 500), bool)
    truth[:6, :9] = truth[140:150, 200:230] = True
    predicted[291:, 470:] = predicted[145:160, 210:220] = True
    assert hausdorff_distance_95(truth, predicted) == pytest.approx(
        brute_force_hd95(truth, predicted))


def test_hd95_matches_brute_force_on_a_speckled_prediction():
    # Half the pixels at random, as an untrained network marks them: nearly all border, where
    # the distances come from distance transforms rather than k-d trees.
    truth = np.zeros((50, 70), bool)
    truth[10:30, 20:45] = True
    predicted = np.random.default_rng(0).random((50, 70)) < 0.5
    assert hausdorff_distance_95(truth, predicted) == pytest.approx(
        brute_force_hd95(truth, predicted))


def test_score_masks_counts_pixels_exactly_beyond_float32():
    # 4097 x 4097 = 16,785,409 pixels: an odd count above 2**24, which float32 cannot hold.
    truth = np.ones((4097, 4097), np.uint8)
    predicted = truth.copy()
    predicted[2048, 2048] = 0
    scores = score_masks(truth, predicted)
    assert (scores["truth_area"], scores["predicted_area"]) == (16_785_409, 16_785_408)
    assert scores["dice"] == pytest.approx(2 * 16_785_408 / (16_785_409 + 16_785_408))
    assert scores["hd95"] == 0.0  # 95 % of the border pixels lie on the other's border
