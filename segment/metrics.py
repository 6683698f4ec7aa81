"""Segmentation metrics, per image first and averaged later (docs/REFERENCE.md, "Metrics").

For one image with predicted mask P (probabilities >= threshold) and truth G:
    dice = 2|P and G| / (|P| + |G|)        jaccard = |P and G| / |P or G|
Both empty -> 1.0 (nothing to find, nothing found); truth empty, prediction not -> 0.0.
The ISIC 2018 score is the mean over images of the thresholded jaccard (0 below 0.65).
A dice computed over all pixels of a batch at once is a different, larger number ("pooled");
nothing here computes it.

The tensor functions use keras.ops and serve both as training metrics and in evaluation;
`hausdorff_distance_95` works on one numpy mask pair.
"""

import math

import keras
import numpy as np
from keras import ops
from scipy import ndimage
from scipy.spatial import cKDTree

from .config import EvalConfig

__all__ = [
    "DiceCoefficient",
    "ISIC_JACCARD_THRESHOLD",
    "LESION_SIZE_BINS",
    "LOW_DICE",
    "boundary",
    "bounding_box",
    "confusion_counts",
    "dice_coefficient",
    "hausdorff_distance_95",
    "jaccard",
    "scores_from_counts",
]

# The lesion's share of the image (truth area / image area), binned as the small-lesion analysis
# of ISIC 2018 bins it: (label, low, high), low <= share < high. Images whose truth is empty
# fall in none (they are summary["empty_truth"]).
LESION_SIZE_BINS = [("under 2 %", 0.0, 0.02), ("2-5 %", 0.02, 0.05), ("5-15 %", 0.05, 0.15),
                    ("15-40 %", 0.15, 0.40), ("over 40 %", 0.40, math.inf)]
LOW_DICE = 0.6  # an image below this dice counts as a failure worth a look

ISIC_JACCARD_THRESHOLD = 0.65  # the ISIC 2018 challenge scores a jaccard below this as 0


def confusion_counts(y_true, y_pred, threshold=EvalConfig.threshold):
    """Pixel counts of each image: true positives, false positives, false negatives, negatives.

    Args:
        y_true: Truth masks, (batch, height, width, channels), values in {0, 1}.
        y_pred: Probabilities (or a binary mask), same shape.
        threshold: A pixel is predicted lesion when y_pred >= threshold. Defaults to 0.5.

    Returns:
        float32 tensor of shape (batch, 4): [tp, fp, fn, tn] per image.

    Example:
        >>> truth = np.array([[[[1], [0]]]], np.uint8)  # (1, 1, 2, 1)
        >>> np.asarray(confusion_counts(truth, truth)).tolist()  # (tp, fp, fn, tn) per image
        [[1.0, 0.0, 0.0, 1.0]]
    """
    truth = ops.cast(ops.greater(ops.cast(y_true, "float32"), 0.5), "float32")
    predicted = ops.cast(ops.greater_equal(ops.cast(y_pred, "float32"), threshold), "float32")
    axes = tuple(range(1, len(truth.shape)))
    tp = ops.sum(truth * predicted, axis=axes)
    fp = ops.sum((1 - truth) * predicted, axis=axes)
    fn = ops.sum(truth * (1 - predicted), axis=axes)
    tn = ops.sum((1 - truth) * (1 - predicted), axis=axes)
    return ops.stack([tp, fp, fn, tn], axis=-1)


def scores_from_counts(counts):
    """Per-image scores from `confusion_counts`.

    The same float32 arithmetic on a numpy array (evaluation scores one image at a time, where
    a backend call per scalar op cost 6 ms an image) as on a backend tensor (the training
    metric); IEEE float32 gives both the same bits.

    Args:
        counts: (batch, 4) numpy array or tensor of [tp, fp, fn, tn].

    Returns:
        dict of float32 (batch,) arrays, numpy for a numpy `counts`, else tensors: dice, jaccard
        (both empty -> 1.0, truth empty and prediction not -> 0.0), thresholded_jaccard (0 where
        jaccard < 0.65), sensitivity (NaN when the truth is empty), specificity (NaN when the
        truth covers the image) and accuracy.

    Example:
        >>> scores = scores_from_counts(np.array([[1.0, 1.0, 0.0, 2.0]]))  # tp, fp, fn, tn
        >>> scores["dice"].round(4)
        array([0.6667], dtype=float32)
    """
    xp = np if isinstance(counts, np.ndarray) else ops  # numpy and keras.ops share these names
    counts = counts.astype(np.float32) if xp is np else ops.cast(counts, "float32")
    tp, fp, fn, tn = (counts[:, index] for index in range(4))

    def ratio(numerator, denominator, *, empty):  # `empty` where the denominator is 0
        safe = xp.where(denominator > 0, denominator, 1.0)
        return xp.where(denominator > 0, numerator / safe, empty)

    dice = ratio(2 * tp, 2 * tp + fp + fn, empty=1.0)
    jaccard_ = ratio(tp, tp + fp + fn, empty=1.0)
    return {
        "dice": dice,
        "jaccard": jaccard_,
        "thresholded_jaccard": xp.where(jaccard_ >= ISIC_JACCARD_THRESHOLD, jaccard_, 0.0),
        "sensitivity": ratio(tp, tp + fn, empty=float("nan")),
        "specificity": ratio(tn, tn + fp, empty=float("nan")),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn, empty=float("nan")),
    }


