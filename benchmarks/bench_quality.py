"""Quality under a fixed budget: train from scratch on the real ISIC sample, score the test part.

    .venv/bin/python benchmarks/bench_quality.py              # ~27 min on 2 cores, peer included
    .venv/bin/python benchmarks/bench_quality.py --ablation   # + one run per ingredient (~70 min)
    .venv/bin/python benchmarks/bench_quality.py --ablation batch 192   # + the runs named so
    .venv/bin/python benchmarks/bench_quality.py --quick      # a smoke run on synthetic data

The recipe (RECIPE below) trains the base-16 Improved UNet at 128^2 on the 6:2:2 split (seed 0)
of ../shared/data/isic-sample for a fixed number of epochs chosen to fit 10 minutes of training
here, keeps the best epoch on validation dice, and scores the test part at each image's original
size: per-image mean and median dice, jaccard and the ISIC score (thresholded jaccard), without
and with test-time flips (TTA) and post-processing. The same recipe runs on the synthetic set.
`--ablation` retrains with one ingredient of the recipe changed at a time (all of ABLATIONS, or
those whose names contain one of the words given) and reports each run's test scores. Without
the ISIC sample the real-data runs are skipped with a message.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402
from segment.pipeline import PAIRS_AS_THEY_ARE  # noqa: E402

from measure import run_eagerly  # noqa: E402
from peer import available as peer_available  # noqa: E402

ISIC_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic-sample"
BUDGET_SECONDS = 600
PEER_COMPILED = False  # the peer's fastest working mode here (bench_peer.py measures both)

# What the field knows works on small dermoscopy sets, and what each ablation run changes.
RECIPE = segment.RunConfig(
    data=segment.DataConfig(image_size=(128, 128), batch_size=8, augment="full"),
    train=segment.TrainConfig(epochs=28, learning_rate=1e-3, lr_schedule="cosine",
                              loss="bce_dice"))
ABLATIONS = {
    "paper schedule (5e-4, x0.985 per epoch)": {"learning_rate": 5e-4,
                                                "lr_schedule": "exponential"},
    "dice loss instead of bce+dice": {"loss": "dice"},
    "batch 16 instead of 8": {"batch_size": 16},
    "no augmentation": {"augment": "none"},
    "96x96 instead of 128x128": {"image_size": (96, 96)},
    "192x192 instead of 128x128 (13 epochs: the same training time)": {"image_size": (192, 192),
                                                                        "epochs": 13},
}
QUICK = {"image_size": (32, 32), "epochs": 2, "base_filters": 4, "depth": 2}


def prepare(pairs, recipe):
    """The 6:2:2 split and its training (augmented, shuffled) and validation sets."""
    split = segment.train_val_test_split(pairs, recipe.data)
    train_ds = segment.create_generator(split.train, recipe.data, shuffle=True)
    return split, train_ds, segment.create_generator(split.val, recipe.data,
                                                     **PAIRS_AS_THEY_ARE)


def test_scores(model, test_pairs, dice_by_image=False):
    """Test scores at original size: plain, with TTA, with TTA and post-processing; with
    `dice_by_image`, also "test_dice": {image id: dice} of the plain prediction."""
    scores = {}
    for name, options in {"plain": {}, "tta": {"tta": True},
                          "tta+postprocess": {"tta": True, "postprocess": True}}.items():
        evaluation = segment.evaluate(model, test_pairs, progress=False, **options)
        if dice_by_image and name == "plain":
            scores["test_dice"] = evaluation.table["dice"].to_dict()
        summary = evaluation.summary
        scores[name] = {"mean_dice": summary["dice"]["mean"],
                        "median_dice": summary["dice"]["median"],
                        "mean_jaccard": summary["jaccard"]["mean"],
                        "isic_score": summary["isic_score"]}
    print(f"  {json.dumps(scores['plain'])}", file=sys.stderr, flush=True)
    return scores


def train_and_score(pairs, recipe, run_dir):
    """Train our network with the RunConfig `recipe`; its training time and test scores."""
    segment.training.set_seed(recipe.data.seed)
    split, train_ds, val_ds = prepare(pairs, recipe)
    model = segment.create_model((*recipe.data.image_size, 3), recipe.model)
    start = time.perf_counter()
    history = segment.train_model(model, train_ds, val_ds, recipe.train, run_dir, verbose=0)
    return {"recipe": recipe.to_dict(), "train_seconds": time.perf_counter() - start,
            "best_val_dice": max(history.history["val_dice"]),
            "num_train": len(split.train), "num_test": len(split.test),
            **test_scores(model, split.test)}


def peer_train_and_score(pairs, recipe, budget_seconds):
    """Train the peer (MONAI DynUNet) on the same batches for `budget_seconds`; its scores."""
    import peer

    assert recipe.train.loss == "bce_dice", "the peer is written for the bce+dice loss"
    split, train_ds, val_ds = prepare(pairs, recipe)
    trainer = peer.Trainer(peer.create_dynunet(), recipe.train.learning_rate, PEER_COMPILED)
    predictor, run = peer.train_for(trainer, train_ds, val_ds, recipe.train.learning_rate,
                                    budget_seconds, recipe.data.image_size[0])
    return {"mode": "torch.compile" if PEER_COMPILED else "eager", **run,
            **test_scores(predictor, split.test)}


def peer_on_run(run, budget_seconds):
    """The peer trained on a finished run's split and batches for `budget_seconds`; its scores.

    `run` is a `segment.RunFolder` made by the driver or `train_and_evaluate` with the bce+dice
    loss; the peer sees the same training and validation batches (size, batch, augmentation,
    shuffling seed from its config.json) and is scored on the same test part at original size
    ("test_dice" holds its dice on each test image, for paired comparisons).
    """
    import peer

    config = segment.RunConfig.from_dict(run.recorded_settings())
    assert config.train.loss == "bce_dice", "the peer is written for the bce+dice loss"
    split, data = segment.load_split(run.split), config.data
    train_ds = segment.create_generator(split.train, data, shuffle=True, cache="memory")
    val_ds = segment.create_generator(split.val, data, **PAIRS_AS_THEY_ARE, cache="memory")
    trainer = peer.Trainer(peer.create_dynunet(), config.train.learning_rate, PEER_COMPILED)
    predictor, result = peer.train_for(trainer, train_ds, val_ds, config.train.learning_rate,
                                       budget_seconds, data.image_size[0])
    return {"mode": "torch.compile" if PEER_COMPILED else "eager", **result,
            **test_scores(predictor, split.test, dice_by_image=True)}


def isic_runs(scratch, ablations):
    """The recipe on the ISIC sample, then one run per name in `ablations` (keys of ABLATIONS)."""
    if not ISIC_SAMPLE.is_dir():
        print(f"skipping the ISIC runs: no ISIC sample at {ISIC_SAMPLE}", file=sys.stderr)
        return {"isic": {"skipped": f"no ISIC sample at {ISIC_SAMPLE}"}}
    pairs = segment.find_pairs(ISIC_SAMPLE / "images", ISIC_SAMPLE / "masks")
    runs = {"isic": train_and_score(pairs, RECIPE, scratch / "isic")}
    missing_peer = peer_available()
    runs["peer"] = {"skipped": missing_peer} if missing_peer else peer_train_and_score(
        pairs, RECIPE, runs["isic"]["train_seconds"])
    if ablations:
        runs["ablation"] = {change: train_and_score(pairs, RECIPE.replace(**ABLATIONS[change]),
                                                    scratch / f"ablation_{i}")
                            for i, change in enumerate(ablations)}
    return runs


def chosen_ablations(words):
    """Names in ABLATIONS: none for None (no --ablation), all for [], else those naming a word."""
    if words is None:
        return []
    chosen = [name for name in ABLATIONS if not words or any(word in name for word in words)]
    if not chosen:
        raise SystemExit(f"no ablation matches {words}; they are: {list(ABLATIONS)}")
    return chosen


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: synthetic, 2 epochs, functions run eagerly")
    parser.add_argument("--ablation", nargs="*", metavar="WORD",
                        help="also retrain once per changed ingredient (about 10 min each); "
                             "with words, only the ablations whose names contain one")
    args = parser.parse_args()
    if args.quick:
        run_eagerly()
    results = {"budget_seconds": BUDGET_SECONDS}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        synthetic = segment.make_synthetic_dataset(scratch / "synthetic", 40 if args.quick else 100,
                                                   seed=0)
        recipe = RECIPE.replace(**QUICK) if args.quick else RECIPE
        results["synthetic"] = train_and_score(synthetic, recipe, scratch / "syn")
        if not args.quick:
            results.update(isic_runs(scratch, chosen_ablations(args.ablation)))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
