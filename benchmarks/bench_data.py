"""Data-layer speed: header-only `inspect`, and JPEG decoding with and without scaled decode.

    .venv/bin/python benchmarks/bench_data.py [ISIC_FOLDER]    # default: ../shared/data/isic-sample
    .venv/bin/python benchmarks/bench_data.py --quick          # a smoke run: 20 pairs

1. `inspect(pairs)` over every image and mask of the folder (headers only), extrapolated to the
   2,594 pairs of ISIC 2018 Task 1.
2. Loading each of the folder's images at 256x256 with `load_input_image` (PIL's scaled JPEG
   decode through `draft`) against decoding it at full size and then resizing.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import time
from pathlib import Path

import segment

import numpy as np
from PIL import Image

ISIC_2018_PAIRS = 2594


def seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def full_decode_then_resize(path, size):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR))


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
