"""Results a person can trust and inspect: figures, tables and a report, returned to the caller.

`results(model, split.test, history=..., run_dir=...)` evaluates (or takes an `Evaluation`),
draws the training curves, the dice histogram, the best and the worst predictions, and, when
given a run folder, writes them with `evaluation.csv`, `summary.json` and `report.html`.
Figures are `matplotlib.figure.Figure` objects made without pyplot: nothing is shown or kept
open behind the caller's back, and they display inline in Jupyter.
"""

import html
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .config import EvalConfig, with_overrides
from .data import as_pair
from .evaluation import METRICS, evaluate
from .files import printable, replace_path, save_figure_atomic, write_json_atomic, write_text_atomic
from .prediction_folder import write_predictions_table
from .review import write_review
from .run_folder import RunFolder

__all__ = ["Results", "plot_dice_histogram", "plot_predictions", "plot_training_curves",
           "results", "show_prediction"]

logger = logging.getLogger(__name__)


@dataclass
class Results:
    """What `results` returns.

    Attributes:
        evaluation: the `Evaluation` (per-image table, summary, settings).
        figures: dict of name -> matplotlib Figure: "training_curves" (when a history was
            given), "dice_histogram", "best_predictions", "worst_predictions".
        files: dict of name -> Path of each file written (empty without a run folder).

    Example:
        >>> report = results(model, split.test, run_dir=tmp, progress=False)
        >>> sorted(report.figures), report.files["report"].name
        (['best_predictions', 'dice_histogram', 'worst_predictions'], 'report.html')
    """

    evaluation: object
    figures: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    @property
    def table(self):
        return self.evaluation.table

    @property
    def summary(self):
        return self.evaluation.summary

    def _repr_html_(self):
        return self.evaluation._repr_html_()


def results(model, pairs, *, history=None, run_dir=None, evaluation=None, config=None,
            image_size=None, progress=True, scored=None, **overrides):
    """Evaluate, draw and (optionally) write the report of a model on labelled pairs.

    The model predicts each image once, in `evaluate`; the galleries draw the best and worst
    images that the evaluation kept, so they show exactly what was scored.

    Args:
        model: Keras model or `Ensemble` (unused when `evaluation` is given).
        pairs: Sequence of `Pair` (or (image_path, mask_path) tuples), e.g. `split.test`.
        history: keras History, a dict of per-epoch lists, a DataFrame, or the path of a
            `log.csv`; draws the training curves when given.
        run_dir: Folder (or `RunFolder`) to write `evaluation.csv`, `summary.json`, the
            figures as PNG, `report.html`, the review page (`review.html` and `review/`) and
            the predicted masks (`predicted_masks/`) into, all at once. None writes nothing.
        evaluation: A ready `Evaluation` of the same pairs, to skip evaluating again (made
            with `review=True` for the review page to show pictures, and `masks=True` for
            `predicted_masks/`).
        config, image_size, progress, **overrides: passed to `evaluate` (an `EvalConfig`
            and its fields: threshold, tta, postprocess, original_size, batch_size,
            num_examples).
        scored: What the pairs are, e.g. "test part of runs/x/split.json": recorded as the
            summary's "scored" and shown on the report. None records nothing.

    Returns:
        Results (evaluation, figures, files).

    Example:
        >>> report = results(model, split.test, history=finished_run / "log.csv", progress=False)
        >>> "training_curves" in report.figures, report.files  # no run_dir: nothing written
        (True, {})
        >>> worst_first = report.table.sort_values("dice")  # one row per test image
    """
    if evaluation is None:
        evaluation = evaluate(model, pairs, config, image_size=image_size, progress=progress,
                              review=run_dir is not None, masks=run_dir is not None,
                              **overrides)
    elif config is not None or overrides:
        logger.warning("results: the evaluation was given, so its own settings are shown; "
                       "ignored: %s", ", ".join([*(["config"] if config else []), *overrides]))
    figures = {}
    if history is not None:
        figures["training_curves"] = plot_training_curves(history)
    figures["dice_histogram"] = plot_dice_histogram(evaluation.table["dice"])
    figures["best_predictions"] = plot_predictions(evaluation.best, title="best predictions")
    figures["worst_predictions"] = plot_predictions(evaluation.worst, title="worst predictions")
    report = Results(evaluation, figures)
    if scored is not None:
        evaluation.summary["scored"] = scored
    if run_dir is not None:
        report.files = _write_report(report, run_dir if isinstance(run_dir, RunFolder)
                                     else RunFolder(run_dir))
    return report


