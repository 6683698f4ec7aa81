"""Two evaluations of the same images compared image by image: is a change larger than noise?

    comparison = compare("runs/b/evaluation", "runs/a")   # b against a (folders or CSV files)
    print(comparison)                                     # the difference ± its standard error
    comparison.fixed, comparison.broken                   # the images that moved most

Each image's dice in one evaluation minus its dice in the other: the mean of these differences is
the change of the mean dice, and their spread gives its standard error. Because both score the
same images, the luck of which images the test part holds cancels out, and far smaller changes
stand out than between two means side by side; a change under two standard errors is within
noise.
docs/RESULTS.md compares every run this way; `driver_load_evaluate.py --against` does it after
an evaluation.
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .errors import SegmentError
from .evaluation import lesion_size_masks, standard_error
from .files import write_json_atomic
from .metrics import LOW_DICE
from .review import add_comparison, earlier_overlays
from .run_folder import OUTPUTS

__all__ = ["CHANGE", "COMPARISON_FILE", "NOISE", "WORST", "Comparison", "changed_images",
           "compare", "compare_and_write", "earlier_pictures", "paired_difference",
           "read_evaluation_table"]

CHANGE = 0.2  # an image whose dice moves this much or more is fixed (up) or broken (down)
WORST = 20  # how many of the baseline's lowest-dice images `fixed` looks among
NOISE = 2.0  # a mean difference under this many standard errors is within noise
_TABLE = OUTPUTS["evaluation_table"]
_SUMMARY = OUTPUTS["summary"]
COMPARISON_FILE = OUTPUTS["comparison"]  # what `compare_and_write` writes beside a report
_SIZE_COLUMNS = ("truth_area", "height", "width")
_VERSIONS = ("backend", "segment")  # of a summary's versions, compared with its settings


@dataclass(frozen=True)
class Comparison:
    """`compare`'s result: an evaluation against a baseline over the images both scored.

    Attributes:
        images: How many images both scored with a defined dice.
        mean_dice, baseline_mean_dice: Their per-image mean dice over those images.
        difference: The mean of (evaluation's dice − baseline's dice), image by image.
        standard_error: That mean's standard error (NaN for a single image).
        by_lesion_size: {bin: {"count", "difference", "standard_error"}} by the truth's share
            of the image (`evaluation.lesion_size_masks` of the baseline's table); {} without its
            truth_area, height and width columns.
        below_low_dice: {"evaluation", "baseline"}: images under `LOW_DICE` (0.6) dice in each.
        fixed: Ids among the baseline's `WORST` lowest-dice images whose dice rose by `CHANGE`
            (0.2) or more, worst first.
        broken: Ids whose dice fell by `CHANGE` or more, the largest fall first.
        worst, change: The `worst` and `change` these two lists were made with.
        left_out: {"only_in_evaluation", "only_in_baseline", "undefined"}: ids scored by one
            side only, and shared ids whose dice is undefined (NaN) on either side.
        other_truth: Ids compared whose truth differs between the two tables (its area, or
            the size it was scored at): not the same masks, or not at the same resolution
            (e.g. one ISIC id from two data sets, one cropped); 0 where a side lacks the
            truth_area, height and width columns.
        settings: {setting: [baseline's, evaluation's]} where the settings both recorded
            (`summary.json`'s "settings": threshold, tta, resolution, ...; its "versions"'
            backend and segment) differ; {} where they agree or one side's are unknown (a
            bare table).
    """

    images: int
    mean_dice: float
    baseline_mean_dice: float
    difference: float
    standard_error: float
    by_lesion_size: dict
    below_low_dice: dict
    fixed: list
    broken: list
    worst: int
    change: float
    left_out: dict
    other_truth: int
    settings: dict

    @property
    def verdict(self):
        """"better", "worse" or "within noise": |difference| under `NOISE` standard errors,
        no difference, or one image (no standard error)."""
        if (math.isnan(self.standard_error) or self.difference == 0
                or abs(self.difference) < NOISE * self.standard_error):
            return "within noise"
        return "better" if self.difference > 0 else "worse"

    def to_dict(self):
        """Plain types for JSON, the verdict included."""
        return {**asdict(self), "verdict": self.verdict}

    def __str__(self):
        sizes = ", ".join(f"{label} {each['difference']:+.4f} ± {each['standard_error']:.4f} "
                          f"({each['count']})" for label, each in self.by_lesion_size.items()
                          if each["count"])
        lines = [f"image by image over {self.images} images: mean dice {self.mean_dice:.4f} "
                 f"against {self.baseline_mean_dice:.4f}, {self.difference:+.4f} ± "
                 f"{self.standard_error:.4f} ({self.verdict})",
                 f"  by the lesion's share of the image (images): {sizes or 'no sizes'}",
                 f"  images below {LOW_DICE} dice: {self.below_low_dice['evaluation']} against "
                 f"{self.below_low_dice['baseline']}",
                 f"  fixed (of the baseline's {self.worst} worst, dice up by {self.change} or "
                 f"more): {', '.join(self.fixed) or 'none'}",
                 f"  broken (dice down by {self.change} or more): "
                 f"{', '.join(self.broken) or 'none'}"]
        if self.settings:
            lines.append("  settings that differ (baseline -> evaluation): " + ", ".join(
                f"{name} {_shown(before)} -> {_shown(after)}"
                for name, (before, after) in self.settings.items()))
        if self.other_truth:
            lines.append(f"  {self.other_truth} of the {self.images} images were scored "
                         f"against another truth (its area or size differs): not the same masks, "
                         f"or not at the same resolution")
        if any(self.left_out.values()):
            lines.append("  left out: " + ", ".join(f"{count} {why.replace('_', ' ')}"
                                                    for why, count in self.left_out.items()))
        return "\n".join(lines)


def compare(evaluation, baseline, *, worst=WORST, change=CHANGE):
    """`evaluation` against `baseline`, image by image, over the images both scored.

    Args:
        evaluation, baseline: Each an evaluation's `evaluation.csv` (its settings read from
            the `summary.json` beside it), a folder holding one (a run folder, or
            `driver_load_evaluate.py --out`), an evaluation or report (`evaluate(...)`,
            `results(...)`), or a bare table with "id" (column or index) and "dice" columns.
        worst: How many of the baseline's lowest-dice images `fixed` looks among.
        change: The dice change that counts an image as fixed or broken.

    Returns:
        `Comparison`.

    Raises:
        SegmentError: a file is missing or is not an evaluation table, or the two share no
            image with a defined dice.

    Example:
        >>> before = pd.DataFrame({"id": ["a", "b", "c"], "dice": [0.9, 0.5, 0.8]})
        >>> after = pd.DataFrame({"id": ["a", "b", "c"], "dice": [0.91, 0.8, 0.79]})
        >>> comparison = compare(after, before)
        >>> round(comparison.difference, 4), comparison.fixed, comparison.verdict
        (0.1, ['b'], 'within noise')
    """
    ours, theirs = read_evaluation_table(evaluation), read_evaluation_table(baseline)
    shared = ours.index.intersection(theirs.index)
    defined = shared[ours.loc[shared, "dice"].notna() & theirs.loc[shared, "dice"].notna()]
    if len(defined) == 0:
        raise SegmentError(f"{_name(evaluation)} and {_name(baseline)} share no image with a "
                           f"defined dice ({len(shared)} shared ids): compare two evaluations "
                           f"of the same images")
    dice, baseline_dice = ours.loc[defined, "dice"], theirs.loc[defined, "dice"]
    difference, error, images = paired_difference(dice, baseline_dice)
    fixed, broken = changed_images(dice, baseline_dice, worst=worst, change=change)
    return Comparison(
        images=images, mean_dice=float(dice.mean()), baseline_mean_dice=float(baseline_dice.mean()),
        difference=difference, standard_error=error,
        by_lesion_size=_by_lesion_size(dice, theirs.loc[defined]),
        below_low_dice={"evaluation": int((dice < LOW_DICE).sum()),
                        "baseline": int((baseline_dice < LOW_DICE).sum())},
        fixed=fixed, broken=broken, worst=worst, change=change,
        left_out={"only_in_evaluation": len(ours.index.difference(theirs.index)),
                  "only_in_baseline": len(theirs.index.difference(ours.index)),
                  "undefined": len(shared) - len(defined)},
        other_truth=_other_truth(ours.loc[defined], theirs.loc[defined]),
        settings=_differing(theirs.attrs.get("settings", {}), ours.attrs.get("settings", {})))


def compare_and_write(report, baseline, earlier=None):
    """`compare` the evaluation `report` (`results(...)`, written to a folder) with `baseline`
    (as `compare` takes it; read before the report was written where the report replaces it);
    write the comparison beside the report as `COMPARISON_FILE` (JSON: "against", the
    baseline's file, and `Comparison.to_dict()`); give its review page each image's dice change
    as a column ("dice change", blank where the baseline lacks the image) and, in the detail
    view, the baseline's overlay (`earlier`: `earlier_pictures(baseline)`, by default taken
    now); return its text."""
    ours, theirs = read_evaluation_table(report), read_evaluation_table(baseline)  # read once
    comparison = compare(ours, theirs)
    folder = Path(report.files["report"]).parent
    against = theirs.attrs.get("source")
    write_json_atomic(folder / COMPARISON_FILE, {"against": against, **comparison.to_dict()})
    # each image's change, to the 6 decimals evaluation.csv keeps (so no "-0.0000")
    change = (ours["dice"] - theirs["dice"]).round(6)
    add_comparison(folder, report.summary,
                   change.reindex(report.evaluation.table.index.astype(str)),
                   earlier_pictures(theirs) if earlier is None else earlier, against)
    return f"Against {against}: {comparison}\nComparison: {folder / COMPARISON_FILE}"


def earlier_pictures(baseline):
    """{id: overlay PNG bytes} from the review page beside the evaluation table `baseline` (as
    `compare` takes it), where that page is the table's (`review.earlier_overlays`); {} for
    a table that names no file. Take them before a new report replaces that page."""
    table = read_evaluation_table(baseline)
    source = table.attrs.get("source")
    return {} if source is None else earlier_overlays(Path(source).parent, table["dice"])


def paired_difference(dice, baseline_dice):
    """(mean difference, its standard error, images) of two pandas Series of dice by id,
    over the ids of `dice` (each must be in `baseline_dice`).

    Example:
        >>> difference, error, images = paired_difference(pd.Series([0.8, 0.9], ["a", "b"]),
        ...                                               pd.Series([0.7, 0.9], ["b", "a"]))
        >>> round(difference, 4), round(error, 4), images
        (0.05, 0.15, 2)
    """
    difference = dice.to_numpy(dtype=float) - baseline_dice.loc[dice.index].to_numpy(dtype=float)
    return float(difference.mean()), standard_error(difference), len(difference)


def changed_images(dice, baseline_dice, *, worst=WORST, change=CHANGE):
    """(fixed, broken) id lists of two pandas Series of dice by id (`dice`'s ids): of the
    baseline's `worst` lowest-dice images, those whose dice rose by `change` or more (worst
    first); and every image whose dice fell by `change` or more (the largest fall first)."""
    difference = dice - baseline_dice.loc[dice.index]
    lowest = baseline_dice.loc[dice.index].sort_values(kind="stable").index[:worst]
    fixed = [image for image in lowest if difference[image] >= change]
    broken = difference[difference <= -change].sort_values(kind="stable").index.tolist()
    return fixed, broken


def _by_lesion_size(dice, baseline):
    """`Comparison.by_lesion_size` from the baseline's rows (its truth sizes) of `dice`'s ids."""
    if not set(_SIZE_COLUMNS) <= set(baseline.columns):
        return {}
    bins = {}
    for label, inside in lesion_size_masks(baseline).items():
        images = dice.index[inside]
        difference, error, count = (paired_difference(dice.loc[images], baseline["dice"])
                                    if len(images) else (math.nan, math.nan, 0))
        bins[label] = {"count": count, "difference": difference, "standard_error": error}
    return bins


def _other_truth(ours, theirs):
    """How many ids (rows of both tables, same order) differ in truth_area, height or width;
    0 where either table lacks one of those columns."""
    columns = list(_SIZE_COLUMNS)
    if not (set(columns) <= set(ours.columns) and set(columns) <= set(theirs.columns)):
        return 0
    return int((ours[columns].to_numpy() != theirs[columns].to_numpy()).any(axis=1).sum())


def read_evaluation_table(source):
    """An evaluation table indexed by id (str) with a float "dice" column (NaN where
    undefined), from `source`: as `compare` takes it.

    Raises:
        SegmentError: the file is missing or unreadable, has no dice, or scores an id twice.
    """
    if isinstance(source, pd.DataFrame) or hasattr(source, "table"):
        table = source if isinstance(source, pd.DataFrame) else source.table
        table = table.copy() if "id" not in table.columns else table.set_index("id")
        if hasattr(source, "summary"):  # an Evaluation or a report: its settings too
            table.attrs["settings"] = _settings_of(source.summary)
        if "evaluation_table" in getattr(source, "files", {}):  # a written report: its file
            table.attrs["source"] = str(source.files["evaluation_table"])
    else:
        path = _table_path(source)
        try:
            table = pd.read_csv(path, dtype={"id": str}).set_index("id")
        except (OSError, ValueError, KeyError) as error:
            raise SegmentError(f"'{path}' is not a readable evaluation table (an "
                               f"{_TABLE} with id and dice columns): {error}") from None
        table.attrs["source"] = str(path)  # named in messages and in compare_and_write's file
        table.attrs["settings"] = _recorded_settings(path.parent / _SUMMARY)
    if "dice" not in table.columns:
        raise SegmentError(f"{_name(source)} has no dice column; columns: "
                           f"{', '.join(map(str, table.columns))}")
    table = table.assign(dice=pd.to_numeric(table["dice"], errors="coerce"))
    table.index = table.index.astype(str)
    if table.index.has_duplicates:
        raise SegmentError(f"{_name(source)} scores some images twice: "
                           f"{', '.join(table.index[table.index.duplicated()][:5])}")
    return table


def _recorded_settings(summary_path):
    """`_settings_of` the `summary.json` at `summary_path`, or {} where there is none."""
    try:
        return _settings_of(json.loads(summary_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError):
        return {}


def _settings_of(summary):
    """A summary's "settings", with the Keras backend and library version that scored it."""
    versions = summary.get("versions", {})
    return {**summary.get("settings", {}), **{name: versions[name] for name in _VERSIONS
                                               if name in versions}}


def _differing(baseline, evaluation):
    """{setting: [baseline's, evaluation's]} for the settings both record with other values."""
    return {name: [baseline[name], evaluation[name]] for name in baseline
            if name in evaluation and baseline[name] != evaluation[name]}


def _shown(value):
    """A setting's value, short: 'True', 'original', '[96, 96]', at most 40 characters."""
    text = str(value) if value is None or isinstance(value, (bool, int, float, str)) else (
        json.dumps(value))
    return text if len(text) <= 40 else text[:37] + "..."


def _source(source):
    """The file an evaluation table came from (str), or None for a table made otherwise."""
    if isinstance(source, (str, Path)):
        return str(_table_path(source))
    return getattr(source, "attrs", {}).get("source")


def _table_path(source):
    """The evaluation table's path: `source` itself, or the table in the folder `source`."""
    return Path(source) / _TABLE if Path(source).is_dir() else Path(source)


def _name(source):
    return f"'{_source(source)}'" if _source(source) else "the table given"
