"""The whole workflow in one call each: what the two drivers do, for notebooks too.

    outcome = train_and_evaluate("ISIC2018", "runs/x", RunConfig(...))
    outcome.results.summary["dice"]["mean"]
    again = load_and_evaluate("runs/x/model.keras", tta=True)   # settings from config.json
    both = load_and_evaluate(["runs/x/model.keras", "runs/y/model.keras"], out_dir="runs/xy")
    written, skipped = load_and_predict("runs/x/model.keras", "new_images/")
    theirs = evaluate_masks("nnunet_output/", "ISIC2018", out_dir="runs/nnunet")  # no model

`train_and_evaluate`: pairs -> split drawn (or given) -> an `init_model`'s view of its test
part and the starting weights' files checked -> model (with an `init_model`'s weights) -> run
folder held and checked (lock, resume, overwrite) -> optional size report -> split saved (the
manifest reused when resuming) -> pipelines -> `train_model` -> `results` -> folder released.
"""

import logging
import os
from pathlib import Path
from typing import NamedTuple

from .config import EvalConfig, RunConfig, with_overrides
from .data import PairList, as_pairs, find_pairs
from .distribute import check_replica_batches, create_strategy, is_chief, task_id
from .errors import SegmentError
from .files import save_figure_atomic
from .inspection import inspect
from .model import create_model
from .pipeline import PAIRS_AS_THEY_ARE, create_generator
from .prediction import Ensemble, network_size
from .prediction_folder import PredictionFolder, export_predictions
from .provenance import check_init_unseen, check_unseen, member_record, seen_note, starting_record
from .report import results
from .run_folder import RunFolder, run_settings
from .runtime import resolve_precision
from .saving import load_model, start_from
from .split import Split, load_split, save_split, split_folders, train_val_test_split
from .stored_masks import StoredMasks
from .training import set_seed, train_model

__all__ = ["EvaluationOutcome", "TrainingOutcome", "evaluate_masks", "load_and_evaluate",
           "load_and_predict", "train_and_evaluate"]

logger = logging.getLogger(__name__)


class TrainingOutcome(NamedTuple):
    """What `train_and_evaluate` returns; unpacks as `model, history, report, split, run`.

    Example:
        >>> TrainingOutcome._fields
        ('model', 'history', 'results', 'split', 'run')
    """

    model: object  # keras.Model holding the best epoch's weights
    history: object  # keras History of the epochs run in this call
    results: object  # Results on the test part (validation part if there is no test part)
    split: Split  # the train / val / test pairs used
    run: RunFolder  # the run folder and its files


class EvaluationOutcome(NamedTuple):
    """What `load_and_evaluate` returns; unpacks as `model, report, part`.

    Example:
        >>> model, report, part = load_and_evaluate(finished_run / "model.keras",
        ...                                         out_dir=tmp / "again", progress=False)
        >>> part.startswith("test part of")
        True
    """

    model: object  # the loaded keras.Model (an Ensemble when several were given)
    results: object  # Results (evaluation, figures, files)
    part: str  # which pairs were evaluated, in words ("test part of runs/x/split.json")