@keras.saving.register_keras_serializable(package="segment")
def dice_coefficient(y_true, y_pred, threshold=EvalConfig.threshold):
    """Dice coefficient of each image in a batch.

    Args:
        y_true: Truth masks, shape (batch, height, width, 1), values in {0, 1}.
        y_pred: Probabilities, same shape, float in [0, 1].
        threshold: Pixels with probability >= threshold count as lesion. Defaults to 0.5.

    Returns:
        float32 tensor of shape (batch,). Both masks empty -> 1.0; truth empty and
        prediction not -> 0.0.

    Example:
        >>> import numpy as np
        >>> truth = np.zeros((2, 2, 2, 1), "float32"); truth[0, 0, 0] = 1
        >>> [round(float(v), 2) for v in dice_coefficient(truth, truth)]  # one lesion, one empty
        [1.0, 1.0]
    """
    return scores_from_counts(confusion_counts(y_true, y_pred, threshold))["dice"]


def jaccard(y_true, y_pred, threshold=EvalConfig.threshold):
    """Jaccard index (IoU) of each image; shapes and empty-mask rule as `dice_coefficient`.

    Example:
        >>> truth = np.array([[[[1], [1]]]], np.float32)  # (1, 1, 2, 1)
        >>> np.asarray(jaccard(truth, np.array([[[[1], [0]]]], np.float32))).round(3).tolist()
        [0.5]
    """
    return scores_from_counts(confusion_counts(y_true, y_pred, threshold))["jaccard"]


@keras.saving.register_keras_serializable(package="segment")
class DiceCoefficient(keras.metrics.MeanMetricWrapper):
    """Mean over all images seen in an epoch of each image's dice (not a pooled dice).

    Args:
        name: Metric name in the logs. Defaults to "dice" (so "val_dice" on validation).
        threshold: Probability threshold. Defaults to 0.5.
        dtype: Metric dtype. Defaults to None (float32).

    Example:
        >>> from segment.losses import dice_loss
        >>> model.compile(optimizer="adam", loss=dice_loss, metrics=[DiceCoefficient()])
        >>> images = np.zeros((2, 32, 32, 3), np.float32)
        >>> sorted(model.evaluate(images, np.zeros((2, 32, 32, 1)), verbose=0, return_dict=True))
        ['dice', 'loss']
    """

    def __init__(self, name="dice", threshold=EvalConfig.threshold, dtype=None):
        super().__init__(fn=dice_coefficient, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold, "dtype": self.dtype}


def boundary(mask):
    """bool (h, w): the pixels of a bool (h, w) mask that touch the background or the image's
    edge (4-neighbourhood), the boundary `hausdorff_distance_95` measures between.

    Example:
        >>> square = np.zeros((5, 5), bool); square[1:4, 1:4] = True
        >>> int(boundary(square).sum())  # the 3x3 square but its centre
        8
    """
    # Its erosion by the 4-neighbourhood cross, outside the image background; as slices, 5-10x
    # as fast as scipy's general erosion at a photograph's size (benchmarks/NOTES.md, 34).
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = (mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1]
                         & mask[1:-1, :-2] & mask[1:-1, 2:])
    return mask & ~inner


def bounding_box(mask):
    """(top, bottom, left, right) of the non-zero pixels of a (h, w) mask that has some; bottom
    and right exclusive, so `mask[top:bottom, left:right]` holds every one of them.

    Example:
        >>> mask = np.zeros((5, 6), bool); mask[1:3, 2:5] = True
        >>> bounding_box(mask)
        (1, 3, 2, 5)
    """
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1


# While both borders together hold less than this share of the box's pixels, k-d trees find the
# nearest border pixels faster than distance transforms (benchmarks/bench_metrics.py); both are
# exact.
_TREE_SHARE = 0.05


def hausdorff_distance_95(truth, predicted):
    """95th percentile of the symmetric boundary distances between two masks, in pixels.

    The boundary of a mask is its pixels that touch the background (or the image edge). The
    distances from each boundary pixel of one mask to the nearest boundary pixel of the other,
    in both directions, are pooled and their 95th percentile taken (as medpy's `hd95`).

    Args:
        truth: (height, width) array, non-zero = lesion.
        predicted: (height, width) array of the same shape.

    Returns:
        float: 0.0 when both are empty; NaN when exactly one is empty (undefined).

    Example:
        >>> import numpy as np
        >>> a = np.zeros((9, 9)); a[2:5, 2:5] = 1
        >>> hausdorff_distance_95(a, np.roll(a, 3, axis=1))
        3.0
    """
    # bool masks (`score_masks` passes them) as they are: `> 0` of a bool view costs more than
    # of a uint8 one (13 ms at 6000x4000)
    truth, predicted = (mask if mask.dtype == bool else mask > 0
                        for mask in (np.asarray(truth), np.asarray(predicted)))
    if truth.shape != predicted.shape:
        raise ValueError(f"masks must have the same shape. Received: {truth.shape} and "
                         f"{predicted.shape}")
    if not truth.any() and not predicted.any():
        return 0.0
    if not truth.any() or not predicted.any():
        return float("nan")
    # Outside the box around both masks every pixel is background in both, so cropping to it
    # changes neither border nor any distance.
    top, bottom, left, right = bounding_box(truth | predicted)
    truth_border, predicted_border = (boundary(mask[top:bottom, left:right])
                                      for mask in (truth, predicted))
    if truth_border.sum() + predicted_border.sum() < _TREE_SHARE * truth_border.size:
        # a lesion's outline: each border pixel's nearest one from a k-d tree of the other's
        truth_points, predicted_points = np.argwhere(truth_border), np.argwhere(predicted_border)
        to_truth, _ = cKDTree(truth_points).query(predicted_points)
        to_predicted, _ = cKDTree(predicted_points).query(truth_points)
    else:  # a speckled mask, mostly border: distance transforms of the box cost less
        to_truth = ndimage.distance_transform_edt(~truth_border)[predicted_border]
        to_predicted = ndimage.distance_transform_edt(~predicted_border)[truth_border]
    return float(np.percentile(np.concatenate([to_truth, to_predicted]), 95))
