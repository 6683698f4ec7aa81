"""Synthetic dermoscopy artifacts drawn beside the lesion of training images (`--artifacts`).

Many images a lesion model fails on show a small, faint lesion beside a ring of ink dots or a
box drawn around it, an ink arrow, a ruler or the rim of a contact plate. `draw_artifacts`
draws such things on a share of the training images, never on the lesion (its mask grown by
`_LESION_GUARD` of the side stays untouched) and never changing the mask, so the network sees
them as skin. Per image drawn, 1 to 3 of:

    ink ring:   dots along an ellipse, or the outline of an ellipse or a rectangle, around the
                lesion's bounding box with a margin of 15-60 % of its size;
    ink stroke: a thick polyline of 2-4 points anywhere;
    ruler:      a line near an edge, nearly level or upright, with ticks (every fifth longer);
    plate rim:  a large light arc around the view's centre, with a faint shadow inside it.

Inks are purple, violet, blue or black, each channel jittered by up to 25, half to nearly
opaque. Works on uint8 (batch, h, w, 3) images at the network's size, before the augmentation.
"""

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

__all__ = ["draw_artifacts"]

_INKS = ((110, 60, 150), (75, 45, 125), (55, 65, 150), (35, 35, 45))  # purple, violet, blue, black
_LESION_GUARD = 0.02  # share of the image's side kept clear around the lesion
_RING_MARGIN = (0.15, 0.6)  # an ink ring's margin, a share of the lesion's size on each side


def draw_artifacts(images, masks, rng, share):
    """Each image, with probability `share`, with 1-3 synthetic artifacts outside its lesion.

    Args:
        images: uint8 (batch, h, w, 3).
        masks: uint8 (batch, h, w, 1) in {0, 1}; returned by the caller unchanged.
        rng: numpy Generator; the same state gives the same batch.
        share: Probability in [0, 1] that an image gets artifacts.

    Returns:
        uint8 (batch, h, w, 3): a copy of `images`, equal to it on every lesion pixel.

    Example:
        >>> images = np.full((1, 64, 64, 3), 200, np.uint8)
        >>> masks = np.zeros((1, 64, 64, 1), np.uint8); masks[0, 24:40, 24:40] = 1
        >>> drawn = draw_artifacts(images, masks, np.random.default_rng(0), share=1.0)
        >>> bool((drawn != images).any()), bool((drawn[0, 24:40, 24:40] == 200).all())
        (True, True)
    """
    drawn = images.copy()
    for index in range(len(images)):
        if rng.random() < share:
            drawn[index] = _with_artifacts(images[index], masks[index, ..., 0], rng)
    return drawn


def _with_artifacts(image, mask, rng):
    """uint8 (h, w, 3) image, uint8 (h, w) mask -> the image with artifacts outside the lesion."""
    height, width = mask.shape
    layer = Image.new("RGBA", (width, height))  # transparent; the shapes set their own alpha
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.integers(1, 4)):
        _DRAWERS[rng.integers(len(_DRAWERS))](draw, rng, mask)
    overlay = np.asarray(layer, np.float32)
    alpha = overlay[..., 3:] / 255  # (h, w, 1)
    guard = max(1, round(_LESION_GUARD * min(height, width)))
    alpha[ndimage.binary_dilation(mask > 0, iterations=guard)] = 0
    blended = image * (1 - alpha) + overlay[..., :3] * alpha
    return np.clip(blended.round(), 0, 255).astype(np.uint8)


def _ink(rng, opacity=(130, 230)):
    """A random ink colour with alpha, as Pillow's RGBA tuple."""
    base = np.asarray(_INKS[rng.integers(len(_INKS))]) + rng.integers(-25, 26, 3)
    return (*np.clip(base, 0, 255).tolist(), int(rng.integers(*opacity)))


