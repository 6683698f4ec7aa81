"""One file in, one array out: read dermoscopy images and lesion masks, write masks.

Conventions: images load as RGB uint8 (EXIF orientation applied, alpha dropped,
greyscale expanded, 16-bit scaled to 8 bits); masks load as {0, 1} uint8 where any value > 127
is lesion. Sizes are always (height, width). With `size=` the image is resized bilinearly with
antialiasing (JPEGs are decoded at a reduced scale first where that still covers `size`) and the
mask by area averaging then thresholding, so it stays binary.
"""

import contextlib
import io
import logging
import warnings
from pathlib import Path
from struct import error as struct_error  # PIL raises it for corrupt headers

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageReadError
from .files import atomic_path

__all__ = [
    "IMAGE_SUFFIXES",
    "encode_mask",
    "load_input_image",
    "load_segmented_image",
    "read_image_size",
    "resize_image",
    "resize_mask",
    "resize_probabilities",
    "save_mask",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_input_image(path, size=None):
    """Load a dermoscopy image as RGB uint8.

    Args:
        path: Image file (JPEG, PNG, BMP or TIFF).
        size: Optional (height, width) to resize to, bilinear with antialiasing. JPEGs are
            decoded at the smallest 1/2, 1/4 or 1/8 scale that still covers `size`.

    Returns:
        uint8 array of shape (height, width, 3): the EXIF orientation is applied, alpha is
        dropped, greyscale is repeated over 3 channels and 16-bit data is scaled to 8 bits.

    Raises:
        ImageReadError: the file is missing, empty, truncated, not an image, or has more pixels
            than `PIL.Image.MAX_IMAGE_PIXELS` (raise that limit to read it anyway).

    Example:
        >>> image = load_input_image(data_dir / "images" / "SYNTH_0000000.jpg", size=(32, 32))
        >>> image.shape, image.dtype
        ((32, 32, 3), dtype('uint8'))
    """
    size = _check_size(size)
    image = _open(path)
    with _reading(path):
        if size is not None and image.format == "JPEG":
            height, width = size
            if _orientation(image) in _TRANSPOSED_ORIENTATIONS:
                height, width = width, height
            image.draft("RGB", (width, height))
        image = ImageOps.exif_transpose(image)
        if image.mode in _SIXTEEN_BIT_MODES:
            image = Image.fromarray(_sixteen_to_eight_bits(np.asarray(image)))
        image = image.convert("RGB")
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def load_segmented_image(path, size=None, *, label_map=False):
    """Load a lesion mask as {0, 1} uint8.

    Any value > 127 is lesion. 8-bit, 1-bit, palette, RGB(A) and 16-bit masks are accepted:
    palette and RGB masks use the brightest channel of each pixel's colour; 16-bit masks whose
    maximum exceeds 255 are scaled to 8 bits first (65535 -> 255). A mask with non-zero values
    but none above 127 reads as all background and logs a warning naming the file, unless
    `label_map` lets a mask of 0s and 1s only read 1 as lesion.

    Args:
        path: Mask file, e.g. `ISIC_0000000_segmentation.png` (0 = skin, 255 = lesion).
        size: Optional (height, width): resized by area averaging, then thresholded at 0.5.
        label_map: Read a mask whose values are all 0 or 1 (a label map, as nnU-Net and MONAI
            write their predictions) with 1 as lesion. Defaults to False: ISIC's truths are
            0/255, and a truth of 0s and 1s is more likely a broken export than a label map.

    Returns:
        uint8 array of shape (height, width) with values in {0, 1}.

    Raises:
        ImageReadError: as for `load_input_image`.

    Example:
        >>> mask = load_segmented_image(data_dir / "masks" / "SYNTH_0000000_segmentation.png")
        >>> mask.shape, mask.dtype, np.unique(mask).tolist()
        ((52, 59), dtype('uint8'), [0, 1])
    """
    size = _check_size(size)
    image = _open(path)
    with _reading(path):
        image = ImageOps.exif_transpose(image)
        values = _mask_values(image)
    mask = values > 127
    if label_map and values.max(initial=0) == 1:
        mask = values == 1
    elif not mask.any() and values.max(initial=0) > 0:
        logger.warning("mask '%s' has values up to %d but none above 127, so it reads as all "
                       "background (lesion pixels should be 255)", path, values.max())
    return resize_mask(mask, size) if size is not None else mask.astype(np.uint8)


def read_image_size(path):
    """Return an image file's (height, width) after EXIF orientation, reading only its header.

    Raises:
        ImageReadError: as for `load_input_image`.

    Example:
        >>> read_image_size(data_dir / "images" / "SYNTH_0000000.jpg")  # (height, width)
        (52, 59)
    """
    image = _open(path)
    with _reading(path):
        width, height = image.size
        if _orientation(image) in _TRANSPOSED_ORIENTATIONS:
            width, height = height, width
    image.close()
    return height, width


def save_mask(mask, path):
    """Write a binary mask as an 8-bit PNG with values 0 and 255 (`encode_mask`), atomically.

    Args:
        mask: Array of shape (height, width), bool or {0, 1} integers.
        path: Output file, normally `ISIC_xxxxxxx_segmentation.png`.

    Example:
        >>> save_mask(np.eye(4, dtype=np.uint8), tmp / "ISIC_0000000_segmentation.png")
        >>> np.unique(load_segmented_image(tmp / "ISIC_0000000_segmentation.png")).tolist()
        [0, 1]
    """
    content = encode_mask(mask)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(content)


def encode_mask(mask):
    """A binary mask as the bytes of an 8-bit greyscale PNG with values 0 and 255, as ISIC's
    masks are stored.

    Args:
        mask: Array of shape (height, width), bool or {0, 1} integers.

    Returns:
        bytes.

    Example:
        >>> Image.open(io.BytesIO(encode_mask(np.eye(4, dtype=np.uint8)))).getextrema()
        (0, 255)
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"A mask must be 2-D (height, width). Received: shape={mask.shape}")
    encoded = io.BytesIO()
    Image.fromarray((mask > 0).astype(np.uint8) * np.uint8(255)).save(encoded, format="PNG")
    return encoded.getvalue()


def _check_size(size):
    if size is None:
        return None
    size = tuple(int(side) for side in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (height, width) with positive sides. Received: size={size}")
    return size


def _open(path):
    """Open `path` lazily (header only) or raise ImageReadError saying why not."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ImageReadError(path, "is a folder, not an image file")
        num_bytes = path.stat().st_size
    except FileNotFoundError:
        raise ImageReadError(path, "does not exist") from None
    except ImageReadError:
        raise
    except OSError as error:
        raise ImageReadError(path, f"cannot be read: {error}") from None
    if num_bytes == 0:
        raise ImageReadError(path, "is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise ImageReadError(path, f"refused: {error}") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "is not an image file PIL can read "
                                   "(expected JPEG, PNG, BMP or TIFF)") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageReadError(path, f"cannot be read: {error}") from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        image.close()
        raise ImageReadError(
            path, f"refused: {image.width}x{image.height} = {image.width * image.height} "
            f"pixels is more than PIL.Image.MAX_IMAGE_PIXELS = {limit} (a possible decompression "
            f"bomb); set PIL.Image.MAX_IMAGE_PIXELS higher to read it")
    return image


@contextlib.contextmanager
def _reading(path):
    """Turn PIL's decoding errors (truncated data, bad EXIF, ...) into ImageReadError."""
    try:
        yield
    except (OSError, ValueError, SyntaxError, EOFError, struct_error) as error:
        if isinstance(error, ImageReadError):
            raise
        raise ImageReadError(path, f"cannot be decoded: {error}") from None


def _orientation(image):
    try:
        return image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError, struct_error):  # malformed EXIF: keep as stored
        return 1