def train_and_evaluate(data, run_dir, config=None, *, masks_dir=None, inspect_sizes=False,
                       strategy=None, overwrite=False, verbose=None, progress=True):
    """Split, train, save and evaluate in one run folder: what the train driver does.

    Started again with the same run folder and settings after being killed, training goes on
    from its last completed epoch with the same split. A finished run, a model, or a killed
    run with other settings is cleared only with `overwrite`; see `RunFolder`.

    Args:
        data: A folder (as for `find_pairs`) or a sequence of `Pair` / (image, mask) tuples;
            or a `Split` to train, validate and test on as it is (e.g. `load_split`'s).
        run_dir: Folder for the model, split, logs and report.
        config: `RunConfig`; defaults to the paper's settings (`RunConfig()`).
        masks_dir: Masks folder when `data` is an images folder; found beside it by default.
        inspect_sizes: Also write `image_sizes.png` (from file headers) and log the table.
        strategy: A tf.distribute strategy from `create_strategy`; None trains on one device.
        overwrite: Clear what an earlier run left in `run_dir`. Defaults to False.
        verbose: Keras' progress output while training: 0, 1 or 2. Defaults to a progress
            bar in a terminal, one line per epoch otherwise.
        progress: Progress bars for inspecting and evaluating. Defaults to True.

    Returns:
        TrainingOutcome(model, history, results, split, run). On a non-chief worker of a
        multi-worker cluster `results` is None: the chief evaluates and writes.

    Raises:
        RunFolderError: another process trains in `run_dir`; another run is there (no `overwrite`).
        PairingError: no pairs in `data`. ValueError: settings out of range, or an
            `init_model` of another network. SegmentError: an `init_model` saw the scored
            part or lies in `run_dir` (these before anything is written); the loss became NaN.

    Example:
        >>> config = segment.RunConfig(
        ...     data=segment.DataConfig(image_size=(32, 32), batch_size=4, augment="flips"),
        ...     model=segment.ModelConfig(base_filters=4, depth=2),
        ...     train=segment.TrainConfig(epochs=1))
        >>> model, history, report, split, run = train_and_evaluate(
        ...     data_dir, tmp / "run", config, verbose=0, progress=False)
        >>> run.state, len(split.test) == report.summary["count"]
        ('finished', True)
        >>> 0 <= report.summary["dice"]["mean"] <= 1  # per-image mean dice on the test part
        True
    """
    config = RunConfig() if config is None else config
    if not isinstance(config, RunConfig):
        raise TypeError(f"expected a RunConfig. Received: config={config!r}")
    strategy = strategy or create_strategy("none")
    chief = is_chief(strategy)
    given = Split(*map(as_pairs, data)) if isinstance(data, Split) else None
    pairs, source = _pairs_and_source(data if given is None else given, masks_dir)
    if given is not None and config.data.train_fraction != 1:
        raise ValueError("train_fraction draws from the 6:2:2 split; a given split is used whole")
    drawn = given or train_val_test_split(pairs, config.data)  # what a new run trains on
    check_init_unseen(drawn.test or drawn.val, config.train.init_model)  # before any writing
    run = RunFolder(run_dir)
    started_from = starting_record(config, run)  # an init model's SHA-256

    set_seed(config.data.seed)
    precision = resolve_precision(config.train.precision)
    with strategy.scope():
        model = create_model((*config.data.image_size, 3), config.model,
                             dtype_policy=None if precision == "float32" else precision)
        if config.train.init_model:  # here, so that another network is refused before any
            start_from(model, config.train.init_model)  # writing; not again in train_model
    model.summary(print_fn=logger.debug)
    logger.info("model: %s, encoder %s, %d parameters, %s", model.name, config.model.encoder,
                model.count_params(), precision)
    run.open({**run_settings(config, pairs, given), "source": source, **started_from},
             strategy=strategy, overwrite=overwrite)
    if inspect_sizes and chief:
        report = inspect(pairs, progress=progress)
        logger.info("image sizes:\n%s", report)
        save_figure_atomic(report.figure, run.image_sizes)
    split = _split(pairs, run, drawn, chief, config.data if given is None else None)
    logger.info("split: %d train, %d validation, %d test", *map(len, split))
    check_replica_batches(strategy, config.data.batch_size, split)
    train_cache, val_cache = (run.cache_dir(part, config.data.cache) for part in ("train", "val"))
    train = {"shuffle": True, "replicas": strategy.num_replicas_in_sync, "cache_dir": train_cache}
    train_ds = create_generator(split.train, config.data, **train)
    first_train_ds = create_generator(  # the disk cache's file names hold the size
        split.train, config.data, **train,
        image_size=config.train.first_size) if config.train.first_epochs else None
    val_ds = create_generator(split.val, config.data, **PAIRS_AS_THEY_ARE, cache_dir=val_cache,
                              replicas=strategy.num_replicas_in_sync) if split.val else None
    history = train_model(model, train_ds, val_ds, config.train, run, strategy=strategy,
                          first_train_ds=first_train_ds, verbose=verbose, init_model=None)
    if history.stopped_on_nan:
        raise SegmentError("training stopped because the loss became NaN; lower "
                           "--learning-rate (the best epoch before it is kept)")
    if not chief:
        logger.info("%s done; the chief writes the model and the report", task_id(strategy))
        return TrainingOutcome(model, history, None, split, run)
    if strategy.num_replicas_in_sync > 1 or task_id(strategy) != "local":
        model = load_model(run.model)  # evaluate on one device, off the cluster
    report = results(model, split.test or split.val, history=run.log, run_dir=run,
                     config=config.evaluation, progress=progress,
                     scored=f"{'test' if split.test else 'val'} part of {run.split}")
    run.write_skipped([*train_ds.skipped, *(val_ds.skipped if val_ds else []),
                       *report.evaluation.skipped])
    run.release()  # after an error, this process holds it until it ends or trains there again
    return TrainingOutcome(model, history, report, split, run)


