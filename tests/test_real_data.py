"""The real ISIC sample in ../shared/data/isic-sample: loading, inspecting, a driver run."""

import subprocess
import sys

from segment import find_pairs, inspect, load_input_image, load_segmented_image

import numpy as np
import pytest
from conftest import EAGER_DRIVER, REPO, assert_consistent_report


@pytest.fixture(scope="module")
def real_pairs(isic_sample):
    return find_pairs(isic_sample)


def test_all_sample_pairs_are_found(real_pairs):
    assert len(real_pairs) == 274
    assert not real_pairs.unpaired_images and not real_pairs.unpaired_masks
    assert real_pairs[0].mask_path.name == f"{real_pairs[0].id}_segmentation.png"


def test_real_images_and_masks_load_and_resize(real_pairs):
    for pair in real_pairs[:: len(real_pairs) // 8]:
        image = load_input_image(pair.image_path, size=(96, 128))
        mask = load_segmented_image(pair.mask_path, size=(96, 128))
        assert image.shape == (96, 128, 3) and image.dtype == np.uint8
        assert mask.shape == (96, 128) and set(np.unique(mask)) <= {0, 1}
        assert 0 < mask.mean() < 1


def test_inspect_reads_every_header(real_pairs):
    report = inspect(real_pairs, plot=False)
    assert report.num_images == 274 and not report.unreadable and not report.mismatched
    assert report.counts[(3872, 2592)] >= 1  # the full-resolution large image


def test_train_driver_on_real_images(real_pairs, tmp_path):
    # A handful of the real pairs (every 14th: 20, at their original sizes), linked into a folder.
    for pair in real_pairs[::14]:
        for path, folder in [(pair.image_path, "images"), (pair.mask_path, "masks")]:
            (tmp_path / "data" / folder).mkdir(parents=True, exist_ok=True)
            (tmp_path / "data" / folder / path.name).symlink_to(path)
    done = subprocess.run(
        [sys.executable, EAGER_DRIVER, str(REPO / "driver_train_save_evaluate.py"), "--images",
         str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"), "--size", "32",
         "--base-filters", "4", "--depth", "2", "--epochs", "1", "--batch-size", "4", "-q"],
        capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr
    summary = assert_consistent_report(tmp_path / "run", 4)  # 20 pairs: 12 / 4 / 4
    assert summary["skipped"] == 0 and summary["settings"]["resolution"] == "original"