def _sixteen_to_eight_bits(values):
    values = values.astype(np.float32)
    if values.max(initial=0) > 255:
        values = values / 257.0
    return np.clip(values, 0, 255).astype(np.uint8)


def _mask_values(image):
    """(height, width) array in 0..255 whose values > 127 are lesion."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_to_eight_bits(np.asarray(image))
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        return np.clip(values * 255 if values.max(initial=0) <= 1 else values, 0, 255)
    if image.mode in ("1", "L", "LA"):
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB")).max(axis=-1)


def resize_image(image, size):
    """A uint8 (h, w, 3) image resized bilinearly to `size` (height, width), as a network sees
    an image given as an array.

    Example:
        >>> resize_image(np.zeros((40, 60, 3), np.uint8), (16, 24)).shape
        (16, 24, 3)
    """
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]),
                                                    Image.Resampling.BILINEAR))


def resize_probabilities(probabilities, size):
    """Float (h, w) probabilities resized bilinearly to `size` (height, width), as `evaluate`
    scores them at an image's own size; float32, unchanged when already that size.

    Example:
        >>> resize_probabilities(np.ones((2, 2)), (4, 6)).shape
        (4, 6)
    """
    if probabilities.shape == tuple(size):
        return probabilities.astype(np.float32)
    image = Image.fromarray(probabilities.astype(np.float32))  # mode "F"
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def resize_mask(mask, size):
    """Resize a (height, width) binary mask to `size` = (height, width), keeping it binary.

    Area averaging, then a threshold at 0.5: thin structures survive downscaling better than
    with nearest-neighbour sampling.

    Returns:
        uint8 array of shape `size` with values in {0, 1}.
    """
    mask = np.asarray(mask) > 0
    if mask.shape == tuple(size):
        return mask.astype(np.uint8)
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return (np.asarray(image.resize((size[1], size[0]), Image.Resampling.BOX)) > 127).astype(
        np.uint8)

