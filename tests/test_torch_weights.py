"""Reading PyTorch .pth state dicts without PyTorch's unpickler: same arrays, no code run."""

import os
import pickle

from segment.errors import ModelLoadError
from segment.torch_weights import read_torch_weights

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the comparison with torch.load needs PyTorch "
                                            "(in the [test] extra)")


def state_dict():
    """Tensors of several dtypes, one non-contiguous (a transposed view) and one a slice."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {"conv.weight": torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(0)),
            "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
            "transposed": base.t(), "sliced": base[1:3, 2:5], "half": torch.ones(3).half()}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_arrays_equal_what_torch_load_gives(tmp_path, zip_format):
    path = tmp_path / "weights.pth"
    torch.save(state_dict(), path, _use_new_zipfile_serialization=zip_format)
    ours = read_torch_weights(path)
    theirs = torch.load(path, weights_only=True)
    assert list(ours) == list(theirs)
    for name, tensor in theirs.items():
        np.testing.assert_array_equal(ours[name], tensor.numpy(), err_msg=name)
        assert ours[name].dtype == tensor.numpy().dtype and ours[name].flags["C_CONTIGUOUS"]
        assert ours[name].flags["WRITEABLE"]


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    path, marker = tmp_path / "hostile.pth", tmp_path / "ran"
    with open(path, "wb") as file:
        pickle.dump({"conv.weight": RunsCode(marker)}, file)
    with pytest.raises(ModelLoadError, match=r"hostile\.pth.*refused: it names '(posix|nt)"
                                             r"\.system'"):
        read_torch_weights(path)
    assert not marker.exists()


@pytest.mark.parametrize("content, problem", [
    (b"", "not a readable PyTorch state dict"),
    (pickle.dumps([1, 2, 3]), "not a readable PyTorch state dict"),
])
def test_empty_or_foreign_files_give_one_line_naming_them(tmp_path, content, problem):
    path = tmp_path / "foreign.pth"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=f"foreign.pth.*{problem}") as error:
        read_torch_weights(path)
    assert "\n" not in str(error.value)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(state_dict(), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ModelLoadError, match="cut.pth' is not a readable PyTorch state dict"):
        read_torch_weights(path)
