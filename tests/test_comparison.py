"""segment.comparison: two evaluations of the same images, image by image."""

import json
import math

import segment
from segment.comparison import compare, compare_and_write, read_evaluation_table

import numpy as np
import pandas as pd
import pytest
from conftest import page_data


def table(dice, ids=None, truth_area=None):
    """An evaluation table of 10x10 images: id, dice and, given, each truth's area."""
    ids = ids or [f"ISIC_{number:07d}" for number in range(len(dice))]
    columns = {"id": ids, "dice": dice}
    if truth_area is not None:
        columns.update(truth_area=truth_area, height=10, width=10)
    return pd.DataFrame(columns)


def test_the_difference_its_standard_error_the_bins_and_the_images_that_moved():
    baseline = table([0.9, 0.5, 0.8, 0.7, 0.95], truth_area=[1, 3, 10, 30, 50])
    ours = table([0.92, 0.75, 0.55, 0.7, 0.95])
    comparison = compare(ours, baseline, worst=2)
    differences = np.array([0.02, 0.25, -0.25, 0.0, 0.0])
    assert comparison.images == 5
    assert comparison.difference == pytest.approx(differences.mean())
    assert comparison.standard_error == pytest.approx(differences.std(ddof=1) / math.sqrt(5))
    assert (comparison.mean_dice, comparison.baseline_mean_dice) == (
        pytest.approx(0.774), pytest.approx(0.77))
    assert comparison.fixed == ["ISIC_0000001"]  # the worst of the baseline, up by 0.25
    assert comparison.broken == ["ISIC_0000002"]
    assert comparison.below_low_dice == {"evaluation": 1, "baseline": 1}
    assert {label: each["count"] for label, each in comparison.by_lesion_size.items()} == {
        "under 2 %": 1, "2-5 %": 1, "5-15 %": 1, "15-40 %": 1, "over 40 %": 1}
    assert comparison.by_lesion_size["2-5 %"]["difference"] == pytest.approx(0.25)
    assert math.isnan(comparison.by_lesion_size["2-5 %"]["standard_error"])  # one image
    assert comparison.verdict == "within noise"
    assert comparison.other_truth == 0  # ours has no truth columns to compare
    text = str(comparison)
    assert "+0.0040 ± 0.0792 (within noise)" in text
    assert "fixed (of the baseline's 2 worst, dice up by 0.2 or more): ISIC_0000001" in text
    assert "another truth" not in text


def test_images_scored_against_another_truth_are_counted():
    # One ISIC id in two data sets (one cropped) is not one mask: a paired difference over
    # such images measures the data as much as the model.
    baseline = table([0.9, 0.8, 0.7], truth_area=[10, 20, 30])
    same = compare(table([0.9, 0.8, 0.6], truth_area=[10, 20, 30]), baseline)
    assert same.other_truth == 0 and same.to_dict()["other_truth"] == 0
    other = table([0.9, 0.8, 0.6], truth_area=[10, 25, 30]).assign(height=[10, 10, 12])
    comparison = compare(other, baseline)
    assert comparison.other_truth == 2
    assert "2 of the 3 images were scored against another truth" in str(comparison)


@pytest.mark.parametrize("shift, verdict", [(0.01, "better"), (-0.01, "worse"),
                                            (0.001, "within noise")])
def test_verdict_is_two_standard_errors(shift, verdict):
    baseline = np.linspace(0.5, 0.9, 40)
    spread = np.tile([0.004, -0.004], 20)  # differences of shift ± 0.004: s.e. 0.00064
    comparison = compare(table(list(baseline + shift + spread)), table(list(baseline)))
    assert comparison.verdict == verdict and comparison.to_dict()["verdict"] == verdict
    same_gain = compare(table(list(baseline + shift)), table(list(baseline)))  # s.e. 0
    assert same_gain.verdict == verdict.replace("within noise", "better")


def test_only_shared_images_with_a_defined_dice_count_and_the_rest_are_reported(tmp_path):
    folder = tmp_path / "evaluation"
    folder.mkdir()
    table([0.8, 0.6, float("nan"), 0.7], ids=["a", "b", "c", "d"]).to_csv(
        folder / "evaluation.csv", index=False)
    ours = table([0.9, 0.7, 0.5, 0.1], ids=["a", "b", "c", "e"])
    comparison = compare(ours, folder)
    assert comparison.images == 2 and comparison.difference == pytest.approx(0.1)
    assert comparison.left_out == {"only_in_evaluation": 1, "only_in_baseline": 1,
                                   "undefined": 1}
    assert comparison.by_lesion_size == {}  # the baseline's table has no truth sizes
    assert "left out: 1 only in evaluation, 1 only in baseline, 1 undefined" in str(comparison)
    assert read_evaluation_table(folder).attrs["source"] == str(folder / "evaluation.csv")
    assert comparison.settings == {}  # a bare table records none


def test_the_settings_the_two_recorded_are_compared(tmp_path):
    for name, tta, backend in [("plain", False, "tensorflow"), ("tta", True, "torch")]:
        (tmp_path / name).mkdir()
        table([0.5, 0.6]).to_csv(tmp_path / name / "evaluation.csv", index=False)
        (tmp_path / name / "summary.json").write_text(json.dumps(
            {"settings": {"threshold": 0.5, "tta": tta, "image_size": [96, 96]},
             "versions": {"backend": backend, "segment": "0.1.0", "numpy": name}}))
    comparison = compare(tmp_path / "tta", tmp_path / "plain")
    assert comparison.settings == {"tta": [False, True], "backend": ["tensorflow", "torch"]}
    assert ("settings that differ (baseline -> evaluation): tta False -> True, backend "
            "tensorflow -> torch") in str(comparison)


