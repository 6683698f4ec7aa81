"""Procedural synthetic lesions: the demo's default data set and the tests' fixtures.

Each image is a skin-toned background with slow colour variation, one irregular lesion (a
star-shaped blob whose radius wobbles with angle, darker at its core), a few dark hair lines
drawn over it, vignetting and sensor noise. Sizes and aspect ratios vary around `size`. The
mask is the blob. A small model learns it in a few hundred steps, so it serves where the real
ISIC data (not shipped, never downloaded) is absent.
"""

import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .data import MASK_SUFFIX, Pair, PairList, first_names
from .files import atomic_path

__all__ = ["SYNTHETIC_ID", "make_synthetic_dataset", "make_synthetic_pair"]

logger = logging.getLogger(__name__)

# Ids of their own, never an ISIC archive id (ISIC_0000000 ...): a model trained on them and
# evaluated on real ISIC images must not be told it saw those images (segment.provenance), nor
# may a comparison pair a synthetic image with a real one of the same id.
SYNTHETIC_ID = "SYNTH_{:07d}"

_SKIN_TONES = np.array([[232, 190, 160], [215, 170, 140], [190, 145, 115], [240, 205, 185]])
_LESION_TONES = np.array([[120, 75, 55], [95, 60, 45], [140, 95, 75], [80, 50, 40]])


def make_synthetic_dataset(out_dir, n, size=(192, 256), seed=0):
    """Write `n` image/mask pairs of synthetic lesions, named as ISIC names its pairs.

    Layout: `out_dir/images/SYNTH_0000000.jpg` and `out_dir/masks/SYNTH_0000000_segmentation.png`
    (0/255), which `find_pairs(out_dir)` reads; the ids are not ISIC's (`SYNTHETIC_ID`). Image
    i depends only on (seed, i), so a larger `n` adds images without changing the first ones.

    Args:
        out_dir: Folder to write into (created if needed).
        n: Number of pairs, >= 1.
        size: Typical (height, width); each image's sides vary by -20 % to +25 %.
            Defaults to (192, 256).
        seed: Integer seed. Defaults to 0.

    Returns:
        PairList of the `n` written pairs, sorted by id (other files already in `out_dir`
        are left alone and not returned; a warning counts and names them). A file that
        already holds the same bytes is not written again, so its modification time, and the
        fingerprint of a run or cache that used it, stay the same.

    Example:
        >>> pairs = make_synthetic_dataset(tmp / "synthetic", 3, size=(48, 64))
        >>> len(pairs), pairs[0].id, pairs[0].image_path.parent.name
        (3, 'SYNTH_0000000', 'images')
    """
    if int(n) < 1:
        raise ValueError(f"n must be at least 1. Received: n={n}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    pairs, pairs_written = PairList(), 0
    for index in range(int(n)):
        rng = np.random.default_rng([seed, index])
        height, width = (max(16, round(side * rng.uniform(0.8, 1.25))) for side in size)
        image, mask = make_synthetic_pair(rng, (height, width))
        pair_id = SYNTHETIC_ID.format(index)
        pair = Pair(out_dir / "images" / f"{pair_id}.jpg",
                    out_dir / "masks" / f"{pair_id}{MASK_SUFFIX}.png")
        image_written = _write_if_changed(pair.image_path, _encode(image, "JPEG", quality=90))
        mask_written = _write_if_changed(pair.mask_path, _encode(
            np.where(mask > 0, 255, 0).astype(np.uint8), "PNG"))
        pairs_written += image_written or mask_written
        pairs.append(pair)
    logger.info("%d synthetic pairs in '%s': %d written, %d already there", n, out_dir,
                pairs_written, int(n) - pairs_written)
    written = {pair.image_path.name for pair in pairs}
    if others := sorted(path for path in (out_dir / "images").iterdir()
                        if path.name not in written):
        logger.warning("'%s' also holds %d files this set did not write (%s), e.g. from a "
                       "larger set or an older version's ISIC_ ids: they are not "
                       "used here, but find_pairs on the folder would pair them too",
                       out_dir / "images", len(others), first_names(others))
    return pairs


def _encode(array, image_format, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _write_if_changed(path, data):
    """Write `data` to `path` unless it holds those bytes already; True where it wrote."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass  # missing or unreadable: write it
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True


def make_synthetic_pair(rng, size):
    """Draw one synthetic lesion.

    Args:
        rng: numpy Generator.
        size: (height, width).

    Returns:
        (image, mask): uint8 (height, width, 3) RGB and uint8 (height, width) in {0, 1}.
    """
    height, width = size
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.normal(0, 8, 3)
    image = skin + 12 * _smooth_noise(rng, rows / height, cols / width)[..., None]

    # The lesion: radius(angle) = r0 * (1 + sum_k a_k cos(k angle + phase_k)), k = 2..5.
    centre = np.array([height, width]) * rng.uniform(0.35, 0.65, 2)
    radius = min(height, width) * rng.uniform(0.12, 0.32)
    stretch = rng.uniform(0.75, 1.3)
    angle = np.arctan2(rows - centre[0], (cols - centre[1]) / stretch)
    wobble = sum(rng.uniform(0, 0.25) / k * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
                 for k in range(2, 6))
    distance = np.hypot(rows - centre[0], (cols - centre[1]) / stretch) / (radius * (1 + wobble))
    mask = distance < 1.0
    core = _LESION_TONES[rng.integers(len(_LESION_TONES))] + rng.normal(0, 10, 3)
    edge = 0.55 * core + 0.45 * skin
    depth = np.clip(distance, 0, 1)[..., None]  # 0 at the centre, 1 at the border
    lesion = core * (1 - depth) + edge * depth
    lesion += 15 * _smooth_noise(rng, rows / radius / 2, cols / radius / 2)[..., None]
    opacity = np.clip((1.0 - distance) / 0.06 + 0.5, 0, 1)[..., None]  # soft 0.5 at the border
    image = image * (1 - opacity) + lesion * opacity

    # Vignetting and sensor noise.
    corner = np.hypot(rows / height - 0.5, cols / width - 0.5) / np.hypot(0.5, 0.5)
    image *= (1 - rng.uniform(0.1, 0.4) * corner**2)[..., None]
    image += rng.normal(0, 3, image.shape)
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    _draw_hairs(rng, picture)
    return np.asarray(picture), mask.astype(np.uint8)


def _smooth_noise(rng, rows, cols, num_waves=4):
    """Low-frequency noise in about [-1, 1]: a sum of random plane waves."""
    noise = np.zeros_like(rows)
    for _ in range(num_waves):
        frequency = rng.uniform(1, 4, 2)
        noise += np.sin(2 * np.pi * (frequency[0] * rows + frequency[1] * cols)
                        + rng.uniform(0, 2 * np.pi))
    return noise / np.sqrt(num_waves)


def _draw_hairs(rng, picture):
    """Draw 0-4 dark, slightly curved hairs over the picture (they are not lesion)."""
    draw = ImageDraw.Draw(picture)
    width, height = picture.size
    for _ in range(rng.integers(0, 5)):
        point = rng.uniform([0, 0], [width, height])
        direction = rng.uniform(0, 2 * np.pi)
        points = [tuple(point)]
        for _ in range(12):
            direction += rng.normal(0, 0.15)
            point = point + 0.06 * max(width, height) * np.array([np.cos(direction),
                                                                  np.sin(direction)])
            points.append(tuple(point))
        colour = tuple(int(c) for c in rng.integers(20, 60, 3))
        draw.line(points, fill=colour, width=int(rng.integers(1, 3)))
