"""Review every prediction in one offline page: `review.html` and its pictures (`review/`).

The page has one row per image: a thumbnail with the truth's outline (green) and the
prediction's (red), the scores, the lesion's and the prediction's share of the image and the
confidence; sortable by every column, filterable, worst first. A click (or the arrow keys)
opens an image at up to 512 pixels beside its truth, its prediction, an overlay of adjustable
opacity and the probability map. It opens from `file://`, with no server and no network: its
script and style are inline, its pictures are files beside it.

`evaluate(..., review=True)` (what `results(run_dir=...)` asks for) and `export_predictions`
encode each image's pictures in their one pass over the images; the page is written with the
other files. From a notebook:

    table = review_table("runs/first")   # the page's rows, a DataFrame, worst first
    with_thumbnails(table.head(20))      # the same rows with their thumbnails
    show_worst("runs/first", 8)          # the 8 worst overlays, a matplotlib Figure
"""

import base64
import io
import json
import logging
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image

from .errors import ImageReadError, SegmentError
from .files import json_text, printable, replace_path, write_json_atomic, write_text_atomic
from .images import (
    load_input_image,
    read_image_size,
    resize_image,
    resize_mask,
    resize_probabilities,
)
from .metrics import LESION_SIZE_BINS, boundary
from .run_folder import OUTPUTS

__all__ = ["REVIEW_FOLDER", "REVIEW_PAGE", "ReviewPictures", "review_pictures", "review_table",
           "show_worst", "with_thumbnails", "write_review"]

logger = logging.getLogger(__name__)

REVIEW_PAGE = OUTPUTS["review"]  # the names a run folder gives them
REVIEW_FOLDER = OUTPUTS["review_pictures"]  # beside the page: its pictures and rows.json
EARLIER_OVERLAY = "earlier_overlay.png"  # an earlier evaluation's overlay (`add_comparison`)
DETAIL_SIDE = 512  # long side of the detail view's pictures (smaller images keep their size)
THUMBNAIL_SIDE = 96
_TRUTH, _PREDICTION, _BOTH = (0, 170, 60), (220, 30, 30), (240, 200, 0)
_VIRIDIS = (colormaps["viridis"](np.arange(256))[:, :3] * 255).astype(np.uint8)  # (256, 3)
# The page's columns: (key, label, how shown). "4" and "1" are decimals, "%" a share.
_EVALUATION_COLUMNS = [("dice", "dice", "4"), ("jaccard", "Jaccard", "4"),
                       ("thresholded_jaccard", "ISIC Jaccard", "4"), ("hd95", "HD95 px", "1"),
                       ("truth_share", "lesion", "%"), ("predicted_share", "predicted", "%"),
                       ("confidence", "confidence", "4"), ("flagged", "flagged", "flag")]
_PREDICTION_COLUMNS = [("predicted_share", "predicted", "%"), ("confidence", "confidence", "4"),
                       ("flagged", "flagged", "flag")]


@dataclass
class ReviewPictures:
    """One image's pictures for the page, encoded: file suffix -> bytes.

    Suffixes: "thumb.jpg" (long side 96, outlines drawn), "image.jpg", "prediction.png",
    "overlay.png" (the masks in colour on a transparent ground) and, with a truth, "truth.png",
    at up to 512 pixels on the long side; "probability.jpg" (viridis: dark 0, yellow 1) at up to
    256, as probabilities vary smoothly (the page shows it as large as the others).
    """

    files: dict


