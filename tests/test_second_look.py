"""The second look (segment/second_look.py): a lesion a few pixels wide at the network's size is
found on the whole view, then segmented in a crop around it at the network's full resolution."""

import json

import segment
from segment.cli import evaluate_main
from segment.evaluation import score_masks
from segment.prediction import Ensemble, predict_masks
from segment.second_look import WHOLE_VIEW_SHARE, lesion_box

import keras
import numpy as np
import pytest
from conftest import write_image

SKIN, LESION = 200, 40


def dark_is_lesion_model(side=32):
    """A 1x1 convolution that calls a pixel lesion when its mean intensity is below half:
    sigmoid(40 * (0.5 - mean(r, g, b))), on a `side` x `side` input. Built by hand, so the test
    checks the second look, not what a network learned."""
    inputs = keras.Input((side, side, 3))
    layer = keras.layers.Conv2D(1, 1, activation="sigmoid")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.full((1, 1, 3, 1), -40 / 3, np.float32), np.array([20.0], np.float32)])
    return model


def crafted(radius, side=256, centre=(100, 150)):
    """A `side` x `side` skin-coloured image with one dark disc of `radius` pixels: (image,
    truth mask)."""
    rows, columns = np.mgrid[:side, :side]
    truth = ((rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 <= radius ** 2).astype(np.uint8)
    image = np.where(truth[..., None] > 0, LESION, SKIN).astype(np.uint8).repeat(3, axis=2)
    return image, truth


def test_a_lesion_of_a_few_network_pixels_is_segmented_by_the_second_look_only():
    model = dark_is_lesion_model()
    image, truth = crafted(radius=6)  # 12 pixels across: 1.5 pixels of the 32x32 input
    one_pass, = predict_masks(model, [image])
    second, = predict_masks(model, [image], second_look=True)
    assert score_masks(truth, one_pass)["dice"] < 0.8
    assert score_masks(truth, second)["dice"] > 0.95
    # The same with flips; and two models as one ensemble, whose first pass is averaged at the
    # image's own size, so its box may differ from the one model's by a pixel.
    with_flips, = predict_masks(model, [image], second_look=True, tta=True)
    assert score_masks(truth, with_flips)["dice"] > 0.95
    ensemble, = predict_masks(Ensemble([model, model]), [image], second_look=True)
    assert (ensemble != second).mean() < 1e-3 and score_masks(truth, ensemble)["dice"] > 0.95


@pytest.mark.parametrize("filled", [False, True])
def test_short_batches_filled_up_or_not_give_each_image_its_own_mask(monkeypatch, filled):
    # Filled up with zero images where JAX compiles for each shape (on a GPU or TPU: here by
    # hand), else predicted as they are.
    monkeypatch.setattr(segment.prediction, "_fills_short_batches", lambda: filled)
    model = dark_is_lesion_model()
    images = [crafted(radius=6)[0], np.full((64, 96, 3), SKIN, np.uint8), crafted(radius=30)[0]]
    alone = [predict_masks(model, [image], second_look=True, tta=True)[0] for image in images]
    passes = []
    predict_on_batch = model.predict_on_batch
    monkeypatch.setattr(model, "predict_on_batch",
                        lambda batch: passes.append(len(batch)) or predict_on_batch(batch))
    masks = predict_masks(model, images, second_look=True, tta=True, batch_size=2)
    # 4 flips each: the first pass of images 1-2, image 1's crop; of image 3, its crop.
    assert passes == ([2] * 16 if filled else [2] * 4 + [1] * 12)
    for mask, own in zip(masks, alone, strict=True):
        np.testing.assert_array_equal(mask, own)


def test_no_lesion_or_a_lesion_filling_the_view_keeps_the_first_pass():
    model = dark_is_lesion_model()
    blank = np.full((64, 96, 3), SKIN, np.uint8)
    large, _ = crafted(radius=110)
    for image in [blank, large]:
        np.testing.assert_array_equal(predict_masks(model, [image], second_look=True)[0],
                                      predict_masks(model, [image])[0])


def test_the_box_holds_the_largest_region_with_its_margin_square_and_inside_the_view():
    probabilities = np.zeros((50, 100))
    probabilities[2:6, 90:98] = 0.9  # the largest region, near the top right corner
    probabilities[30:32, 10:12] = 0.9  # a speck elsewhere
    box = lesion_box(probabilities, margin=0.5)
    assert box.bottom - box.top == pytest.approx(box.right - box.left)  # square in shares
    assert box.bottom - box.top == pytest.approx(2 * 0.08)  # its larger side (8 %), twice
    assert 0 <= box.top <= 2 / 50 and box.bottom >= 6 / 50  # holds the region
    assert box.left <= 0.9 and box.right == pytest.approx(1.0)  # moved inside the view
    assert box.top * 50 > 20 or box.bottom * 50 < 30  # the speck is not what it frames
    assert lesion_box(probabilities, margin=0.0).bottom - lesion_box(
        probabilities, margin=0.0).top == pytest.approx(0.08)
    wide = np.zeros((10, 10))
    wide[2:9, 2:9] = 0.9  # 70 % of a side, widened: more than WHOLE_VIEW_SHARE of the view
    assert lesion_box(wide) is None and 0.7 ** 2 < WHOLE_VIEW_SHARE < 1.4 ** 2


def test_evaluation_and_the_evaluate_driver_record_and_use_it(tmp_path, capfd):
    model = dark_is_lesion_model()
    segment.save_model(model, tmp_path / "model.keras")
    for index, radius in enumerate([5, 6, 7]):
        image, truth = crafted(radius, centre=(60 + 30 * index, 90))
        write_image(tmp_path / "data" / "images" / f"ISIC_000000{index}.jpg", image, quality=95)
        write_image(tmp_path / "data" / "masks" / f"ISIC_000000{index}_segmentation.png",
                    truth * 255)
    pairs = segment.find_pairs(tmp_path / "data")
    plain = segment.evaluate(model, pairs, progress=False)
    looked = segment.evaluate(model, pairs, progress=False, second_look=True, crop_margin=0.6)
    assert plain.settings["second_look"] is False and "crop_margin" not in plain.settings
    assert looked.settings["second_look"] is True and looked.settings["crop_margin"] == 0.6
    assert looked.summary["dice"]["mean"] > max(0.9, plain.summary["dice"]["mean"] + 0.1)
    assert (looked.table["confidence"] > 0).all()

    capfd.readouterr()
    status = evaluate_main(["--model", str(tmp_path / "model.keras"), "--images",
                            str(tmp_path / "data"), "--out", str(tmp_path / "out"),
                            "--second-look", "-q"])
    assert status == 0, capfd.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["second_look"] is True
    assert summary["dice"]["mean"] == pytest.approx(looked.summary["dice"]["mean"], abs=0.02)
    status = evaluate_main(["--model", str(tmp_path / "model.keras"), "--predict-only",
                            str(tmp_path / "data" / "images"), "--out",
                            str(tmp_path / "masks"), "--second-look", "-q"])
    assert status == 0, capfd.readouterr().err
    written = segment.load_segmented_image(tmp_path / "masks" / "ISIC_0000000_segmentation.png")
    truth = segment.load_segmented_image(pairs[0].mask_path)
    assert score_masks(truth, written)["dice"] > 0.9
