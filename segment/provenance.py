"""Where models come from, and the checks that none of them saw what it is scored on.

    check_unseen(split.test, ["a/model.keras", "b/model.keras"])   # SegmentError if one did
    seen_note(pairs, "a/model.keras")       # "" or "; 12 of them in ...: not a test score"
    member_record("a/model.keras", model)   # {"path", "sha256", "encoder", ..., "split"}
    check_init_unseen(split.test, "a/model.keras")   # before fine-tuning from it

A model's validation part chose its best epoch, so scoring an ensemble on pairs any member
trained on or validated on is leakage: its score would not be a test score. Each member's
`split.json` (beside its model) says which pairs it saw; a member without one is refused unless
the caller accepts the risk. One model scored on a folder that holds pairs it saw is scored, and
said to be so. A model fine-tuned from another (`TrainConfig.init_model`) saw what that one saw
too: its `config.json` names the model it started from and that file's SHA-256
(`starting_record`), and every check follows the chain while each file is still the one recorded.
The records go into the evaluation's settings (`summary.json`, the report), so that a number
can be traced to the exact files that made it.
"""

import logging
from pathlib import Path

from .colour_constancy import corrects_colour
from .errors import SegmentError
from .files import file_sha256
from .model import encoder_settings
from .run_folder import OUTPUTS, RunFolder
from .saving import init_model_record
from .split import load_split

__all__ = ["check_init_unseen", "check_unseen", "member_record", "seen_note", "starting_record"]

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
        raise SegmentError(f"no {OUTPUTS['split']} beside '{unverified[0]}' or beside a model "
                           f"it was fine-tuned from, or that model's file changed since "
                           f"({len(unverified)} of the {len(model_paths)} models): nothing shows "
                           f"it did not train or choose its best epoch on these pairs; if you "
                           f"know it did not, pass --accept-leakage-risk (accept_leakage_risk="
                           f"True)")
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


def check_init_unseen(pairs, init_model):
    """Raise where the model a run starts from (`TrainConfig.init_model`; None: none), or one
    it was fine-tuned from in turn, trained or chose its best epoch on any of `pairs`, the part
    the run is to be scored on; warn where nothing shows which pairs it saw.

    Raises:
        SegmentError: naming the model, the count, one id and the `split.json` that holds it.
    """
    if init_model is None:
        return
    ids = {pair.id for pair in pairs}
    manifest, seen = _seen(ids, Path(init_model))
    if seen:
        raise SegmentError(f"init_model '{init_model}' trained or chose its best epoch on "
                           f"{len(seen)} of the {len(ids)} pairs this run is to be scored on "
                           f"(e.g. {min(seen)}, in the train and validation parts of "
                           f"{manifest}): its score would not be a test score; on that "
                           f"model's data train with its split (--split-manifest {manifest}), "
                           f"else score on pairs it did not see (--test-data)")
    if manifest is None:
        logger.warning("nothing shows which pairs init_model '%s' trained on (no %s beside it or "
                       "beside a model it started from, or that file changed since): this "
                       "run's score may not be a test score", init_model, OUTPUTS["split"])


def starting_record(config, run):
    """What a run's `config.json` records of the trained model its network starts from
    (`config.train.init_model`), before the run writes anything: {"init_model_sha256": ...};
    {} without one. (A pretrained encoder's ImageNet file is checked where the model is built,
    `create_model`, which `train_and_evaluate` also does before writing.)

    Raises:
        SegmentError: `init_model` is in the `RunFolder` `run`, which the run may clear.
            ModelLoadError: `init_model` is missing.
    """
    init_model = config.train.init_model
    if init_model is not None and run.path.resolve() in Path(init_model).resolve().parents:
        raise SegmentError(f"init_model '{init_model}' is in the run folder this run may clear: "
                           f"copy it elsewhere or choose another run folder")
    return init_model_record(init_model)


def _seen(ids, model_path, followed=()):
    """(the `split.json` showing it, the ids of `ids` in the train and validation parts of the
    model's `split.json` or, following `config.json`'s init_model, of the models it started
    from); (None, set()) where a model of that chain has no `split.json`, or a file it started
    from is gone or is no longer the one its `config.json` records."""
    folder = RunFolder(model_path.parent)
    if not folder.split.exists() or model_path in followed:
        return None, set()
    split = load_split(folder.split, check_files=False)  # its ids alone: files may have moved
    seen = ids & {pair.id for pair in [*split.train, *split.val]}
    settings = folder.recorded_settings()
    init_model = (settings.get("train") or {}).get("init_model")
    if seen or not init_model:
        return folder.split, seen
    init_model = Path(init_model)
    if not init_model.is_file() or file_sha256(init_model) != settings.get("init_model_sha256"):
        return None, set()
    manifest, seen = _seen(ids, init_model, (*followed, model_path))
    if manifest is None:
        return None, set()
    return (manifest if seen else folder.split), seen


def member_record(path, model):
    """What identifies one ensemble member: its file's path and SHA-256, its encoder and
    whether it removes colour casts (both read from the model itself), and its split manifest
    (None where there is none)."""
    manifest = RunFolder(Path(path).parent).split
    return {"path": str(path), "sha256": file_sha256(path),
            "encoder": encoder_settings(model)["encoder"],
            "colour_constancy": corrects_colour(model),
            "split": str(manifest) if manifest.exists() else None}
