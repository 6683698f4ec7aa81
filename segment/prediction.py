"""Predict: a binary mask for each image at its own size.

    masks = predict_masks(model, ["ISIC_0000000.jpg"], tta=True)   # uint8 (h, w) in {0, 1}

(`prediction_folder.export_predictions` writes them as ISIC-named files with a table.)

Each image is resized to the network's size (`network_size` decides it), predicted in batches,
optionally averaged over flips (test-time augmentation), and its probabilities are resized back
bilinearly to the image's own size before the threshold, so a mask always matches its image.
An `Ensemble` of models predicts as one model: each at its own size, the probabilities averaged
at the image's size. The settings come as an `EvalConfig` (or as its fields, as keywords).
"""

import logging
import os

import numpy as np
from tqdm.auto import tqdm

from .batch_norm_folding import folded_for_prediction
from .confidence import flip_agreement, mask_confidence
from .config import EvalConfig, with_overrides
from .data import Pair, as_pair, list_image_files
from .errors import ImageReadError
from .images import (
    load_input_image,
    read_image_size,
    resize_image,
    resize_probabilities,
)
from .postprocess import flip_views, postprocess_mask
from .runtime import keras_backend
from .second_look import look_again

__all__ = ["Ensemble", "folder_images", "iter_predictions", "iter_probabilities", "network_size",
           "predict_masks", "predicting_models", "prediction_settings", "to_mask"]

logger = logging.getLogger(__name__)


def iter_predictions(model, images, config=None, *, image_size=None, progress=False,
                     skipped=None, **overrides):
    """Predict binary masks one image at a time, without holding them all in memory.

    Args:
        model: Keras model, images -> probabilities (from `create_model` or `load_model`), or
            an `Ensemble` of them.
        images: Image paths, `Pair`s, (image_path, mask_path) tuples, or uint8
            (height, width, 3) arrays; or one image (its path or array), or a folder's path
            (its images by name, its `<id>_segmentation` masks passed over).
        config: `EvalConfig`: threshold (0.5), tta (flips), postprocess (largest region,
            holes filled), original_size (True: each mask resized to its image's size, the
            probabilities bilinearly, then thresholded) and batch_size (8).
        image_size: (height, width) fed to the model; defaults to the model's input size
            (required when the model accepts any size; an `Ensemble` carries its own sizes).
        progress: Show a progress bar on stderr when it is a terminal. Defaults to False.
        skipped: Optional list; (path, reason) of each unreadable image is appended to it.
        **overrides: `EvalConfig` fields to replace, e.g. `tta=True`.

    Yields:
        (item, mask): the input item and a uint8 (height, width) mask in {0, 1}. Unreadable
        images are logged with their name and skipped.

    Example:
        >>> for pair, mask in iter_predictions(model, split.test, tta=True):
        ...     print(pair.id, mask.shape == read_image_size(pair.image_path), mask.dtype)
        SYNTH_0000001 True uint8
        SYNTH_0000008 True uint8
        SYNTH_0000010 True uint8
    """
    config = with_overrides(config, EvalConfig, overrides)
    for item, probabilities, _ in iter_probabilities(model, _as_items(images, skipped),
                                                      image_size, config, progress, skipped):
        target = _original_size(item) if config.original_size else probabilities.shape
        yield item, to_mask(probabilities, target, config)