def review_pictures(image, probabilities, predicted, truth=None):
    """Encode one image's review pictures (30 to 50 KB for a 512x512 dermoscopy image).

    Args:
        image: the image's path (decoded here once, at the detail size) or a uint8
            (h, w, 3) array.
        probabilities: float (h, w) lesion probabilities, at any size.
        predicted, truth: uint8 (h, w) masks in {0, 1}, at any size; truth may be None.

    Returns:
        ReviewPictures; None when the image cannot be decoded again (logged with its name and
        the reason: the page shows a placeholder, the evaluation goes on).

    Example:
        >>> pictures = review_pictures(np.zeros((40, 60, 3), np.uint8), np.full((8, 8), 0.7),
        ...                            np.ones((40, 60), np.uint8))
        >>> sorted(pictures.files)
        ['image.jpg', 'overlay.png', 'prediction.png', 'probability.jpg', 'thumb.jpg']
    """
    try:
        own_size = image.shape[:2] if isinstance(image, np.ndarray) else read_image_size(image)
        size = _scaled(own_size, DETAIL_SIDE)
        picture = (resize_image(image, size) if isinstance(image, np.ndarray)
                   else load_input_image(image, size))
    except ImageReadError as error:
        logger.warning("no review pictures: %s", error)
        return None
    masks = {"prediction": resize_mask(predicted, size)}
    if truth is not None:
        masks["truth"] = resize_mask(truth, size)
    smooth = resize_probabilities(probabilities, _scaled(own_size, DETAIL_SIDE // 2))
    files = {"image.jpg": _encode(picture, "JPEG"),
             "overlay.png": _encode(_overlay(masks), "PNG"),
             "probability.jpg": _encode(_VIRIDIS[np.clip(smooth * 255 + 0.5, 0, 255).astype(
                 np.uint8)], "JPEG"),
             "thumb.jpg": _encode(_thumbnail(picture, masks), "JPEG")}
    for name, mask in masks.items():
        files[f"{name}.png"] = _encode(Image.fromarray(mask.astype(bool)), "PNG")
    return ReviewPictures(files)


def write_review(folder, table, pictures, summary=None):
    """Write `review.html` and `review/` (pictures and rows.json) into `folder`, replacing any.

    Both are staged in `folder` first and moved into place when complete, so an interrupted
    write leaves the previous page whole.

    Args:
        folder: the folder to write into (created if missing).
        table: DataFrame indexed by id: an evaluation's table (with a truth_area column) or
            predictions.csv's; confidence and flagged columns are shown when present.
        pictures: one `ReviewPictures` (or None: the page shows a placeholder) per row, or [].
        summary: the evaluation's summary, shown at the top; None for predictions.

    Returns:
        Path of the page.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = _rows(table, pictures)
    data = _page_data(rows, "truth_area" in table, summary)
    staging = Path(tempfile.mkdtemp(prefix=".review-", dir=folder))
    try:
        (staging / REVIEW_FOLDER).mkdir()
        for row, each in zip(rows, pictures, strict=False):
            for suffix, content in (each.files.items() if each else []):
                (staging / REVIEW_FOLDER / f"{row['file']}_{suffix}").write_bytes(content)
        write_json_atomic(staging / REVIEW_FOLDER / "rows.json", rows)
        (staging / REVIEW_PAGE).write_text(_page(data), encoding="utf-8")
        for name in (REVIEW_FOLDER, REVIEW_PAGE):
            replace_path(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / REVIEW_PAGE


def add_comparison(folder, summary, change, earlier, against):
    """Show an earlier evaluation of the same images on the review page in `folder`: a "dice
    change" column, and in the detail view the earlier overlay (truth and prediction) beside
    the new one (`compare_and_write`). The page's own pictures stay as they are.

    Args:
        folder: the folder holding `review.html` and `review/`.
        summary: the evaluation's summary, shown at the top as before.
        change: each image's dice minus its earlier dice, one number per row in the rows'
            order (the evaluation table's); NaN: blank.
        earlier: {id: PNG bytes} of the earlier overlays (`earlier_overlays`); an image
            without one, or with one of another size than its own overlay, shows none.
        against: what the page calls the earlier evaluation (its table's path).
    """
    pictures_dir = Path(folder) / REVIEW_FOLDER
    rows = json.loads((pictures_dir / "rows.json").read_text(encoding="utf-8"))
    for row, value in zip(rows, change, strict=True):
        row["dice_change"] = _number(value)
        shown = pictures_dir / f"{row['file']}_{EARLIER_OVERLAY}"
        size = row["pictures"] and _png_size(pictures_dir / f"{row['file']}_overlay.png")
        row["earlier"] = bool(size and row["id"] in earlier
                              and _png_size(io.BytesIO(earlier[row["id"]])) == size)
        if row["earlier"]:
            shown.write_bytes(earlier[row["id"]])
        else:  # nor one an earlier comparison left
            shown.unlink(missing_ok=True)
    write_json_atomic(pictures_dir / "rows.json", rows)  # after the pictures it names
    data = _page_data(rows, True, summary,
                      [{"key": "dice_change", "label": "dice change", "show": "4"}])
    write_text_atomic(Path(folder) / REVIEW_PAGE, _page({**data, "earlier": against}))


def earlier_overlays(folder, dice):
    """The overlays on the review page in `folder` of an earlier evaluation, {id: PNG bytes},
    taken only where that page scores the images it shares with `dice` (that evaluation's dice
    by id, a Series) as `dice` does, to the 6 decimals evaluation.csv keeps, so pictures that
    another evaluation left in the folder are never shown as its; else {} (with a warning
    where there is a page). Whether each is a PNG of the right size, `add_comparison` checks.
    """
    pictures_dir = Path(folder) / REVIEW_FOLDER
    try:
        rows = json.loads((pictures_dir / "rows.json").read_text(encoding="utf-8"))
    except OSError:
        return {}  # no page
    try:
        page = pd.Series({row["id"]: row["dice"] for row in rows}, dtype=float)
        files = {row["id"]: row["file"] for row in rows if row["pictures"]}
        shared = page.index.intersection(dice.index)
        same = not shared.empty and np.allclose(page[shared], dice[shared], rtol=0, atol=1e-6,
                                                equal_nan=True)
    except (ValueError, TypeError, KeyError, AttributeError):
        same = False
    if not same:
        logger.warning("the review page in '%s' is not that of the evaluation compared with: "
                       "its earlier predictions are not shown", folder)
        return {}
    overlays = {}
    for image_id, file in files.items():
        path = pictures_dir / f"{file}_overlay.png"
        if re.fullmatch(r"\d+", str(file)) and path.is_file():
            overlays[image_id] = path.read_bytes()
    return overlays


def review_table(folder):
    """The review page's rows in `folder` as a DataFrame indexed by id, worst first.

    Worst first: by dice for an evaluation, by confidence for predictions. The `thumbnail`
    column holds each thumbnail's path (None where there is none).

    Raises:
        SegmentError: `folder` holds no readable review (`review/rows.json`).

    Example:
        >>> table = review_table(finished_run)  # train_and_evaluate's report is at its root
        >>> table["dice"].is_monotonic_increasing, table["thumbnail"].iloc[0].is_file()
        (True, True)
    """
    pictures_dir = Path(folder) / REVIEW_FOLDER
    try:
        rows = json.loads((pictures_dir / "rows.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SegmentError(f"'{folder}' holds no readable review ({REVIEW_FOLDER}/rows.json: "
                           f"{error.__class__.__name__}): pass the folder of an evaluation or "
                           f"a prediction (a run folder, evaluation/, --out)") from None
    table = pd.DataFrame(rows).set_index("id")
    table["thumbnail"] = [pictures_dir / f"{file}_thumb.jpg" if has else None
                          for file, has in zip(table["file"], table["pictures"], strict=True)]
    worst_by = "dice" if "dice" in table else "confidence"
    return table.drop(columns=["file", "pictures"]).sort_values(worst_by, kind="stable")


def with_thumbnails(table):
    """A `review_table` (or some of its rows) styled to show each thumbnail inline in Jupyter.

    Returns:
        pandas Styler: the thumbnails embedded as data URIs, the numbers to 4 decimals, the
        ids and other text escaped.

    Example:
        >>> shown = with_thumbnails(review_table(finished_run).head(2)).to_html()
        >>> shown.count("data:image/jpeg;base64,")
        2
    """
    def image_tag(path):
        if path is None or not Path(path).is_file():
            return "no image"
        encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        return f'<img src="data:image/jpeg;base64,{encoded}">'

    return (table.style.format(precision=4, escape="html")  # an id is text, never markup
            .format({"thumbnail": image_tag}).format_index(escape="html"))


def show_worst(folder, num_images=8):
    """The `num_images` worst rows of a review folder: each image with its overlay, a Figure.

    Example:
        >>> len(show_worst(finished_run, 2).axes)
        2
    """
    pictures_dir = Path(folder) / REVIEW_FOLDER
    worst = review_table(folder).head(num_images)
    worst = worst[worst["thumbnail"].notna()]
    figure = Figure(figsize=(3 * max(1, len(worst)), 3.4), layout="constrained")
    for axes, (image_id, row) in zip(figure.subplots(1, max(1, len(worst)), squeeze=False)[0],
                                     worst.iterrows(), strict=False):
        stem = row["thumbnail"].name.removesuffix("_thumb.jpg")
        axes.imshow(Image.open(pictures_dir / f"{stem}_image.jpg"))
        axes.imshow(Image.open(pictures_dir / f"{stem}_overlay.png").convert("RGBA"), alpha=0.5)
        score = f"dice {row['dice']:.3f}" if "dice" in row else f"conf. {row['confidence']:.3f}"
        axes.set_title(f"{image_id}\n{score}", fontsize=9)
        axes.axis("off")
    return figure


def _rows(table, pictures):
    """The page's rows: id, file (the pictures' prefix), the shown columns, pictures (bool)."""
    rows = []
    for position, (image_id, values) in enumerate(table.iterrows()):
        row = {"id": printable(str(image_id)), "file": f"{position:04d}",
               "pictures": position < len(pictures) and pictures[position] is not None}
        if "truth_area" in values:
            area = values["height"] * values["width"]
            row.update({name: _number(values[name]) for name in
                        ("dice", "jaccard", "thresholded_jaccard", "hd95")})
            row["truth_share"] = float(values["truth_area"] / area)
            row["predicted_share"] = float(values["predicted_area"] / area)
        else:
            row["predicted_share"] = float(values["predicted_share"])
        for name in ("confidence", "flagged"):
            if name in values:
                row[name] = (bool(values[name]) if name == "flagged"
                             else _number(values[name]))
        rows.append(row)
    return rows


def _page_data(rows, labelled, summary, more_columns=()):
    """What the page shows: its kind (an evaluation where `labelled`, else predictions), columns
    (the table's own, then `more_columns`), rows, summary and the lesion-size bins."""
    return {"kind": "evaluation" if labelled else "predictions",
            "columns": [*({"key": key, "label": label, "show": show} for key, label, show in
                          (_EVALUATION_COLUMNS if labelled else _PREDICTION_COLUMNS)
                          if rows and key in rows[0]), *more_columns],
            "rows": rows, "summary": summary,
            "bins": [[label, low, high if math.isfinite(high) else None]
                     for label, low, high in LESION_SIZE_BINS]}


def _page(data):
    """The page: the template with `data` embedded as JSON that no markup can break out of."""
    text = json_text(data)
    for character, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(character, escaped)
    template = resources.files(__package__).joinpath("review_page.html").read_text("utf-8")
    return template.replace("__REVIEW_DATA__", text)


def _number(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _scaled(size, side):
    """(height, width) shrunk so the long side is at most `side`; never enlarged."""
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _png_size(picture):
    """(width, height) of a PNG (a path or a file object) from its header; None if not one."""
    try:
        with Image.open(picture, formats=["PNG"]) as opened:
            return opened.size
    except (OSError, ValueError):  # PIL's UnidentifiedImageError is an OSError
        return None


def _overlay(masks):
    """A palette image: transparent, truth only (green), prediction only (red), both (yellow)."""
    index = masks["prediction"].astype(np.uint8) * 2
    if "truth" in masks:
        index += masks["truth"].astype(np.uint8)
    overlay = Image.fromarray(index)
    overlay.putpalette([0, 0, 0, *_TRUTH, *_PREDICTION, *_BOTH])  # "L" becomes "P"
    overlay.info["transparency"] = bytes([0, 255, 255, 255])
    return overlay


def _thumbnail(picture, masks):
    """uint8 (h, w, 3): the picture at long side 96 with each mask's outline drawn."""
    size = _scaled(picture.shape[:2], THUMBNAIL_SIDE)
    thumbnail = np.array(resize_image(picture, size))  # a copy: the outlines are drawn on it
    for name, colour in (("truth", _TRUTH), ("prediction", _PREDICTION)):
        if name in masks:
            mask = resize_mask(masks[name], size).astype(bool)
            thumbnail[boundary(mask)] = colour
    return thumbnail


def _encode(picture, kind):
    """A picture's bytes as JPEG (quality 80) or PNG (zlib's default level: PIL's `optimize`
    made the pictures 2 % smaller at twice the time)."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buffer = io.BytesIO()
    image.save(buffer, kind, **({"quality": 80} if kind == "JPEG" else {}))
    return buffer.getvalue()
