"""Image sizes from file headers: what `inspect` reports before a run, and the pairs whose
mask and image differ in size.

    report = inspect("ISIC2018")        # a folder, a list of image paths or of pairs
    print(report)                       # the sizes, most common first; report.figure
"""

import collections
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .data import Pair, as_pair, first_names, list_image_files, resolve_folders
from .errors import ImageReadError, counted
from .images import read_image_size

__all__ = ["SizeReport", "inspect", "log_size_mismatches", "size_mismatch"]

logger = logging.getLogger(__name__)

_SAME_SHAPE = 0.02  # aspect ratios within 2 % of each other: the same view, resized
_NUM_LOGGED = 5  # size mismatches logged one by one before "N more"


@dataclass
class SizeReport:
    """What `inspect` found: image sizes from the file headers.

    Attributes:
        counts: Counter mapping (width, height) to the number of images of that size.
        unreadable: (path, reason) for files whose header could not be read.
        mismatched: ids whose mask size differs from the image size (pairs only).
        figure: matplotlib Figure (size scatter and aspect-ratio histogram), or None.

    Example:
        >>> report = inspect(pairs, plot=False)
        >>> report.num_images, report.unreadable, report.mismatched
        (12, [], [])
    """

    counts: collections.Counter
    unreadable: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)
    figure: Figure | None = None

    @property
    def num_images(self):
        return sum(self.counts.values())

    def __str__(self):
        sizes = counted(len(self.counts), "distinct size")
        lines = [f"{counted(self.num_images, 'image')}, {sizes} (width x height):"]
        lines += [f"  {width}x{height}: {count}"
                  for (width, height), count in self.counts.most_common(10)]
        if len(self.counts) > 10:
            lines.append(f"  ... and {len(self.counts) - 10} more sizes")
        if self.unreadable:
            lines.append(f"{len(self.unreadable)} unreadable: " + first_names(
                [path for path, _ in self.unreadable]))
        if self.mismatched:
            pairs = counted(len(self.mismatched), "pair")
            lines.append(f"image and mask differ in size in {pairs}: "
                         + first_names(self.mismatched))
        return "\n".join(lines)


def inspect(paths, plot=True, *, progress=False):
    """Count image sizes by reading only file headers (seconds for thousands of large JPEGs).

    Args:
        paths: A folder of images (or their parent, as for `find_pairs`), a list of image
            paths, or a list of `Pair` (then each mask's size is compared with its image's too).
        plot: Also draw a figure of the sizes (returned, never shown). Defaults to True.
        progress: Show a progress bar on stderr when it is a terminal. Defaults to False.

    Returns:
        SizeReport; `print(report)` gives a short table. Unreadable files are listed in it
        rather than raised.

    Example:
        >>> report = inspect(data_dir / "images")  # a folder, a list of paths or of pairs
        >>> report.num_images, len(report.counts), type(report.figure).__name__
        (12, 12, 'Figure')
        >>> inspect(data_dir, plot=False).num_images  # images/ found as find_pairs finds it
        12
        >>> print(report)  # doctest: +ELLIPSIS
        12 images, 12 distinct sizes (width x height):
          59x52: 1
        ...
    """
    report = SizeReport(collections.Counter())
    if isinstance(paths, (str, os.PathLike)):  # entries it cannot examine count as unreadable
        paths, report.unreadable = list_image_files(resolve_folders(Path(paths))[0],
                                                    masks=False)
    # disable=None: tqdm draws only on a terminal, so a log file gets no bar redraws.
    for item in tqdm(list(paths), desc="inspect", unit="image",
                     disable=None if progress else True):
        item = item if isinstance(item, (str, os.PathLike)) else as_pair(item)
        image_path = item.image_path if isinstance(item, Pair) else Path(item)
        try:
            height, width = read_image_size(image_path)
            report.counts[(width, height)] += 1
            if isinstance(item, Pair) and size_mismatch(item):
                report.mismatched.append(item.id)
        except ImageReadError as error:
            report.unreadable.append((str(image_path), str(error)))
    if report.unreadable:
        logger.warning("inspect: %s: %s", counted(len(report.unreadable), "unreadable file"),
                       first_names([path for path, _ in report.unreadable]))
    if plot:
        report.figure = _plot_sizes(report.counts)
    return report


def size_mismatch(pair):
    """A message if the pair's mask and image differ in size (from headers), else None.

    Such a mask is still used: the pipeline resizes both to the network size, and evaluation
    scores at the mask's size; callers log this message as a warning.

    Raises:
        ImageReadError: a header cannot be read.
    """
    pair = as_pair(pair)
    image_size, mask_size = read_image_size(pair.image_path), read_image_size(pair.mask_path)
    if image_size == mask_size:
        return None
    (image_height, image_width), (mask_height, mask_width) = image_size, mask_size
    message = (f"mask '{pair.mask_path.name}' is {mask_width}x{mask_height} but its image "
               f"'{pair.image_path.name}' is {image_width}x{image_height} (width x height)")
    image_shape, mask_shape = image_width / image_height, mask_width / mask_height
    if abs(mask_shape - image_shape) > _SAME_SHAPE * image_shape:
        message += (f", another shape too (width / height {mask_shape:.2f} against "
                    f"{image_shape:.2f}): is it the mask of this very view, not of a crop?")
    return message


def log_size_mismatches(messages, consequence):
    """Log the first few `size_mismatch` messages, each with `consequence`, then how many more
    there are (one line, not one per pair of a whole folder)."""
    for message in messages[:_NUM_LOGGED]:
        logger.warning("%s; %s", message, consequence)
    if len(messages) > _NUM_LOGGED:
        logger.warning("%d more masks differ in size from their image; %s (`inspect(pairs)` "
                       "lists them all)", len(messages) - _NUM_LOGGED, consequence)


def _plot_sizes(counts):
    figure = Figure(figsize=(10, 4), layout="constrained")
    scatter_axes, ratio_axes = figure.subplots(1, 2)
    if counts:
        sizes = np.array(list(counts.keys()), dtype=float)  # (num_sizes, 2): width, height
        numbers = np.array(list(counts.values()), dtype=float)
        scatter_axes.scatter(sizes[:, 0], sizes[:, 1], s=20 + 200 * numbers / numbers.max(),
                             alpha=0.6)
        ratio_axes.hist(sizes[:, 0] / sizes[:, 1], bins=20, weights=numbers)
    scatter_axes.set(xlabel="width (px)", ylabel="height (px)",
                     title=f"{int(sum(counts.values()))} images, {len(counts)} sizes")
    ratio_axes.set(xlabel="aspect ratio (width / height)", ylabel="images",
                   title="aspect ratios")
    return figure