def load_and_evaluate(model_path, data=None, config=None, *, masks_dir=None,
                      split_manifest=None, part="test", out_dir=None, image_size=None,
                      overwrite=False, accept_leakage_risk=False, progress=True, **overrides):
    """Load a saved model (or several, as an `Ensemble`) and evaluate it: what
    driver_load_evaluate.py does.

    The pairs: those of `data` when given (all of them, unless `split_manifest` picks a part
    of them); otherwise `part` of the split manifest (`split.json` beside the first model).
    The settings: `config`, else those the (first) training run recorded in `config.json`
    beside the model, else the defaults; `overrides` replace single fields of that. Each
    model's network size comes from the model, else from `image_size`, else from its own
    `config.json`. An ensemble is refused on pairs any of its models trained on or chose its
    best epoch on (the train and validation parts of its `split.json`), and on a model with
    no `split.json` beside it unless `accept_leakage_risk`; its report needs its own
    `out_dir` and names every model (path, SHA-256, encoder, size, split).

    Args:
        model_path: A `.keras` or legacy `.h5` file, or a SavedModel folder (inference only);
            or a list of them, evaluated as one `Ensemble`.
        data: Folder (as for `find_pairs`) or sequence of pairs; None uses the manifest.
        config: `EvalConfig`; None takes the recorded one (or the defaults).
        masks_dir: Masks folder when `data` is an images folder.
        split_manifest: A `split.json`; defaults to the one beside the (first) model.
        part: "train", "val" or "test": which part of the manifest. Defaults to "test".
        out_dir: Report folder; defaults to `evaluation/` beside a single model.
        image_size: (height, width) for a model that accepts any size.
        overwrite: Replace a report already in `out_dir`. Defaults to False.
        accept_leakage_risk: Score an ensemble holding models with no `split.json` beside
            them (the score may then not be a test score). Defaults to False.
        progress: Show a progress bar. Defaults to True.
        **overrides: `EvalConfig` fields to replace, e.g. `tta=True`.

    Returns:
        EvaluationOutcome(model, results, part).

    Raises:
        ModelLoadError, PairingError, RunFolderError (a report in the way), ValueError
        (e.g. an ensemble without `out_dir`), SegmentError (an ensemble member trained or
        chose its best epoch on an evaluated pair, or has no split.json to say it did not).

    Example:
        >>> model, report, part = load_and_evaluate(
        ...     finished_run / "model.keras", tta=True, out_dir=tmp / "tta", progress=False)
        >>> report.summary["settings"]["tta"], report.files["report"].name
        (True, 'report.html')
        >>> ensemble, report, part = load_and_evaluate(
        ...     [finished_run / "model.keras"] * 2, out_dir=tmp / "two", progress=False)
        >>> ensemble
        Ensemble(2 models at 32x32, 32x32)
    """
    model_paths = _model_paths(model_path, out_dir)
    if part not in Split._fields:
        raise ValueError(f"part must be one of {Split._fields}. Received: part={part!r}")
    beside = RunFolder(model_paths[0].parent)  # the (first) training run's folder, if any
    out = RunFolder(out_dir if out_dir is not None else beside.evaluation_dir)
    out.check_report(overwrite)
    model, config, size = _load_with_settings(model_paths, config, image_size, overrides)
    pairs, description = _evaluation_pairs(data, masks_dir, split_manifest, part, beside)
    if len(model_paths) > 1:
        check_unseen(pairs, model_paths, accept_leakage_risk)
    else:
        description += seen_note(pairs, model_paths[0])
        if accept_leakage_risk:
            logger.warning("accept_leakage_risk applies to ensembles only; ignored for one model")
    history = beside.log if len(model_paths) == 1 and beside.log.exists() else None
    report = results(model, pairs, history=history, run_dir=out, config=config,
                     image_size=size, progress=progress, scored=description)
    out.write_skipped(report.evaluation.skipped)
    return EvaluationOutcome(model, report, description)


