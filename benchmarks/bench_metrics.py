"""Scoring one image at its original size: the library's per-image metrics against HD95 by a
distance transform of the whole view, at the sizes ISIC images come in.

    .venv/bin/python benchmarks/bench_metrics.py          # 1.5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_metrics.py --quick  # a smoke run: the two small sizes

An evaluation scores every image at its own resolution (ISIC 2018's photographs run up to about
6000x4000), so the per-image metrics are paid once per image on top of the prediction. For
each size, a seeded lesion (a disc with a smooth random border, about a tenth of the view) and a
prediction of it (shifted, with another random border); and at 1022x767 the same lesion against
a *speckled* prediction, half the pixels at random (an untrained network's mask, nearly all
border, where the library takes distance transforms instead of k-d trees):

- `score_masks` (every metric of evaluation.csv), and `hausdorff_distance_95` alone: the best
  of ROUNDS calls each, in milliseconds;
- the reference: HD95 as medpy and the library before 2026-12-07 computed it, one Euclidean
  distance transform of the whole view per mask (`scipy.ndimage.distance_transform_edt`);
- whether the two HD95 values are equal (the target: the box crop and the k-d tree must not
  change a single distance).

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json

from segment.evaluation import score_masks
from segment.metrics import boundary, hausdorff_distance_95

import numpy as np
from measure import seconds
from scipy import ndimage

SIZES = [(512, 512), (767, 1022), (2848, 4288), (4000, 6000)]  # (height, width)
SPECKLED = (767, 1022)
ROUNDS = 3


def lesion_pair(height, width, speckled=False, seed=0):
    """(truth, predicted): (height, width) uint8 masks of one lesion and a prediction of it, or
    with `speckled` a prediction of random pixels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:height, :width]
    radius = 0.2 * min(height, width)

    def disc(shift):
        wobble = ndimage.gaussian_filter(rng.standard_normal((height, width)), radius / 10)
        distance = np.hypot(rows - height / 2 - shift, cols - width / 2)
        return (distance < radius * (1 + 4 * wobble)).astype(np.uint8)

    truth = disc(0)
    return truth, ((rng.random((height, width)) < 0.5).astype(np.uint8) if speckled
                   else disc(0.05 * radius))


def hd95_by_distance_transform(truth, predicted):
    """The reference: HD95 from one distance transform of the whole view per mask."""
    borders = [boundary(mask > 0) for mask in (truth, predicted)]
    to_truth, to_predicted = (ndimage.distance_transform_edt(~border) for border in borders)
    return float(np.percentile(np.concatenate([to_truth[borders[1]],
                                               to_predicted[borders[0]]]), 95))


def best_ms(function, masks, rounds):
    """Milliseconds of the fastest of `rounds` calls of function(*masks)."""
    return 1000 * min(seconds(lambda: function(*masks)) for _ in range(rounds))


def measure(sizes, rounds, speckled=SPECKLED):
    """{'WxH': {...}} for each (height, width) of `sizes` and {'WxH speckled': {...}} for
    `speckled` (None: none), as the module docstring lists."""
    results = {}
    cases = [(size, False) for size in sizes] + ([(speckled, True)] if speckled else [])
    for (height, width), speckles in cases:
        truth, predicted = lesion_pair(height, width, speckles)
        library, reference = (hausdorff_distance_95(truth, predicted),
                              hd95_by_distance_transform(truth, predicted))
        functions = {"score_masks": score_masks, "hd95": hausdorff_distance_95,
                     "hd95_reference": hd95_by_distance_transform}
        timed = {name: best_ms(function, (truth, predicted), rounds)
                 for name, function in functions.items()}
        results[f"{width}x{height}{' speckled' if speckles else ''}"] = {
            "lesion_share": float(truth.mean()), "hd95": library, "hd95_reference": reference,
            "equal": library == reference, "ms": timed,
            "hd95_speedup": timed["hd95_reference"] / timed["hd95"]}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the two small sizes, once")
    args = parser.parse_args()
    sizes, rounds = (SIZES[:2], 1) if args.quick else (SIZES, ROUNDS)
    print(json.dumps({"rounds": rounds, "sizes": measure(sizes, rounds)}, indent=2))


if __name__ == "__main__":
    main()
