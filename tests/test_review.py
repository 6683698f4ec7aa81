"""The review page's files: its rows are the evaluation's, its pictures the scored masks, its
data cannot be read as markup, and a failed write keeps the page before it. (What a person
sees in a browser is tests/test_review_browser.py.)"""

import io
import json
import math
import shutil

from segment import SegmentError, export_predictions, load_segmented_image, results
from segment.images import resize_mask
from segment.review import (
    earlier_overlays,
    review_pictures,
    review_table,
    show_worst,
    with_thumbnails,
    write_review,
)

import numpy as np
import pandas as pd
import pytest
from conftest import assert_consistent_report, constant_model, page_data, write_image
from PIL import Image


def test_the_page_lists_every_scored_image_with_the_masks_it_was_scored_on(tmp_path,
                                                                           synthetic_pairs):
    pairs = synthetic_pairs[:6]
    report = results(constant_model(5.0), pairs, run_dir=tmp_path, progress=False)  # all lesion
    assert_consistent_report(tmp_path, 6)
    table = report.table
    data = page_data(tmp_path / "review.html")
    assert data["kind"] == "evaluation" and data["summary"]["count"] == 6
    assert data["rows"] == json.loads((tmp_path / "review" / "rows.json").read_text())
    assert [row["id"] for row in data["rows"]] == list(table.index)
    for row, (_, scores) in zip(data["rows"], table.iterrows(), strict=True):
        assert row["dice"] == pytest.approx(scores["dice"])
        assert row["truth_share"] == pytest.approx(
            scores["truth_area"] / (scores["height"] * scores["width"]))
        assert row["predicted_share"] == 1.0 and row["pictures"]
    assert sum(row["flagged"] for row in data["rows"]) == math.ceil(0.1 * 6) == table[
        "flagged"].sum()
    # The pictures are the scored masks at the detail size: the truth and an all-lesion
    # prediction, overlaid as palette indices 2 (prediction only) and 3 (both).
    first, pair = data["rows"][0], pairs[0]
    truth_picture = np.asarray(Image.open(tmp_path / "review" / f"{first['file']}_truth.png"))
    truth = resize_mask(load_segmented_image(pair.mask_path), truth_picture.shape)
    np.testing.assert_array_equal(truth_picture, truth.astype(bool))
    overlay = Image.open(tmp_path / "review" / f"{first['file']}_overlay.png")
    np.testing.assert_array_equal(np.asarray(overlay), 2 + truth)
    alpha = np.asarray(overlay.convert("RGBA"))[..., 3]
    assert overlay.mode == "P" and alpha.min() == 255  # every pixel predicted: none clear
    assert np.asarray(Image.open(tmp_path / "review" / f"{first['file']}_prediction.png")).all()


def test_names_with_markup_stay_data(tmp_path):
    hostile = ['a "quoted" name', "<img src=x onerror=alert(1)>", "</script><b>&amp; x</b>"]
    table = pd.DataFrame({"id": hostile, "height": 4, "width": 4, "predicted_share": 0.5,
                          "confidence": [0.9, 0.5, 0.7]}).set_index("id")
    page = write_review(tmp_path, table, [])
    text = page.read_text(encoding="utf-8")
    assert text.count("</script>") == 2  # the data block's and the script's own
    assert "<img src=x" not in text and "<b>" not in text
    rows = page_data(page)["rows"]
    assert [row["id"] for row in rows] == hostile and not any(row["pictures"] for row in rows)
    shown = with_thumbnails(review_table(tmp_path)).to_html()  # in a notebook, too
    assert "<img src=x" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown


def test_predict_only_writes_the_page_of_its_masks(tmp_path, synthetic_dir):
    written, _ = export_predictions(constant_model(-5.0), synthetic_dir / "images", tmp_path,
                                    progress=False, flag_share=0.25)
    data = page_data(tmp_path / "review.html")
    csv = pd.read_csv(tmp_path / "predictions.csv", index_col="id")
    assert data["kind"] == "predictions" and data["summary"] is None
    assert [column["key"] for column in data["columns"]] == ["predicted_share", "confidence",
                                                            "flagged"]
    assert [row["id"] for row in data["rows"]] == list(csv.index) and len(written) == 24
    assert [row["flagged"] for row in data["rows"]] == csv["flagged"].tolist()
    assert not (tmp_path / "review" / "0000_truth.png").exists()
    overlay = Image.open(tmp_path / "review" / "0000_overlay.png").convert("RGBA")
    assert np.asarray(overlay)[..., 3].max() == 0  # nothing predicted: clear all over


