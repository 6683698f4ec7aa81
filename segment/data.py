"""Folder -> pairs: find image/mask pairs by ISIC id.

    pairs = find_pairs("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth")

Pairing is by id: `ISIC_0000000.jpg` pairs with `ISIC_0000000_segmentation.png` (or a mask with
the image's own stem). Unpaired files are counted and named in a warning and in the returned
list's `unpaired_images` / `unpaired_masks`, never dropped silently. The split of the pairs into
train, validation and test parts is `split.py`'s; their sizes, `inspection.py`'s.
"""

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import NamedTuple

from .errors import PairingError, counted
from .images import IMAGE_SUFFIXES

__all__ = ["MASK_FILE_SUFFIX", "PREDICTIONS_TABLE", "Pair", "PairList", "as_pair", "as_pairs",
           "find_pairs", "fingerprint_pairs", "first_names", "index_by_id", "list_image_files",
           "mask_file", "mask_id", "resolve_folders"]

logger = logging.getLogger(__name__)

MASK_SUFFIX = "_segmentation"
MASK_FILE_SUFFIX = f"{MASK_SUFFIX}.png"  # ISIC's naming: ISIC_0000000.jpg's mask file
# What is written beside predicted masks (`--predict-only`'s, prediction_folder.py, and an
# evaluation's `predicted_masks/`): a folder holding it holds predictions, never ground truth.
PREDICTIONS_TABLE = "predictions.csv"
_SUPERPIXELS_SUFFIX = "_superpixels"  # ISIC 2017 ships <id>_superpixels.png beside each image
_NUM_NAMED = 5  # how many problem files a message names before "..."
# Sub-folder names that hold images / masks: the official ISIC 2017 and 2018 names and our own.
_IMAGE_FOLDER = re.compile(r"(_Input$|_Data$|^images?$)", re.IGNORECASE)
_MASK_FOLDER = re.compile(r"(_GroundTruth$|^masks?$)", re.IGNORECASE)


class Pair(NamedTuple):
    """One image and its mask; unpacks as `(image_path, mask_path)`.

    Example:
        >>> pair = Pair(Path("images/ISIC_0000000.jpg"),
        ...             Path("masks/ISIC_0000000_segmentation.png"))
        >>> pair.id
        'ISIC_0000000'
    """

    image_path: Path
    mask_path: Path

    @property
    def id(self):
        """The ISIC id, e.g. 'ISIC_0000000' (the image file's stem)."""
        return self.image_path.stem


def as_pair(item):
    """A `Pair` from a `Pair` or a plain `(image_path, mask_path)` tuple of paths.

    Raises:
        TypeError: `item` is neither; the message shows what was received.

    Example:
        >>> as_pair(("ISIC_0000000.jpg", "ISIC_0000000_segmentation.png")).id
        'ISIC_0000000'
    """
    if isinstance(item, Pair):
        return item
    if (isinstance(item, (tuple, list)) and len(item) == 2
            and all(isinstance(path, (str, os.PathLike)) for path in item)):
        return Pair(Path(item[0]), Path(item[1]))
    raise TypeError(f"expected a Pair or an (image_path, mask_path) tuple of paths. "
                    f"Received: {item!r}")


def as_pairs(items):
    """`as_pair` of each item: a list of `Pair` (TypeError for a folder's path: `find_pairs`).

    Example:
        >>> [pair.id for pair in as_pairs([("a/ISIC_1.jpg", "b/ISIC_1_segmentation.png")])]
        ['ISIC_1']
    """
    if isinstance(items, (str, os.PathLike)):
        raise TypeError(f"expected a list of pairs. Received the path {str(items)!r}: "
                        f"find_pairs(path) pairs its images with their masks")
    return [as_pair(item) for item in items]


def fingerprint_pairs(pairs):
    """A short hex digest of the ordered pair ids and their files' sizes and modification times.

    Two lists of pairs get the same fingerprint only if they name the same ids in the same
    order and no file was replaced or changed since; a missing file counts as size -1.

    Example:
        >>> fingerprint_pairs([]) == fingerprint_pairs([])
        True
    """
    digest = hashlib.sha256()
    for pair in as_pairs(pairs):
        stamps = [_file_stamp(path) for path in pair]
        digest.update(os.fsencode(f"{pair.id}\0{stamps}\n"))
    return digest.hexdigest()[:16]


def _file_stamp(path):
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, 0)
    return (stat.st_size, stat.st_mtime_ns)


