"""Both drivers end to end in a subprocess, on tiny settings, and their one-line errors."""

import json
import subprocess
import sys

from segment import load_segmented_image, read_image_size

import pandas as pd
import pytest
from conftest import REPO, assert_consistent_report

TINY = ["--size", "32", "--base-filters", "4", "--depth", "3", "--epochs", "2",
        "--batch-size", "4", "-q"]


def run(script, *arguments):
    return subprocess.run([sys.executable, str(REPO / script), *map(str, arguments)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run of the train driver on 20 synthetic pairs."""
    root = tmp_path_factory.mktemp("driver")
    done = run("driver_train_save_evaluate.py", "--run-dir", root / "run", "--synthetic-dir",
               root / "synthetic", "--num-synthetic", 20, "--augment", "--inspect", *TINY)
    assert done.returncode == 0, done.stderr
    return root, done


@pytest.mark.slow
def test_train_driver_writes_a_complete_run(trained_run):
    root, done = trained_run
    run_dir = root / "run"
    for name in ["model.keras", "split.json", "log.csv", "config.json", "image_sizes.png",
                 "training_curves.png", "dice_histogram.png", "best_predictions.png"]:
        assert (run_dir / name).exists(), name
    split = json.loads((run_dir / "split.json").read_text())
    assert [len(split[part]) for part in ["train", "val", "test"]] == [12, 4, 4]
    summary = assert_consistent_report(run_dir, 4)
    assert f"dice         mean {summary['dice']['mean']:.4f}" in done.stdout
    assert f"Report: {run_dir / 'report.html'}" in done.stdout
    assert len(pd.read_csv(run_dir / "log.csv")) == 2


@pytest.mark.slow
def test_train_driver_refuses_to_overwrite_a_finished_run(trained_run):
    root, _ = trained_run
    again = run("driver_train_save_evaluate.py", "--run-dir", root / "run", "--synthetic-dir",
                root / "synthetic", "--num-synthetic", 20, *TINY)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: '{root / 'run'}' already holds a finished run; pass --overwrite or choose "
        f"another --run-dir"]


@pytest.mark.slow
def test_evaluate_driver_uses_the_manifest_beside_the_model(trained_run):
    root, _ = trained_run
    done = run("driver_load_evaluate.py", "--model", root / "run" / "model.keras", "-q")
    assert done.returncode == 0, done.stderr
    summary = assert_consistent_report(root / "run" / "evaluation", 4)
    assert "test part of" in done.stdout and summary["settings"]["resolution"] == "original"


@pytest.mark.slow
def test_predict_only_writes_isic_masks_at_original_size(trained_run):
    root, _ = trained_run
    out = root / "predicted"
    done = run("driver_load_evaluate.py", "--model", root / "run" / "model.keras",
               "--predict-only", root / "synthetic" / "images", "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote 20 masks to {out}"
    mask_path = out / "ISIC_0000003_segmentation.png"
    image_size = read_image_size(root / "synthetic" / "images" / "ISIC_0000003.jpg")
    assert load_segmented_image(mask_path).shape == image_size


@pytest.mark.parametrize("script, arguments, message", [
    ("driver_train_save_evaluate.py", ["--images", "/nonexistent/folder"], "does not exist"),
    ("driver_load_evaluate.py", ["--model", "/nonexistent/model.keras"], "does not exist"),
])
def test_one_line_errors(script, arguments, message):
    done = run(script, *arguments, "-q")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_folder_without_pairs_and_file_that_is_not_a_model(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "ISIC_0000001.jpg").write_bytes(b"x")
    done = run("driver_train_save_evaluate.py", "--images", tmp_path / "images", "-q")
    assert done.returncode == 2 and "no image/mask pairs" in done.stderr
    (tmp_path / "model.keras").write_text("not a model")
    done = run("driver_load_evaluate.py", "--model", tmp_path / "model.keras", "-q")
    assert done.returncode == 2 and "could not be loaded as a Keras model" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("script, flags", [
    ("driver_train_save_evaluate.py", ["--images", "--masks", "--run-dir", "--size", "--epochs",
                                       "--batch-size", "--base-filters", "--inspect",
                                       "--augment", "--mixed-precision", "--seed",
                                       "--overwrite", "--tta", "--postprocess"]),
    ("driver_load_evaluate.py", ["--model", "--images", "--masks", "--split-manifest",
                                 "--predict-only", "--out", "--tta", "--overwrite"]),
])
def test_help_documents_every_flag_with_defaults(script, flags):
    done = run(script, "--help")
    assert done.returncode == 0
    for flag in flags:
        assert flag in done.stdout, flag
    assert "(default:" in done.stdout
