"""Pairing by id, the header-only inspector, the deterministic 6:2:2 split and its manifest."""

import json
import logging
import random

from segment import (
    DataConfig,
    Pair,
    PairingError,
    find_pairs,
    inspect,
    load_segmented_image,
    load_split,
    save_split,
    train_val_test_split,
)
from segment.data import list_image_files

import numpy as np
import pytest
from conftest import write_image
from PIL import Image

IMAGE = np.full((12, 16, 3), 120, np.uint8)
MASK = np.zeros((12, 16), np.uint8)


def make_folder(root, image_ids, mask_ids, *, images="images", masks="masks"):
    for key in image_ids:
        write_image(root / images / f"{key}.jpg", IMAGE)
    for key in mask_ids:
        write_image(root / masks / f"{key}_segmentation.png", MASK)
    return root


def test_pairs_by_id_in_separate_folders(tmp_path):
    make_folder(tmp_path, ["ISIC_0000002", "ISIC_0000001"], ["ISIC_0000001", "ISIC_0000002"])
    pairs = find_pairs(tmp_path / "images", tmp_path / "masks")
    assert [pair.id for pair in pairs] == ["ISIC_0000001", "ISIC_0000002"]
    image_path, mask_path = pairs[0]  # a Pair unpacks as (image, mask)
    assert mask_path.name == "ISIC_0000001_segmentation.png" and image_path.suffix == ".jpg"


def test_official_isic_folder_names_are_found(tmp_path):
    make_folder(tmp_path, ["ISIC_0000001"], ["ISIC_0000001"],
                images="ISIC2018_Task1-2_Training_Input",
                masks="ISIC2018_Task1_Training_GroundTruth")
    (tmp_path / "ISIC2018_Task1_Training_GroundTruth" / "LICENSE.txt").write_text("CC-0")
    assert len(find_pairs(tmp_path)) == 1


def test_one_folder_holding_both(tmp_path):
    make_folder(tmp_path, ["ISIC_0000001", "ISIC_0000002"], ["ISIC_0000001", "ISIC_0000002"],
                images="all", masks="all")
    pairs = find_pairs(tmp_path / "all")
    assert [pair.id for pair in pairs] == ["ISIC_0000001", "ISIC_0000002"]


def test_mask_with_the_image_stem_is_accepted(tmp_path):
    write_image(tmp_path / "images" / "ISIC_0000007.jpg", IMAGE)
    write_image(tmp_path / "masks" / "ISIC_0000007.png", MASK)
    assert find_pairs(tmp_path / "images", tmp_path / "masks")[0].id == "ISIC_0000007"


def test_unpaired_files_are_reported_not_dropped(tmp_path, caplog):
    make_folder(tmp_path, ["ISIC_0000001", "ISIC_0000002"], ["ISIC_0000001", "ISIC_0000003"])
    with caplog.at_level(logging.WARNING):
        pairs = find_pairs(tmp_path)
    assert len(pairs) == 1
    assert [path.name for path in pairs.unpaired_images] == ["ISIC_0000002.jpg"]
    assert [path.name for path in pairs.unpaired_masks] == ["ISIC_0000003_segmentation.png"]
    assert "1 image without a mask: ISIC_0000002.jpg" in caplog.text  # one: no plural
    assert "1 mask without an image: ISIC_0000003_segmentation.png" in caplog.text


def test_duplicate_ids_keep_one_and_report_the_other(tmp_path):
    make_folder(tmp_path, ["ISIC_0000001"], ["ISIC_0000001"])
    write_image(tmp_path / "images" / "ISIC_0000001.png", IMAGE)
    pairs = find_pairs(tmp_path)
    assert pairs[0].image_path.suffix == ".jpg"
    assert [path.name for path in pairs.duplicates] == ["ISIC_0000001.png"]


def test_empty_folder_and_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PairingError, match="empty.*holds no image files"):
        find_pairs(tmp_path / "empty")
    with pytest.raises(PairingError, match="does not exist"):
        find_pairs(tmp_path / "nowhere")


