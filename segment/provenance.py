"""Where an ensemble's models come from, and the check that none of them saw what it is scored on.

    check_unseen(split.test, ["a/model.keras", "b/model.keras"])   # SegmentError if one did
    seen_note(pairs, "a/model.keras")       # "" or "; 12 of them in ...: not a test score"
    member_record("a/model.keras", model)   # {"path", "sha256", "encoder", ..., "split"}

A model's validation part chose its best epoch, so scoring an ensemble on pairs any member
trained on or validated on is leakage: its score would not be a test score. Each member's
`split.json` (beside its model) says which pairs it saw; a member without one is refused unless
the caller accepts the risk. One model scored on a folder that holds pairs it saw is scored, and
said to be so. The records go into the evaluation's settings (`summary.json`, the
report), so that a number can be traced to the exact files that made it.
"""

import hashlib
import logging
from pathlib import Path

from .colour_constancy import corrects_colour
from .errors import SegmentError
from .model import encoder_settings
from .run_folder import OUTPUTS, RunFolder
from .split import load_split

__all__ = ["check_unseen", "file_sha256", "member_record", "seen_note"]

logger = logging.getLogger(__name__)


def check_unseen(pairs, model_paths, accept_leakage_risk=False):
    """Raise unless no model of `model_paths` trained or chose its best epoch on any of `pairs`.

    Args:
        pairs: The pairs to be scored (`Pair`s; compared by id).
        model_paths: The ensemble's model files; each one's `split.json` is the one beside it.
        accept_leakage_risk: Let models without a `split.json` through, with a warning.

    Raises:
        SegmentError: a model's train or validation part holds one of `pairs` (the message
            names the model, the count and one id), or a model has no `split.json` and
            `accept_leakage_risk` is False.
    """
    ids, unverified = {pair.id for pair in pairs}, []
    for path in map(Path, model_paths):
        manifest, seen = _seen(ids, path)
        if manifest is None:
            unverified.append(path)
            continue
        if seen:
            raise SegmentError(f"'{path}' trained or chose its best epoch on {len(seen)} of "
                               f"the {len(ids)} pairs to evaluate (e.g. {min(seen)}, in the "
                               f"train and validation parts of {manifest}): an ensemble is "
                               f"scored only on pairs none of its models saw")
    if unverified and not accept_leakage_risk:
        raise SegmentError(f"no {OUTPUTS['split']} beside '{unverified[0]}' ({len(unverified)} "
                           f"of the {len(model_paths)} models): nothing shows it did not train "
                           f"or choose its best epoch on these pairs; if you know it did not, "
                           f"pass --accept-leakage-risk (accept_leakage_risk=True)")
    if unverified:
        logger.warning("scoring an ensemble with %d models of unknown training data (%s): "
                       "the score may not be a test score", len(unverified),
                       ", ".join(map(str, unverified)))


def seen_note(pairs, model_path):
    """"" where one model's `split.json` shows it saw none of `pairs` (or it has none), else a
    note for the description of what was scored, also logged as a warning: how many of them
    it trained or chose its best epoch on.

    Example:
        >>> seen_note(split.test, finished_run / "model.keras")
        ''
    """
    ids = {pair.id for pair in pairs}
    manifest, seen = _seen(ids, Path(model_path))
    if not seen:
        return ""
    note = (f"; {len(seen)} of them in the train and validation parts of {manifest} (e.g. "
            f"{min(seen)}): not a test score")
    logger.warning("'%s' trained or chose its best epoch on %d of the %d pairs scored%s",
                   model_path, len(seen), len(ids), note)
    return note


def _seen(ids, model_path):
    """(the `split.json` beside the model or None, the ids of `ids` in its train and
    validation parts)."""
    manifest = RunFolder(model_path.parent).split
    if not manifest.exists():
        return None, set()
    split = load_split(manifest, check_files=False)  # its ids alone: the files may have moved
    return manifest, ids & {pair.id for pair in [*split.train, *split.val]}


def member_record(path, model):
    """What identifies one ensemble member: its file's path and SHA-256, its encoder and
    whether it removes colour casts (both read from the model itself), and its split manifest
    (None where there is none)."""
    manifest = RunFolder(Path(path).parent).split
    return {"path": str(path), "sha256": file_sha256(path),
            "encoder": encoder_settings(model)["encoder"],
            "colour_constancy": corrects_colour(model),
            "split": str(manifest) if manifest.exists() else None}


def file_sha256(path):
    """Hex SHA-256 of a model file (of a SavedModel folder: of its files' names and bytes)."""
    path, digest = Path(path), hashlib.sha256()
    files = sorted(item for item in path.rglob("*") if item.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