class PairList(list):
    """A list of `Pair`, sorted by id, that also records what could not be paired.

    Attributes:
        unpaired_images: image paths without a mask.
        unpaired_masks: mask paths without an image.
        duplicates: paths skipped because another file had the same id.
        unreadable: (path, reason) for folder entries that could not even be listed.

    Example:
        >>> pairs = find_pairs(data_dir)
        >>> len(pairs), pairs.unpaired_images
        (12, [])
    """

    def __init__(self, pairs=(), *, unpaired_images=(), unpaired_masks=(), duplicates=(),
                 unreadable=()):
        super().__init__(pairs)
        self.unpaired_images = list(unpaired_images)
        self.unpaired_masks = list(unpaired_masks)
        self.duplicates = list(duplicates)
        self.unreadable = list(unreadable)


def find_pairs(images_dir, masks_dir=None):
    """Pair every image with its mask by ISIC id.

    Accepted layouts: an images folder and a masks folder; a parent folder holding them under
    the official names (`ISIC2018_Task1-2_Training_Input` + `ISIC2018_Task1_Training_GroundTruth`,
    `ISIC-2017_Training_Data` + `ISIC-2017_Training_Part1_GroundTruth`) or as `images/` +
    `masks/`; or one folder holding both, masks named `<id>_segmentation.<ext>`. In separate
    folders a mask may also carry the image's own stem. Files not named as images
    (`LICENSE.txt`, a `.gif`) are passed over and named in an info line; hidden files quietly.

    Args:
        images_dir: Folder of images, or a parent folder as above.
        masks_dir: Folder of masks. Defaults to finding it as described above.

    Returns:
        PairList of Pair(image_path, mask_path), sorted by id, with the unpaired files recorded.

    Raises:
        PairingError: a folder is missing or empty, no image has a mask, or the masks are a
            prediction's (the folder holds `predictions.csv`).

    Example:
        >>> pairs = find_pairs(data_dir)  # finds data_dir/images and data_dir/masks
        >>> pairs[0].id, pairs[0].mask_path.name, len(pairs.unpaired_images)
        ('SYNTH_0000000', 'SYNTH_0000000_segmentation.png', 0)
    """
    images_dir = Path(images_dir)
    if masks_dir is None:
        images_dir, masks_dir = resolve_folders(images_dir)
    masks_dir = Path(masks_dir)
    if (masks_dir / PREDICTIONS_TABLE).is_file():
        raise PairingError(f"'{masks_dir}' holds {PREDICTIONS_TABLE}: its masks are a model's "
                           f"predictions (--predict-only's or an evaluation's), not ground "
                           f"truth; pass the folder of the true masks")
    image_files, unreadable = list_image_files(images_dir)
    if masks_dir == images_dir:
        mask_files = [path for path in image_files if _is_mask_name(path)]
        image_files = [path for path in image_files if not _is_mask_name(path)]
    else:
        mask_files, unreadable_masks = list_image_files(masks_dir)
        unreadable += unreadable_masks
    images, duplicate_images = index_by_id(image_files, lambda path: path.stem)
    masks, duplicate_masks = index_by_id(mask_files, mask_id)
    pairs = PairList(
        [Pair(images[key], masks[key]) for key in sorted(images.keys() & masks.keys())],
        unpaired_images=[images[key] for key in sorted(images.keys() - masks.keys())],
        unpaired_masks=[masks[key] for key in sorted(masks.keys() - images.keys())],
        duplicates=duplicate_images + duplicate_masks,
        unreadable=unreadable,
    )
    _report_pairing(pairs, images_dir, masks_dir, len(images), len(masks))
    return pairs


def resolve_folders(folder):
    """(images_dir, masks_dir) for a parent folder with image/mask sub-folders, else (f, f)."""
    if not folder.is_dir():
        raise PairingError(f"images folder '{folder}' does not exist or is not a folder")
    subfolders = [path for path in sorted(folder.iterdir()) if path.is_dir()]
    image_folders = [path for path in subfolders if _IMAGE_FOLDER.search(path.name)]
    mask_folders = [path for path in subfolders if _MASK_FOLDER.search(path.name)]
    if len(image_folders) == 1 and len(mask_folders) == 1:
        return image_folders[0], mask_folders[0]
    if image_folders or mask_folders:
        names = ", ".join(path.name for path in image_folders + mask_folders)
        if len(image_folders) > 1 or len(mask_folders) > 1:
            raise PairingError(f"'{folder}' holds several image or mask folders ({names}); "
                               f"pass the images folder and the masks folder explicitly")
    return folder, folder