def plot_training_curves(history):
    """Loss, dice and learning rate per epoch, training and validation.

    Args:
        history: keras History, dict of lists, DataFrame, or path of a Keras `log.csv`.

    Returns:
        matplotlib Figure with three panels.

    Example:
        >>> figure = plot_training_curves({"loss": [0.5, 0.3], "dice": [0.6, 0.8]})
        >>> len(figure.axes)
        3
    """
    log = _history_frame(history)
    figure = Figure(figsize=(13, 3.6), layout="constrained")
    panels = figure.subplots(1, 3)
    epochs = np.arange(1, len(log) + 1)
    for axes, name in zip(panels[:2], ["loss", "dice"], strict=True):
        for column, label in [(name, "training"), (f"val_{name}", "validation")]:
            if column in log:  # NaN on epochs that did not validate (validate_every)
                measured = log[column].notna().to_numpy()
                axes.plot(epochs[measured], log[column][measured], marker=".", label=label)
        axes.set(xlabel="epoch", title=name if name == "loss" else "per-image mean dice")
        axes.legend()
    if "learning_rate" in log:
        panels[2].plot(epochs, log["learning_rate"], marker=".")
    panels[2].set(xlabel="epoch", title="learning rate")
    return figure


def plot_dice_histogram(dice):
    """Histogram of per-image dice with the mean and the median marked.

    Args:
        dice: Sequence of per-image dice values in [0, 1].

    Returns:
        matplotlib Figure.

    Example:
        >>> figure = plot_dice_histogram([0.9, 0.8, 0.95])
        >>> figure.axes[0].get_xlabel()
        'dice (per image)'
    """
    values = np.asarray(dice, dtype=float)
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axes = figure.subplots()
    axes.hist(values, bins=np.linspace(0, 1, 21), color="tab:blue", alpha=0.8)
    axes.axvline(np.mean(values), color="tab:red", label=f"mean {np.mean(values):.3f}")
    axes.axvline(np.median(values), color="tab:green", linestyle="--",
                 label=f"median {np.median(values):.3f}")
    axes.set(xlabel="dice (per image)", ylabel="images", title=f"{len(values)} images")
    axes.legend(loc="upper left")
    return figure


def plot_predictions(examples, *, title):
    """A gallery: per example, the image, its truth, the prediction and both contours overlaid.

    Args:
        examples: `Example`s to show, one row each, e.g. `evaluation.worst`.
        title: Figure title.

    Returns:
        matplotlib Figure with len(examples) rows and 4 columns.

    Example:
        >>> evaluation = segment.evaluate(model, split.test, progress=False)
        >>> figure = plot_predictions(evaluation.worst[:2], title="two worst")
        >>> len(figure.axes)  # image, truth, prediction, overlay for each
        8
    """
    figure = Figure(figsize=(12, 3.1 * max(len(examples), 1)), layout="constrained")
    figure.suptitle(title)
    if not examples:
        return figure
    rows = figure.subplots(len(examples), 4, squeeze=False)
    for axes, example in zip(rows, examples, strict=True):
        axes[0].imshow(example.image)
        axes[0].set_title(f"{printable(example.id)}\ndice {example.dice:.3f}  "
                          f"jaccard {example.jaccard:.3f}", fontsize=9)
        axes[1].imshow(example.truth, cmap="gray", vmin=0, vmax=1)
        axes[1].set_title("truth", fontsize=9)
        axes[2].imshow(example.predicted, cmap="gray", vmin=0, vmax=1)
        axes[2].set_title("prediction", fontsize=9)
        axes[3].imshow(example.image)
        for mask, colour in [(example.truth, "lime"), (example.predicted, "red")]:
            if mask.any() and not mask.all():
                axes[3].contour(mask, levels=[0.5], colors=colour, linewidths=1.2)
        axes[3].set_title("overlay: truth green, prediction red", fontsize=9)
        for single in axes:  # no ticks either: nothing hidden to lay out, a third faster to save
            single.set(xticks=[], yticks=[])
            single.set_axis_off()
    return figure


