"""Data-layer speed: header-only `inspect`, scaled JPEG decode, and a first epoch on ISIC 2018.

    .venv/bin/python benchmarks/bench_data.py [ISIC_FOLDER]    # default: ../shared/data/isic-sample
    .venv/bin/python benchmarks/bench_data.py --quick          # a smoke run: 20 pairs

1. `inspect(pairs)` over every image and mask of the folder (headers only), extrapolated to the
   2,594 pairs of ISIC 2018 Task 1.
2. Loading each of the folder's images at 256x256 with `load_input_image` (PIL's scaled JPEG
   decode through `draft`) against decoding it at full size and then resizing.
3. On all 1,878 pairs of ../shared/data/isic2018-512 (when present): `find_pairs`, `inspect`,
   and the first epoch of `create_generator` (memory cache: every image and mask decoded and
   resized once) at 128x128 and 256x256, in images per second. The files were read before
   (page cache warm), as they are after the first run on a machine.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
from pathlib import Path

import segment

import numpy as np
from measure import seconds
from PIL import Image

ISIC_2018_PAIRS = 2594
ISIC2018_512 = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2018-512"


def full_decode_then_resize(path, size):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR))


def first_epoch_images_per_s(pairs, size):
    """Images per second of one pass over a fresh memory-cached pipeline (decode + resize)."""
    dataset = segment.create_generator(pairs, image_size=(size, size), batch_size=16,
                                       cache="memory")
    return len(pairs) / seconds(lambda: sum(1 for _ in dataset))


def full_data_layer(folder, quick):
    """find_pairs, inspect and first-epoch decode over every pair of `folder`."""
    found = []
    find_s = seconds(lambda: found.extend(segment.find_pairs(folder)))
    pairs = found[: 40 if quick else None]
    first_epoch_images_per_s(pairs[:16], 64)  # TensorFlow's start-up, not counted
    return {"pairs": len(pairs), "find_pairs_seconds": find_s,
            "inspect_seconds": seconds(lambda: segment.inspect(pairs, plot=False)),
            "first_epoch_images_per_s": {f"{size}x{size}": first_epoch_images_per_s(pairs, size)
                                         for size in (128, 256)}}


def main(folder, quick):
    pairs = segment.find_pairs(folder)[: 20 if quick else None]
    inspect_s = seconds(lambda: segment.inspect(pairs, plot=False))
    images = [pair.image_path for pair in pairs]
    scaled_s = seconds(lambda: [segment.load_input_image(path, (256, 256)) for path in images])
    full_s = seconds(lambda: [full_decode_then_resize(path, (256, 256)) for path in images])
    print(json.dumps({
        "pairs": len(pairs),
        "inspect_seconds": inspect_s,
        "inspect_seconds_for_isic2018": inspect_s / len(pairs) * ISIC_2018_PAIRS,
        "decode_to_256_images_per_s_scaled": len(images) / scaled_s,
        "decode_to_256_images_per_s_full": len(images) / full_s,
        "isic2018_512": (full_data_layer(ISIC2018_512, quick) if ISIC2018_512.is_dir() else
                         {"skipped": f"no ISIC 2018 data at {ISIC2018_512}"}),
    }, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, help="ISIC folder (default: the sample "
                        "beside the repository); skipped with a message when absent",
                        default=Path(__file__).resolve().parents[2] / "shared" / "data" /
                        "isic-sample")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 pairs")
    arguments = parser.parse_args()
    if not arguments.folder.is_dir():
        print(json.dumps({"skipped": f"no ISIC folder at {arguments.folder}"}))
    else:
        main(arguments.folder, arguments.quick)
