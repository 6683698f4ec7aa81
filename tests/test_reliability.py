"""Faults, bad input and hostile files (docs/RELIABILITY.md lists each case and its test)."""

import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib

import segment
from segment import (
    ImageReadError,
    ModelLoadError,
    Pair,
    PairingError,
    RunConfig,
    RunFolderError,
    create_generator,
    evaluate,
    export_predictions,
    find_pairs,
    load_input_image,
    load_model,
    load_segmented_image,
    results,
    save_model,
)
from segment.cli import evaluate_main, train_main
from segment.comparison import compare_and_write

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, backed_up, constant_model, write_image

DRIVER = str(REPO / "driver_train_save_evaluate.py")


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


# Bad data ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_folder_of_2000_with_1_percent_corrupt_completes_and_lists_them(tmp_path):
    pairs = segment.make_synthetic_dataset(tmp_path / "data", 2000, size=(24, 32), seed=0)
    corrupt = []
    for index, pair in enumerate(pairs[::100]):  # 20 pairs, three kinds of damage
        if index % 3 == 0:
            data = pair.image_path.read_bytes()
            pair.image_path.write_bytes(data[: len(data) // 3])  # truncated JPEG
            corrupt.append(pair.image_path.name)
        elif index % 3 == 1:
            pair.mask_path.write_bytes(b"")  # zero-byte mask
            corrupt.append(pair.mask_path.name)
        else:
            pair.image_path.write_text("not a JPEG at all")  # text with a .jpg name
            corrupt.append(pair.image_path.name)
    done = subprocess.run(
        [sys.executable, DRIVER, "--images", str(tmp_path / "data"), "--run-dir",
         str(tmp_path / "run"), "--size", "16", "--base-filters", "2", "--depth", "2",
         "--epochs", "1", "--batch-size", "64"],
        capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = [line.split("\t")[0] for line in lines(tmp_path / "run" / "skipped_files.txt")]
    assert sorted(os.path.basename(path) for path in listed) == sorted(corrupt)
    assert "skipped 20 unreadable files; listed in" in done.stderr
    summary = pd.read_json(tmp_path / "run" / "summary.json", typ="series")
    table = pd.read_csv(tmp_path / "run" / "evaluation.csv")
    assert summary["count"] == len(table) == 400 - summary["skipped"]


def test_two_image_folders_under_one_parent_are_refused_clearly(tmp_path):
    for folder in ["ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1-2_Validation_Input",
                   "ISIC2018_Task1_Training_GroundTruth"]:
        (tmp_path / folder).mkdir()
    with pytest.raises(PairingError, match="several image or mask folders.*explicitly"):
        find_pairs(tmp_path)


def test_odd_file_names_work_end_to_end(tmp_path, tiny_model):
    names = ["ISIC 0000001 copy", os.fsdecode(b"ISIC_\xff\xfe0002")]  # a space; not UTF-8
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 10:30] = 200
    for name in names:
        write_image(tmp_path / "images" / f"{name}.jpg", image)
        write_image(tmp_path / "masks" / f"{name}_segmentation.png",
                    ((image[..., 0] > 0) * 255).astype(np.uint8))
    pairs = find_pairs(tmp_path)
    assert sorted(pair.id for pair in pairs) == sorted(names)
    batches = list(create_generator(pairs, image_size=(32, 32), batch_size=2))
    assert batches[0][0].shape == (2, 32, 32, 3) and batches[0][0].numpy().max() > 0
    report = results(tiny_model, pairs, run_dir=tmp_path / "run", progress=False)
    assert len(pd.read_csv(tmp_path / "run" / "evaluation.csv",
                           encoding_errors="surrogateescape")) == 2
    assert set(report.table.index) == set(names)
    written, _ = export_predictions(tiny_model, tmp_path / "images", tmp_path / "out",
                                    progress=False)
    assert sorted(path.name for path in written) == sorted(f"{n}_segmentation.png" for n in names)


def test_symlink_loop_is_reported_and_skipped(tmp_path):
    write_image(tmp_path / "ISIC_0000001.jpg", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "ISIC_0000001_segmentation.png", np.zeros((8, 8), np.uint8))
    os.symlink(tmp_path / "ISIC_0000003.jpg", tmp_path / "ISIC_0000002.jpg")
    os.symlink(tmp_path / "ISIC_0000002.jpg", tmp_path / "ISIC_0000003.jpg")
    pairs = find_pairs(tmp_path)
    assert [pair.id for pair in pairs] == ["ISIC_0000001"]
    assert {os.path.basename(path) for path, _ in pairs.unreadable} == {
        "ISIC_0000002.jpg", "ISIC_0000003.jpg"}
    written, skipped = export_predictions(constant_model(0.0, (8, 8)), tmp_path,
                                          tmp_path / "out", progress=False)
    assert [path.name for path in written] == ["ISIC_0000001_segmentation.png"]
    assert {os.path.basename(path) for path, _ in skipped} == {
        "ISIC_0000002.jpg", "ISIC_0000003.jpg"}
    report = segment.inspect(tmp_path, plot=False)
    assert report.num_images == 1 and len(report.unreadable) == 2
    skipped = []  # the folder given to the notebook's prediction call: the same two
    masks = list(segment.prediction.iter_predictions(constant_model(0.0, (8, 8)), tmp_path,
                                                     skipped=skipped))
    assert len(masks) == 1 and {os.path.basename(path) for path, _ in skipped} == {
        "ISIC_0000002.jpg", "ISIC_0000003.jpg"}


def test_unwritable_run_folder_gives_a_one_line_error(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file where the run folder should be")
    status = train_main(["--run-dir", str(tmp_path / "taken"), "--synthetic-dir",
                         str(tmp_path / "synthetic"), "--num-synthetic", "10", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error: ") and "taken" in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_run_folder_gives_a_one_line_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run").chmod(0o555)
    status = train_main(["--run-dir", str(tmp_path / "run"), "--synthetic-dir",
                         str(tmp_path / "synthetic"), "--num-synthetic", "10", "-q"])
    assert status == 2 and "Permission denied" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(1, 1), (20, 10000), (10000, 20)])
def test_tiny_and_extreme_aspect_images(tmp_path, tiny_model, shape):
    image = write_image(tmp_path / "ISIC_0000001.png", np.full((*shape, 3), 90, np.uint8))
    mask = write_image(tmp_path / "ISIC_0000001_segmentation.png", np.zeros(shape, np.uint8))
    assert load_input_image(image, size=(32, 32)).shape == (32, 32, 3)
    evaluation = evaluate(tiny_model, [Pair(image, mask)], progress=False)
    assert evaluation.table.loc["ISIC_0000001", ["height", "width"]].tolist() == list(shape)


def test_grey_and_cmyk_jpegs_load_as_rgb(tmp_path):
    write_image(tmp_path / "grey.jpg", np.full((10, 10), 128, np.uint8))
    Image = pytest.importorskip("PIL.Image")
    Image.new("CMYK", (10, 10), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert load_input_image(tmp_path / "grey.jpg").shape == (10, 10, 3)
    cmyk = load_input_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (10, 10, 3) and cmyk[..., 0].mean() > 200 > cmyk[..., 1].mean()


# Hostile files -------------------------------------------------------------------------------


def png_claiming_size(width, height):
    """A few hundred bytes of valid PNG header that claims a huge 1-bit image."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [12_000, 100_000])  # 1.6x and 100,000x PIL's pixel limit
def test_decompression_bomb_is_refused_without_decoding(tmp_path, side):
    path = tmp_path / "ISIC_0000666.png"
    path.write_bytes(png_claiming_size(side, side))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(ImageReadError, match="ISIC_0000666.png.*(MAX_IMAGE_PIXELS|bomb)"):
        load_input_image(path, size=(64, 64))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # < 50 MB


def test_lambda_model_is_refused_and_its_code_never_runs(tmp_path):
    keras = pytest.importorskip("keras")
    marker = tmp_path / "code_ran.txt"
    function = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), "
                    f"x)[1]")
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(function)(inputs)).save(tmp_path / "evil.keras")
    marker.unlink()  # building the model ran it once; loading must not
    with pytest.raises(ModelLoadError, match="evil.keras.*(safe_mode|Lambda)"):
        load_model(tmp_path / "evil.keras")
    assert not marker.exists()


def test_keras_zip_with_path_traversal_is_refused(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "good.keras")
    target = tmp_path / "models" / "evil.keras"
    target.parent.mkdir()
    with zipfile.ZipFile(tmp_path / "good.keras") as good, zipfile.ZipFile(target, "w") as evil:
        for item in good.infolist():
            evil.writestr(item, good.read(item))
        evil.writestr("../../escaped.txt", "outside")
    before = sorted(path.name for path in tmp_path.rglob("*"))
    with pytest.raises(ModelLoadError, match="evil.keras.*'../../escaped.txt'.*traversal"):
        load_model(target)
    assert sorted(path.name for path in tmp_path.rglob("*")) == before


def test_truncated_model_gives_a_clear_error_and_touches_nothing(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "model.keras")
    data = (tmp_path / "model.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    before = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}
    with pytest.raises(ModelLoadError, match="cut.keras.*could not be loaded"):
        load_model(tmp_path / "cut.keras")
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()} == before


# Faults during work ----------------------------------------------------------------------------


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_and_finishes_the_same_epochs(tmp_path):
    command = [sys.executable, DRIVER, "--run-dir", str(tmp_path / "run"), "--synthetic-dir",
               str(tmp_path / "synthetic"), "--num-synthetic", "80", "--size", "64",
               "--base-filters", "8", "--depth", "2", "--epochs", "3", "--batch-size", "2",
               "-q"]
    log = tmp_path / "run" / "log.csv"
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not backed_up(tmp_path / "run"):  # epoch 1 is backed up whole; epoch 2 runs
            assert process.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "epoch 1 never finished"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "report.html").exists()
    first_epoch_row = lines(log)[1]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert pd.read_csv(log)["epoch"].tolist() == [0, 1, 2]  # each epoch once, 3 in all
    assert lines(log)[1] == first_epoch_row  # epoch 1 was resumed from, not run again
    resumed = RunConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    assert (resumed.data.image_size, resumed.data.batch_size, resumed.model.depth,
            resumed.train.epochs) == ((64, 64), 2, 2, 3)
    assert (tmp_path / "run" / "report.html").exists()
    assert not (tmp_path / "run" / "backup").exists()


@pytest.mark.parametrize("failing", ["report.save_figure_atomic", "review._page"])
def test_failed_report_write_keeps_the_previous_report(tmp_path, tiny_model, synthetic_pairs,
                                                       monkeypatch, failing):
    pairs = synthetic_pairs[:3]
    compare_and_write(results(tiny_model, pairs, run_dir=tmp_path, progress=False), tmp_path)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert tmp_path / "review.html" in before and tmp_path / "review" / "rows.json" in before
    assert tmp_path / "comparison.json" in before  # the comparison of that report stays too

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    module, name = failing.split(".")
    monkeypatch.setattr(getattr(segment, module), name, full_disk)
    with pytest.raises(OSError, match="No space left"):
        results(segment.create_model((32, 32, 3), base_filters=4, depth=3), pairs,
                run_dir=tmp_path, progress=False)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_ctrl_c_during_evaluation_writes_no_partial_report(tmp_path, tiny_model, synthetic_pairs,
                                                          monkeypatch, capsys):
    save_model(tiny_model, tmp_path / "model.keras")
    segment.save_split(segment.train_val_test_split(synthetic_pairs), tmp_path / "split.json")
    calls = []

    def interrupted(truth, predicted):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_score(truth, predicted)

    real_score = segment.evaluation.score_masks
    monkeypatch.setattr(segment.evaluation, "score_masks", interrupted)
    status = evaluate_main(["--model", str(tmp_path / "model.keras"), "-q"])
    assert status == 130 and "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "evaluation").exists() or not any(
        (tmp_path / "evaluation").iterdir())


def test_predicted_masks_are_never_taken_for_ground_truth(tmp_path):
    # Predicted masks beside their images (or in a folder given as the masks) once paired
    # with the images as their truth: an evaluation then scored a model against its own
    # predictions.
    for index in range(2):
        write_image(tmp_path / "new" / f"ISIC_{index:07d}.jpg", np.zeros((16, 16, 3), np.uint8))
    for out in (tmp_path / "predicted", tmp_path / "new"):
        export_predictions(constant_model(5.0), tmp_path / "new", out, progress=False)
        with pytest.raises(PairingError, match=f"'{out}' holds predictions.csv: its masks are "
                                               f"a model's predictions"):
            find_pairs(tmp_path / "new", out)
    with pytest.raises(PairingError, match="holds predictions.csv"):
        find_pairs(tmp_path / "new")  # one folder holding images and (predicted) masks


def test_predicting_into_a_folder_of_masks_replaces_only_a_prediction_and_only_when_asked(
        tmp_path, synthetic_dir, monkeypatch):
    images = sorted((synthetic_dir / "images").iterdir())
    out = tmp_path / "out"
    # all lesion; a file listed twice is one image, predicted once
    first_written, first_skipped = export_predictions(constant_model(5.0),
                                                      [*images[:3], images[0]], out,
                                                      progress=False)
    assert len(first_written) == 3 and first_skipped == []
    first = {path.name: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    with pytest.raises(RunFolderError, match="already holds an earlier prediction "
                                             r"\(3 masks, predictions.csv, predictions.json"):
        export_predictions(constant_model(-5.0), images[3:5], out, progress=False)

    def failing(*arguments):  # the new prediction fails after its first mask
        raise OSError("disk full")

    monkeypatch.setattr(segment.prediction_folder, "review_pictures", failing)
    with pytest.raises(OSError, match="disk full"):
        export_predictions(constant_model(-5.0), images[3:5], out, progress=False,
                           overwrite=True)
    assert {path.name: path.read_bytes() for path in out.rglob("*") if path.is_file()} == first
    monkeypatch.undo()

    written, _ = export_predictions(constant_model(-5.0), images[3:5], out, progress=False,
                                    overwrite=True, tta=True)
    assert sorted(path.name for path in out.glob("*_segmentation.png")) == sorted(
        path.name for path in written)  # the first prediction's three masks are gone
    assert [path.name for path in out.iterdir() if path.name.startswith(".")] == []
    record = json.loads((out / "predictions.json").read_text())
    assert record["masks"] == 2 and record["settings"]["tta"] is True
    assert load_segmented_image(written[0]).max() == 0  # the new model's: nothing marked

    truth = tmp_path / "truth"  # masks this library did not write are never touched
    truth.mkdir()
    (truth / "ISIC_0000000_segmentation.png").write_bytes(b"someone's mask")
    with pytest.raises(RunFolderError,
                       match="holds 1 mask file that no predictions.csv there lists"):
        export_predictions(constant_model(5.0), images[:1], truth, progress=False,
                           overwrite=True)
    (out / "predictions.csv").write_text("id,mask\nx,../ISIC_0000000_segmentation.png\n")
    with pytest.raises(RunFolderError, match="not a mask file name this library writes"):
        export_predictions(constant_model(5.0), images[:1], out, progress=False,
                           overwrite=True)
    assert [path.name for path in truth.iterdir()] == ["ISIC_0000000_segmentation.png"]
    # A prediction and an evaluation's report never share a folder (each has its review page).
    with pytest.raises(RunFolderError, match="holds a prediction"):
        segment.RunFolder(out).check_report(overwrite=True)
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        export_predictions(constant_model(5.0), images[:1], written[0], progress=False)
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "report.html").write_text("an evaluation's report")
    with pytest.raises(RunFolderError, match="holds an evaluation"):
        export_predictions(constant_model(5.0), images[:1], tmp_path / "evaluation",
                           progress=False, overwrite=True)


# Determinism -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_same_run(tmp_path):
    # Another seed's other split, through the same train_and_evaluate, is checked in
    # test_workflow.py (a rerun with --seed 1).
    def run(name):
        arguments = ["--run-dir", str(tmp_path / name), "--synthetic-dir",
                     str(tmp_path / "synthetic"), "--num-synthetic", "20", "--size", "32",
                     "--base-filters", "4", "--depth", "2", "--epochs", "1", "--batch-size", "4",
                     "--augment", "--seed", "0", "-q"]
        assert train_main(arguments) == 0
        model = load_model(tmp_path / name / "model.keras")
        return ((tmp_path / name / "split.json").read_text(),
                [np.asarray(weight) for weight in model.weights],
                (tmp_path / name / "evaluation.csv").read_text())

    first, second = run("a"), run("b")
    assert first[0] == second[0] and first[2] == second[2]
    assert all(np.array_equal(x, y) for x, y in zip(first[1], second[1], strict=True))