def test_a_new_page_replaces_the_old_one_whole(tmp_path):
    table = pd.DataFrame({"id": ["a", "b"], "height": 8, "width": 8, "predicted_share": 0.5,
                          "confidence": [0.3, 0.9]}).set_index("id")
    image = np.zeros((8, 8, 3), np.uint8)
    pictures = [review_pictures(image, np.full((8, 8), 0.7), np.ones((8, 8))) for _ in "ab"]
    write_review(tmp_path, table, pictures)
    write_review(tmp_path, table.head(1), pictures[:1])
    assert sorted(path.name for path in (tmp_path / "review").glob("0001_*")) == []
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_pictures_are_at_most_512_pixels_probabilities_256_and_thumbnails_96():
    image = np.random.default_rng(0).integers(0, 255, (600, 1000, 3), dtype=np.uint8)
    truth = np.zeros((600, 1000), np.uint8)
    truth[200:400, 300:700] = 1
    pictures = review_pictures(image, np.full((64, 64), 0.2), np.zeros_like(truth), truth)
    sizes = {name: Image.open(io.BytesIO(content)).size
             for name, content in pictures.files.items()}
    assert sizes.pop("thumb.jpg") == (96, 58) and sizes.pop("probability.jpg") == (256, 154)
    assert set(sizes.values()) == {(512, 307)}


def test_notebook_table_with_thumbnails_and_the_worst_overlays(tmp_path, synthetic_pairs):
    results(constant_model(0.5), synthetic_pairs[:4], run_dir=tmp_path, progress=False)
    table = review_table(tmp_path)
    assert table["dice"].is_monotonic_increasing and len(table) == 4
    assert all(path.is_file() for path in table["thumbnail"])
    shutil.move(table["thumbnail"].iloc[1], tmp_path / "moved.jpg")
    shown = with_thumbnails(table).to_html()
    assert shown.count("data:image/jpeg;base64,") == 3 and "no image" in shown
    figure = show_worst(tmp_path, 2)
    assert [axes.get_title().split("\n")[0] for axes in figure.axes] == list(table.index[:2])
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(SegmentError, match="'.*notes.txt' holds no readable review "
                                           "\\(review/rows.json: NotADirectoryError\\): pass"):
        show_worst(tmp_path / "notes.txt", 2)


def test_an_image_that_cannot_be_decoded_again_gets_a_placeholder(tmp_path, caplog):
    broken = tmp_path / "ISIC_0000009.jpg"
    broken.write_bytes(b"not a jpeg")
    assert review_pictures(broken, np.zeros((4, 4)), np.zeros((4, 4))) is None
    assert "ISIC_0000009.jpg" in caplog.text


def test_earlier_overlays_come_only_from_the_compared_tables_own_page(tmp_path, caplog):
    folder = tmp_path / "review"
    folder.mkdir()
    png = write_image(folder / "0000_overlay.png", np.zeros((3, 4), np.uint8)).read_bytes()
    (tmp_path / "secret_overlay.png").write_bytes(png)
    rows = [{"id": "a", "file": "0000", "pictures": True, "dice": 0.25},
            {"id": "b", "file": "../secret", "pictures": True, "dice": 0.5}]  # outside review/
    (folder / "rows.json").write_text(json.dumps(rows))
    dice = pd.Series({"a": 0.25, "b": 0.5, "c": 0.9})
    assert earlier_overlays(tmp_path, dice) == {"a": png}
    assert earlier_overlays(tmp_path / "elsewhere", dice) == {}  # no page there: nothing said
    assert caplog.text == ""
    assert earlier_overlays(tmp_path, dice.replace(0.25, 0.3)) == {}  # another evaluation's
    (folder / "rows.json").write_text(json.dumps([{"id": "a", "dice": "?"}]))  # not ours
    assert earlier_overlays(tmp_path, dice) == {}
    assert caplog.text.count("is not that of the evaluation compared with") == 2