def _ink_ring(draw, rng, mask):
    """Dots along an ellipse, or an ellipse or rectangle outline, around the lesion's box."""
    side = min(mask.shape)
    rows, cols = np.nonzero(mask)
    if rows.size:
        top, left, bottom, right = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
    else:  # no lesion: around the middle of the view
        height, width = mask.shape
        top, left, bottom, right = height / 3, width / 3, 2 * height / 3, 2 * width / 3
    margin = rng.uniform(*_RING_MARGIN) * max(bottom - top, right - left)
    box = (left - margin, top - margin, right + margin, bottom + margin)
    colour, width = _ink(rng), max(1, round(rng.uniform(0.008, 0.02) * side))
    style = rng.integers(3)
    if style == 0:
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        radii = ((box[2] - box[0]) / 2, (box[3] - box[1]) / 2)
        for angle in rng.uniform(0, 2 * np.pi, rng.integers(10, 40)):
            x, y = centre[0] + radii[0] * np.cos(angle), centre[1] + radii[1] * np.sin(angle)
            radius = rng.uniform(0.005, 0.012) * side
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    elif style == 1:
        draw.ellipse(box, outline=colour, width=width)
    else:
        draw.rectangle(box, outline=colour, width=width)


def _ink_stroke(draw, rng, mask):
    """A thick polyline of 2-4 points anywhere in the view."""
    height, width = mask.shape
    points = rng.uniform(0, 1, (rng.integers(2, 5), 2)) * (width, height)
    thickness = max(1, round(rng.uniform(0.01, 0.03) * min(height, width)))
    draw.line([tuple(point) for point in points], fill=_ink(rng), width=thickness, joint="curve")


def _ruler(draw, rng, mask):
    """A ticked line near one edge, within 20 degrees of level (or upright)."""
    height, width = mask.shape
    side = min(height, width)
    length, angle = rng.uniform(0.4, 0.9) * side, rng.uniform(-0.35, 0.35)
    start = np.asarray((rng.uniform(0, 1 - length / side) * width,
                        rng.uniform(0.75, 0.95) * height))  # (x, y) near the bottom edge
    direction = np.asarray((np.cos(angle), np.sin(angle)))
    normal = np.asarray((np.sin(angle), -np.cos(angle)))  # the ticks' side: up, away from the edge
    if rng.random() < 0.5:  # the top edge instead of the bottom one, ticks pointing down
        start[1], normal = height - start[1], -normal
    if rng.random() < 0.5:  # upright: swap the axes
        start, direction, normal = start[::-1], direction[::-1], normal[::-1]
    colour = (*rng.integers(20, 70, 3).tolist(), int(rng.integers(150, 230)))
    draw.line([tuple(start), tuple(start + length * direction)], fill=colour, width=1)
    spacing = rng.uniform(0.02, 0.04) * side
    for tick in range(int(length / spacing) + 1):
        foot = start + tick * spacing * direction
        tip = foot + (0.035 if tick % 5 == 0 else 0.018) * side * normal
        draw.line([tuple(foot), tuple(tip)], fill=colour, width=1)


def _plate_rim(draw, rng, mask):
    """A large light arc around the view's centre, with a faint shadow just inside it."""
    height, width = mask.shape
    side = min(height, width)
    centre = np.asarray((width, height)) * rng.uniform(0.3, 0.7, 2)
    radius, rim = rng.uniform(0.4, 0.8) * side, max(1, round(rng.uniform(0.005, 0.015) * side))
    start = rng.uniform(0, 360)
    extent = (start, start + rng.uniform(90, 270))
    light = (*rng.integers(215, 256, 3).tolist(), int(rng.integers(120, 220)))
    for offset, colour in ((rim, (60, 60, 70, int(rng.integers(40, 90)))), (0, light)):
        box = (*(centre - radius + offset), *(centre + radius - offset))
        draw.arc(box, *extent, fill=colour, width=rim)


_DRAWERS = (_ink_ring, _ink_stroke, _ruler, _plate_rim)