def list_image_files(folder, masks=True):
    """Image files directly inside `folder`, sorted by name, skipping hidden and other files
    (the others named in an info line: notes, CSVs, a .gif, ISIC 2017's superpixel maps
    `<id>_superpixels.png`), and with `masks=False` the masks (`<id>_segmentation.png`).

    Returns:
        (files, unreadable): list of Path, and (path, reason) of entries that could not be
        examined (a symbolic link loop, say).

    Raises:
        PairingError: the folder is missing or holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PairingError(f"folder '{folder}' does not exist or is not a folder")
    files, unreadable, passed_over = [], [], []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        name = Path(entry.name)
        if entry.name.startswith(".") or not masks and _is_mask_name(name):
            continue
        if (name.suffix.lower() not in IMAGE_SUFFIXES
                or name.stem.lower().endswith(_SUPERPIXELS_SUFFIX)):
            passed_over.append(entry.name)
            continue
        try:
            if entry.is_file():
                files.append(Path(entry.path))
        except OSError as error:  # e.g. a symbolic link loop
            unreadable.append((entry.path, str(error)))
    if passed_over:
        logger.info("'%s': passed over %s not named as images (%s) or named as "
                    "superpixel maps (*%s.*): %s", folder,
                    counted(len(passed_over), "entry", "entries"), ", ".join(IMAGE_SUFFIXES),
                    _SUPERPIXELS_SUFFIX, first_names(passed_over))
    if not files:
        raise PairingError(f"folder '{folder}' holds no image files "
                           f"(looked for {', '.join(IMAGE_SUFFIXES)})")
    return files, unreadable


def _is_mask_name(path):
    return path.stem.lower().endswith(MASK_SUFFIX)


def mask_id(path):
    """The id of a mask file: its stem less ISIC's `_segmentation`, e.g. 'ISIC_0000000'."""
    stem = path.stem
    return stem[: -len(MASK_SUFFIX)] if _is_mask_name(path) else stem


def mask_file(image_path):
    """The file name of an image's mask, in ISIC's naming.

    Example:
        >>> mask_file("new/ISIC_0000000.jpg")
        'ISIC_0000000_segmentation.png'
    """
    return f"{Path(image_path).stem}{MASK_FILE_SUFFIX}"


def index_by_id(paths, id_of):
    """{id: path}, preferring the suffix listed first in IMAGE_SUFFIXES; and the skipped paths."""
    index, skipped = {}, []
    for path in sorted(paths, key=lambda path: IMAGE_SUFFIXES.index(path.suffix.lower())):
        key = id_of(path)
        if key in index:
            skipped.append(path)
        else:
            index[key] = path
    return index, skipped


def _report_pairing(pairs, images_dir, masks_dir, num_images, num_masks):
    where = f"'{images_dir}'" if images_dir == masks_dir else f"'{images_dir}' and '{masks_dir}'"
    if not pairs:
        folders = [path for path in sorted(images_dir.parent.iterdir()) if path.is_dir()]
        beside = ([path for path in folders if _MASK_FOLDER.search(path.name)]
                  if not num_masks else [])
        # ISIC 2017 unpacks three parts side by side: the one whose name starts alike
        beside.sort(key=lambda path: -len(os.path.commonprefix([path.name, images_dir.name])))
        parent = (f", or the parent folder '{images_dir.parent}'"
                  if sum(bool(_IMAGE_FOLDER.search(path.name)) for path in folders) == 1 else "")
        hint = (f"; '{beside[0]}' beside it looks like the masks: pass it as the masks "
                f"folder{parent}" if beside else "")
        raise PairingError(
            f"no image/mask pairs in {where}: found {counted(num_images, 'image')} and "
            f"{counted(num_masks, 'mask')} with no id in common; masks should be named "
            f"<image id>{MASK_SUFFIX}.png{hint}")
    logger.info("found %d image/mask pairs in %s", len(pairs), where)
    for noun, paths, what in [("image", pairs.unpaired_images, "without a mask"),
                              ("mask", pairs.unpaired_masks, "without an image"),
                              ("file", pairs.duplicates, "skipped for a duplicate id"),
                              ("unreadable item", [path for path, _ in pairs.unreadable],
                               "in the folder")]:
        if paths:
            logger.warning("%s %s: %s", counted(len(paths), noun), what, first_names(paths))


def first_names(paths):
    """The file names of the first few paths, for a message: 'a.jpg, b.jpg, ... (3 more)'.

    Example:
        >>> first_names([f"x/ISIC_{i}.jpg" for i in range(7)])
        'ISIC_0.jpg, ISIC_1.jpg, ISIC_2.jpg, ISIC_3.jpg, ISIC_4.jpg, ... (2 more)'
    """
    names = [Path(path).name if isinstance(path, (str, Path)) else str(path) for path in paths]
    more = f", ... ({len(names) - _NUM_NAMED} more)" if len(names) > _NUM_NAMED else ""
    return ", ".join(names[:_NUM_NAMED]) + more
