"""Predictions as files: `export_predictions` (what `--predict-only` does) writes a folder of
ISIC-named masks with their table, settings and review page; `PredictionFolder` owns such a
folder: what an earlier prediction left there, and how a new one replaces it whole.

    export_predictions(model, "new_images/", "predictions/")   # ISIC_x_segmentation.png, ...
    folder = PredictionFolder("predictions/")
    with folder.writing(overwrite=False) as staging:   # refuses a folder holding a prediction
        ...  # write the masks, predictions.csv, predictions.json and the review page to staging
    # done: the staged files are in the folder, and the earlier prediction's files are gone

A prediction's files are the masks its `predictions.csv` lists, that table, `predictions.json`
(how it predicted), `review.html` and `review/`. Until the block ends, the earlier ones stay as
they were: an error or a kill leaves them whole, and only a hidden staging folder, which the
next prediction into the folder removes. Masks that no `predictions.csv` lists (`*_segmentation.png`
written by hand, by another tool, or ground truth) are not this library's: the folder is refused,
with or without overwrite, so that no one's masks are mixed with or replaced by new ones; so is
an evaluation's folder (`report.html`), whose review page a prediction's would replace.
"""

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from .confidence import least_confident
from .config import EvalConfig, with_overrides
from .data import MASK_FILE_SUFFIX, PREDICTIONS_TABLE, index_by_id, mask_file
from .errors import RunFolderError, counted
from .files import replace_path, write_json_atomic
from .images import read_image_size, save_mask
from .prediction import folder_images, iter_probabilities, prediction_settings, to_mask
from .review import review_pictures, write_review
from .run_folder import OUTPUTS
from .runtime import library_versions

__all__ = ["PREDICTIONS_COLUMNS", "PREDICTIONS_RECORD", "PREDICTIONS_TABLE", "PredictionFolder",
           "export_predictions", "write_predictions_table"]

logger = logging.getLogger(__name__)

PREDICTIONS_RECORD = "predictions.json"  # the settings the masks were predicted with
# predictions.csv's columns, after the id: each mask's file, size, share and confidence
PREDICTIONS_COLUMNS = ("mask", "height", "width", "predicted_share", "confidence", "flagged")
_PAGE = (OUTPUTS["review"], OUTPUTS["review_pictures"])  # review.py's page and its pictures
_STAGING_PREFIX = ".predictions-"


