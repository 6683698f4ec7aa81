"""Score: a per-image metrics table for labelled pairs, its summary, and the best and worst images.

    evaluation = evaluate(model, split.test)        # one row per image, at original size
    evaluation.table.sort_values("dice").head()     # the worst images
    evaluation.summary["dice"]["mean"]              # per-image mean dice
    evaluation.worst[0].predicted                   # the worst prediction, kept for figures

By default predictions (`prediction.py`) are resized back to each image's original size and
scored there (docs/REFERENCE.md, "Metrics"); `original_size=False` scores at the network's
resolution instead. The settings come as an `EvalConfig` (or as its fields, as keywords).
"""

import heapq
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .confidence import least_confident
from .config import EvalConfig, with_overrides
from .data import as_pairs, mask_file
from .errors import ImageReadError, SegmentError
from .files import atomic_path
from .images import encode_mask, load_input_image, load_segmented_image, resize_mask
from .inspection import log_size_mismatches, size_mismatch
from .metrics import (
    LESION_SIZE_BINS,
    LOW_DICE,
    hausdorff_distance_95,
    scores_from_counts,
)
from .prediction import iter_probabilities, predicting_models, prediction_settings, to_mask
from .review import review_pictures
from .runtime import library_versions
from .stored_masks import StoredMasks

__all__ = ["LESION_SIZE_BINS", "LOW_DICE", "METRICS", "Evaluation", "Example", "display_size",
           "evaluate", "lesion_share", "lesion_size_masks", "score_masks", "standard_error",
           "summarize"]

logger = logging.getLogger(__name__)

_DISPLAY_SIDE = 256  # long side, in pixels, of each image kept for the galleries
METRICS = ["dice", "jaccard", "thresholded_jaccard", "sensitivity", "specificity", "accuracy",
           "hd95"]


@dataclass
class Example:
    """One evaluated image kept for the galleries, at display size (long side 256 pixels).

    Attributes:
        id: the pair's id.
        image: uint8 (h, w, 3) RGB.
        truth, predicted: uint8 (h, w) masks in {0, 1}, the prediction as it was scored.
        dice, jaccard: the image's scores (at the evaluated resolution).

    Example:
        >>> worst = evaluate(model, split.test, progress=False).worst[0]
        >>> worst.predicted.shape == worst.truth.shape == worst.image.shape[:2]
        True
    """

    id: str
    image: np.ndarray
    truth: np.ndarray
    predicted: np.ndarray
    dice: float
    jaccard: float


@dataclass
class Evaluation:
    """The result of `evaluate`.

    Attributes:
        table: pandas DataFrame indexed by id, one row per image: dice, jaccard,
            thresholded_jaccard, sensitivity, specificity, accuracy, hd95 (pixels),
            truth_area and predicted_area (pixels), height and width (evaluated size), and
            confidence: found without the truth (low: worth a look), the probabilities'
            `confidence.mask_confidence`, times their flip views' `flip_agreement` with tta;
            flagged: True for the `flag_share` least confident (`confidence.least_confident`).
        summary: dict: for each metric its mean, the mean's standard error (`standard_error`:
            how far another sample of images could move it), median, std, min and max over
            images (NaN values left out and counted), plus count, isic_score, empty_truth,
            settings and pooled_dice: the dice of all evaluated pixels counted together, as
            papers that pool report it. Pixels are counted at the resolution scored: each
            image's own with `original_size` (the default), so larger images weigh more, as do
            larger lesions; the network's otherwise. It is not the per-image mean, never the
            headline; 1.0 when every mask is empty. by_lesion_size: for each of
            `LESION_SIZE_BINS` (the truth's share of the image) its count and mean dice (NaN
            when empty); low_dice: the count of images whose dice is below `LOW_DICE` (0.6);
            versions: Python's, the Keras backend's and the libraries' that scored them
            (`runtime.library_versions`).
        settings: how the predictions were made (threshold, tta, postprocess, resolution,
            image_size, second_look and its crop_margin).
        skipped: (path, reason) for each pair that could not be read.
        best, worst: the `num_examples` best and worst images as `Example`s (best first,
            worst first; ties in dice ranked by order), for the galleries.
        review: one `review.ReviewPictures` per table row with `evaluate(review=True)`, else [].
        masks: with `evaluate(masks=True)`, one (file name, PNG bytes) per table row: the
            predicted mask as scored, in ISIC's naming and format (`<id>_segmentation.png`,
            8-bit, 0 and 255), else [].

    Example:
        >>> evaluation = evaluate(model, split.test, progress=False)
        >>> evaluation.summary["count"], 0 <= evaluation.summary["isic_score"] <= 1
        (3, True)
    """

    table: pd.DataFrame
    summary: dict
    settings: dict
    skipped: list = field(default_factory=list)
    best: list = field(default_factory=list)
    worst: list = field(default_factory=list)
    review: list = field(default_factory=list)
    masks: list = field(default_factory=list)

    def to_csv(self, path):
        """Write the table as CSV, atomically."""
        with atomic_path(path) as tmp:
            self.table.to_csv(tmp, float_format="%.6g", errors="surrogateescape")

    def _repr_html_(self):
        means = pd.DataFrame({stat.replace("_", " "): {name: self.summary[name][stat]
                                                         for name in METRICS}
                              for stat in ("mean", "standard_error")}).T
        return (f"<p>{self.summary['count']} images, ISIC score "
                f"{self.summary['isic_score']:.4f}</p>"
                + means.to_html(float_format="%.4f")
                + self.table.sort_values("dice").head(10).to_html(float_format="%.4f"))


