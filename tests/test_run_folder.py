"""RunFolder: states, resume only with the same settings, overwrite clears all a run wrote."""

import json
import os
import re
import shutil
import subprocess
import sys

from segment import RunFolder, RunFolderError
from segment.run_folder import OUTPUTS

import pytest

RECORD = {"data": {"seed": 0}, "model": {"depth": 3}, "train": {"epochs": 2},
          "pairs": {"count": 10, "fingerprint": "abc"}, "versions": {"keras": "3"}}


def write_finished_run(folder):
    """Every file and folder a finished run (and the load driver) leaves, with content."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS.values():
        if "." in name:
            (folder / name).write_text(f"old {name}")
        else:
            (folder / name).mkdir()
            (folder / name / "inside").write_text("old")
    (folder / "config.json").write_text(json.dumps(RECORD))
    return folder


@pytest.mark.parametrize("files, state", [
    ([], "new"),
    (["split.json", "log.csv"], "unfinished"),  # killed before its first backup
    (["model.keras"], "unfinished"),  # trained, never evaluated
    (["model.keras", "report.html"], "finished"),
    (["model.keras", "report.html", "backup/"], "resumable"),
])
def test_states(tmp_path, files, state):
    for name in files:
        if name.endswith("/"):
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_text("x")
    assert RunFolder(tmp_path).state == state


def test_paths_come_from_the_one_table():
    run = RunFolder("runs/x")
    assert run.model.as_posix() == "runs/x/model.keras"
    assert run.cache_dir("train").as_posix() == "runs/x/cache/train"
    with pytest.raises(AttributeError, match="no attribute 'modle'"):
        run.modle  # noqa: B018


def test_finished_run_needs_overwrite_and_then_everything_it_wrote_goes(tmp_path):
    write_finished_run(tmp_path)
    shutil.rmtree(tmp_path / "backup")  # gone once training finished
    (tmp_path / "notes.txt").write_text("the user's own file")
    (tmp_path / ".model.abc.tmp.keras").write_text("half a model from a killed write")
    (tmp_path / ".report-xyz").mkdir()
    before = sorted(path.name for path in tmp_path.iterdir())
    with pytest.raises(RunFolderError, match="finished run with these settings; pass --overwrite"):
        RunFolder(tmp_path).begin(RECORD)
    with pytest.raises(RunFolderError, match=r"finished run with other settings \(model.depth: "
                                             r"3 -> 4\); pass --overwrite"):
        RunFolder(tmp_path).begin({**RECORD, "model": {"depth": 4}})
    # nothing touched; the lock file is taken first, before the checks
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*before, ".lock"])
    resuming = RunFolder(tmp_path).begin({**RECORD, "data": {"seed": 1}}, overwrite=True)
    assert resuming is False
    assert sorted(path.name for path in tmp_path.iterdir()) == [".lock", "config.json",
                                                                 "notes.txt"]
    assert json.loads((tmp_path / "config.json").read_text())["data"] == {"seed": 1}


def test_model_without_report_needs_overwrite(tmp_path):
    (tmp_path / "model.keras").write_text("a trained model")
    with pytest.raises(RunFolderError, match="already holds a model") as refused:
        RunFolder(tmp_path).begin(RECORD)
    assert (tmp_path / "model.keras").read_text() == "a trained model"
    assert (f"write the report with driver_load_evaluate.py --model {tmp_path / 'model.keras'} "
            f"--out {tmp_path};") in str(refused.value)


def test_interrupted_run_with_the_same_settings_resumes_and_keeps_everything(tmp_path):
    write_finished_run(tmp_path)
    (tmp_path / "report.html").unlink()
    before = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}
    same = {**RECORD, "versions": {"keras": "3.99"}}  # versions may differ
    run = RunFolder(tmp_path)
    assert run.begin(same) is True and run.resuming is True
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()
            if path.name != ".lock"} == before


def test_interrupted_run_with_other_settings_is_refused_or_cleared(tmp_path):
    write_finished_run(tmp_path)
    other = {**RECORD, "train": {"epochs": 3}}
    with pytest.raises(RunFolderError, match="other settings \\(train.epochs: 2 -> 3\\); pass "
                                             "--overwrite"):
        RunFolder(tmp_path).begin(other)
    assert (tmp_path / "backup" / "inside").exists()
    assert RunFolder(tmp_path).begin(other, overwrite=True) is False
    assert not (tmp_path / "backup").exists() and not (tmp_path / "cache").exists()


def test_settings_in_an_older_spelling_hold_the_same_run(tmp_path):
    write_finished_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**RECORD, "data": {"augment": False}}))
    run = RunFolder(tmp_path)
    assert run.holds_run({**RECORD, "data": {"augment": "none"}})
    assert not run.holds_run({**RECORD, "data": {"augment": "flips"}})
    assert not run.holds_run({**RECORD, "data": {"augment": "none"},
                              "pairs": {"count": 10, "fingerprint": "changed files"}})
    # a fine-tuned run resumes only from the same file it started from
    assert not run.holds_run({**RECORD, "data": {"augment": "none"}, "init_model_sha256": "ab"})


def test_a_batch_norm_mode_holds_the_same_run_only_where_no_pretrained_encoder_reads_it(tmp_path):
    write_finished_run(tmp_path)
    run = RunFolder(tmp_path)
    for encoder, same in [("improved_unet", True), ("efficientnet_lite0", False)]:
        (tmp_path / "config.json").write_text(json.dumps(
            {**RECORD, "model": {"encoder": encoder, "encoder_batchnorm": "train"}}))
        assert run.holds_run(
            {**RECORD, "model": {"encoder": encoder, "encoder_batchnorm": "frozen"}}) is same


def test_leftovers_of_a_start_without_a_model_are_cleared_without_overwrite(tmp_path):
    # A run killed in its first epoch: split, log and cache, but no backup and no model.
    for name in ["split.json", "log.csv", "best.json"]:
        (tmp_path / name).write_text("stale")
    (tmp_path / "cache").mkdir()
    assert RunFolder(tmp_path).begin(RECORD) is False
    assert sorted(path.name for path in tmp_path.iterdir()) == [".lock", "config.json"]


def test_a_worker_that_is_not_the_chief_joins_without_writing(tmp_path):
    write_finished_run(tmp_path / "run")
    before = sorted(path.name for path in (tmp_path / "run").iterdir())
    worker = RunFolder(tmp_path / "run")
    assert worker.join() is True and worker.resuming is True  # the chief's backup is there
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == before
    shutil.rmtree(tmp_path / "run" / "backup")
    assert RunFolder(tmp_path / "run").join() is False


# Another process holding a run folder's lock as `RunFolder.lock` does, until its stdin closes.
LOCK_HOLDER = """
import fcntl, sys
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
handle.write("process 4242 on elsewhere, since 2026-12-08 00:36:59\\n")
handle.flush()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_folder_another_process_trains_in_is_refused_and_left_as_it_is(tmp_path):
    run = write_finished_run(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run / ".lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(RunFolderError, match=re.escape(
                f"'{run}' is in use by another run (process 4242 on elsewhere, since "
                f"2026-12-08 00:36:59): wait for it to end, or choose another run folder")):
            RunFolder(run).begin(RECORD, overwrite=True)
        assert (run / "model.keras").read_text() == "old model.keras"  # nothing cleared
    finally:
        holder.stdin.close()
        holder.wait()
    assert RunFolder(run).begin(RECORD) is True  # its end released it: the run resumes


def test_a_folder_is_held_until_released_and_again_by_the_same_process(tmp_path):
    def other_process_can_lock():
        probe = ("import fcntl, sys; "
                 "fcntl.flock(open(sys.argv[1], 'a'), fcntl.LOCK_EX | fcntl.LOCK_NB)")
        return subprocess.run([sys.executable, "-c", probe, str(tmp_path / "run" / ".lock")],
                              capture_output=True).returncode == 0

    run = RunFolder(tmp_path / "run")
    assert run.begin(RECORD) is False
    assert RunFolder(tmp_path / "run").begin(RECORD) is False  # a notebook's cell run again
    assert (tmp_path / "run" / ".lock").read_text().startswith(f"process {os.getpid()} on ")
    assert not other_process_can_lock()
    run.release()
    assert other_process_can_lock()