def test_files_that_cannot_be_compared_are_named(tmp_path):
    missing = tmp_path / "nowhere" / "evaluation.csv"
    with pytest.raises(segment.SegmentError, match=f"'{missing}' is not a readable evaluation"):
        compare(table([0.5]), missing)
    no_dice = tmp_path / "scores.csv"
    no_dice.write_text("id,jaccard\na,0.5\n")
    with pytest.raises(segment.SegmentError, match=f"'{no_dice}' has no dice column; columns: "
                                                   f"jaccard"):
        compare(no_dice, table([0.5]))
    twice = tmp_path / "twice.csv"
    twice.write_text("id,dice\na,0.5\na,0.6\n")
    with pytest.raises(segment.SegmentError, match="scores some images twice: a"):
        compare(table([0.5], ids=["a"]), twice)
    other = tmp_path / "other.csv"
    table([0.5], ids=["z"]).to_csv(other, index=False)
    with pytest.raises(segment.SegmentError, match=f"the table given and '{other}' share no "
                                                   f"image with a defined dice"):
        compare(table([0.5], ids=["a"]), other)


def test_the_comparison_is_written_beside_its_report_and_goes_when_a_new_report_replaces_it(
        tmp_path, tiny_model, synthetic_pairs):
    first = segment.results(tiny_model, synthetic_pairs[:3], run_dir=tmp_path, progress=False)
    text = compare_and_write(first, read_evaluation_table(tmp_path))
    written = json.loads((tmp_path / "comparison.json").read_text())
    assert written["against"] == str(tmp_path / "evaluation.csv") and written["images"] == 3
    assert written["difference"] == pytest.approx(0, abs=1e-6)  # against its own 6 decimals
    assert text.startswith(f"Against {tmp_path / 'evaluation.csv'}: image by image over 3 ")
    assert text.endswith(f"Comparison: {tmp_path / 'comparison.json'}")
    assert written["settings"] == {}  # the same settings on both sides
    segment.results(tiny_model, synthetic_pairs[:3], run_dir=tmp_path, progress=False)
    assert not (tmp_path / "comparison.json").exists()  # it compared the report replaced
    assert "dice_change" not in json.dumps(page_data(tmp_path / "review.html"))


def test_the_review_page_gets_each_images_dice_change_as_a_column(tmp_path, tiny_model,
                                                                  synthetic_pairs, caplog):
    report = segment.results(tiny_model, synthetic_pairs[:3], run_dir=tmp_path, progress=False)
    ids = list(report.evaluation.table.index)
    baseline = read_evaluation_table(tmp_path).drop(ids[1])  # one image the baseline lacks
    baseline.loc[ids[2], "dice"] -= 0.25
    compare_and_write(report, baseline)
    data = page_data(tmp_path / "review.html")
    assert data["columns"][-1] == {"key": "dice_change", "label": "dice change", "show": "4"}
    changes = [row["dice_change"] for row in data["rows"]]
    assert changes[0] == pytest.approx(0, abs=1e-6) and changes[1] is None
    assert changes[2] == pytest.approx(0.25, abs=1e-6)
    assert data["summary"] == json.loads((tmp_path / "summary.json").read_text())  # as it was
    assert data["rows"] == json.loads((tmp_path / "review" / "rows.json").read_text())
    # the page in that folder scores ids[2] otherwise: not the baseline's, so not shown as its
    assert not any(row["earlier"] for row in data["rows"])
    assert "not that of the evaluation compared with" in caplog.text


def test_the_detail_view_gets_the_earlier_overlay_where_the_earlier_page_is_the_tables(
        tmp_path, tiny_model, synthetic_pairs):
    pairs = synthetic_pairs[:3]
    first = segment.results(tiny_model, pairs, run_dir=tmp_path / "a", threshold=0.3,
                            progress=False)
    report = segment.results(tiny_model, pairs, run_dir=tmp_path / "b", progress=False)
    (tmp_path / "a" / "review" / "0001_overlay.png").write_bytes(b"<svg>")  # not a PNG: none
    compare_and_write(report, tmp_path / "a")
    data = page_data(tmp_path / "b" / "review.html")
    assert data["earlier"] == str(tmp_path / "a" / "evaluation.csv")
    earlier = {row["id"]: row["file"] for row in page_data(tmp_path / "a" / "review.html")["rows"]}
    for row in data["rows"]:
        shown = tmp_path / "b" / "review" / f"{row['file']}_earlier_overlay.png"
        assert row["earlier"] == shown.is_file() == (earlier[row["id"]] != "0001")
        if row["earlier"]:  # the earlier evaluation's own picture of the same image
            assert shown.read_bytes() == (
                tmp_path / "a" / "review" / f"{earlier[row['id']]}_overlay.png").read_bytes()
    assert data["rows"] == json.loads((tmp_path / "b" / "review" / "rows.json").read_text())
    compare_and_write(report, first)  # the written report, as a notebook holds it: the same
    assert page_data(tmp_path / "b" / "review.html") == data
    compare_and_write(report, first.table)  # a table without its folder: no earlier pictures
    assert not list((tmp_path / "b" / "review").glob("*_earlier_overlay.png"))
