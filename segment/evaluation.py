"""Predict and score: masks for new images, and a per-image metrics table for labelled ones.

    evaluation = evaluate(model, split.test)        # one row per image, at original size
    evaluation.table.sort_values("dice").head()     # the worst images
    evaluation.summary["dice"]["mean"]              # per-image mean dice
    evaluation.worst[0].predicted                   # the worst prediction, kept for figures
    export_predictions(model, "new_images/", "predictions/")   # ISIC_x_segmentation.png files

By default predictions are resized back to each image's original size and scored there
(DESIGN §3); `original_size=False` scores at the network's resolution instead. The settings
come as an `EvalConfig` (or as its fields, as keywords).
"""

import heapq
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from keras import ops
from PIL import Image
from tqdm.auto import tqdm

from .config import EvalConfig, with_overrides
from .data import Pair, as_pair, as_pairs, list_image_files, size_mismatch
from .errors import ImageReadError, SegmentError
from .files import atomic_path
from .images import (
    load_input_image,
    load_segmented_image,
    read_image_size,
    resize_mask,
    save_mask,
)
from .metrics import confusion_counts, hausdorff_distance_95, scores_from_counts
from .postprocess import postprocess_mask, predict_with_flips

__all__ = ["Evaluation", "Example", "display_size", "evaluate", "export_predictions",
           "iter_predictions", "predict_masks", "resize_probabilities"]

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
        >>> worst = evaluate(model, split.test).worst[0]  # doctest: +SKIP
        >>> worst.id, worst.dice, worst.predicted.shape  # doctest: +SKIP
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
            truth_area and predicted_area (pixels), height and width (evaluated size).
        summary: dict: for each metric its mean, median, std, min and max over images (NaN
            values left out and counted), plus count, isic_score, empty_truth and settings.
        settings: how the predictions were made (threshold, tta, postprocess, resolution).
        skipped: (path, reason) for each pair that could not be read.
        best, worst: the `num_examples` best and worst images as `Example`s (best first,
            worst first; ties in dice ranked by order), for the galleries.

    Example:
        >>> evaluation = evaluate(model, split.test)  # doctest: +SKIP
        >>> evaluation.summary["isic_score"], evaluation.worst[0].id  # doctest: +SKIP
    """

    table: pd.DataFrame
    summary: dict
    settings: dict
    skipped: list = field(default_factory=list)
    best: list = field(default_factory=list)
    worst: list = field(default_factory=list)

    def to_csv(self, path):
        """Write the table as CSV, atomically."""
        with atomic_path(path) as tmp:
            self.table.to_csv(tmp, float_format="%.6g", errors="surrogateescape")

    def _repr_html_(self):
        means = {name: self.summary[name]["mean"] for name in METRICS}
        return (f"<p>{self.summary['count']} images, ISIC score "
                f"{self.summary['isic_score']:.4f}</p>"
                + pd.DataFrame([means]).to_html(index=False, float_format="%.4f")
                + self.table.sort_values("dice").head(10).to_html(float_format="%.4f"))


def iter_predictions(model, images, config=None, *, image_size=None, progress=False,
                     skipped=None, **overrides):
    """Predict binary masks one image at a time, without holding them all in memory.

    Args:
        model: Keras model, images -> probabilities (from `create_model` or `load_model`).
        images: Image paths, `Pair`s, (image_path, mask_path) tuples, or uint8
            (height, width, 3) arrays.
        config: `EvalConfig`: threshold (0.5), tta (flips), postprocess (largest region,
            holes filled), original_size (True: each mask resized to its image's size, the
            probabilities bilinearly, then thresholded) and batch_size (8).
        image_size: (height, width) fed to the model; defaults to the model's input size
            (required when the model accepts any size).
        progress: Show a progress bar on stderr. Defaults to False.
        skipped: Optional list; (path, reason) of each unreadable image is appended to it.
        **overrides: `EvalConfig` fields to replace, e.g. `tta=True`.

    Yields:
        (item, mask): the input item and a uint8 (height, width) mask in {0, 1}. Unreadable
        images are logged with their name and skipped.

    Example:
        >>> for path, mask in iter_predictions(model, paths, tta=True):  # doctest: +SKIP
        ...     print(path, mask.sum())
    """
    config = with_overrides(config, EvalConfig, overrides)
    for item, probabilities in _iter_probabilities(model, images, image_size, config, progress,
                                                   skipped):
        target = _original_size(item) if config.original_size else probabilities.shape
        yield item, _to_mask(probabilities, target, config)


def predict_masks(model, images, config=None, *, image_size=None, progress=False,
                  **overrides):
    """Predict a binary mask for each image.

    Arguments as for `iter_predictions`.

    Returns:
        list of uint8 (height, width) masks in {0, 1}, one per readable image, in order.

    Example:
        >>> masks = predict_masks(model, ["ISIC_0000000.jpg"], tta=True)  # doctest: +SKIP
        >>> masks[0].shape  # the image's own (height, width)  # doctest: +SKIP
        (767, 1022)
    """
    return [mask for _, mask in iter_predictions(model, images, config, image_size=image_size,
                                                 progress=progress, **overrides)]


def evaluate(model, pairs, config=None, *, image_size=None, progress=True, **overrides):
    """Score the model on labelled pairs: one row of metrics per image, and a summary.

    Metrics are per image (DESIGN §3): both masks empty gives dice and jaccard 1.0; an empty
    truth with a non-empty prediction gives 0.0; sensitivity is NaN for an empty truth and
    HD95 is NaN when exactly one mask is empty. Means leave NaN values out and the summary
    says how many there were. An interrupted evaluation returns nothing (no partial table).
    The best and worst `num_examples` images are kept at display size, so the galleries of
    `results` draw them without calling the model again.

    Args:
        model: Keras model.
        pairs: Sequence of `Pair` (or (image_path, mask_path) tuples), e.g. `split.test`.
        config: `EvalConfig`; see `iter_predictions`. `original_size` scores at each mask's
            own size (default) or at the network's size.
        image_size: (height, width) fed to the model; see `iter_predictions`.
        progress: Show a progress bar on stderr. Defaults to True.
        **overrides: `EvalConfig` fields to replace, e.g. `tta=True, postprocess=True`.

    Returns:
        Evaluation (table, summary, settings, skipped, best, worst).

    Example:
        >>> evaluation = evaluate(model, split.test, tta=True)  # doctest: +SKIP
        >>> evaluation.table.sort_values("dice").head(3)  # the three worst  # doctest: +SKIP
    """
    config = with_overrides(config, EvalConfig, overrides)
    pairs = as_pairs(pairs)
    size = _network_size(model, image_size)
    settings = {"threshold": config.threshold, "tta": config.tta,
                "postprocess": config.postprocess,
                "resolution": ("original" if config.original_size
                               else f"network {size[0]}x{size[1]}"),
                "image_size": list(size)}
    rows, skipped = [], []
    gallery = _Gallery(config.num_examples)
    for pair, probabilities in _iter_probabilities(model, pairs, size, config, progress,
                                                   skipped):
        try:
            mismatch = size_mismatch(pair)
            if mismatch:
                logger.warning("%s; the prediction is scored at the mask's size", mismatch)
            truth = load_segmented_image(pair.mask_path, None if config.original_size else size)
        except ImageReadError as error:
            logger.warning("skipping pair: %s", error)
            skipped.append((str(error.path), str(error)))
            continue
        predicted = _to_mask(probabilities, truth.shape, config)
        rows.append({"id": pair.id, **score_masks(truth, predicted)})
        gallery.offer(pair, truth, predicted, rows[-1])
    if not rows:
        raise SegmentError(f"none of the {len(pairs)} pairs could be read; first problem: "
                           f"{skipped[0][1] if skipped else 'no pairs given'}")
    table = pd.DataFrame(rows).set_index("id")
    return Evaluation(table, summarize(table, settings, num_skipped=len(skipped)), settings,
                      skipped, best=gallery.best(), worst=gallery.worst())


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
    """All per-image metrics of one (height, width) truth/prediction pair, as a dict."""
    counts = confusion_counts(truth[None, ..., None], predicted[None, ..., None])  # (1, 4)
    scores = {name: float(ops.convert_to_numpy(value)[0])
              for name, value in scores_from_counts(counts).items()}
    tp, fp, fn, _ = ops.convert_to_numpy(counts)[0]
    return {**scores, "hd95": hausdorff_distance_95(truth, predicted),
            "truth_area": int(tp + fn), "predicted_area": int(tp + fp),
            "height": truth.shape[0], "width": truth.shape[1]}


def summarize(table, settings, *, num_skipped=0):
    """Summary statistics of an evaluation table (see `Evaluation.summary`)."""
    summary = {"count": len(table), "skipped": num_skipped, "settings": settings}
    for name in METRICS:
        values = table[name].to_numpy(dtype=float)
        finite = values[~np.isnan(values)]
        summary[name] = {"mean": _stat(np.mean, finite), "median": _stat(np.median, finite),
                         "std": _stat(np.std, finite), "min": _stat(np.min, finite),
                         "max": _stat(np.max, finite), "num_undefined": int(np.isnan(values).sum())}
    summary["isic_score"] = summary["thresholded_jaccard"]["mean"]
    empty = table[table["truth_area"] == 0]
    summary["empty_truth"] = {"count": len(empty),
                              "mean_dice": _stat(np.mean, empty["dice"].to_numpy())}
    return summary


def export_predictions(model, images, out_dir, config=None, *, image_size=None, progress=True,
                       **overrides):
    """Write one mask PNG per image, 0/255 at the image's original size, in ISIC's naming.

    Args:
        model: Keras model.
        images: A folder of images, or a list of image paths.
        out_dir: Output folder; masks are named `<id>_segmentation.png`.
        config, image_size, progress, **overrides: as for `iter_predictions` (masks are
            always written at the image's own size).

    Returns:
        (written, skipped): list of the written paths, and (path, reason) of unreadable images.

    Example:
        >>> written, skipped = export_predictions(model, "ISIC2018_Task1-2_Test_Input",
        ...                                       "predictions", tta=True)  # doctest: +SKIP
    """
    config = with_overrides(config, EvalConfig, {**overrides, "original_size": True})
    if isinstance(images, (str, Path)):
        images, _ = list_image_files(Path(images))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    for path, mask in iter_predictions(model, images, config, image_size=image_size,
                                       progress=progress, skipped=skipped):
        target = out_dir / f"{Path(path).stem}_segmentation.png"
        save_mask(mask, target)
        written.append(target)
    logger.info("wrote %d masks to '%s' (%d images unreadable)", len(written), out_dir,
                len(skipped))
    return written, skipped


def _iter_probabilities(model, items, image_size, config, progress, skipped):
    """Yield (item, float32 (h, w) lesion probabilities at the network's size)."""
    size = _network_size(model, image_size)
    batch_items, batch_images = [], []
    for item in tqdm(list(items), desc="predict", unit="image", disable=not progress):
        if not isinstance(item, (np.ndarray, str, os.PathLike)):
            item = as_pair(item)
        try:
            batch_images.append(_load_network_input(item, size))
        except ImageReadError as error:
            logger.warning("skipping image: %s", error)
            if skipped is not None:
                skipped.append((str(error.path), str(error)))
            continue
        batch_items.append(item)
        if len(batch_items) == config.batch_size:
            yield from zip(batch_items, _predict_batch(model, batch_images, config.tta),
                           strict=True)
            batch_items, batch_images = [], []
    if batch_items:
        yield from zip(batch_items, _predict_batch(model, batch_images, config.tta), strict=True)


def _predict_batch(model, images, tta):
    """float32 (batch, h, w) lesion probabilities of a list of uint8 (h, w, 3) images."""
    batch = np.stack(images).astype(np.float32) / 255.0  # (batch, h, w, 3)
    probabilities = predict_with_flips(model, batch) if tta else np.asarray(
        model.predict_on_batch(batch), dtype=np.float32)
    if probabilities.shape[-1] == 1:
        return probabilities[..., 0]
    return 1.0 - probabilities[..., 0]  # several classes: anything but class 0 is lesion


def resize_probabilities(probabilities, size):
    """Float (h, w) probabilities resized bilinearly to `size` (height, width), as `evaluate`
    scores them at an image's own size; float32, unchanged when already that size.

    Example:
        >>> resize_probabilities(np.ones((2, 2)), (4, 6)).shape
        (4, 6)
    """
    if probabilities.shape == tuple(size):
        return probabilities.astype(np.float32)
    image = Image.fromarray(probabilities.astype(np.float32))  # mode "F"
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _to_mask(probabilities, size, config):
    """Resize (bilinear) float (h, w) probabilities to `size`, threshold, optionally clean up."""
    probabilities = resize_probabilities(probabilities, size)
    mask = (probabilities >= config.threshold).astype(np.uint8)
    return postprocess_mask(mask) if config.postprocess else mask


def _network_size(model, image_size):
    if image_size is not None:
        return tuple(int(side) for side in image_size)
    height, width = model.input_shape[1:3]
    if height is None or width is None:
        raise ValueError("the model accepts any image size: pass image_size=(height, width). "
                         f"Received: model.input_shape={model.input_shape}")
    return height, width


def _load_network_input(item, size):
    if isinstance(item, np.ndarray):
        return np.asarray(Image.fromarray(item).resize((size[1], size[0]),
                                                       Image.Resampling.BILINEAR))
    return load_input_image(_image_path(item), size)


def _image_path(item):
    return item.image_path if isinstance(item, Pair) else item


def _original_size(item):
    if isinstance(item, np.ndarray):
        return item.shape[:2]
    return read_image_size(_image_path(item))


def _stat(function, values):
    return float(function(values)) if len(values) else math.nan
