"""The owner of a prediction folder (`export_predictions`, `--predict-only`): what an earlier
prediction left there, and how a new one replaces it without losing it on the way.

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
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from .data import MASK_SUFFIX
from .errors import RunFolderError
from .files import replace_path
from .run_folder import OUTPUTS, PREDICTIONS_TABLE

__all__ = ["MASK_FILE_SUFFIX", "PREDICTIONS_RECORD", "PREDICTIONS_TABLE", "PredictionFolder",
           "mask_file"]

MASK_FILE_SUFFIX = f"{MASK_SUFFIX}.png"  # ISIC's naming: ISIC_0000000.jpg's mask file
PREDICTIONS_RECORD = "predictions.json"  # the settings the masks were predicted with
_PAGE = (OUTPUTS["review"], OUTPUTS["review_pictures"])  # review.py's page and its pictures
_STAGING_PREFIX = ".predictions-"


def mask_file(image_path):
    """The file name of an image's predicted mask, in ISIC's naming.

    Example:
        >>> mask_file("new/ISIC_0000000.jpg")
        'ISIC_0000000_segmentation.png'
    """
    return f"{Path(image_path).stem}{MASK_FILE_SUFFIX}"


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
                f"'{self.path}' holds {len(unlisted)} mask files that no {PREDICTIONS_TABLE} "
                f"there lists (e.g. '{unlisted[0]}'): new masks would mix with them or replace "
                f"them, so choose another --out")
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
            files = ", ".join([f"{masks} mask{'' if masks == 1 else 's'}",
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