def show_prediction(model, pair, config=None, *, image_size=None, **overrides):
    """One image's image, truth, prediction and overlay, with its scores in the title.

    For looking at a single case, e.g. the worst of an evaluation, and at whether TTA or
    post-processing helps it. The model predicts the image once.

    Args:
        model: Keras model.
        pair: The `Pair` (or (image_path, mask_path) tuple) to show.
        config, image_size, **overrides: As for `evaluate` (e.g. `tta=True`).

    Returns:
        matplotlib Figure (one row of 4 panels).

    Example:
        >>> figure = show_prediction(model, split.test[0], tta=True)
        >>> len(figure.axes)
        4
    """
    config = with_overrides(config, EvalConfig, {**overrides, "num_examples": 1})
    pair = as_pair(pair)
    evaluation = evaluate(model, [pair], config, image_size=image_size, progress=False)
    options = ", ".join(name for name, used in [("TTA", config.tta),
                                                ("post-processing", config.postprocess)]
                        if used) or "plain"
    return plot_predictions(evaluation.worst, title=f"{printable(pair.id)} ({options})")


def _history_frame(history):
    if isinstance(history, pd.DataFrame):
        return history
    if isinstance(history, (str, Path)):
        return pd.read_csv(history)
    return pd.DataFrame(getattr(history, "history", history))