def evaluate(model, pairs, config=None, *, image_size=None, progress=True, review=False,
             masks=False, **overrides):
    """Score the model on labelled pairs: one row of metrics per image, and a summary.

    Metrics are per image, then averaged: both masks empty gives dice and jaccard 1.0; an empty
    truth with a non-empty prediction gives 0.0; sensitivity is NaN for an empty truth and
    HD95 is NaN when exactly one mask is empty. Means leave NaN values out and the summary
    says how many there were. An interrupted evaluation returns nothing (no partial table).
    The best and worst `num_examples` images are kept at display size, so the galleries of
    `results` draw them without calling the model again.

    Args:
        model: Keras model, or an `Ensemble` of them (probabilities averaged per image), or
            `StoredMasks`: masks made elsewhere, scored as they are (no confidence).
        pairs: Sequence of `Pair` (or (image_path, mask_path) tuples), e.g. `split.test`.
        config: `EvalConfig`; see `iter_predictions`. `original_size` scores at each mask's
            own size (default) or at the network's size.
        image_size: (height, width) fed to the model; see `iter_predictions`.
        progress: Show a progress bar on stderr when it is a terminal. Defaults to True.
        review: Also encode each image's pictures for the review page (`review.py`) in the
            same pass, about 40 KB of memory per 512x512 image. Defaults to False.
        masks: Also encode each predicted mask as a PNG at the resolution scored (about
            3 KB of memory for a 512x512 mask), for `results` to write. Defaults to False.
        **overrides: `EvalConfig` fields to replace, e.g. `tta=True, postprocess=True`.

    Returns:
        Evaluation (table, summary, settings, skipped, best, worst, review, masks).

    Example:
        >>> evaluation = evaluate(model, split.test, tta=True, progress=False)
        >>> worst_first = evaluation.table.sort_values("dice")
        >>> list(evaluation.table.columns[:4])
        ['dice', 'jaccard', 'thresholded_jaccard', 'sensitivity']
    """
    config = with_overrides(config, EvalConfig, overrides)
    pairs = as_pairs(pairs)
    rows, skipped, pictures, encoded_masks, mismatches = [], [], [], [], []
    if isinstance(model, StoredMasks):
        settings = model.settings(config)
        predictions = model.iter_masks(pairs, progress, skipped)
    else:
        # with original_size=False an ensemble averages at its first model's size
        size = predicting_models(model, image_size)[0][1]
        settings = {**prediction_settings(model, config, image_size),
                    "resolution": ("original" if config.original_size
                                   else f"network {size[0]}x{size[1]}")}
        predictions = iter_probabilities(model, pairs, size, config, progress, skipped)
    gallery = _Gallery(config.num_examples)
    for pair, probabilities, confidence in predictions:
        try:
            if mismatch := size_mismatch(pair):
                mismatches.append(mismatch)
            truth = load_segmented_image(pair.mask_path, None if config.original_size else size)
        except ImageReadError as error:
            logger.warning("skipping pair: %s", error)
            skipped.append((str(error.path), str(error)))
            continue
        predicted = to_mask(probabilities, truth.shape, config)
        rows.append({"id": pair.id, **score_masks(truth, predicted), "confidence": confidence})
        gallery.offer(pair, truth, predicted, rows[-1])
        if review:
            pictures.append(review_pictures(pair.image_path, probabilities, predicted, truth))
        if masks:
            encoded_masks.append((mask_file(pair.image_path), encode_mask(predicted)))
    log_size_mismatches(mismatches, "the prediction is scored at the mask's size")
    if not rows:
        raise SegmentError(f"none of the {len(pairs)} pairs could be read; first problem: "
                           f"{skipped[0][1] if skipped else 'no pairs given'}")
    table = pd.DataFrame(rows).set_index("id")
    table["flagged"] = least_confident(table["confidence"], config.flag_share)
    return Evaluation(table, summarize(table, settings, num_skipped=len(skipped)), settings,
                      skipped, best=gallery.best(), worst=gallery.worst(), review=pictures,
                      masks=encoded_masks)


