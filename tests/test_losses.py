"""Per-image losses (soft dice, BCE + dice, small lesions weighted) against hand-computed values."""

from segment import bce_dice_loss, dice_loss
from segment.losses import get_loss

import numpy as np
import pytest


def masks(*rows):
    """Stack lists of pixel values into a (batch, 1, width, 1) float32 array."""
    return np.array(rows, np.float32)[:, None, :, None]


@pytest.mark.parametrize("truth, prediction, expected", [
    # (1, 1, 4, 1): perfect -> (2*2 + 1) / (2 + 2 + 1) = 1 -> loss 0
    ([[1, 1, 0, 0]], [[1, 1, 0, 0]], [0.0]),
    # disjoint: (0 + 1) / (2 + 2 + 1) -> loss 1 - 1/5
    ([[1, 1, 0, 0]], [[0, 0, 1, 1]], [0.8]),
    # soft: intersection 0.5, sums 1 + 0.5: (1 + 1) / (1.5 + 1) -> 1 - 0.8
    ([[1, 0, 0, 0]], [[0.5, 0, 0, 0]], [0.2]),
    # both empty -> 1/1 -> 0
    ([[0, 0, 0, 0]], [[0, 0, 0, 0]], [0.0]),
    # two images scored separately: (batch,) = (2,)
    ([[1, 1, 0, 0], [1, 1, 0, 0]], [[1, 1, 0, 0], [0, 0, 1, 1]], [0.0, 0.8]),
])
def test_dice_loss_per_image(truth, prediction, expected):
    values = np.asarray(dice_loss(masks(*truth), masks(*prediction)))
    np.testing.assert_allclose(values, expected, atol=1e-6)


def test_bce_dice_is_bce_plus_dice():
    truth, prediction = masks([1, 0]), masks([0.8, 0.4])
    bce = -(np.log(0.8) + np.log(0.6)) / 2
    dice = 1 - (2 * 0.8 + 1) / (1 + 1.2 + 1)
    np.testing.assert_allclose(np.asarray(bce_dice_loss(truth, prediction)), [bce + dice],
                               rtol=1e-4)


def test_small_lesion_loss_weighs_only_lesions_under_five_percent_three_times():
    # 100-pixel views: a lesion of 1 pixel (1 %), of 5 pixels (5 %: not under) and none
    truth = np.zeros((3, 1, 100, 1), np.float32)
    truth[0, 0, :1] = 1
    truth[1, 0, :5] = 1
    prediction = np.full_like(truth, 0.3)
    weighted = np.asarray(get_loss("bce_dice_small")(truth, prediction))
    np.testing.assert_allclose(weighted / np.asarray(bce_dice_loss(truth, prediction)),
                               [3.0, 1.0, 1.0], rtol=1e-5)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="Received: loss='focal'"):
        get_loss("focal")