def _write_report(report, run):
    """Write every table, figure and the HTML page into the RunFolder `run`; name -> path.

    Everything is first written into a staging folder inside the run folder and only then
    renamed into place, so a failure while writing (a full disk, an interruption) leaves the
    previous report complete and untouched. An evaluation without masks removes the
    `predicted_masks/` of the report it replaces.
    """
    run.path.mkdir(parents=True, exist_ok=True)
    evaluation = report.evaluation
    keys = ["evaluation_table", "summary", *report.figures, "report", "review",
            "review_pictures", *(["predicted_masks"] if evaluation.masks else [])]
    names = {key: getattr(run, key).name for key in keys}
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=run.path))
    try:
        report.evaluation.to_csv(staging / names["evaluation_table"])
        write_json_atomic(staging / names["summary"], report.summary)
        for name, figure in report.figures.items():
            save_figure_atomic(figure, staging / names[name])
        write_text_atomic(staging / names["report"], _html(report, names))
        write_review(staging, evaluation.table, evaluation.review, report.summary)
        if evaluation.masks:
            _write_predicted_masks(evaluation, staging / names["predicted_masks"])
        for key in keys:
            replace_path(staging / names[key], getattr(run, key))
        # these showed the report this one replaces
        run.comparison.unlink(missing_ok=True)
        if not evaluation.masks:
            shutil.rmtree(run.predicted_masks, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("wrote the report to '%s'", run.report)
    return {key: getattr(run, key) for key in keys}


def _write_predicted_masks(evaluation, folder):
    """Write each of `evaluation.masks` into `folder` and, as `--predict-only` does, its
    predictions.csv (`write_predictions_table`)."""
    folder.mkdir()
    for name, content in evaluation.masks:
        (folder / name).write_bytes(content)
    table = evaluation.table.assign(
        mask=[name for name, _ in evaluation.masks],
        predicted_share=lambda rows: rows["predicted_area"] / (rows["height"] * rows["width"]))
    write_predictions_table(table, folder)


def _html(report, names):
    summary = report.summary
    rows = "".join(
        f"<tr><td>{name}</td>" + "".join(f"<td>{summary[name][stat]:.4f}</td>"
                                         for stat in ["mean", "standard_error", "median", "std",
                                                      "min", "max"])
        + f"<td>{summary[name]['num_undefined']}</td></tr>" for name in METRICS)
    worst = report.table.sort_values("dice").head(10).to_html(float_format="%.4f")
    figures = "".join(f'<h2>{key.replace("_", " ")}</h2><img src="{name}" '
                      f'style="max-width:100%">' for key, name in names.items()
                      if name.endswith(".png"))
    settings = html.escape(", ".join(f"{key}={value}" for key, value in
                                     summary["settings"].items() if key != "members"))
    members = _members_html(summary["settings"].get("members"))
    scored = f"<p>Scored: {html.escape(summary['scored'])}.</p>" if "scored" in summary else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>segment report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}table{{margin:0.6em 0;
border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}</style></head>
<body><h1>Segmentation report</h1>
{scored}<p>{summary['count']} images ({summary['skipped']} unreadable, skipped);
{summary['empty_truth']['count']} with an empty truth mask. Metrics are computed per image,
then averaged. For comparison with papers that pool every pixel of the test set into one dice:
pooled dice {summary['pooled_dice']:.4f}, not the per-image mean. It counts pixels at the
{summary['settings']['resolution']} resolution, so larger lesions, and at each image's own
resolution larger images, weigh more. Settings: {settings}.</p>{members}
<p><b>ISIC 2018 score</b> (mean thresholded jaccard, 0 below 0.65):
{summary['isic_score']:.4f}</p>{_lesion_size_html(summary)}
<table><tr><th>metric</th><th>mean</th><th>its standard error</th><th>median</th><th>std</th>
<th>min</th><th>max</th><th>undefined</th></tr>{rows}</table>
<p>HD95 is in pixels at the evaluated resolution; undefined (NaN) where exactly one mask is
empty, as is sensitivity where the truth is empty.</p>
<h2>worst images</h2><p>Every image, sortable and filterable, with its outlines:
<a href="{names['review']}">{names['review']}</a>.</p><div style="overflow-x:auto">{worst}</div>
{figures}<p>Per-image values: <a href="{names['evaluation_table']}">{names['evaluation_table']}</a>;
summary: <a href="{names['summary']}">{names['summary']}</a>.</p></body></html>
"""


def _lesion_size_html(summary):
    """Mean dice and count per lesion-size bin, and the count of images below 0.6 dice."""
    bins = summary["by_lesion_size"]
    head = "".join(f"<th>{html.escape(label)}</th>" for label in bins)
    counts = "".join(f"<td>{each['count']}</td>" for each in bins.values())
    dice = "".join(f"<td>{each['mean_dice']:.4f}</td>" if each["count"] else "<td>-</td>"
                   for each in bins.values())
    low = summary["low_dice"]
    return (f"<p><b>{low['count']}</b> of {summary['count']} images score below "
            f"{low['below']} dice. By the lesion's share of the image (images with an empty "
            f"truth left out):</p><table><tr><th>lesion's share</th>{head}</tr>"
            f"<tr><td>images</td>{counts}</tr><tr><td>mean dice</td>{dice}</tr></table>")


def _members_html(members):
    """An ensemble's models as a table (every field of each member), or "" for one model."""
    if not members:
        return ""
    fields = list(dict.fromkeys(field for member in members for field in member))
    head = "".join(f"<th>{html.escape(field)}</th>" for field in fields)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(member.get(field)))}</td>"
                                    for field in fields) + "</tr>" for member in members)
    return (f"<h2>ensemble of {len(members)} models</h2><p>Their probabilities are averaged "
            f"per image.</p><table><tr>{head}</tr>{rows}</table>")