class _Gallery:
    """Keeps the `size` best and worst images seen, ranked by (dice, order), as `Example`s.

    Only an image that enters one of the two lists is decoded again at display size.
    """

    def __init__(self, size):
        self.size = size
        self.count = 0
        self._best = []  # min-heap of (dice, order, example): the largest keys
        self._worst = []  # min-heap of (-dice, -order, example): the smallest keys

    def offer(self, pair, truth, predicted, scores):
        key = (scores["dice"], self.count)
        self.count += 1
        enters_best = len(self._best) < self.size or (self.size and key > self._best[0][:2])
        enters_worst = (len(self._worst) < self.size
                        or (self.size and (-key[0], -key[1]) > self._worst[0][:2]))
        if not (enters_best or enters_worst):
            return
        example = _example(pair, truth, predicted, scores)
        for enters, heap, heap_key in [(enters_best, self._best, key),
                                       (enters_worst, self._worst, (-key[0], -key[1]))]:
            if enters:
                heapq.heappush(heap, (*heap_key, example))
                if len(heap) > self.size:
                    heapq.heappop(heap)

    def best(self):
        return [example for *_, example in sorted(self._best, key=lambda item: item[:2],
                                                  reverse=True)]

    def worst(self):
        return [example for *_, example in sorted(self._worst, key=lambda item: item[:2],
                                                  reverse=True)]


def _example(pair, truth, predicted, scores):
    size = display_size(truth.shape)
    return Example(pair.id, load_input_image(pair.image_path, size), resize_mask(truth, size),
                   resize_mask(predicted, size), scores["dice"], scores["jaccard"])


def display_size(size):
    """(height, width) scaled so the long side is 256 pixels, for figures.

    Example:
        >>> display_size((767, 1022))
        (192, 256)
    """
    height, width = size
    scale = _DISPLAY_SIDE / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def score_masks(truth, predicted):
    """All per-image metrics of one pair of (height, width) binary masks (non-zero = lesion).

    The pixel counts are exact integers at any image size (a float32 sum is not, above 2**24
    pixels, a 4096x4096 view) and are scored by `scores_from_counts`, as in training.

    Example:
        >>> truth, predicted = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
        >>> truth[:2, :2], predicted[:2, :1] = 1, 1  # 4 lesion pixels, 2 of them found
        >>> scores = score_masks(truth, predicted)
        >>> round(scores["dice"], 3), scores["truth_area"], scores["predicted_area"]
        (0.667, 4, 2)
    """
    truth, predicted = np.asarray(truth) > 0, np.asarray(predicted) > 0
    tp, truth_area, predicted_area = (int(np.count_nonzero(mask))
                                      for mask in (truth & predicted, truth, predicted))
    counts = np.array([[tp, predicted_area - tp, truth_area - tp,
                        truth.size - truth_area - predicted_area + tp]], np.float32)
    scores = {name: float(value[0]) for name, value in scores_from_counts(counts).items()}
    return {**scores, "hd95": hausdorff_distance_95(truth, predicted),
            "truth_area": truth_area, "predicted_area": predicted_area,
            "height": truth.shape[0], "width": truth.shape[1]}