def _as_items(images, skipped):
    """`images` as `iter_predictions` takes them, as a list or iterable of items; a folder's
    unreadable entries are appended to `skipped` (when a list)."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        return [images]
    if not isinstance(images, (str, os.PathLike)):
        return images
    if not os.path.isdir(images):
        return [images]
    files, unreadable = folder_images(images)
    if skipped is not None:
        skipped.extend(unreadable)
    return files


def folder_images(folder):
    """(image paths, unreadable entries) of a folder to predict: its images by name, its masks
    (`<id>_segmentation`) passed over; each entry that cannot be examined (a symbolic link
    loop) is logged with its reason, as (path, reason).

    Example:
        >>> files, unreadable = folder_images(data_dir / "images")
        >>> len(files), unreadable
        (12, [])
    """
    files, unreadable = list_image_files(folder, masks=False)
    for path, reason in unreadable:
        logger.warning("skipping '%s': %s", path, reason)
    return files, unreadable


def predict_masks(model, images, config=None, *, image_size=None, progress=False,
                  **overrides):
    """Predict a binary mask for each image.

    Arguments as for `iter_predictions`.

    Returns:
        list of uint8 (height, width) masks in {0, 1}, one per readable image, in order.

    Example:
        >>> masks = predict_masks(model, [data_dir / "images" / "SYNTH_0000000.jpg"], tta=True)
        >>> masks[0].shape  # the image's own (height, width), not the network's 32x32
        (52, 59)
    """
    return [mask for _, mask in iter_predictions(model, images, config, image_size=image_size,
                                                 progress=progress, **overrides)]


def prediction_settings(model, config, image_size=None):
    """How `model` predicts with `config`, as recorded in summary.json and predictions.json:
    threshold, tta, postprocess, image_size (one [h, w], or one per model of an `Ensemble`),
    second_look (and crop_margin with it), and an ensemble's `members`.

    Example:
        >>> prediction_settings(model, EvalConfig(tta=True))["image_size"]
        [32, 32]
    """
    sizes = [list(size) for _, size in predicting_models(model, image_size)]
    settings = {"threshold": config.threshold, "tta": config.tta,
                "postprocess": config.postprocess,
                "image_size": sizes[0] if len(sizes) == 1 else sizes,
                "second_look": config.second_look}
    if config.second_look:
        settings["crop_margin"] = config.crop_margin
    if isinstance(model, Ensemble):
        settings["members"] = model.members
    return settings


class Ensemble:
    """Several models predicting as one: the mean of their lesion probabilities.

    Each model sees each image at its own network size (with test-time augmentation when
    asked); each model's probabilities are resized bilinearly to the image's own size (to the
    first model's network size when `original_size=False`) and averaged there, before the
    threshold. Pass it wherever a model is taken for prediction: `evaluate`, `results`,
    `predict_masks`, `export_predictions`.

    Args:
        models: Keras models, images -> probabilities (at least one).
        image_sizes: (height, width) fed to each model, for models that accept any size;
            None (or a None entry) uses the model's own input size.
        sources: For the record, what each model is (e.g. {"path": ..., "sha256": ...}),
            added to its entry of `members`. None records names and sizes only.

    Attributes:
        members: One dict per model: "name", "size" and its `sources` entry; an evaluation
            lists them in its settings (summary.json, the report), so that a score can be
            traced to its models.

    Raises:
        ValueError: no models, one size (or source) per model not given, or a size a model
            cannot take.

    Example:
        >>> wide = segment.create_model((32, 48, 3), base_filters=2, depth=3)
        >>> ensemble = Ensemble([model, wide])
        >>> ensemble.sizes
        [(32, 32), (32, 48)]
        >>> segment.evaluate(ensemble, split.test, tta=True, progress=False).settings["image_size"]
        [[32, 32], [32, 48]]
    """

    def __init__(self, models, image_sizes=None, sources=None):
        self.models = list(models)
        if not self.models:
            raise ValueError("an Ensemble needs at least one model. Received: models=[]")
        image_sizes = [None] * len(self.models) if image_sizes is None else image_sizes
        sources = [{}] * len(self.models) if sources is None else sources
        for name, given in [("image size", image_sizes), ("source", sources)]:
            if len(given) != len(self.models):
                raise ValueError(f"one {name} per model is needed: {len(self.models)} models, "
                                 f"{len(given)} {name}s")
        self.sizes = [network_size(model, size)
                      for model, size in zip(self.models, image_sizes, strict=True)]
        self.members = [{"name": model.name, "size": list(size), **source}
                        for model, size, source in zip(self.models, self.sizes, sources,
                                                       strict=True)]

    def __repr__(self):
        return (f"Ensemble({len(self.models)} models at "
                f"{', '.join(f'{h}x{w}' for h, w in self.sizes)})")


def predicting_models(model, image_size=None):
    """[(Keras model, (height, width) it is fed)]: an `Ensemble`'s models, or the one model
    (TypeError for a model file's path, which `load_model` reads).

    Example:
        >>> predicting_models(model)[0][1]
        (32, 32)
    """
    if isinstance(model, Ensemble):
        return list(zip(model.models, model.sizes, strict=True))
    if isinstance(model, (str, os.PathLike)):
        raise TypeError(f"expected a Keras model or an Ensemble. Received the path {model!r}: "
                        f"load it with load_model, or give the path to load_and_evaluate")
    return [(model, network_size(model, image_size))]


def iter_probabilities(model, items, image_size, config, progress, skipped):
    """Yield (item, float32 (h, w) lesion probabilities, confidence): a single model's
    probabilities at its network size; an `Ensemble`'s mean at the item's own size (the first
    model's network size when `config.original_size` is False). The confidence is the
    probabilities' `mask_confidence`, times, with `config.tta`, the flip views' agreement
    (`flip_agreement`; an ensemble's models' agreements averaged). With `config.second_look`,
    an image whose lesion the first pass found gets the second look's probabilities instead, at
    the item's own size (the first model's network size when `original_size` is False).
    Each model predicts with its batch norms folded into its convolutions
    (`batch_norm_folding.folded_for_prediction`)."""
    members = [(folded_for_prediction(member), size)
               for member, size in predicting_models(model, image_size)]
    batch_items, batch_inputs = [], []  # inputs: one uint8 image per member and item
    # disable=None: tqdm draws only on a terminal, so a log file gets no bar redraws.
    for item in tqdm(list(items), desc="predict", unit="image",
                     disable=None if progress else True):
        if not isinstance(item, (np.ndarray, str, os.PathLike)):
            item = as_pair(item)
        try:
            by_size = {size: _load_network_input(item, size)  # decoded once per distinct size
                       for size in dict.fromkeys(size for _, size in members)}
            batch_inputs.append([by_size[size] for _, size in members])
        except ImageReadError as error:
            logger.warning("skipping image: %s", error)
            if skipped is not None:
                skipped.append((str(error.path), str(error)))
            continue
        batch_items.append(item)
        if len(batch_items) == config.batch_size:
            yield from _predict_items(members, batch_items, batch_inputs, config)
            batch_items, batch_inputs = [], []
    if batch_items:
        yield from _predict_items(members, batch_items, batch_inputs, config)


def _predict_items(members, items, inputs, config):
    """(item, probabilities, confidence) for a batch: the first pass, then, with
    `config.second_look`, the second (`second_look.look_again`)."""
    first_pass = _first_pass(members, items, inputs, config)
    if not config.second_look:
        return first_pass
    return look_again(members, first_pass, config, _predict_batch,
                      lambda item: _map_size(item, members, config))


def _first_pass(members, items, inputs, config):
    """(item, probabilities, confidence) for a batch of whole views: one model's probabilities
    as they are, several models' averaged."""
    per_member = [_predict_batch(model, [images[index] for images in inputs], config)
                  for index, (model, _) in enumerate(members)]
    for position, item in enumerate(items):
        if len(members) == 1:
            probabilities = per_member[0][0][position]
        else:
            target = _map_size(item, members, config)
            probabilities = np.mean([resize_probabilities(each[position], target)
                                     for each, _ in per_member], axis=0, dtype=np.float32)
        agreement = np.mean([agreements[position] for _, agreements in per_member])
        yield item, probabilities, mask_confidence(probabilities, config.threshold) * agreement


def _map_size(item, members, config):
    """(height, width) of the probabilities that several models or a second look make: the
    item's own size, or the first model's network size when `original_size` is False."""
    return _original_size(item) if config.original_size else members[0][1]


def _predict_batch(model, images, config):
    """(float32 (batch, h, w) lesion probabilities, (batch,) flip agreements: 1.0 without TTA)
    of a list of uint8 (h, w, 3) images."""
    count = len(images)
    batch = np.stack(images).astype(np.float32) / 255.0  # (batch, h, w, 3)
    if count < config.batch_size and _fills_short_batches():
        # Zero images fill the batch (each image's probabilities depend on it alone).
        batch = np.concatenate([batch, np.zeros((config.batch_size - count, *batch.shape[1:]),
                                                np.float32)])
    views = flip_views(model, batch) if config.tta else np.asarray(
        model.predict_on_batch(batch), dtype=np.float32)[None]  # (views, batch, h, w, classes)
    views = views[:, :count]  # without the filled-in images
    # One class: its probability; several: anything but class 0 is lesion.
    views = views[..., 0] if views.shape[-1] == 1 else 1.0 - views[..., 0]
    agreements = ([flip_agreement(views[:, index], config.threshold)
                   for index in range(count)] if config.tta else [1.0] * count)
    return views.mean(axis=0), agreements


def _fills_short_batches():
    """Whether a batch shorter than the batch size (an evaluation's last, or the second look's
    crops) is filled up with zero images: on JAX on a GPU or TPU, which compiles the model for
    each new input shape (seconds) and predicts a few more images in milliseconds. On a CPU
    JAX compiles each of at most `batch_size` shapes once, less than the filled-in images of
    every later short batch would cost; the other backends compile nothing per shape."""
    if keras_backend() != "jax":
        return False
    import jax

    return jax.default_backend() != "cpu"


def to_mask(probabilities, size, config):
    """Resize (bilinear) float (h, w) probabilities to `size`, threshold, optionally clean up."""
    probabilities = resize_probabilities(probabilities, size)
    mask = (probabilities >= config.threshold).astype(np.uint8)
    return postprocess_mask(mask) if config.postprocess else mask


def network_size(model, image_size=None, recorded=None):
    """The (height, width) fed to `model`: its own input size, else `image_size`, else `recorded`.

    The one rule for every prediction, evaluation and driver: a model built for a fixed size
    is fed that size; a model built for any size (`None x None`) is fed the size asked for,
    else the size its training run recorded in `config.json`.

    Args:
        model: Keras model.
        image_size: (height, width) asked for, or None. For a fixed-size model it must be
            that size.
        recorded: (height, width) the training run recorded, or None.

    Raises:
        ValueError: `image_size` differs from the model's fixed size, or the model accepts
            any size and no size is given.

    Example:
        >>> network_size(model)
        (32, 32)
        >>> network_size(segment.create_model((None, None, 3), base_filters=2, depth=3),
        ...              recorded=(64, 48))
        (64, 48)
    """
    fixed = tuple(model.input_shape[1:3])
    if None not in fixed:
        if image_size is not None and tuple(image_size) != fixed:
            raise ValueError(f"the model takes {fixed[0]}x{fixed[1]} images. Received: "
                             f"image_size={tuple(image_size)}")
        return fixed
    for size in (image_size, recorded):
        if size is not None:
            return tuple(int(side) for side in size)
    raise ValueError("the model accepts any image size and none was given or recorded: pass "
                     "image_size=(height, width) (--size)")


def _load_network_input(item, size):
    if isinstance(item, np.ndarray):
        return resize_image(item, size)
    return load_input_image(_image_path(item), size)


def _image_path(item):
    return item.image_path if isinstance(item, Pair) else item


def _original_size(item):
    if isinstance(item, np.ndarray):
        return item.shape[:2]
    return read_image_size(_image_path(item))

