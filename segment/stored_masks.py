"""Masks made elsewhere (another method, an earlier run, a challenge submission), scored as the
library scores its own: `StoredMasks` takes a model's place in `evaluate` and `results`.

    theirs = results(StoredMasks("nnunet_output/"), split.test, run_dir="runs/nnunet")
    compare(theirs.evaluation, ours.evaluation)   # image by image (segment.comparison)

Each pair's mask is found by its id: `<id>_segmentation.png`, or an image file named
`<id>.<suffix>`, ISIC's naming first (as `find_pairs` pairs masks). It is read as a truth is
(`load_segmented_image`: any value above 127 is lesion), or, where its values are all 0 or 1,
as a label map (1 is lesion, as nnU-Net and MONAI write masks). It is scored at the truth's
size, resized to it where its own size differs. Such masks come without probabilities, so
their confidence is NaN and none is flagged.
"""

import logging
import math
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .data import index_by_id, list_image_files, mask_file, mask_id
from .errors import ImageReadError, PairingError, counted
from .images import load_segmented_image

__all__ = ["StoredMasks"]

logger = logging.getLogger(__name__)


class StoredMasks:
    """A folder of predicted masks, in a model's place: `evaluate(StoredMasks(folder), pairs)`.

    Args:
        folder: The folder of masks, each `<id>_segmentation.png` or `<id>.<image suffix>`.

    Raises:
        PairingError: The folder does not exist or holds no image files.

    Example:
        >>> import pandas as pd
        >>> masks = StoredMasks(finished_run / "predicted_masks")  # the masks the run scored
        >>> test = segment.load_split(finished_run / "split.json").test
        >>> scored = segment.evaluate(masks, test, progress=False)
        >>> ran = pd.read_csv(finished_run / "evaluation.csv", index_col="id")
        >>> bool(np.allclose(scored.table["dice"], ran["dice"])), scored.settings["resolution"]
        (True, 'original')
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        files, unreadable = list_image_files(self.folder)
        self.by_id, duplicates = index_by_id(files, mask_id)
        for what, paths in [("skipped for a duplicate id", duplicates),
                            ("unreadable", [path for path, _ in unreadable])]:
            if paths:
                logger.warning("'%s': %s %s: %s", self.folder, counted(len(paths), "file"),
                               what, ", ".join(path.name for path in paths[:5]))

    def __repr__(self):
        return f"StoredMasks('{self.folder}')"

    def settings(self, config):
        """How the masks were scored (the evaluation's settings), for an `EvalConfig`.

        Raises:
            ValueError: `config` asks for what needs a model: tta, second_look, or scoring at
                a network's size (original_size=False).
        """
        if config.tta or config.second_look or not config.original_size:
            raise ValueError(f"'{self.folder}' holds masks, not a model: they are scored as "
                             f"they are, at each truth's own size, without tta, second_look or "
                             f"a network's resolution")
        return {"stored_masks": str(self.folder), "threshold": config.threshold,
                "postprocess": config.postprocess, "resolution": "original"}

    def iter_masks(self, pairs, progress, skipped):
        """Yield (pair, float32 (h, w) mask in {0, 1}, NaN confidence) for each of `pairs`
        (`Pair`s) whose mask is here and can be read; each other pair is logged and appended
        to `skipped` as (path, reason).

        Raises:
            PairingError: A pair's mask here is its truth's or its image's own file.
        """
        # disable=None: tqdm draws only on a terminal, as iter_probabilities' bar
        for pair in tqdm(pairs, desc="read masks", unit="image",
                         disable=None if progress else True):
            path = self.by_id.get(pair.id)
            for what, own in [("truth", pair.mask_path), ("image", pair.image_path)]:
                if path is not None and path.resolve() == Path(own).resolve():
                    raise PairingError(f"'{path}' is the {what} of '{pair.id}' itself: pass "
                                       f"the folder of the predicted masks")
            try:
                if path is None:
                    raise ImageReadError(self.folder / mask_file(pair.image_path),
                                         f"is missing: no mask of '{pair.id}' in the folder")
                mask = load_segmented_image(path, label_map=True)
            except ImageReadError as error:
                logger.warning("skipping pair: %s", error)
                skipped.append((str(error.path), str(error)))
                continue
            yield pair, mask.astype(np.float32), math.nan
