"""Property-based tests: random bytes and random shapes never crash, hang or mislead.

Loaders must return a valid array or raise ImageReadError; load_model must return a model or
raise ModelLoadError; metrics must stay in range and agree with a plain numpy reference.
"""

import io
import math
import tempfile
from pathlib import Path

from segment import (
    ImageReadError,
    ModelLoadError,
    dice_coefficient,
    hausdorff_distance_95,
    jaccard,
    load_input_image,
    load_model,
    load_segmented_image,
)

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

FOLDER = Path(tempfile.mkdtemp(prefix="segment-properties-"))
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def encoded(format_name):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 10, 3), np.uint8)).save(
        buffer, format=format_name)
    return buffer.getvalue()


VALID_FILES = {".png": encoded("PNG"), ".jpg": encoded("JPEG"), ".bmp": encoded("BMP"),
               ".tif": encoded("TIFF")}


@st.composite
def damaged_files(draw):
    """A valid image with random bytes overwritten and maybe cut short, or pure noise."""
    suffix = draw(st.sampled_from(sorted(VALID_FILES)))
    if draw(st.booleans()):
        return suffix, draw(st.binary(max_size=3000))
    data = bytearray(VALID_FILES[suffix])
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return suffix, bytes(data[: draw(st.integers(0, len(data)))])


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # PIL on damaged TIFFs
@FUZZ
@given(damaged_files())
def test_loaders_return_valid_arrays_or_raise_image_read_error(case):
    suffix, data = case
    path = FOLDER / f"fuzz{suffix}"
    path.write_bytes(data)
    for load, channels in [(load_input_image, (3,)), (load_segmented_image, ())]:
        for size in [None, (8, 8)]:
            try:
                array = load(path, size=size)
            except ImageReadError as error:
                assert error.path == path
                continue
            assert array.dtype == np.uint8 and array.shape[2:] == channels
            if size:
                assert array.shape[:2] == size
            if load is load_segmented_image:
                assert set(np.unique(array)) <= {0, 1}


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from([".keras", ".h5"]))
def test_load_model_on_random_bytes_raises_model_load_error(data, suffix):
    path = FOLDER / f"model{suffix}"
    path.write_bytes(data)
    try:
        load_model(path)
    except ModelLoadError as error:
        assert str(path) in str(error)
    else:
        raise AssertionError("random bytes loaded as a model")


@st.composite
def mask_batches(draw):
    """Two random binary batches of the same random shape (batch, height, width, 1)."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)), 1)
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    return ((rng.random(shape) < density).astype(np.float32),
            (rng.random(shape) < draw(st.sampled_from([0.0, 0.3, 1.0]))).astype(np.float32))


@settings(max_examples=100, deadline=None)
@given(mask_batches())
def test_dice_and_jaccard_match_numpy_and_stay_in_range(batches):
    truth, predicted = batches
    dice = np.asarray(dice_coefficient(truth, predicted))
    iou = np.asarray(jaccard(truth, predicted))
    assert dice.shape == iou.shape == (truth.shape[0],)
    for index in range(truth.shape[0]):
        t, p = truth[index].astype(bool), predicted[index].astype(bool)
        both = (t & p).sum()
        expected = 1.0 if t.sum() + p.sum() == 0 else 2 * both / (t.sum() + p.sum())
        assert math.isclose(dice[index], expected, rel_tol=1e-5, abs_tol=1e-6)
        assert 0.0 <= iou[index] <= dice[index] + 1e-6 <= 1.0 + 1e-6  # J <= D always
    assert np.allclose(dice, np.asarray(dice_coefficient(predicted, truth)))  # symmetric


@settings(max_examples=60, deadline=None)
@given(mask_batches())
def test_hd95_is_non_negative_symmetric_and_nan_only_when_one_mask_is_empty(batches):
    truth, predicted = (batch[0, ..., 0] for batch in batches)
    distance = hausdorff_distance_95(truth, predicted)
    one_empty = truth.any() != predicted.any()
    assert math.isnan(distance) == one_empty
    if not one_empty:
        assert 0.0 <= distance <= math.hypot(*truth.shape)
        assert distance == hausdorff_distance_95(predicted, truth)