def summarize(table, settings, *, num_skipped=0):
    """Summary statistics of an evaluation table (see `Evaluation.summary`)."""
    summary = {"count": len(table), "skipped": num_skipped, "settings": settings}
    for name in METRICS:
        values = table[name].to_numpy(dtype=float)
        finite = values[~np.isnan(values)]
        summary[name] = {"mean": _stat(np.mean, finite), "standard_error": standard_error(finite),
                         "median": _stat(np.median, finite), "std": _stat(np.std, finite),
                         "min": _stat(np.min, finite), "max": _stat(np.max, finite),
                         "num_undefined": int(np.isnan(values).sum())}
    summary["isic_score"] = summary["thresholded_jaccard"]["mean"]
    # Each image's 2|P∩G| is its dice times (|P| + |G|): sum both over the images.
    areas = (table["truth_area"] + table["predicted_area"]).to_numpy(dtype=float)
    summary["pooled_dice"] = (float((table["dice"].to_numpy(dtype=float) * areas).sum()
                                    / areas.sum()) if areas.sum() else 1.0)
    empty = table[table["truth_area"] == 0]
    summary["empty_truth"] = {"count": len(empty),
                              "mean_dice": _stat(np.mean, empty["dice"].to_numpy())}
    summary["by_lesion_size"] = _by_lesion_size(table)
    summary["low_dice"] = {"below": LOW_DICE,
                           "count": int((table["dice"].to_numpy(dtype=float) < LOW_DICE).sum())}
    summary["versions"] = library_versions()
    return summary


def lesion_share(table):
    """Each image's lesion (truth) area as a share of its view, in [0, 1].

    Args:
        table: Evaluation table (`evaluation.csv`) with truth_area, height and width columns.

    Returns:
        pandas Series of float, one per row, indexed as `table`.

    Example:
        >>> lesion_share(pd.DataFrame({"truth_area": [0, 25], "height": [10, 10],
        ...                            "width": [10, 10]})).tolist()
        [0.0, 0.25]
    """
    return table["truth_area"] / (table["height"] * table["width"])


def lesion_size_masks(table):
    """{bin label: bool numpy array, one per row of `table`}: the images with a lesion whose
    `lesion_share` falls in that bin of `LESION_SIZE_BINS` (an empty truth is in none).

    Example:
        >>> masks = lesion_size_masks(pd.DataFrame({"truth_area": [0, 1, 30], "height": 10,
        ...                                         "width": 10}))
        >>> masks["under 2 %"].tolist(), masks["15-40 %"].tolist()
        ([False, True, False], [False, False, True])
    """
    share = lesion_share(table).to_numpy(dtype=float)
    has_lesion = table["truth_area"].to_numpy() > 0
    return {label: has_lesion & (share >= low) & (share < high)
            for label, low, high in LESION_SIZE_BINS}


def _by_lesion_size(table):
    """{bin label: {"count", "mean_dice"}} over the images with a lesion, by its share."""
    dice = table["dice"].to_numpy(dtype=float)
    return {label: {"count": int(inside.sum()), "mean_dice": _stat(np.mean, dice[inside])}
            for label, inside in lesion_size_masks(table).items()}


def standard_error(values):
    """The standard error of the mean of a 1-D float array: its sample standard deviation
    (ddof 1) over the square root of its length; NaN for fewer than two values.

    Example:
        >>> round(standard_error(np.array([0.7, 0.8, 0.9])), 4)
        0.0577
    """
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def _stat(function, values):
    return float(function(values)) if len(values) else math.nan
