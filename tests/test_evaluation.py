"""Prediction (TTA, post-processing, original size), per-image evaluation, mask export."""

import json
import logging

import segment
from segment import (
    Pair,
    PairingError,
    evaluate,
    export_predictions,
    fill_holes,
    keep_largest_component,
    load_input_image,
    load_segmented_image,
    postprocess_mask,
    predict_masks,
    predict_with_flips,
    results,
    show_prediction,
)
from segment.stored_masks import StoredMasks

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import constant_model, write_image
from PIL import Image


def red_channel_model(size=(32, 32)):
    """Per-pixel (flip-equivariant) model: probability = the red channel."""
    inputs = keras.Input((*size, 3))
    kernel = keras.initializers.Constant(np.array([1, 0, 0], np.float32).reshape(1, 1, 3, 1))
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, kernel_initializer=kernel)(inputs))


def left_half_model(size=(8, 8)):
    """Not flip-equivariant: predicts 1 on the left half of the image, whatever it shows."""
    inputs = keras.Input((*size, 3))
    left = np.zeros((1, *size, 1), np.float32)
    left[:, :, : size[1] // 2] = 1
    outputs = keras.layers.Lambda(lambda x: keras.ops.zeros_like(x[..., :1]) + left)(inputs)
    return keras.Model(inputs, outputs)


def test_tta_equals_plain_for_an_equivariant_model():
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    model = red_channel_model()
    np.testing.assert_allclose(predict_with_flips(model, images),
                               model.predict(images, verbose=0), atol=1e-6)


def test_tta_averages_flipped_back_predictions():
    # left-half model: identity and up-down flip give the left half, the left-right flips give
    # the right half once flipped back, so the average is 0.5 everywhere.
    averaged = predict_with_flips(left_half_model(), np.zeros((1, 8, 8, 3), np.float32))
    np.testing.assert_allclose(averaged, 0.5)


def test_postprocessing_on_crafted_masks():
    mask = np.zeros((9, 9), np.uint8)
    mask[1:6, 1:6] = 1
    mask[3, 3] = 0  # a hole inside the big region
    mask[8, 8] = 1  # a speck
    cleaned = postprocess_mask(mask)
    expected = np.zeros((9, 9), np.uint8)
    expected[1:6, 1:6] = 1
    assert cleaned.tolist() == expected.tolist()
    assert keep_largest_component(np.zeros((3, 3))).sum() == 0
    assert fill_holes(np.zeros((3, 3))).sum() == 0


@pytest.fixture
def odd_sized_pairs(tmp_path):
    """Three pairs of different sizes: lesion = red square, its mask exactly there."""
    pairs = []
    for index, (height, width) in enumerate([(40, 60), (33, 47), (64, 64)]):
        image = np.zeros((height, width, 3), np.uint8)
        mask = np.zeros((height, width), np.uint8)
        image[5:25, 10:30, 0], mask[5:25, 10:30] = 255, 1
        pairs.append(Pair(write_image(tmp_path / "images" / f"ISIC_{index:07d}.png", image),
                          write_image(tmp_path / "masks" / f"ISIC_{index:07d}_segmentation.png",
                                      mask * 255)))
    return pairs


def test_predict_masks_returns_original_sizes(odd_sized_pairs):
    masks = predict_masks(red_channel_model(), odd_sized_pairs)
    assert [mask.shape for mask in masks] == [(40, 60), (33, 47), (64, 64)]
    network = predict_masks(red_channel_model(), odd_sized_pairs, original_size=False)
    assert {mask.shape for mask in network} == {(32, 32)}
    # One image's path or array, or a folder's path (once read letter by letter as paths).
    image = odd_sized_pairs[1].image_path
    assert [mask.shape for mask in predict_masks(red_channel_model(), image)] == [(33, 47)]
    one = predict_masks(red_channel_model(), load_input_image(image))
    assert len(one) == 1 and np.array_equal(one[0], masks[1])
    folder = predict_masks(red_channel_model(), str(image.parent))
    assert [mask.shape for mask in folder] == [(40, 60), (33, 47), (64, 64)]


def test_all_background_model_scores_zero_not_nan(odd_sized_pairs):
    evaluation = evaluate(constant_model(0.0), odd_sized_pairs, progress=False)
    assert evaluation.table["dice"].tolist() == [0.0, 0.0, 0.0]
    assert evaluation.summary["dice"]["mean"] == 0.0 and evaluation.summary["isic_score"] == 0.0
    assert evaluation.table["hd95"].isna().all()  # undefined: the prediction is empty
    assert evaluation.summary["hd95"]["num_undefined"] == 3


def test_good_model_scores_near_one_at_original_size(odd_sized_pairs):
    evaluation = evaluate(red_channel_model(), odd_sized_pairs, progress=False)
    table = evaluation.table
    assert list(table.index) == ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002"]
    assert (table["dice"] > 0.9).all() and (table["specificity"] > 0.97).all()
    assert table.loc["ISIC_0000001", ["height", "width"]].tolist() == [33, 47]
    assert table.loc["ISIC_0000000", "truth_area"] == 400
    assert evaluation.settings["resolution"] == "original"


def test_metrics_do_not_depend_on_batch_size(odd_sized_pairs):
    one = evaluate(red_channel_model(), odd_sized_pairs, batch_size=1, progress=False)
    many = evaluate(red_channel_model(), odd_sized_pairs, batch_size=3, progress=False)
    pd.testing.assert_frame_equal(one.table, many.table)


def test_empty_truth_images_are_counted_separately(tmp_path):
    image = write_image(tmp_path / "ISIC_0000001.png", np.zeros((32, 32, 3), np.uint8))
    mask = write_image(tmp_path / "ISIC_0000001_segmentation.png", np.zeros((32, 32), np.uint8))
    evaluation = evaluate(constant_model(0.0), [Pair(image, mask)], progress=False)
    assert evaluation.table["dice"].tolist() == [1.0]  # both empty
    assert evaluation.summary["empty_truth"] == {"count": 1, "mean_dice": 1.0}


def test_masks_of_another_shape_are_named_a_few_then_counted(tmp_path, caplog):
    # Full-view masks given with square crops of their images: scored, but not one warning
    # per pair of a whole folder, and the other shape is said.
    pairs = [Pair(write_image(tmp_path / f"ISIC_{index:07d}.png", np.zeros((32, 32, 3), np.uint8)),
                  write_image(tmp_path / f"ISIC_{index:07d}_segmentation.png",
                              np.zeros((30, 40), np.uint8))) for index in range(7)]
    with caplog.at_level("WARNING"):
        evaluation = evaluate(constant_model(-5.0), pairs, progress=False)
    assert len(evaluation.table) == 7
    assert caplog.text.count("another shape too (width / height 1.33 against 1.00): is it the "
                             "mask of this very view") == 5
    assert ("2 more masks differ in size from their image; the prediction is scored at the "
            "mask's size") in caplog.text


def test_export_writes_isic_named_masks_at_original_size(odd_sized_pairs, tmp_path, caplog):
    folder = odd_sized_pairs[0].image_path.parent
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    with caplog.at_level(logging.INFO, logger="segment"):
        written, skipped = export_predictions(red_channel_model(), folder, tmp_path / "out",
                                              progress=False)
    assert f"wrote 3 masks to '{tmp_path / 'out'}' (1 image not predicted)" in caplog.text
    assert sorted(path.name for path in written) == [
        f"ISIC_{index:07d}_segmentation.png" for index in range(3)]
    assert [path.endswith("broken.png") for path, _ in skipped] == [True]
    exported = load_segmented_image(tmp_path / "out" / "ISIC_0000001_segmentation.png")
    assert exported.shape == (33, 47)
    # Masks written beside their images are not taken for images by the next prediction, and
    # a second file of one id is named and skipped (the .jpg is predicted, as find_pairs pairs it).
    export_predictions(red_channel_model(), folder, folder, progress=False)
    (folder / "broken.png").unlink()
    write_image(folder / "ISIC_0000002.jpg", np.zeros((64, 64, 3), np.uint8))
    again, skipped = export_predictions(red_channel_model(), folder, folder, progress=False,
                                        overwrite=True)
    assert sorted(path.name for path in folder.glob("*_segmentation*")) == sorted(
        path.name for path in again) == [f"ISIC_{index:07d}_segmentation.png" for index in range(3)]
    assert skipped == [(str(folder / "ISIC_0000002.png"),
                        f"'{folder / 'ISIC_0000002.png'}' has the id of "
                        f"'{folder / 'ISIC_0000002.jpg'}', which is predicted instead: one mask "
                        f"per id")]
    assert load_segmented_image(folder / "ISIC_0000002_segmentation.png").max() == 0  # the .jpg
    assert pd.read_csv(folder / "predictions.csv")["id"].is_unique


def test_results_returns_figures_and_writes_consistent_files(odd_sized_pairs, tmp_path):
    history = {"loss": [0.5, 0.3], "val_loss": [0.6, 0.4], "dice": [0.5, 0.7],
               "val_dice": [0.4, 0.6], "learning_rate": [5e-4, 4.9e-4]}
    report = results(red_channel_model(), odd_sized_pairs, history=history, run_dir=tmp_path,
                     num_examples=2, progress=False)
    assert set(report.figures) == {"training_curves", "dice_histogram", "best_predictions",
                                   "worst_predictions"}
    assert len(report.figures["worst_predictions"].axes) == 2 * 4
    for name in ["evaluation.csv", "summary.json", "report.html", "worst_predictions.png",
                 "dice_histogram.png", "training_curves.png", "best_predictions.png"]:
        assert (tmp_path / name).stat().st_size > 0, name
    table = pd.read_csv(tmp_path / "evaluation.csv", index_col="id")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["count"] == len(table) == 3
    assert summary["dice"]["mean"] == pytest.approx(table["dice"].mean(), abs=1e-5)
    assert summary["isic_score"] == pytest.approx(table["thresholded_jaccard"].mean(), abs=1e-5)
    page = (tmp_path / "report.html").read_text()
    assert (f"<td>dice</td><td>{summary['dice']['mean']:.4f}</td>"
            f"<td>{summary['dice']['standard_error']:.4f}</td>") in page
    assert "worst_predictions.png" in page
    notebook = report._repr_html_()  # what Jupyter shows for the evaluation
    assert f"<th>standard error</th>\n      <td>{summary['dice']['standard_error']:.4f}" in notebook


def test_results_writes_each_predicted_mask_as_scored_and_replaces_them_whole(odd_sized_pairs,
                                                                               tmp_path):
    run = tmp_path / "run"
    results(red_channel_model(), odd_sized_pairs, run_dir=run, progress=False)
    table = pd.read_csv(run / "evaluation.csv", index_col="id")
    listed = pd.read_csv(run / "predicted_masks" / "predictions.csv", index_col="id")
    assert listed.index.tolist() == table.index.tolist()
    assert listed["flagged"].tolist() == table["flagged"].tolist()
    for pair in odd_sized_pairs:  # ISIC's naming and format, at each image's own size
        stored = np.asarray(Image.open(run / "predicted_masks" / f"{pair.id}_segmentation.png"))
        assert listed.loc[pair.id, "mask"] == f"{pair.id}_segmentation.png"
        assert stored.dtype == np.uint8 and set(np.unique(stored)) <= {0, 255}
        assert stored.shape == tuple(table.loc[pair.id, ["height", "width"]])
        assert (stored == 255).sum() == table.loc[pair.id, "predicted_area"] > 0
        assert listed.loc[pair.id, "predicted_share"] == pytest.approx(
            (stored == 255).mean(), abs=1e-6)
    with pytest.raises(PairingError, match="holds predictions.csv: its masks are a model's"):
        segment.find_pairs(tmp_path / "images", run / "predicted_masks")  # never truth
    # Another evaluation in the folder leaves only its own masks; one without masks, none.
    results(red_channel_model(), odd_sized_pairs[1:], run_dir=run, progress=False)
    assert sorted(path.name for path in (run / "predicted_masks").iterdir()) == [
        "ISIC_0000001_segmentation.png", "ISIC_0000002_segmentation.png", "predictions.csv"]
    results(None, [], run_dir=run, evaluation=evaluate(red_channel_model(), odd_sized_pairs,
                                                       progress=False))
    assert not (run / "predicted_masks").exists()


def test_masks_made_elsewhere_are_scored_as_the_library_scores_its_own(odd_sized_pairs,
                                                                        tmp_path, caplog):
    theirs = tmp_path / "theirs"  # truth squares at [5:25, 10:30] of (40, 60), (33, 47), (64, 64)
    exact = np.zeros((40, 60), np.uint8)
    exact[5:25, 10:30] = 255
    write_image(theirs / "ISIC_0000000_segmentation.png", exact)
    half = np.zeros((32, 32), np.uint8)  # ISIC_0000002's (64, 64) square, at half its size
    half[2:12, 5:15] = 255
    write_image(theirs / "ISIC_0000002.png", half // 255)  # any image name with the id; a
    # label map of 0s and 1s, as nnU-Net writes, reads 1 as lesion
    with caplog.at_level(logging.WARNING):
        scored = evaluate(StoredMasks(theirs), odd_sized_pairs, progress=False, review=True,
                          masks=True)
    assert scored.table.index.tolist() == ["ISIC_0000000", "ISIC_0000002"]
    # the half-size mask is scored at (64, 64): rows 4-23 against the truth's 5-24
    assert scored.table["dice"].tolist() == [1.0, pytest.approx(2 * 19 / 40)]
    assert scored.table.loc["ISIC_0000002", ["height", "width"]].tolist() == [64, 64]
    assert scored.table["confidence"].isna().all() and not scored.table["flagged"].any()
    missing = theirs / "ISIC_0000001_segmentation.png"
    assert scored.skipped == [(str(missing), f"'{missing}' is missing: no mask of 'ISIC_0000001' "
                                             f"in the folder")]
    assert f"skipping pair: '{missing}' is missing" in caplog.text
    (theirs / "ISIC_0000002.png").unlink()  # two missing: each named in skipped_files.txt
    segment.workflow.evaluate_masks(theirs, odd_sized_pairs, out_dir=tmp_path / "out",
                                    progress=False)
    assert (tmp_path / "out" / "skipped_files.txt").read_text().splitlines() == [
        f"{theirs / f'ISIC_000000{index}_segmentation.png'}\t'"
        f"{theirs / f'ISIC_000000{index}_segmentation.png'}' is missing: no mask of "
        f"'ISIC_000000{index}' in the folder" for index in (1, 2)]
    assert scored.settings == {"stored_masks": str(theirs), "threshold": 0.5,
                               "postprocess": False, "resolution": "original"}
    with pytest.raises(ValueError, match="holds masks, not a model: .* without tta"):
        evaluate(StoredMasks(theirs), odd_sized_pairs, tta=True, progress=False)
    with pytest.raises(PairingError, match="is the truth of 'ISIC_0000000' itself"):
        evaluate(StoredMasks(tmp_path / "masks"), odd_sized_pairs, progress=False)
    with pytest.raises(PairingError, match="is the image of 'ISIC_0000000' itself"):
        evaluate(StoredMasks(tmp_path / "images"), odd_sized_pairs, progress=False)


class CountingModel:
    """What evaluation needs of a model (input_shape, predict_on_batch), counting the calls."""

    def __init__(self, model):
        self.model, self.input_shape, self.calls = model, model.input_shape, 0

    def predict_on_batch(self, images):
        self.calls += 1
        return self.model.predict_on_batch(images)


@pytest.fixture
def graded_pairs(tmp_path):
    """Six 32x32 pairs, one mask square each; the red (predicted) square covers i/6 of it."""
    pairs = []
    for index in range(6):
        mask = np.zeros((32, 32), np.uint8)
        mask[4:28, 4:28] = 1
        image = np.zeros((32, 32, 3), np.uint8)
        image[4:4 + 4 * (index + 1), 4:28, 0] = 255  # dice grows with the index
        pairs.append((write_image(tmp_path / f"ISIC_{index:07d}.png", image),
                      write_image(tmp_path / f"ISIC_{index:07d}_segmentation.png", mask * 255)))
    return pairs


def test_results_draws_galleries_from_the_evaluation_without_predicting_again(graded_pairs):
    # Problem 6 of the run-folder issue: results and show_prediction predicted twice.
    model = CountingModel(red_channel_model())
    report = results(model, graded_pairs, num_examples=2, progress=False)
    assert model.calls == 1  # six images, one batch of 8
    assert [example.id for example in report.evaluation.worst] == ["ISIC_0000000",
                                                                  "ISIC_0000001"]
    assert [example.id for example in report.evaluation.best] == ["ISIC_0000005",
                                                                 "ISIC_0000004"]
    worst = report.evaluation.worst[0]
    assert worst.dice == pytest.approx(report.table.loc["ISIC_0000000", "dice"])
    assert worst.image.shape == (256, 256, 3) and worst.predicted.shape == (256, 256)
    # The red rows 4:8, columns 4:28 at 32x32 are rows 32:64, columns 32:224 at 256x256.
    assert worst.predicted[32:64, 32:224].all() and worst.predicted.sum() == 32 * 192
    assert len(report.figures["worst_predictions"].axes) == 2 * 4
    model.calls = 0
    figure = show_prediction(model, graded_pairs[3], tta=True)
    assert model.calls == 4  # one batch, four flips
    assert "ISIC_0000003 (TTA)" in figure.get_suptitle()


def test_gallery_ranks_ties_by_order_like_a_stable_sort(tmp_path):
    pairs = []
    for index in range(5):  # all predictions empty, all truths empty: every dice is 1.0
        pairs.append(Pair(write_image(tmp_path / f"ISIC_{index:07d}.png",
                                      np.zeros((32, 32, 3), np.uint8)),
                          write_image(tmp_path / f"ISIC_{index:07d}_segmentation.png",
                                      np.zeros((32, 32), np.uint8))))
    evaluation = evaluate(constant_model(-5.0), pairs, num_examples=2, progress=False)
    ranked = evaluation.table.sort_values("dice", kind="stable").index
    assert [example.id for example in evaluation.worst] == list(ranked[:2])
    assert [example.id for example in evaluation.best] == list(ranked[::-1][:2])


def test_pairs_may_be_plain_tuples_and_anything_else_is_a_clear_type_error(graded_pairs):
    as_tuples = evaluate(red_channel_model(), graded_pairs, progress=False)
    as_pairs = evaluate(red_channel_model(), [Pair(*pair) for pair in graded_pairs],
                        progress=False)
    pd.testing.assert_frame_equal(as_tuples.table, as_pairs.table)
    with pytest.raises(TypeError, match="expected a Pair or an \\(image_path, mask_path\\) "
                                        "tuple of paths. Received: 'ISIC_0000000.png'"):
        evaluate(red_channel_model(), ["ISIC_0000000.png"], progress=False)
    with pytest.raises(TypeError, match="Received: \\(1, 2\\)"):
        segment.train_val_test_split([(1, 2)])
    # A folder's path in place of its pairs, a model file's in place of the model.
    with pytest.raises(TypeError, match="expected a list of pairs. Received the path 'data': "
                                        "find_pairs\\(path\\)"):
        segment.create_generator("data", image_size=(32, 32))
    with pytest.raises(TypeError, match="Received the path 'm.keras': load it with load_model"):
        evaluate("m.keras", graded_pairs, progress=False)


def test_progress_bar_draws_only_on_a_terminal(tiny_model, synthetic_pairs, capfd):
    # stderr here is a pipe, as in a log file: the bar would be a stream of redraws there.
    evaluate(tiny_model, synthetic_pairs[:2], image_size=(32, 32), progress=True)
    assert "predict" not in capfd.readouterr().err


def test_pooled_dice_counts_pixels_at_each_images_own_size_through_evaluate(tmp_path):
    # Every pixel is predicted lesion. Image A, 64x64: a 16x16 lesion (dice 512/4352).
    # Image B, 32x48: all lesion (dice 1). Pooled at their own sizes, 2 x overlap / areas:
    # 2 (256 + 1536) / (4096 + 256 + 1536 + 1536); at the network's 32x32 A's lesion is 8x8.
    truth_a = np.zeros((64, 64), np.uint8)
    truth_a[24:40, 24:40] = 255
    pairs = [Pair(write_image(tmp_path / f"{name}.png", np.zeros((*truth.shape, 3), np.uint8)),
                  write_image(tmp_path / f"{name}_segmentation.png", truth))
             for name, truth in [("a", truth_a), ("b", np.full((32, 48), 255, np.uint8))]]
    model = constant_model(0.9)
    own = evaluate(model, pairs, progress=False).summary
    assert own["dice"]["mean"] == pytest.approx((512 / 4352 + 1) / 2)
    assert own["pooled_dice"] == pytest.approx(2 * (256 + 1536) / (4096 + 256 + 1536 + 1536))
    # A's lesion is 6.25 % of its image, B's all of it; A's dice is below 0.6.
    assert [each["count"] for each in own["by_lesion_size"].values()] == [0, 0, 1, 0, 1]
    assert own["by_lesion_size"]["5-15 %"]["mean_dice"] == pytest.approx(512 / 4352)
    assert own["low_dice"]["count"] == 1
    network = evaluate(model, pairs, original_size=False, progress=False).summary
    assert network["pooled_dice"] == pytest.approx(2 * (64 + 1024) / (1024 + 64 + 1024 + 1024))


def test_pooled_dice_counts_every_pixel_together_and_stays_beside_the_mean():
    from segment.evaluation import METRICS, summarize

    # (truth area, predicted area, dice) of: a large lesion found well; a small one found
    # badly; an image with both masks empty (dice 1.0 per image, no pixels to pool).
    rows = [(100, 100, 0.9), (10, 30, 0.5), (0, 0, 1.0)]
    table = pd.DataFrame([{**dict.fromkeys(METRICS, 0.5), "dice": dice, "truth_area": truth,
                           "predicted_area": predicted, "height": 20, "width": 20}
                          for truth, predicted, dice in rows])
    summary = summarize(table, {})
    assert summary["dice"]["mean"] == pytest.approx((0.9 + 0.5 + 1.0) / 3)  # the headline
    assert summary["pooled_dice"] == pytest.approx((2 * 90 + 2 * 10) / (200 + 40))  # 2ΣTP/Σ
    empty = table.iloc[2:]
    assert summarize(empty, {})["pooled_dice"] == 1.0


def test_each_mean_comes_with_its_standard_error_over_the_images_it_averages():
    from segment.evaluation import METRICS, summarize

    rows = [(0.9, 3.0), (0.5, np.nan), (0.7, 5.0)]  # (dice, hd95): one hd95 undefined
    table = pd.DataFrame([{**dict.fromkeys(METRICS, 0.5), "dice": dice, "hd95": hd95,
                           "truth_area": 10, "predicted_area": 10, "height": 10, "width": 10}
                          for dice, hd95 in rows])
    summary = summarize(table, {})
    # the sample standard deviation (0.2) over the square root of the count
    assert summary["dice"]["standard_error"] == pytest.approx(0.2 / np.sqrt(3))
    assert summary["hd95"]["standard_error"] == pytest.approx(np.std([3, 5], ddof=1) / np.sqrt(2))
    assert np.isnan(summarize(table.iloc[:1], {})["dice"]["standard_error"])  # one image


def test_dice_by_lesion_size_bins_the_truths_share_of_the_image_and_counts_low_dice():
    from segment.evaluation import METRICS, summarize

    # (truth area in a 10x20 image of 200 pixels, dice): shares 0.01, 0.02 (a bin's lower
    # edge belongs to it), 0.045, 0.4 (the last bin's edge), 0.9, and an empty truth.
    rows = [(2, 0.3), (4, 0.7), (9, 0.9), (80, 0.59), (180, 0.95), (0, 1.0)]
    table = pd.DataFrame([{**dict.fromkeys(METRICS, 0.5), "dice": dice, "truth_area": area,
                           "predicted_area": area, "height": 10, "width": 20}
                          for area, dice in rows])
    summary = summarize(table, {})
    bins = summary["by_lesion_size"]
    assert list(bins) == ["under 2 %", "2-5 %", "5-15 %", "15-40 %", "over 40 %"]
    assert [each["count"] for each in bins.values()] == [1, 2, 0, 0, 2]  # the empty truth: none
    assert bins["under 2 %"]["mean_dice"] == pytest.approx(0.3)
    assert bins["2-5 %"]["mean_dice"] == pytest.approx(0.8)
    assert bins["over 40 %"]["mean_dice"] == pytest.approx((0.59 + 0.95) / 2)
    assert np.isnan(bins["5-15 %"]["mean_dice"])
    assert summary["low_dice"] == {"below": 0.6, "count": 2}  # 0.3 and 0.59


@pytest.mark.parametrize("value, expected", [
    (0.0, 1.0),  # sure there is no lesion
    (0.9, 2 * 0.9 / 1.9),  # a lesion everywhere, fairly sure
    (0.55, 2 * 0.55 / 1.55),  # a lesion everywhere, barely over the threshold
    (0.45, 2 * 0.55 / 1.55)])  # no lesion, barely: as unsure, on the background's side
def test_confidence_is_the_soft_dice_of_the_probabilities_and_their_own_mask(odd_sized_pairs,
                                                                              value, expected):
    table = evaluate(constant_model(value), odd_sized_pairs, progress=False).table
    np.testing.assert_allclose(table["confidence"], expected, rtol=1e-5)


def test_with_tta_the_confidence_also_weighs_how_much_the_flip_views_agree(odd_sized_pairs,
                                                                          tmp_path):
    model = left_half_model((32, 32))  # its flip views mark the left or the right half
    plain = evaluate(model, odd_sized_pairs, progress=False).table["confidence"]
    np.testing.assert_allclose(plain, 1.0)  # every probability 0 or 1: sure of itself
    # With flips: the views' mean is 0.5 everywhere, so its mask is the whole image; each
    # view's half agrees with it at dice 2/3, and the mean's soft dice is 2 * 0.5 / 1.5.
    with_tta = evaluate(model, odd_sized_pairs, progress=False, tta=True).table["confidence"]
    np.testing.assert_allclose(with_tta, 2 / 3 * 2 / 3, rtol=1e-6)
    export_predictions(model, [pair.image_path for pair in odd_sized_pairs], tmp_path,
                       progress=False, tta=True)
    np.testing.assert_allclose(pd.read_csv(tmp_path / "predictions.csv")["confidence"], 4 / 9,
                               rtol=1e-5)


def test_confidence_falls_as_probabilities_near_the_threshold_over_the_lesion():
    from segment.confidence import mask_confidence

    sure = np.full((8, 8), 0.02)
    sure[2:6, 2:6] = 0.98
    unsure = sure.copy()
    unsure[2:6, 2:4] = 0.52  # half the lesion barely over the threshold
    assert mask_confidence(sure) == pytest.approx(2 * 16 * 0.98 / (16 * 0.98 + 48 * 0.02 + 16))
    assert mask_confidence(unsure) < mask_confidence(sure) - 0.1
    assert mask_confidence(unsure, threshold=0.6) != mask_confidence(unsure)  # its own mask