def evaluate_masks(masks, data=None, *, out_dir, masks_dir=None, split_manifest=None,
                   part="test", overwrite=False, progress=True, **overrides):
    """Score a folder of masks made elsewhere (`StoredMasks`: another method's, an earlier
    evaluation's `predicted_masks/`) as a model's are scored, and write the report into
    `out_dir`: what driver_load_evaluate.py --predicted-masks does. Returns
    EvaluationOutcome(StoredMasks, results, part).

    Args:
        masks: The folder of masks, `<id>_segmentation.png` or `<id>.png`.
        data, masks_dir, split_manifest, part, out_dir, overwrite, progress: As for
            `load_and_evaluate`; `out_dir` and `data` or `split_manifest` are needed.
        **overrides: `EvalConfig` fields: threshold, postprocess, flag_share, num_examples.

    Example:
        >>> masks, report, part = evaluate_masks(finished_run / "predicted_masks", out_dir=tmp,
        ...     split_manifest=finished_run / "split.json", progress=False)
        >>> report.summary["settings"]["stored_masks"] == str(masks.folder), part[:12]
        (True, 'test part of')
    """
    out = RunFolder(out_dir)
    out.check_report(overwrite)
    stored = StoredMasks(masks)
    pairs, description = _evaluation_pairs(data, masks_dir, split_manifest, part, None)
    report = results(stored, pairs, run_dir=out, progress=progress, scored=description, **overrides)
    out.write_skipped(report.evaluation.skipped)
    return EvaluationOutcome(stored, report, description)


def load_and_predict(model_path, images, out_dir=None, config=None, *, image_size=None,
                     overwrite=False, progress=True, **overrides):
    """Load a saved model (or several, as an `Ensemble`) and write one `<id>_segmentation.png`
    (0/255) per image.

    Settings and network sizes are found as in `load_and_evaluate`.

    Args:
        model_path: A `.keras` or `.h5` file, or a SavedModel folder; or a list of them.
        images: A folder of images (its masks left out), or a list of image paths.
        out_dir: Output folder; defaults to `predictions/` beside a single model.
        overwrite: Replace an earlier prediction in `out_dir` (`export_predictions`).
        config, image_size, progress, **overrides: As for `load_and_evaluate`.

    Returns:
        (written, skipped): the written mask paths, and (path, reason) of unreadable images.

    Example:
        >>> written, skipped = load_and_predict(finished_run / "model.keras",
        ...                                     data_dir / "images", tmp, progress=False)
        >>> len(written), skipped
        (12, [])
    """
    model_paths = _model_paths(model_path, out_dir)
    out = Path(out_dir) if out_dir is not None else RunFolder(model_paths[0].parent).predictions_dir
    PredictionFolder(out).check(overwrite)  # before the model loads
    model, config, size = _load_with_settings(model_paths, config, image_size, overrides)
    return export_predictions(model, images, out, config, image_size=size, progress=progress,
                              overwrite=overwrite)


def _pairs_and_source(data, masks_dir):
    """(pairs, what config.json records about where they came from)."""
    if isinstance(data, Split):  # of Pairs
        data.check_given()
        pairs = PairList(sorted([*data.train, *data.val, *data.test], key=lambda pair: pair.id))
        return pairs, split_folders(data)
    if isinstance(data, (str, os.PathLike)):
        pairs = find_pairs(data, masks_dir)
        return pairs, {"images": str(data), "masks": None if masks_dir is None else str(masks_dir)}
    pairs = data if isinstance(data, PairList) else PairList(as_pairs(data))
    if not pairs:
        raise ValueError("train_and_evaluate needs at least one pair. Received: data=[]")
    return pairs, {"images": "(a list of pairs)", "masks": None}


