"""Loaders: formats, orientation, resizing, and a clear error for every kind of bad file."""

import logging

from segment import ImageReadError, load_input_image, load_segmented_image, save_mask
from segment.images import read_image_size, resize_mask

import numpy as np
import pytest
from conftest import write_image
from PIL import Image


def gradient(height, width):
    """(height, width, 3) uint8 image whose red channel rises left to right."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    image[..., 1] = 100
    return image


def test_rgb_jpeg_loads_as_uint8_rgb(tmp_path):
    path = write_image(tmp_path / "ISIC_0000001.jpg", gradient(30, 40), quality=95)
    image = load_input_image(path)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    assert abs(int(image[15, 39, 0]) - 255) < 8  # the right edge is bright red


@pytest.mark.parametrize("mode", ["RGBA", "L", "CMYK", "P"])
def test_other_modes_become_rgb(tmp_path, mode):
    picture = Image.fromarray(gradient(20, 24)).convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    picture.save(path)
    image = load_input_image(path)
    assert image.shape == (20, 24, 3) and image.dtype == np.uint8


def test_rgba_alpha_is_dropped(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0  # fully transparent: the colour underneath is kept
    image = load_input_image(write_image(tmp_path / "a.png", rgba))
    assert image.shape == (8, 8, 3) and int(image[0, 0, 0]) == 200


def test_greyscale_is_repeated_over_channels(tmp_path):
    grey = np.full((6, 7), 77, np.uint8)
    image = load_input_image(write_image(tmp_path / "g.png", grey))
    assert image.shape == (6, 7, 3) and (image == 77).all()


def test_sixteen_bit_image_is_scaled_to_eight_bits(tmp_path):
    values = np.full((5, 5), 65535, np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    image = load_input_image(path)
    assert image.dtype == np.uint8 and int(image.max()) == 255


def test_exif_orientation_is_applied(tmp_path):
    picture = Image.fromarray(gradient(20, 40))  # stored 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    picture.save(path, exif=exif, quality=95)
    assert load_input_image(path).shape == (40, 20, 3)
    assert read_image_size(path) == (40, 20)
    assert load_input_image(path, size=(16, 8)).shape == (16, 8, 3)


def test_resize_is_bilinear_to_height_width(tmp_path):
    path = write_image(tmp_path / "x.png", gradient(40, 80))
    image = load_input_image(path, size=(10, 20))
    assert image.shape == (10, 20, 3)
    assert (np.diff(image[5, :, 0].astype(int)) >= 0).all()  # the gradient survives, smoothly


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    path = write_image(tmp_path / "big.jpg", gradient(800, 1200), quality=90)
    requests = []
    original = Image.Image.draft

    def spy(self, mode, size):
        requests.append(size)
        return original(self, mode, size)

    monkeypatch.setattr("PIL.JpegImagePlugin.JpegImageFile.draft", spy, raising=False)
    image = load_input_image(path, size=(100, 150))
    assert image.shape == (100, 150, 3)
    assert requests == [(150, 100)]  # (width, height): PIL picks the 1/8 scale covering it


@pytest.mark.parametrize("values, expected_lesion", [
    ([0, 255], [0, 1]),
    ([0, 100, 128, 255], [0, 0, 1, 1]),  # any value > 127 is lesion
])
def test_mask_threshold_at_127(tmp_path, values, expected_lesion):
    mask = np.array([values], np.uint8)  # (1, len(values))
    loaded = load_segmented_image(write_image(tmp_path / "m_segmentation.png", mask))
    assert loaded.dtype == np.uint8 and loaded[0].tolist() == expected_lesion


def test_mask_with_only_low_values_warns(tmp_path, caplog):
    path = write_image(tmp_path / "ISIC_0000009_segmentation.png", np.array([[0, 1]], np.uint8))
    with caplog.at_level(logging.WARNING):
        assert load_segmented_image(path).sum() == 0
    assert "ISIC_0000009_segmentation.png" in caplog.text and "none above 127" in caplog.text


def test_sixteen_bit_palette_and_rgb_masks(tmp_path):
    deep = np.array([[0, 65535]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), mode="L").convert("P")
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    write_image(tmp_path / "rgb.png", np.array([[[0, 0, 0], [255, 0, 0]]], np.uint8))
    for name in ["deep.png", "palette.png", "rgb.png"]:
        assert load_segmented_image(tmp_path / name)[0].tolist() == [0, 1], name


def test_mask_resize_stays_binary(tmp_path):
    mask = np.zeros((64, 64), np.uint8)
    mask[10:50, 20:40] = 255
    loaded = load_segmented_image(write_image(tmp_path / "m.png", mask), size=(17, 23))
    assert loaded.shape == (17, 23) and set(np.unique(loaded)) == {0, 1}
    assert abs(loaded.mean() - (40 * 20) / 64**2) < 0.05


def test_resize_mask_keeps_binary_values():
    mask = np.eye(8, dtype=np.uint8)
    assert set(np.unique(resize_mask(mask, (13, 5)))) <= {0, 1}


def test_save_mask_writes_0_255_png(tmp_path):
    mask = np.array([[0, 1], [1, 0]], np.uint8)
    path = tmp_path / "ISIC_0000001_segmentation.png"
    save_mask(mask, path)
    assert np.asarray(Image.open(path)).tolist() == [[0, 255], [255, 0]]
    assert load_segmented_image(path).tolist() == mask.tolist()
    with pytest.raises(ValueError, match="2-D"):
        save_mask(np.zeros((2, 2, 1)), path)


def test_truncated_jpeg_is_named(tmp_path):
    path = write_image(tmp_path / "ISIC_0000002.jpg", gradient(200, 200), quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="ISIC_0000002.jpg.*(truncated|decoded)"):
        load_input_image(path)


def test_non_image_with_jpg_name(tmp_path):
    path = tmp_path / "ISIC_0000003.jpg"
    path.write_text("this is not an image")
    with pytest.raises(ImageReadError, match="ISIC_0000003.jpg.*not an image"):
        load_input_image(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "ISIC_0000004_segmentation.png"
    path.touch()
    with pytest.raises(ImageReadError, match="ISIC_0000004_segmentation.png.*empty"):
        load_segmented_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        load_input_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageReadError, match="is a folder"):
        load_input_image(tmp_path)


def test_decompression_bomb_is_refused_unless_limit_raised(tmp_path, monkeypatch):
    path = write_image(tmp_path / "ISIC_0000005.png", np.zeros((100, 100), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(ImageReadError, match="ISIC_0000005.png.*MAX_IMAGE_PIXELS"):
        load_input_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20000)  # the user raises the limit
    assert load_input_image(path).shape == (100, 100, 3)


def test_bad_size_argument(tmp_path):
    path = write_image(tmp_path / "x.png", gradient(4, 4))
    with pytest.raises(ValueError, match="Received: size"):
        load_input_image(path, size=(0, 4))
