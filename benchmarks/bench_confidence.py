"""Which label-free confidence finds the failures: candidates compared on the validation part,
the one chosen there reported on the test part.

    .venv/bin/python benchmarks/bench_confidence.py RUN_FOLDER   # a finished run's model and split
    .venv/bin/python benchmarks/bench_confidence.py              # trains a small model first
    .venv/bin/python benchmarks/bench_confidence.py --quick      # a smoke run, synthetic data

Without RUN_FOLDER, a small network (base 8 filters, 128x128, 4 epochs) is trained on the
training part of ../shared/data/isic2018-512 (6:2:2, seed 0): it fails often enough for the
measures to be told apart, but it is not the README's model, whose figures the issue asks for.

Each candidate is computed from the model's own output on each image, with no truth; higher
means surer. From the probabilities p at the network's size and their mask m = p >= 0.5:

- soft_dice: `confidence.mask_confidence`, the soft dice between p and m (the library's);
- border_entropy: 1 - the mean binary entropy (bits) of p within 2 pixels of m's border (over
  the whole view when m is empty);
- one_component: the share of m's area in its largest component (1 for an empty mask);
- flip_agreement: `confidence.flip_agreement`, the mean dice between the mask of each of the
  four flip views and the mask of their mean (test-time augmentation's views agreeing);
- soft_dice_x_component: soft_dice times one_component;
- soft_dice_x_flips: soft_dice (of the flip views' mean) times flip_agreement, what the
  library reports with `--tta` (chosen from the first run of this benchmark, docs/RESULTS.md);
- edge_contrast: the distance between the mean colour (RGB in [0, 1]) of the band of
  EDGE_BAND pixels just inside m's border and of the band just outside it: low where the
  mask's edge runs through skin or through the lesion rather than along its edge, as where a
  confident mask covers only the core of a large lesion (1 for an empty or a full mask);
- halo: of the views' mean q, the area q >= 0.5 over the area q >= HALO (1 where both are
  empty): low where much of the image sits just below the threshold, as around a lesion the
  mask covers only in part;
- second_look_agreement: the dice between m and the mask of the library's second look
  (`evaluate(second_look=True)`'s, margin 0.5: a box around m's largest region, cut from the
  image at its own resolution, predicted and pasted back at the network's size; 1 where no box
  is cut): over-segmentation spread around a small lesion is what a closer look undoes;
- soft_dice_x_second_look, flips_x_second_look: that agreement times soft_dice, or times
  flip_agreement.

For each, on the validation part: the Spearman rank correlation with dice, and the share of
the images below 0.6 dice that are among the least confident 5, 10 and 20 %. The candidate
with the largest share within 10 % (then the larger Spearman) is chosen and scored on the test
part. Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import math
import tempfile
from pathlib import Path

import segment
from segment import EvalConfig
from segment.confidence import flip_agreement, mask_confidence
from segment.evaluation import LOW_DICE
from segment.postprocess import flip_views
from segment.prediction import iter_probabilities, network_size
from segment.training import compile_model

import numpy as np
from measure import run_eagerly
from scipy import ndimage, stats

ISIC2018_512 = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2018-512"
SHARES = (0.05, 0.10, 0.20)
HALO = 0.2  # the lowest probability counted as "just below the threshold"
EDGE_BAND = 6  # pixels each side of the mask's border, at the network's size


def edge_contrast(image, mask):
    """Distance between the mean colours of the bands just inside and just outside the border
    of a bool (h, w) mask in a float (h, w, 3) image; 1.0 where the mask is empty or full."""
    inside = mask & ~ndimage.binary_erosion(mask, iterations=EDGE_BAND, border_value=0)
    outside = ndimage.binary_dilation(mask, iterations=EDGE_BAND) & ~mask
    if not inside.any() or not outside.any():
        return 1.0
    return float(np.linalg.norm(image[inside].mean(axis=0) - image[outside].mean(axis=0)))


def candidates(views, image):
    """{name: confidence} of one image from its (4, h, w) flip views' probabilities, unflipped,
    and the float (h, w, 3) image in [0, 1] they were predicted from."""
    probabilities = views[0]
    mask = probabilities >= 0.5
    labels, count = ndimage.label(mask)
    one_component = (np.bincount(labels.ravel())[1:].max() / mask.sum()) if count else 1.0
    border = mask ^ ndimage.binary_erosion(mask, iterations=2, border_value=0)
    border |= ndimage.binary_dilation(mask, iterations=2) & ~mask
    band = probabilities[border] if border.any() else probabilities.ravel()
    band = np.clip(band, 1e-6, 1 - 1e-6)
    entropy = float(np.mean(-band * np.log2(band) - (1 - band) * np.log2(1 - band)))
    soft_dice = mask_confidence(probabilities)
    agreement = flip_agreement(views)
    mean = views.mean(axis=0)
    supported = np.sum(mean >= HALO)
    halo = float(np.sum(mean >= 0.5) / supported) if supported else 1.0
    return {"soft_dice": soft_dice, "border_entropy": 1.0 - entropy,
            "one_component": float(one_component), "flip_agreement": agreement,
            "soft_dice_x_component": soft_dice * float(one_component),
            "soft_dice_x_flips": mask_confidence(mean) * agreement, "halo": halo,
            "edge_contrast": edge_contrast(image, mask)}


def second_look_agreements(model, pairs, first_pass, size):
    """Dice between each first-pass mask and its second look's, at the network's size; 1 where
    both are empty. The second look is the library's (`iter_probabilities` with
    `second_look=True`, which predicts the whole view again before it looks closer)."""
    looks = iter_probabilities(model, pairs, size, EvalConfig(second_look=True,
                                                                original_size=False),
                               progress=False, skipped=None)
    agreements = []
    for probabilities, (_, again, _) in zip(first_pass, looks, strict=True):
        first, second = probabilities >= 0.5, again >= 0.5
        total = first.sum() + second.sum()
        agreements.append(2 * np.sum(first & second) / total if total else 1.0)
    return np.asarray(agreements)


def scored(model, pairs, size):
    """(dice per image as `evaluate` scores it, {candidate: confidences}) over `pairs`."""
    dice = segment.evaluate(model, pairs, progress=False).table["dice"].to_numpy()
    confidences = {}
    for start in range(0, len(pairs), 8):
        batch = pairs[start:start + 8]
        images = np.stack([segment.load_input_image(pair.image_path, size)
                           for pair in batch]).astype(np.float32) / 255.0
        views = np.moveaxis(flip_views(model, images)[..., 0], 0, 1)  # (batch, 4, h, w)
        looks = second_look_agreements(model, batch, views[:, 0], size)
        for image, image_views, look in zip(images, views, looks, strict=True):
            values = candidates(image_views, image)
            values.update(second_look_agreement=float(look),
                          soft_dice_x_second_look=values["soft_dice"] * float(look),
                          flips_x_second_look=values["flip_agreement"] * float(look))
            for name, value in values.items():
                confidences.setdefault(name, []).append(value)
    return dice, {name: np.asarray(values) for name, values in confidences.items()}


def ranking(dice, confidence):
    """Spearman with dice, and the share of sub-0.6 images among the least confident."""
    low = dice < LOW_DICE
    order = np.argsort(confidence, kind="stable")
    within = {f"{round(100 * share)} %": (float(low[order[:math.ceil(share * len(dice))]].sum()
                                                / low.sum()) if low.any() else None)
              for share in SHARES}
    return {"spearman": float(stats.spearmanr(confidence, dice).statistic),
            "low_dice_within": within}


def measure(model, split, size):
    val_dice, val_confidence = scored(model, split.val, size)
    validation = {name: ranking(val_dice, values) for name, values in val_confidence.items()}
    chosen = max(validation, key=lambda name: (validation[name]["low_dice_within"]["10 %"] or 0,
                                               validation[name]["spearman"]))
    test_dice, test_confidence = scored(model, split.test, size)
    return {"validation": {"images": len(val_dice), "below_0.6": int((val_dice < LOW_DICE).sum()),
                           "candidates": validation},
            "chosen": chosen,
            "test": {"images": len(test_dice), "below_0.6": int((test_dice < LOW_DICE).sum()),
                     "candidates": {name: ranking(test_dice, values)
                                    for name, values in test_confidence.items()}}}


def small_model(train_pairs, size, epochs):
    segment.training.set_seed(0)
    model = segment.create_model((size, size, 3), base_filters=8)
    compile_model(model)
    model.fit(segment.create_generator(train_pairs, image_size=(size, size), batch_size=8,
                                       shuffle=True, augment="flips"),
              epochs=epochs, verbose=0, shuffle=False)  # the pipeline shuffles
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", type=Path,
                        help="a finished run folder (model.keras and split.json)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 40 synthetic pairs, functions run eagerly")
    args = parser.parse_args()
    if args.run is not None and not args.quick:
        model = segment.load_model(args.run / "model.keras")
        split = segment.load_split(args.run / "split.json")
        recorded = json.loads((args.run / "config.json").read_text())["data"]["image_size"]
        size = network_size(model, recorded=recorded)
        print(json.dumps({"run": str(args.run), **measure(model, split, size)}, indent=2))
        return
    if args.quick:
        run_eagerly()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) if args.quick else ISIC2018_512
        if args.quick:
            segment.make_synthetic_dataset(folder, 40, size=(64, 64), seed=0)
        split = segment.train_val_test_split(segment.find_pairs(folder))
        size, epochs = ((32, 32), 1) if args.quick else ((128, 128), 4)
        model = small_model(split.train, size[0], epochs)
        results = measure(model, split, size)
    print(json.dumps({"trained": f"base 8, {size[0]}x{size[1]}, {epochs} epochs, flips",
                      "train_images": len(split.train), **results}, indent=2))


if __name__ == "__main__":
    main()