def test_images_but_no_masks(tmp_path):
    make_folder(tmp_path, ["ISIC_0000001", "ISIC_0000002"], [], images="only")
    with pytest.raises(PairingError, match="no image/mask pairs.*found 2 images and 0 masks"):
        find_pairs(tmp_path / "only")
    # Given the images folder of an images/ + masks/ layout, the error points at the masks.
    make_folder(tmp_path, ["ISIC_0000001"], ["ISIC_0000001"])
    with pytest.raises(PairingError, match=f"'{tmp_path / 'masks'}' beside it looks like the "
                                           f"masks: pass it as the masks folder, or the parent "
                                           f"folder '{tmp_path}'$"):
        find_pairs(tmp_path / "images")
    # Among ISIC 2017's parts unpacked side by side, at the part's own; not at their parent,
    # which holds three image folders.
    for part in ["Test_v2", "Training", "Validation"]:
        make_folder(tmp_path / "isic2017", ["ISIC_0000001"], ["ISIC_0000001"],
                    images=f"ISIC-2017_{part}_Data", masks=f"ISIC-2017_{part}_Part1_GroundTruth")
    with pytest.raises(PairingError, match="ISIC-2017_Validation_Part1_GroundTruth' beside it "
                                           "looks like the masks: pass it as the masks folder$"):
        find_pairs(tmp_path / "isic2017" / "ISIC-2017_Validation_Data")


def test_webp_pairs_and_other_files_and_superpixel_maps_are_named_not_dropped_silently(
        tmp_path, caplog):
    write_image(tmp_path / "ISIC_1.webp", np.zeros((8, 8, 3), np.uint8), lossless=True)
    write_image(tmp_path / "ISIC_1_segmentation.png", np.zeros((8, 8), np.uint8))
    write_image(tmp_path / "ISIC_1_superpixels.png", np.zeros((8, 8, 3), np.uint8))  # 2017's
    write_image(tmp_path / "ISIC_2.gif", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "LICENSE.txt").write_text("CC-BY-NC")
    with caplog.at_level(logging.INFO, logger="segment.data"):
        pairs = find_pairs(tmp_path)
    assert [pair.image_path.name for pair in pairs] == ["ISIC_1.webp"]
    assert not pairs.unpaired_images  # the superpixel map is no image without a mask
    assert "passed over 3 entries not named as images" in caplog.text
    assert "ISIC_1_superpixels.png, ISIC_2.gif, LICENSE.txt" in caplog.text
    assert list_image_files(tmp_path, masks=False)[0] == [tmp_path / "ISIC_1.webp"]  # predicted


def test_inspect_counts_sizes_from_headers(tmp_path):
    write_image(tmp_path / "a.jpg", np.zeros((30, 40, 3), np.uint8))
    write_image(tmp_path / "b.jpg", np.zeros((30, 40, 3), np.uint8))
    write_image(tmp_path / "c.png", np.zeros((10, 20, 3), np.uint8))
    (tmp_path / "d.jpg").write_bytes(b"")
    report = inspect(tmp_path, plot=True)
    assert report.counts == {(40, 30): 2, (20, 10): 1}  # keys are (width, height)
    assert report.num_images == 3
    assert [path.endswith("d.jpg") for path, _ in report.unreadable] == [True]
    assert len(report.figure.axes) == 2
    assert str(report).splitlines() == ["3 images, 2 distinct sizes (width x height):",
                                        "  40x30: 2", "  20x10: 1", "1 unreadable: d.jpg"]


def test_inspect_pairs_finds_mask_size_mismatch(tmp_path):
    write_image(tmp_path / "images" / "ISIC_0000001.jpg", np.zeros((30, 40, 3), np.uint8))
    write_image(tmp_path / "masks" / "ISIC_0000001_segmentation.png", np.zeros((40, 30), np.uint8))
    report = inspect(find_pairs(tmp_path), plot=False)
    assert report.mismatched == ["ISIC_0000001"] and report.figure is None
    assert str(report).splitlines() == ["1 image, 1 distinct size (width x height):",
                                        "  40x30: 1",
                                        "image and mask differ in size in 1 pair: ISIC_0000001"]


def ids(part):
    return [pair.id for pair in part]


@pytest.fixture
def hundred_pairs(tmp_path):
    return [Pair(tmp_path / f"ISIC_{i:07d}.jpg", tmp_path / f"ISIC_{i:07d}_segmentation.png")
            for i in range(100)]


def test_split_is_6_2_2_and_disjoint(hundred_pairs):
    train, val, test = train_val_test_split(hundred_pairs, seed=3)
    assert (len(train), len(val), len(test)) == (60, 20, 20)
    assert set(ids(train)) | set(ids(val)) | set(ids(test)) == set(ids(hundred_pairs))
    assert not set(ids(train)) & set(ids(val)) and not set(ids(val)) & set(ids(test))


def test_split_ignores_input_order_and_follows_seed(hundred_pairs):
    shuffled = list(hundred_pairs)
    random.Random(1).shuffle(shuffled)
    assert train_val_test_split(shuffled, seed=3) == train_val_test_split(hundred_pairs, seed=3)
    assert ids(train_val_test_split(hundred_pairs, seed=4).test) != ids(
        train_val_test_split(hundred_pairs, seed=3).test)


