"""Pairs -> train / validation / test parts, and the manifest that records them.

    split = train_val_test_split(pairs, DataConfig(seed=0))   # Split(train, val, test)
    save_split(split, "runs/x/split.json")                  # what driver_load_evaluate.py reads
    train, val, test = load_split("runs/x/split.json")

The split depends only on the set of ids and the `DataConfig` (ratios, seed_of_split,
train_fraction), never on the order the pairs come in, and no id is in two parts.
"""

import json
import os
import random
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .config import DataConfig, with_overrides
from .data import Pair, as_pair, as_pairs, first_names
from .errors import PairingError, counted
from .files import write_json_atomic

__all__ = ["Split", "load_split", "save_split", "split_folders", "train_val_test_split"]


class Split(NamedTuple):
    """Three disjoint lists of pairs; unpacks as `train, val, test = split`.

    Example:
        >>> train, val, test = Split([1, 2, 3], [4], [5])
        >>> len(train)
        3
    """

    train: list
    val: list
    test: list

    def check_given(self):
        """Raise PairingError where this split of pairs, given to train on, has no training
        part or holds an id in more than one part (e.g. synthetic sets made apart), naming them.

        Example:
            >>> pair = as_pair(("a/x.jpg", "a/x.png"))
            >>> try:
            ...     Split([pair], [pair], []).check_given()
            ... except PairingError as error:
            ...     print(error)
            a given split holds each id in one part; 1 id is in more than one: x (train, val)
        """
        if not self.train:
            raise PairingError("a given split needs a training part; it has none")
        parts = {}
        for part, pairs in self._asdict().items():
            for pair in pairs:
                parts.setdefault(pair.id, []).append(part)
        shared = [f"{pair_id} ({', '.join(names)})" for pair_id, names in parts.items()
                  if len(names) > 1]
        if shared:
            raise PairingError(f"a given split holds each id in one part; "
                               f"{counted(len(shared), 'id')} {'is' if len(shared) == 1 else 'are'}"
                               f" in more than one: {first_names(shared)}")


def split_folders(split):
    """Where each part's files lie: {"images": {"train": [folder, ...], "val": ..., "test":
    ...}, "masks": {...}}, each list sorted; what a run's `config.json` records as the source
    of a split it was given (`split.json` names every file).

    Example:
        >>> split_folders(Split([Pair("a/x.jpg", "b/x.png")], [], []))["masks"]["train"]
        ['b']
    """
    folders = {}
    for kind, field in [("images", "image_path"), ("masks", "mask_path")]:
        folders[kind] = {part: sorted({str(Path(getattr(pair, field)).parent) for pair in pairs})
                         for part, pairs in split._asdict().items()}
    return folders


def train_val_test_split(pairs, config=None, **overrides):
    """Split pairs into train, validation and test parts, deterministically.

    The pairs are sorted by id and then shuffled with the split seed, so the split depends only
    on the set of ids and the settings, not on the order they come in. With `train_fraction` < 1
    the training part keeps that share of its pairs, drawn with the split seed; the subsets of one
    seed are nested (the 10 % pairs are among the 25 % pairs), so a learning curve adds data
    instead of swapping it, and the validation and test parts stay whole.

    Args:
        pairs: Sequence of `Pair` (or (image_path, mask_path) tuples, or image paths; the id
            is the file stem).
        config: `DataConfig`; its `ratios` (train, val, test fractions summing to 1; default
            (0.6, 0.2, 0.2)), `seed_of_split` (`split_seed`, else `seed`; 0) and
            `train_fraction` (1.0) are used.
        **overrides: `DataConfig` fields to replace, e.g. `seed=3`.

    Returns:
        Split(train, val, test): three disjoint lists sorted by id; sizes are the rounded
        fractions, test taking the remainder.

    Raises:
        ValueError: bad ratios. PairingError: two items share an id.

    Example:
        >>> train, val, test = train_val_test_split([f"ISIC_{i:07d}.jpg" for i in range(10)])
        >>> len(train), len(val), len(test)
        (6, 2, 2)
        >>> half = train_val_test_split(pairs, seed=1, train_fraction=0.5)
        >>> len(half.train) == round(len(train_val_test_split(pairs, seed=1).train) / 2)
        True
    """
    if isinstance(config, (tuple, list)):
        raise TypeError(f"train_val_test_split takes a DataConfig or its fields as keywords, "
                        f"e.g. ratios=(0.7, 0.15, 0.15). Received: config={config!r}")
    config = with_overrides(config, DataConfig, overrides)
    by_id = {}
    for item in pairs:
        item = item if isinstance(item, (str, os.PathLike)) else as_pair(item)
        key = _item_id(item)
        if key in by_id:
            raise PairingError(f"id '{key}' occurs twice ('{_item_path(by_id[key])}' and "
                               f"'{_item_path(item)}'); ids must be unique to split")
        by_id[key] = item
    ids = sorted(by_id)
    order = np.random.default_rng(config.seed_of_split).permutation(len(ids))
    num_train = round(len(ids) * config.ratios[0])
    num_val = min(round(len(ids) * config.ratios[1]), len(ids) - num_train)
    parts = np.split(order, [num_train, num_train + num_val])
    train, val, test = ([by_id[ids[index]] for index in sorted(part)] for part in parts)
    return Split(_training_subset(train, config), val, test)