def export_predictions(model, images, out_dir, config=None, *, image_size=None, progress=True,
                       overwrite=False, **overrides):
    """Write one 0/255 mask PNG per image at its own size, in ISIC's naming; `predictions.csv`,
    one row per mask; `predictions.json`, how they were predicted (`prediction_settings`, the
    unreadable images, the versions); and the review page (`review.html`, `review/`).

    The table, indexed by id: mask (its file name), height and width, predicted_share (the
    mask's share of the image), confidence (as `iter_probabilities`) and flagged: True for the
    `config.flag_share` least confident masks (rounded up; ties in their order).

    An earlier prediction in `out_dir` is replaced, with `overwrite`, once the new one is whole
    (`PredictionFolder`).

    Args:
        model: Keras model, or an `Ensemble`.
        images: A folder of images (its masks, `<id>_segmentation.png`, left out), or paths.
        out_dir: Output folder; masks are named `<id>_segmentation.png`.
        config, image_size, progress, **overrides: as for `iter_predictions` (masks are
            always written at the image's own size); `flag_share=0.1` by default.
        overwrite: Replace an earlier prediction in `out_dir`. Defaults to False.

    Returns:
        (written, skipped): list of the written paths, and (path, reason) of the images not
        predicted: unreadable, or a second file of one id (ISIC_1.png beside ISIC_1.jpg; the
        first in `data.IMAGE_SUFFIXES`' order is predicted, as `find_pairs` pairs it).

    Raises:
        RunFolderError: an earlier prediction in `out_dir` without `overwrite`; or, with it
            too, masks there that no prediction of this library wrote, an evaluation's
            report, or a file in the folder's place.

    Example:
        >>> written, skipped = export_predictions(model, data_dir / "images", tmp, tta=True)
        >>> len(written), written[0].name, skipped
        (12, 'SYNTH_0000000_segmentation.png', [])
        >>> import pandas as pd
        >>> int(pd.read_csv(tmp / "predictions.csv")["flagged"].sum())  # 10 % of 12, rounded up
        2
    """
    config = with_overrides(config, EvalConfig, {**overrides, "original_size": True})
    unreadable = []  # entries of a folder that cannot be examined (a symbolic link loop)
    if isinstance(images, (str, Path)):
        images, unreadable = folder_images(images)
    images, skipped = _one_image_per_id([Path(path) for path in images])
    skipped += unreadable
    folder = PredictionFolder(out_dir)
    written, rows, pictures = [], [], []
    with folder.writing(overwrite) as staging:
        for path, probabilities, confidence in iter_probabilities(model, images, image_size,
                                                                   config, progress, skipped):
            mask = to_mask(probabilities, read_image_size(path), config)
            name = mask_file(path)
            save_mask(mask, staging / name)
            written.append(folder.path / name)
            rows.append({"id": Path(path).stem, "mask": name, "height": mask.shape[0],
                         "width": mask.shape[1], "predicted_share": float(mask.mean()),
                         "confidence": confidence})
            pictures.append(review_pictures(path, probabilities, mask))
        if rows:
            table = pd.DataFrame(rows).set_index("id")
            table["flagged"] = least_confident(table["confidence"], config.flag_share)
            write_predictions_table(table, staging)
            write_json_atomic(staging / PREDICTIONS_RECORD, {
                "settings": prediction_settings(model, config, image_size), "masks": len(rows),
                "skipped": [{"path": file, "reason": reason} for file, reason in skipped],
                "versions": library_versions()})
            write_review(staging, table, pictures)
    logger.info("wrote %s to '%s' (%s not predicted)", counted(len(written), "mask"), folder.path,
                counted(len(skipped), "image"))
    return written, skipped


def write_predictions_table(table, folder):
    """Write `folder`/predictions.csv: `table` (indexed by id) in `PREDICTIONS_COLUMNS`, one
    row per predicted mask. `--predict-only` and an evaluation's `predicted_masks/` both write
    it; beside masks it marks them as predictions, never ground truth (`data.find_pairs`)."""
    table.loc[:, list(PREDICTIONS_COLUMNS)].to_csv(folder / PREDICTIONS_TABLE,
                                                   float_format="%.6g", errors="surrogateescape")


def _one_image_per_id(images):
    """(images, skipped): `images` in their order, each id (file stem) once, and (path, reason)
    of each other file of an id already taken, logged."""
    images = list(dict.fromkeys(images))  # a file listed twice is one image
    kept, others = index_by_id(images, lambda path: path.stem)
    skipped = [(str(path), f"'{path}' has the id of '{kept[path.stem]}', which is predicted "
                           f"instead: one mask per id") for path in others]
    for _, reason in skipped:
        logger.warning("skipping image: %s", reason)
    others = set(others)
    return [path for path in images if path not in others], skipped