def test_split_seed_fixes_the_split_and_training_subset_while_the_seed_varies(hundred_pairs,
                                                                              tmp_path):
    fixed = {"split_seed": 3, "train_fraction": 0.5}
    assert train_val_test_split(hundred_pairs, seed=7, **fixed) == train_val_test_split(
        hundred_pairs, seed=3, train_fraction=0.5)
    save_split(train_val_test_split(hundred_pairs, seed=7, **fixed), tmp_path / "split.json",
               DataConfig(seed=7, **fixed))
    assert json.loads((tmp_path / "split.json").read_text())["seed"] == 3


@pytest.mark.parametrize("ratios", [(0.5, 0.5), (0.7, 0.2, 0.2), (-0.1, 0.6, 0.5)])
def test_split_rejects_bad_ratios(hundred_pairs, ratios):
    with pytest.raises(ValueError, match="Received: ratios"):
        train_val_test_split(hundred_pairs, ratios=ratios)


def test_split_rejects_duplicate_ids(hundred_pairs):
    with pytest.raises(PairingError, match="ISIC_0000000.*twice"):
        train_val_test_split(hundred_pairs + hundred_pairs[:1])


def test_manifest_round_trip(hundred_pairs, tmp_path):
    split = train_val_test_split(hundred_pairs, seed=2)
    save_split(split, tmp_path / "split.json", DataConfig(seed=2))
    assert json.loads((tmp_path / "split.json").read_text())["seed"] == 2
    assert load_split(tmp_path / "split.json", hundred_pairs) == split
    hundred_pairs[0].image_path.touch()  # an image the manifest names is there
    stored = load_split(tmp_path / "split.json")  # from the paths written in the manifest
    assert ids(stored.test) == ids(split.test)
    hundred_pairs[0].image_path.unlink()  # the data moved: said before anything reads it
    with pytest.raises(PairingError, match="names 100 images and none is there .* give its "
                                           "folder"):
        load_split(tmp_path / "split.json")
    assert load_split(tmp_path / "split.json", check_files=False) == stored  # the ids alone
    with pytest.raises(PairingError, match="20 ids not among the given pairs"):
        load_split(tmp_path / "split.json", split.train + split.val)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PairingError, match="bad.json' cannot be read"):
        load_split(tmp_path / "bad.json")
    # JSON, but not a manifest: a clear error, never a traceback the drivers do not catch.
    for manifest, problem in [([1, 2], "TypeError"), ({"train": [], "val": []}, "KeyError: 'test'"),
                              ({"train": [{"id": "ISIC_0000001"}], "val": [], "test": []},
                               "KeyError: 'image'"), ({"train": [7], "val": [], "test": []},
                                                      "TypeError")]:
        (tmp_path / "bad.json").write_text(json.dumps(manifest))
        for given in (None, hundred_pairs):
            with pytest.raises(PairingError, match=f"bad.json' is not laid out as save_split "
                                                   f"writes it .*: {problem}"):
                load_split(tmp_path / "bad.json", given)


def test_a_data_set_in_ph2s_layout_pairs_through_links_named_by_id(tmp_path):
    cases = tmp_path / "PH2 Dataset images"
    lesion = np.zeros((12, 16), bool)
    lesion[3:7, 4:10] = True  # 24 pixels
    for case in ("IMD002", "IMD003"):  # each case in a folder of its own, as PH2 keeps them
        (cases / case / f"{case}_Dermoscopic_Image").mkdir(parents=True)
        (cases / case / f"{case}_lesion").mkdir()
        Image.fromarray(IMAGE).save(cases / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp")
        Image.fromarray(lesion).save(cases / case / f"{case}_lesion" / f"{case}_lesion.bmp")
    for folder in ("images", "masks"):  # the GUIDE's links ("Train and evaluate on ISIC ...")
        (tmp_path / "PH2" / folder).mkdir(parents=True)
    for case in sorted(path.name for path in cases.iterdir()):
        (tmp_path / "PH2" / "images" / f"{case}.bmp").symlink_to(
            cases / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp")
        (tmp_path / "PH2" / "masks" / f"{case}.bmp").symlink_to(
            cases / case / f"{case}_lesion" / f"{case}_lesion.bmp")
    pairs = find_pairs(tmp_path / "PH2")
    assert [pair.id for pair in pairs] == ["IMD002", "IMD003"]
    assert Image.open(pairs[0].mask_path).mode == "1"  # a 1-bit BMP, as PH2's masks
    assert load_segmented_image(pairs[0].mask_path).sum() == 24
