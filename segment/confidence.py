"""How sure the model is of each mask, from its own output alone (no truth needed).

`mask_confidence` is the soft dice between an image's probabilities and its mask;
`flip_agreement` how much the test-time flip views agree; `least_confident` flags the share of
masks worth a look. Evaluation and prediction record the product of the two (the agreement is 1
without `tta`) for each image (`confidence` in evaluation.csv and predictions.csv; the review
page's column).
"""

import math

import numpy as np
import pandas as pd

__all__ = ["flip_agreement", "least_confident", "mask_confidence"]


def mask_confidence(probabilities, threshold=0.5):
    """How sure the model is of one mask, from its own probabilities alone (no truth needed).

    The soft dice between float (h, w) probabilities p and their thresholded mask m, over the
    class the mask predicts: the lesion, 2 sum(p m) / (sum(p) + sum(m)), when m marks any pixel;
    else the background, the same with 1 - p and 1 - m. In [0, 1]: near 1 when every
    probability is near 0 or 1, lower the more of them hover near the threshold. A low value
    marks a mask worth a look.

    Example:
        >>> round(mask_confidence(np.full((4, 4), 0.9)), 4)  # 2 * 0.9 / (0.9 + 1)
        0.9474
        >>> round(mask_confidence(np.full((4, 4), 0.1)), 4)  # no lesion, nearly sure of it
        0.9474
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    mask = probabilities >= threshold
    if not mask.any():
        probabilities, mask = 1.0 - probabilities, ~mask
    return float(2 * probabilities[mask].sum() / (probabilities.sum() + mask.sum()))


def least_confident(confidence, share):
    """Flags for the `share` least confident of a sequence (or Series) of confidences: a bool
    Series (with the Series' index).

    The count is rounded up (10 % of 12 is 2); ties are broken by order, first flagged first.

    Example:
        >>> least_confident([0.9, 0.2, 0.7, 0.2], 0.5).tolist()
        [False, True, False, True]
    """
    # Rounded up, less a hair: 0.1 * 30 is 3.0000000000000004 in floating point, not 4.
    count = math.ceil(share * len(confidence) - 1e-9)
    return pd.Series(confidence).rank(method="first") <= count


def flip_agreement(views, threshold=0.5):
    """How much the test-time flip views of one image agree: the mean dice between each view's
    mask and the mask of their mean, in [0, 1] (two empty masks agree: 1).

    Args:
        views: float (views, h, w) lesion probabilities, each flipped back (`flip_views`).

    Example:
        >>> views = np.zeros((4, 8, 8))
        >>> views[0, 2:6, 2:6] = 0.9  # one view of four sees a lesion; their mean does not
        >>> flip_agreement(views)  # (0 + 1 + 1 + 1) / 4
        0.75
    """
    masks = np.asarray(views) >= threshold
    consensus = np.mean(views, axis=0) >= threshold
    scores = []
    for mask in masks:
        total = int(mask.sum() + consensus.sum())
        scores.append(2 * int((mask & consensus).sum()) / total if total else 1.0)
    return float(np.mean(scores))