def _split(pairs, run, drawn, chief, drawn_with):
    """The resumed run's manifest, else `drawn` (saved by the chief, recording `drawn_with`)."""
    if run.resuming and run.split.exists():
        logger.info("resuming: reusing the split in '%s'", run.split)
        return load_split(run.split, pairs)
    if chief:
        save_split(drawn, run.split, drawn_with)
    return drawn


def _model_paths(model_path, out_dir):
    """[Path]: one model file, or each of a list of them; several need their own `out_dir`
    (what an ensemble writes belongs to none of its models' folders)."""
    if isinstance(model_path, (str, os.PathLike)):
        return [Path(model_path)]
    paths = [Path(path) for path in model_path]
    if not paths:
        raise ValueError("no model given. Received: model_path=[]")
    if len(paths) > 1 and out_dir is None:
        raise ValueError(f"an ensemble's output belongs to none of its {len(paths)} models' "
                         f"folders: pass out_dir (--out)")
    return paths


def _load_with_settings(model_paths, config, image_size, overrides):
    """(model or Ensemble, EvalConfig, network size or None for an ensemble): settings
    explicit, else the first model's config.json, else defaults; each model's size from the
    model, else `image_size`, else its own config.json. An ensemble records where each model
    comes from (`provenance.member_record`)."""
    recorded = [RunFolder(path.parent).recorded_settings(strict=True) for path in model_paths]
    source = "given" if config else (
        "config.json beside the model" if recorded[0].get("evaluation") else "the defaults")
    config = with_overrides(config or _recorded_evaluation(recorded[0], model_paths[0]),
                            EvalConfig, overrides)
    logger.info("evaluation settings (%s%s): %s", source,
                f"; {', '.join(overrides)} set here" if overrides else "", config)
    models, sizes = [], []
    for path, settings in zip(model_paths, recorded, strict=True):
        models.append(load_model(path))
        sizes.append(network_size(models[-1], image_size,
                                  settings.get("data", {}).get("image_size")))
    if len(models) == 1:
        return models[0], config, sizes[0]
    sources = [member_record(path, model) for path, model in zip(model_paths, models, strict=True)]
    return Ensemble(models, sizes, sources), config, None


def _recorded_evaluation(recorded, model_path):
    if not recorded.get("evaluation"):
        return EvalConfig()
    try:
        return RunConfig.from_dict({"evaluation": recorded["evaluation"]}).evaluation
    except (TypeError, ValueError) as error:
        raise ValueError(f"config.json beside '{model_path}' has evaluation settings this "
                         f"version cannot read: {error}") from None


def _evaluation_pairs(data, masks_dir, split_manifest, part, beside):
    """(pairs, description) of what `load_and_evaluate` scores: all of `data` (its folder
    named), or `part` of the manifest (by default the one in the RunFolder `beside` the model,
    None where there is no model)."""
    pairs = _pairs_and_source(data, masks_dir)[0] if data is not None else None
    if pairs is not None and split_manifest is None:
        given = f"pairs of {data}" if isinstance(data, (str, os.PathLike)) else "given"
        return pairs, f"all {given}" + (f" with the masks of {masks_dir}" if masks_dir else "")
    if not split_manifest and beside is None:
        raise SegmentError("no pairs to score: pass --images (and --masks) or --split-manifest")
    manifest = Path(split_manifest) if split_manifest else beside.split
    if not manifest.exists():
        raise SegmentError(f"no split manifest at '{manifest}': pass --images (and --masks) "
                           f"to evaluate on a folder, or --split-manifest")
    chosen = getattr(load_split(manifest, pairs), part)
    if not chosen:
        raise SegmentError(f"the {part} part of {manifest} holds no pairs to evaluate")
    return chosen, f"{part} part of {manifest}"

