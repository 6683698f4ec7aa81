"""The names the docstring examples of `segment/` use, so every example runs under doctest.

`pytest` collects the examples (`--doctest-modules`); this fixture gives each of them, besides
the module's own names:

    segment, np      the package and NumPy
    tmp              an empty folder (pathlib.Path) of its own
    data_dir         a folder of 12 synthetic pairs at 48x64 (images/ and masks/)
    pairs            `find_pairs(data_dir)`; `split` their 6:2:2 split (seed 0)
    model            a tiny Improved UNet: 32x32 input, base 4 filters, 2 levels
    finished_run     a run folder `train_and_evaluate` finished (1 epoch at 32x32), made once
                     and only for the examples that name it

Everything is small enough for the examples to run in seconds on two CPU cores.

It also holds `keras_eagerly` and `keras_eagerly_in_module`, fixtures of the tests under tests/
as well, and puts the files with the most `slow` tests first in the run (see
`pytest_collection_modifyitems`).
"""

import collections
import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402
from segment.runtime import keras_backend  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

TINY = segment.RunConfig(
    data=segment.DataConfig(image_size=(32, 32), batch_size=4),
    model=segment.ModelConfig(base_filters=4, depth=2),
    train=segment.TrainConfig(epochs=1))


@contextlib.contextmanager
def eager_keras():
    """Within the block, Keras' training and prediction functions run eagerly on TensorFlow
    (tf.data's stay graphs); elsewhere, and on other backends, nothing changes."""
    if keras_backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture
def keras_eagerly(request):
    """Run Keras' functions eagerly in this test, unless it is marked `traced`.

    For tests of the training loop's bookkeeping (files, resuming, callbacks, refusals): its
    Python logic is the same eagerly, and a run skips tracing its graphs (what that saves:
    docs/ARCHITECTURE.md, "How the tests run"). A test marked `traced` runs as users do, in
    graphs, as do the doctests' examples and the processes that the drivers', reliability,
    distribution and backends' tests start (but for the two driver runs that
    tests/eager_run.py starts).
    """
    if request.node.get_closest_marker("traced"):
        yield
        return
    with eager_keras():
        yield


@pytest.fixture(scope="module")
def keras_eagerly_in_module():
    """Keras' functions eager for a whole test module, its module-scoped fixtures included
    (they are set up before a test's own `keras_eagerly`): test_backends.py's runs in this
    process, which train, save and load the models its tests move between backends."""
    with eager_keras():
        yield


def pytest_collection_modifyitems(items):
    """Order the files by how many `slow` tests each holds, most first, then the docstring
    examples (a few read a finished run, made once: about 15 s), then the other test files.

    `make test`'s workers take whole files in this order (`--dist loadfile
    --no-loadscope-reorder`), so the long files start early and the short ones fill the end,
    where neither worker should wait on the other's last long file.
    """
    slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: (-slow[item.path], not isinstance(item, pytest.DoctestItem)))


@pytest.fixture(scope="session")
def _doctest_data(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("doctest-data")
    segment.make_synthetic_dataset(data_dir, 12, size=(48, 64), seed=0)
    pairs = segment.find_pairs(data_dir)
    return {"data_dir": data_dir, "pairs": pairs, "split": segment.train_val_test_split(pairs)}


@pytest.fixture(scope="session")
def _doctest_finished_run(_doctest_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("doctest-run")
    with eager_keras():  # the examples read the run's files; they run traced themselves
        segment.train_and_evaluate(_doctest_data["pairs"], run_dir, TINY, verbose=0,
                                   progress=False)
    return run_dir


@pytest.fixture(autouse=True)
def _doctest_names(request, doctest_namespace, tmp_path_factory):
    """Fill the doctest namespace, for doctest items only (test functions pay nothing)."""
    if not isinstance(request.node, pytest.DoctestItem):
        return
    examples = "".join(example.source for example in request.node.dtest.examples)
    doctest_namespace.update(segment=segment, np=np)
    if "tmp" in examples:
        doctest_namespace["tmp"] = tmp_path_factory.mktemp("doctest")
    if any(name in examples for name in ("data_dir", "pairs", "split")):
        doctest_namespace.update(request.getfixturevalue("_doctest_data"))
    if "model" in examples:
        segment.training.set_seed(0)
        doctest_namespace["model"] = segment.create_model((32, 32, 3), TINY.model)
    if "finished_run" in examples:
        doctest_namespace["finished_run"] = request.getfixturevalue("_doctest_finished_run")