class PredictionFolder:
    """A folder of predicted masks: what is there, and a staged replacement of it.

    Args:
        path: The folder (created by `writing`).

    Example:
        >>> folder = PredictionFolder(tmp / "predictions")
        >>> mask = "ISIC_0000000_segmentation.png"
        >>> with folder.writing(overwrite=False) as staging:
        ...     _ = (staging / mask).write_bytes(b"a mask")
        ...     _ = (staging / "predictions.csv").write_text(f"id,mask\\nISIC_0000000,{mask}\\n")
        >>> sorted(folder.earlier_outputs())
        ['ISIC_0000000_segmentation.png', 'predictions.csv']
        >>> try:
        ...     with folder.writing(overwrite=False) as staging:
        ...         pass
        ... except RunFolderError as error:
        ...     print(str(error).split("' ")[1].split(";")[0])
        already holds an earlier prediction (1 mask, predictions.csv)
    """

    def __init__(self, path):
        self.path = Path(path)

    def earlier_outputs(self):
        """Names of the files and folders an earlier prediction left here.

        Raises:
            RunFolderError: `predictions.csv` cannot be read or names a mask outside the folder,
                or masks are here that it does not list.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"'{self.path}' is a file, not a folder: choose another --out")
        if not self.path.is_dir():
            return set()
        if (self.path / OUTPUTS["report"]).exists():
            raise RunFolderError(f"'{self.path}' holds an evaluation ({OUTPUTS['report']}), "
                                 f"whose review page the prediction's would replace: choose "
                                 f"another --out")
        listed = self._listed_masks()
        unlisted = sorted(path.name for path in self.path.glob(f"*{MASK_FILE_SUFFIX}")
                          if path.name not in listed)
        if unlisted:
            raise RunFolderError(
                f"'{self.path}' holds {counted(len(unlisted), 'mask file')} that no "
                f"{PREDICTIONS_TABLE} there lists (e.g. '{unlisted[0]}'): new masks would mix "
                f"with them or replace them, so choose another --out")
        present = [name for name in (PREDICTIONS_TABLE, PREDICTIONS_RECORD, *_PAGE)
                   if (self.path / name).exists()]
        return {name for name in listed if (self.path / name).exists()} | set(present)

    @contextlib.contextmanager
    def writing(self, overwrite):
        """Yield an empty staging folder inside this one; when the block ends without an
        error, move its contents here and remove the earlier prediction's other files.

        Args:
            overwrite: Replace an earlier prediction here; without it, one is refused.

        Raises:
            RunFolderError: an earlier prediction is here and `overwrite` is False, or the
                folder holds masks that are not a prediction's (see `earlier_outputs`).
        """
        earlier = self.check(overwrite)
        self.path.mkdir(parents=True, exist_ok=True)
        for left in self.path.glob(f"{_STAGING_PREFIX}*"):  # a killed prediction's
            shutil.rmtree(left, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.path))
        try:
            yield staging
            if any(staging.iterdir()):
                self._replace(earlier, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def check(self, overwrite):
        """The earlier prediction's names (`earlier_outputs`), or RunFolderError where there
        is one and `overwrite` is False; `writing` checks first, and a caller may check before
        the work that `writing` would wrap (e.g. loading a model)."""
        earlier = self.earlier_outputs()
        if earlier and not overwrite:
            masks = sum(name.endswith(MASK_FILE_SUFFIX) for name in earlier)
            files = ", ".join([counted(masks, "mask"),
                               *sorted(earlier & {PREDICTIONS_TABLE, PREDICTIONS_RECORD, *_PAGE})])
            raise RunFolderError(
                f"'{self.path}' already holds an earlier prediction ({files}); "
                f"pass --overwrite (overwrite=True) to replace it once the new one is written, "
                f"or choose another --out")
        return earlier

    def _listed_masks(self):
        """The mask names the folder's `predictions.csv` lists; checked to be plain names."""
        table = self.path / PREDICTIONS_TABLE
        if not table.exists():
            return set()
        try:
            names = pd.read_csv(table, usecols=["mask"], dtype=str,
                                encoding_errors="surrogateescape")["mask"].dropna()
        except (ValueError, OSError, UnicodeError) as error:
            raise RunFolderError(f"'{table}' cannot be read as a prediction's table ({error}); "
                                 f"remove it or choose another --out") from None
        foreign = [name for name in names if Path(name).name != name
                   or not name.endswith(MASK_FILE_SUFFIX)]
        if foreign:
            raise RunFolderError(f"'{table}' lists '{foreign[0]}', which is not a mask file "
                                 f"name this library writes; remove it or choose another --out")
        return set(names)

    def _replace(self, earlier, staging):
        """Move the staged files in (the table last), then remove the earlier files the new
        prediction did not replace."""
        new = {path.name for path in staging.iterdir()}
        for name in sorted(new - {PREDICTIONS_TABLE}) + sorted(new & {PREDICTIONS_TABLE}):
            replace_path(staging / name, self.path / name)
        for name in earlier - new:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
