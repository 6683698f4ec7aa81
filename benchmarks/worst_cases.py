"""Look at a run's worst predictions, and score mask clean-ups on them, without training.

    .venv/bin/python benchmarks/worst_cases.py runs/isic2018-128 --part val --out runs/worst-val
    .venv/bin/python benchmarks/worst_cases.py runs/isic2018-128 --part test --count 20

Predicts the chosen part of the run's split once (lesion probabilities at the network's size),
then, for every clean-up in CLEANUPS, resizes each probability map to the image's own size,
turns it into a mask, and scores it against the truth (mean and median dice, ISIC score).
Writes `<out>/worst.png` (the `count` worst images of the plain prediction: the image with the
truth in green and the prediction in red, and what the clean-ups change), `<out>/worst.csv`
(their dice, lesion and predicted area as fractions of the image, the image's brightness and
saturation) and prints the scores as JSON. Choose a clean-up on `--part val`; score it on the
test part once.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402
from segment.evaluation import score_masks  # noqa: E402
from segment.images import resize_probabilities  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402


def central_component(mask):
    """Keep the 8-connected region nearest the image centre (containing it wins), holes filled.

    Dermoscopy photographs are taken with the lesion in the middle; a region off to the side
    (gel, a ruler, skin texture) is dropped even when it is the largest.
    """
    labels, count = ndimage.label(mask > 0, structure=np.ones((3, 3)))
    if count <= 1:
        return segment.fill_holes(labels > 0)
    centre = (np.array(mask.shape) - 1) / 2
    rows, cols = np.indices(mask.shape)
    distance = np.hypot(rows - centre[0], cols - centre[1])
    nearest = ndimage.minimum(distance, labels, index=np.arange(1, count + 1))
    return segment.fill_holes(labels == 1 + int(np.argmin(nearest)))


def otsu_threshold(values, low=0.0, bins=100):
    """The threshold that best splits `values` in [low, 1] into two classes (Otsu 1979)."""
    counts, edges = np.histogram(values, bins=bins, range=(low, 1))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    mean_low = np.cumsum(counts * centres) / np.maximum(weight_low, 1)
    mean_high = ((counts * centres).sum() - np.cumsum(counts * centres)) / np.maximum(
        weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[1 + int(np.argmax(between[:-1]))])


def raised_threshold(probabilities):
    """Split the pixels above 0.5 in two at Otsu's threshold and keep the surer part, then the
    largest region with its holes filled.

    Aimed at images where the network gives large areas of skin middling probabilities
    (0.5-0.8) and the lesion high ones: the split then falls between the two.
    """
    foreground = probabilities[probabilities >= 0.5]
    threshold = otsu_threshold(foreground, low=0.5) if foreground.size else 0.5
    return segment.postprocess_mask((probabilities >= threshold).astype(np.uint8))


def raised_threshold_when_large(probabilities, large=0.3):
    """`raised_threshold` only where more than `large` of the image is marked, else the
    plain `--postprocess`: the failure it aims at marks large areas of skin."""
    if (probabilities >= 0.5).mean() > large:
        return raised_threshold(probabilities)
    return segment.postprocess_mask((probabilities >= 0.5).astype(np.uint8))


# Each clean-up: float (h, w) probabilities at the image's size -> uint8 (h, w) mask.
CLEANUPS = {
    "none": lambda p: (p >= 0.5).astype(np.uint8),
    "largest region + holes (--postprocess)": lambda p: segment.postprocess_mask(
        (p >= 0.5).astype(np.uint8)),
    "region nearest the centre + holes": lambda p: central_component(
        (p >= 0.5).astype(np.uint8)),
    "Otsu split of the pixels above 0.5 + largest region + holes": raised_threshold,
    "the same where over 30 % is marked, else --postprocess": raised_threshold_when_large,
    # Another --threshold: lower for faint lesions found only at their dark core, higher for
    # skin marked with middling probabilities.
    **{f"threshold {threshold}": lambda p, threshold=threshold: (p >= threshold).astype(np.uint8)
       for threshold in (0.3, 0.4, 0.6, 0.7)},
}


def image_features(path):
    """Mean brightness (V) and saturation (S) of the image, each in [0, 1]."""
    hsv = np.asarray(Image.open(path).convert("RGB").convert("HSV"), np.float32) / 255
    return {"brightness": float(hsv[..., 2].mean()), "saturation": float(hsv[..., 1].mean())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="run folder with model.keras and split.json")
    parser.add_argument("--part", choices=["val", "test"], default="val")
    parser.add_argument("--count", type=int, default=20, help="worst images to show")
    parser.add_argument("--tta", action="store_true", help="average over flips first")
    parser.add_argument("--out", type=Path, help="folder for worst.png and worst.csv "
                        "(default: <run>/worst-<part>)")
    args = parser.parse_args()
    out = args.out or args.run / f"worst-{args.part}"
    out.mkdir(parents=True, exist_ok=True)
    run = segment.RunFolder(args.run)
    model = segment.load_model(run.model)
    pairs = getattr(segment.load_split(run.split), args.part)
    size = model.input_shape[1:3]
    probabilities = {}
    for batch_start in range(0, len(pairs), 16):
        batch = pairs[batch_start:batch_start + 16]
        images = np.stack([segment.load_input_image(pair.image_path, size) for pair in batch])
        images = images.astype(np.float32) / 255
        predicted = (segment.predict_with_flips(model, images) if args.tta
                     else np.asarray(model.predict_on_batch(images)))
        probabilities.update({pair.id: p[..., 0] for pair, p in zip(batch, predicted, strict=True)})
    rows, masks = [], {}
    for pair in pairs:
        truth = segment.load_segmented_image(pair.mask_path)
        resized = resize_probabilities(probabilities[pair.id], truth.shape)
        row = {"id": pair.id, "truth_fraction": truth.mean(),
               "predicted_fraction": (resized >= 0.5).mean()}
        for name, cleanup in CLEANUPS.items():
            mask = cleanup(resized).astype(np.uint8)
            scores = score_masks(truth, mask)
            row[name] = scores["dice"]
            row[f"{name} thresholded jaccard"] = scores["thresholded_jaccard"]
            masks[pair.id, name] = mask
        rows.append(row)
    table = pd.DataFrame(rows).set_index("id")
    summary = {name: {"mean_dice": table[name].mean(), "median_dice": table[name].median(),
                      "isic_score": table[f"{name} thresholded jaccard"].mean()}
               for name in CLEANUPS}
    worst = table.sort_values("none").head(args.count)
    by_id = {pair.id: pair for pair in pairs}
    worst = worst.join(pd.DataFrame([{"id": i, **image_features(by_id[i].image_path)}
                                     for i in worst.index]).set_index("id"))
    worst.to_csv(out / "worst.csv", float_format="%.3f")
    figure = Figure(figsize=(16, 3.3 * ((len(worst) + 4) // 5)), layout="constrained")
    for axes, (image_id, row) in zip(figure.subplots((len(worst) + 4) // 5, 5).ravel(),
                                     worst.iterrows(), strict=False):
        axes.imshow(segment.load_input_image(by_id[image_id].image_path))
        axes.contour(segment.load_segmented_image(by_id[image_id].mask_path), [0.5],
                     colors="lime")
        axes.contour(masks[image_id, "none"], [0.5], colors="red")
        axes.set_title(f"{image_id} dice {row['none']:.2f}\nlesion {row['truth_fraction']:.0%}"
                       f" predicted {row['predicted_fraction']:.0%}", fontsize=9)
    for axes in figure.axes:
        axes.set_axis_off()
    figure.savefig(out / "worst.png", dpi=60)
    print(json.dumps({"part": args.part, "count": len(table), "tta": args.tta,
                      "cleanups": summary}, indent=2))


if __name__ == "__main__":
    main()
