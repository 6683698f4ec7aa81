"""Helper of tests/test_torch_weights.py, run in a fresh Python where PyTorch cannot be
imported (not collected).

    python tests/hostile_weights_run.py FOLDER

1. Each file of `torch_files.crafted_files()` through `read_torch_weights` and through the
   train driver (`--encoder efficientnet_lite0 --encoder-weights FILE`): the refusal, the
   driver's exit status and stderr, and what it wrote.
2. Hypothesis mutates 1 to 4 bytes of genuine zip and legacy files, 1,000 times each. A zip
   file then reads as the genuine tensors or is refused (its members carry CRCs); a legacy
   file may hold other values or names and must then read as well-formed arrays within the
   cap. Anything else (another exception, a message of two lines) is a failure.

Prints one JSON line. A crash (SIGSEGV, an abort) shows as this process' exit status.
"""

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

MUTATIONS_PER_LAYOUT = 1000
FUZZ_CAP = 1 << 20  # max_bytes of the mutated reads: a mutation may not allocate past it


def crafted_through_library_and_driver(folder, pair):
    from segment.cli import train_main
    from segment.errors import ModelLoadError
    from segment.torch_weights import read_torch_weights

    from torch_files import crafted_files

    found = {}
    for index, (case, (content, reason)) in enumerate(crafted_files().items()):
        path = folder / f"crafted {index}.pth"
        path.write_bytes(content)
        try:
            read_torch_weights(path)
            library = "read without error"
        except ModelLoadError as error:
            library = str(error)
        before = set(folder.rglob("*"))
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            status = train_main(["--images", str(pair.image_path.parent),
                                 "--masks", str(pair.mask_path.parent),
                                 "--run-dir", str(folder / f"run {index}"),
                                 "--encoder", "efficientnet_lite0", "--encoder-weights", str(path),
                                 "--size", "32", "--epochs", "1", "-q"])
        found[case] = {"library": library,
                       "library_matches": re.search(reason, library) is not None,
                       "driver_status": status, "driver_stderr": stderr.getvalue(),
                       "written": sorted(str(new) for new in set(folder.rglob("*")) - before)}
    return found


def mutations(folder):
    from segment.errors import ModelLoadError
    from segment.torch_weights import read_torch_weights

    import numpy as np
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from torch_files import expected_arrays, genuine_tensors, pth_bytes

    path = folder / "mutated.pth"
    expected = expected_arrays(genuine_tensors())
    counts = {"tried": 0, "refused": 0, "read_right": 0, "read_other": 0}

    def read(content):
        counts["tried"] += 1
        path.write_bytes(content)
        try:
            arrays = read_torch_weights(path, max_bytes=FUZZ_CAP)
        except ModelLoadError as error:
            message = str(error)
            assert message.startswith(f"weights file '{path}'") and "\n" not in message, message
            counts["refused"] += 1
            return None
        assert arrays and all(isinstance(name, str) and isinstance(array, np.ndarray)
                              and array.flags["C_CONTIGUOUS"] for name, array in arrays.items())
        assert sum(array.nbytes for array in arrays.values()) <= FUZZ_CAP
        right = list(arrays) == list(expected) and all(
            arrays[name].dtype == array.dtype and np.array_equal(arrays[name], array)
            for name, array in expected.items())
        counts["read_right" if right else "read_other"] += 1
        return right

    def fuzz(layout, must_be_right):
        genuine = pth_bytes(genuine_tensors(), layout=layout)
        edits = st.lists(st.tuples(st.integers(0, len(genuine) - 1), st.integers(0, 255)),
                         min_size=1, max_size=4)

        @settings(max_examples=MUTATIONS_PER_LAYOUT, deadline=None, database=None,
                  derandomize=True, phases=[Phase.generate, Phase.shrink],
                  suppress_health_check=list(HealthCheck))
        @given(edits)
        def test(changes):
            content = bytearray(genuine)
            for position, value in changes:
                content[position] = value
            right = read(bytes(content))
            assert right is not False or not must_be_right, f"{layout}: other tensors read"

        test()

    failures = []
    for layout, must_be_right in [("zip", True), ("legacy", False)]:
        try:
            fuzz(layout, must_be_right)
        except Exception as error:  # noqa: BLE001 - Hypothesis' shrunk failing example
            failures.append(f"{layout}: {type(error).__name__}: {error}")
    return {**counts, "failures": failures}


class _WithoutTorch:
    """A meta-path finder under which `import torch` fails, as on a [cpu] install."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named '{name}' (hidden from this test)")
        return None


def main(folder):
    sys.meta_path.insert(0, _WithoutTorch())
    sys.path.insert(0, str(Path(__file__).parent))  # torch_files
    from segment.synthetic import make_synthetic_dataset

    pair = make_synthetic_dataset(folder / "data", 6, seed=0)[0]
    result = {"cases": crafted_through_library_and_driver(folder, pair),
              "mutations": mutations(folder)}
    try:
        import torch  # noqa: F401
        result["torch_importable"] = True
    except ImportError:
        result["torch_importable"] = False
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main(Path(sys.argv[1]))