def save_split(split, path, config=None):
    """Write the split manifest (ids and file paths of each part) as JSON, atomically.

    Args:
        split: `Split` of `Pair`.
        path: Output file, normally `<run_dir>/split.json`.
        config: The `DataConfig` the split was drawn with; its ratios, split seed (as
            `seed`) and train_fraction are recorded for traceability.

    Example:
        >>> save_split(split, tmp / "split.json", DataConfig(seed=0))
        >>> load_split(tmp / "split.json") == split
        True
    """
    manifest = ({} if config is None else
                {"seed": config.seed_of_split, "ratios": list(config.ratios),
                 "train_fraction": config.train_fraction})
    for name, part in zip(Split._fields, split, strict=True):
        manifest[name] = [{"id": pair.id, "image": str(Path(pair.image_path).resolve()),
                           "mask": str(Path(pair.mask_path).resolve())} for pair in as_pairs(part)]
    write_json_atomic(path, manifest)


def load_split(path, pairs=None, *, check_files=True):
    """Read a split manifest written by `save_split`.

    Args:
        path: The manifest (`split.json`).
        pairs: Optional pairs to take the files from (e.g. the same data in another folder);
            by default the paths stored in the manifest are used.
        check_files: Without `pairs`, refuse a manifest none of whose images is there (the
            data moved). Defaults to True; False where only the ids are wanted.

    Returns:
        Split of `Pair`.

    Raises:
        PairingError: the manifest is unreadable, not laid out as `save_split` writes it,
            names ids missing from `pairs`, or, without `pairs`, images none of which is there.

    Example:
        >>> train, val, test = load_split(finished_run / "split.json")
        >>> len(test) > 0
        True
    """
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PairingError(f"split manifest '{path}' cannot be read: {error}") from None
    try:  # [[(id, image path, mask path)] of each part]
        parts = [[(str(entry["id"]), Path(entry["image"]), Path(entry["mask"]))
                  for entry in manifest[name]] for name in Split._fields]
    except (KeyError, TypeError) as error:
        raise PairingError(f"split manifest '{path}' is not laid out as save_split writes it "
                           f"(train, val and test: lists of id, image and mask): "
                           f"{type(error).__name__}: {error}") from None
    if pairs is None:
        named = [image for part in parts for _, image, _ in part]
        if check_files and named and not any(image.exists() for image in named):
            raise PairingError(f"split manifest '{path}' names {len(named)} images and none is "
                               f"there (e.g. '{named[0]}'): if the data moved, give its folder "
                               f"too (--images and --masks, with --split-manifest to evaluate) "
                               f"to take the manifest's ids from it")
        return Split(*[[Pair(image, mask) for _, image, mask in part] for part in parts])
    by_id = {pair.id: pair for pair in as_pairs(pairs)}
    missing = [image_id for part in parts for image_id, _, _ in part if image_id not in by_id]
    if missing:
        raise PairingError(f"split manifest '{path}' names {len(missing)} ids not among the "
                           f"given pairs: {first_names(missing)}")
    return Split(*[[by_id[image_id] for image_id, _, _ in part] for part in parts])


def _training_subset(train, config):
    """`train_fraction` of the training part, drawn with the split seed, sorted by id (nested)."""
    if config.train_fraction == 1:
        return train
    count = max(1, round(config.train_fraction * len(train)))
    drawn = random.Random(config.seed_of_split).sample(list(train), len(train))[:count]
    return sorted(drawn, key=_item_id)


def _item_id(item):
    return item.id if isinstance(item, Pair) else Path(item).stem


def _item_path(item):
    return item.image_path if isinstance(item, Pair) else item
