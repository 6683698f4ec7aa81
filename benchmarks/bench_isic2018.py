"""ISIC 2018 at full size: the README recipe, bf16, a learning curve and the peer on 1,878 pairs.

    .venv/bin/python benchmarks/bench_isic2018.py                  # every part, ~6.5 h on 2 cores
    .venv/bin/python benchmarks/bench_isic2018.py --parts recipe peer
    .venv/bin/python benchmarks/bench_isic2018.py --quick          # a smoke run on synthetic data

Each training run is a run folder under --runs (default runs/), made by the same
`segment.train_and_evaluate` call as the driver: `isic2018-128` is the README's command (RECIPE),
`isic2018-128-bf16` the same with mixed bfloat16 (on a CPU without native bf16, where the library
would train float32, part `bf16` says so and trains nothing), `isic2018-128-train10` (25, 50) the
recipe on 10 % (25 %, 50 %) of the training part with the same validation and test parts (the
learning curve; 100 % is the recipe run), `isic2018-<name>` the recipe with the change
CHANGES[name] (part `changes`; the name starts with the network's input size). A folder holding a
finished run with the same settings is reused and a killed one resumes, so the benchmark can be
stopped and started again; a folder holding another run is an error. The peer (MONAI DynUNet,
`bench_quality.peer_on_run`) trains on the recipe run's split and batches for as long as that run
trained; each full-data run is compared with the recipe and with the peer image by image
(`against_recipe`, `against_peer`). Every score is on the test part (seed-0 6:2:2 split) at the
images' own size; training time is the sum of log.csv's epoch_seconds (validation included), and
speeds are compared by the median epoch, which a stalled epoch does not move. The learning curve is
drawn into benchmarks/learning_curve.png. `bound` (no training) scores the best a network working
at 128x128 or 256x256 can do on the test part: the truth itself, taken down to that size and back.
Without ../shared/data/isic2018-512 the benchmark says so and trains nothing.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402
from segment import DataConfig, RunConfig, RunFolder, TrainConfig  # noqa: E402
from segment.evaluation import score_masks, summarize  # noqa: E402
from segment.files import write_json_atomic  # noqa: E402
from segment.images import resize_probabilities  # noqa: E402
from segment.run_folder import run_settings  # noqa: E402

import bench_quality  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from measure import run_eagerly  # noqa: E402

HERE = Path(__file__).resolve().parent
ISIC2018 = HERE.parents[1] / "shared" / "data" / "isic2018-512"
PARTS = ("recipe", "peer", "bf16", "curve", "changes", "bound")
FRACTIONS = (0.1, 0.25, 0.5)  # the learning curve's other points; 1.0 is the recipe run
QUICK_FRACTIONS = (0.5,)

# The README's command: driver_train_save_evaluate.py --size 128 --epochs 20 --batch-size 8
# --learning-rate 1e-3 --lr-schedule cosine --loss bce_dice (no --augment, --cache memory).
RECIPE = RunConfig(data=DataConfig(image_size=(128, 128), batch_size=8),
                   train=TrainConfig(epochs=20, learning_rate=1e-3, lr_schedule="cosine",
                                     loss="bce_dice"))
# Recipe changes tried (part "changes"), each a run folder isic2018-<name>: first on 25 % of
# the training part (cheap; chosen by validation dice against the recipe's isic2018-128-train25),
# then the chosen one on all of it, with bf16 so that 30 epochs fit in the recipe's training time;
# then the full augmentation (crops, colour jitter) in the same 30 bf16 epochs; then the chosen
# change at 256x256, and the full augmentation at 128x128, each with as many epochs as fit in the
# 90 minutes a run may train.
CHANGES = {
    "128-train25-flips": {"train_fraction": 0.25, "augment": "flips"},
    "128-train25-standardize": {"train_fraction": 0.25, "standardize_input": True},
    "128-flips-bf16": {"augment": "flips", "precision": "mixed", "epochs": 30},
    "128-full-bf16": {"augment": "full", "precision": "mixed", "epochs": 30},
    "256-flips-bf16": {"image_size": (256, 256), "augment": "flips", "precision": "mixed",
                       "epochs": 25},
    "128-full-bf16-90": {"augment": "full", "precision": "mixed", "epochs": 90},
}
QUICK_CHANGES = {"flips": {"augment": "flips"}}
QUICK = RunConfig(data=DataConfig(image_size=(32, 32), batch_size=4),
                  model=segment.ModelConfig(base_filters=2, depth=2),
                  train=TrainConfig(epochs=1, learning_rate=1e-3, lr_schedule="cosine",
                                    loss="bce_dice"))


def pairs_of(data):
    """The pairs of a data folder (the ISIC 2018 set) or, as they are, of a list (--quick)."""
    return segment.find_pairs(data) if isinstance(data, (str, os.PathLike)) else data


def trained(data, run_dir, config, *, copied_data=False):
    """The run folder's model: reused when it holds a finished run of `config`, else trained.

    With `copied_data`, a finished run of `config` on the same pair ids, whose recorded
    fingerprint differs only because the files were copied again since (new modification
    times), is reused too; `same_files(run, data)` then says False.
    """
    run, pairs = RunFolder(run_dir), pairs_of(data)
    record = run_settings(config, pairs)
    if copied_data and run.state == "finished":
        recorded = run.recorded_settings().get("pairs", {})
        split = segment.load_split(run.split) if run.split.exists() else ()
        if sorted(pair.id for part in split for pair in part) == sorted(pair.id for pair in pairs):
            record["pairs"] = {**record["pairs"], "fingerprint": recorded.get("fingerprint")}
    if run.state == "finished" and run.holds_run(record):
        print(f"  reusing the finished run in {run.path}", file=sys.stderr, flush=True)
        return segment.load_model(run.model), run
    print(f"  training {run.path} ...", file=sys.stderr, flush=True)
    outcome = segment.train_and_evaluate(data, run.path, config, verbose=0, progress=False)
    return outcome.model, outcome.run


def same_files(run, data):
    """Whether the run folder recorded the fingerprint the pairs of `data` have now."""
    recorded = run.recorded_settings().get("pairs", {}).get("fingerprint")
    return recorded == segment.fingerprint_pairs(pairs_of(data))


def run_scores(run, model=None):
    """Training time, epochs and test scores of a finished run; with `model`, also TTA + pp."""
    with open(run.log, encoding="utf-8") as log:
        rows = list(csv.DictReader(log))
    summary = json.loads(run.summary.read_text())
    seconds = [float(row["epoch_seconds"]) for row in rows]
    scores = {"train_seconds": sum(seconds), "median_epoch_seconds": statistics.median(seconds),
              "epochs": len(rows), "best_epoch": json.loads(run.best.read_text())["epoch"],
              "best_val_dice": json.loads(run.best.read_text())["val_dice"],
              "num_train": len(json.loads(run.split.read_text())["train"]),
              "plain": headline(summary)}
    if model is not None:
        test = segment.load_split(run.split).test
        scores["tta+postprocess"] = headline(segment.evaluate(
            model, test, tta=True, postprocess=True, progress=False).summary)
    return scores


def test_dice(run):
    """A finished run's dice on each test image: pandas Series indexed by image id."""
    return pd.read_csv(run.evaluation_table).set_index("id")["dice"]


def paired_difference(ours, theirs):
    """Per-image test dice `ours` minus `theirs` (Series by id): mean and its standard error
    (`segment.comparison.paired_difference`), under results.json's keys.

    Both score the same test images, so the per-image differences show whether a change in
    the mean is larger than what the images' spread allows (about 2 standard errors).
    """
    difference, error, images = segment.comparison.paired_difference(ours, theirs)
    return {"mean_dice_difference": difference, "standard_error": error, "images": images}


def headline(summary):
    """The README table's columns from an evaluation summary."""
    return {"mean_dice": summary["dice"]["mean"], "median_dice": summary["dice"]["median"],
            "mean_jaccard": summary["jaccard"]["mean"], "isic_score": summary["isic_score"],
            "hd95_median": summary["hd95"]["median"], "hd95_mean": summary["hd95"]["mean"],
            "pooled_dice": summary["pooled_dice"], "count": summary["count"],
            "by_lesion_size": summary["by_lesion_size"], "low_dice": summary["low_dice"]}


def peer(run, budget_seconds):
    """`bench_quality.peer_on_run`, kept beside the run folder in `<run>-peer.json`.

    The stored result is reused only when it was made for the same run settings, split and
    budget with the same peer versions, and holds the peer's dice on each test image (earlier
    versions kept only the means); otherwise the peer trains again and replaces it.
    """
    import importlib.metadata

    stored = run.path.with_name(f"{run.path.name}-peer.json")
    key = {"settings": {name: run.recorded_settings().get(name)
                        for name in ("data", "model", "train", "pairs")},
           "split": json.loads(run.split.read_text()), "budget_seconds": budget_seconds,
           "versions": {name: importlib.metadata.version(name) for name in ("torch", "monai")}}
    key = json.loads(json.dumps(key))
    kept = json.loads(stored.read_text()) if stored.exists() else {}
    if kept.get("key") == key and "test_dice" in kept["result"]:
        print(f"  reusing the peer's result in {stored}", file=sys.stderr, flush=True)
        return kept["result"]
    print(f"  training the peer for {budget_seconds:.0f} s ...", file=sys.stderr, flush=True)
    result = bench_quality.peer_on_run(run, budget_seconds)
    write_json_atomic(stored, {"key": key, "result": result})
    return result


def resolution_bound(pairs, size):
    """Scores of the best a network working at `size` can do: each truth mask box-averaged down
    to `size` (the lesion fraction of each network pixel), resized back to the mask's size as
    `evaluate` resizes probabilities, and thresholded at 0.5. No model is involved."""
    from PIL import Image

    rows = []
    for pair in pairs:
        truth = segment.load_segmented_image(pair.mask_path)  # uint8 (h, w) in {0, 1}
        fraction = Image.fromarray(truth.astype(np.float32)).resize((size[1], size[0]),
                                                                     Image.Resampling.BOX)
        best = resize_probabilities(np.asarray(fraction), truth.shape) >= 0.5
        rows.append(score_masks(truth, best.astype(np.uint8)))
    return headline(summarize(pd.DataFrame(rows), {"size": list(size)}))


def learning_curve_figure(points, recipe, path):
    """Test mean dice and ISIC score against training images (log scale), one point per run."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 3.8), layout="constrained")
    axes = figure.subplots()
    counts = [point["num_train"] for point in points]
    axes.plot(counts, [point["plain"]["mean_dice"] for point in points], marker="o",
              label="mean dice")
    axes.plot(counts, [point["plain"]["isic_score"] for point in points], marker="s",
              label="ISIC score")
    axes.set_xscale("log")
    axes.set_xticks(counts, [str(count) for count in counts])
    axes.minorticks_off()  # the log axis' own labels would overprint these
    axes.set(xlabel="training images", ylabel=f"test score ({points[0]['plain']['count']} images)",
             title=f"ISIC 2018, {recipe.data.image_size[0]}x{recipe.data.image_size[1]}, "
                   f"{recipe.train.epochs} epochs per run")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=110)


def training_parts(data, recipe, runs, parts, fractions, figure, changes):
    """The recipe run (always: the other parts build on it), then the peer, bf16, the curve and
    the changes, each full-data run paired image by image with the recipe and the peer."""
    model, run = trained(data, runs / "isic2018-128", recipe)
    results, recipe_dice = {"recipe": run_scores(run, model)}, test_dice(run)
    peer_dice = None  # the peer's dice on each test image, when it ran
    if "peer" in parts:
        missing = bench_quality.peer_available()
        results["peer"] = {"skipped": missing} if missing else peer(
            run, results["recipe"]["train_seconds"])
        if "test_dice" in results["peer"]:
            peer_dice = pd.Series(results["peer"].pop("test_dice"))
            results["recipe"]["against_peer"] = paired_difference(recipe_dice, peer_dice)
    if "bf16" in parts:
        policy = segment.resolve_precision("mixed")
        if policy == "float32":  # no native bf16: the library would train the recipe again
            results["bf16"] = {"skipped": "no native bf16 on this CPU (mixed precision falls "
                                          "back to float32)"}
        else:
            bf16_model, bf16_run = trained(data, runs / "isic2018-128-bf16",
                                           recipe.replace(precision="mixed"))
            results["bf16"] = {"policy": policy, **run_scores(bf16_run, bf16_model)}
    if "curve" in parts:
        curve = []
        for fraction in fractions:
            _, point_run = trained(data, runs / f"isic2018-128-train{round(fraction * 100)}",
                                   recipe.replace(train_fraction=fraction))
            curve.append({"fraction": fraction, **run_scores(point_run)})
        curve.append({"fraction": 1.0, **results["recipe"]})
        results["curve"] = curve
        learning_curve_figure(curve, recipe, figure)
    if "changes" in parts:
        results["changes"] = changed_runs(data, recipe, runs, changes, recipe_dice, peer_dice)
    return results


def changed_runs(data, recipe, runs, changes, recipe_dice, peer_dice, against="recipe"):
    """Train (or reuse) the recipe with each change; full-data runs also get TTA + pp and are
    paired image by image with the recipe (key `against_<against>`) and the peer, when it ran."""
    results = {}
    for name, settings in changes.items():
        config = recipe.replace(**settings)
        change_model, change_run = trained(data, runs / f"isic2018-{name}", config)
        whole = config.data.train_fraction == 1
        scores = {"settings": settings,
                  **run_scores(change_run, change_model if whole else None)}
        if whole:
            change_dice = test_dice(change_run)
            scores[f"against_{against}"] = paired_difference(change_dice, recipe_dice)
            if peer_dice is not None:
                scores["against_peer"] = paired_difference(change_dice, peer_dice)
        results[name] = scores
    return results


def quick_data(scratch):
    """--quick's data (30 synthetic pairs at 48x64, in `scratch`); from now on functions run
    eagerly, as a smoke run checks code paths, not speed."""
    run_eagerly()
    return segment.make_synthetic_dataset(scratch / "synthetic", 30, size=(48, 64), seed=0)


def quick_or_full_main(doc, measure, add_arguments=None):
    """The command line of a benchmark whose options are --quick (and what `add_arguments(parser)`
    adds): prints the JSON of `measure(data, runs, args)`, on ISIC 2018 with the repository's
    runs/ folder or, with --quick, on `quick_data` with a scratch folder for the runs."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: synthetic data, tiny networks, functions eagerly")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        with tempfile.TemporaryDirectory() as scratch:
            results = measure(quick_data(Path(scratch)), Path(scratch) / "runs", args)
    else:
        results = measure(ISIC2018, HERE.parent / "runs", args)
    print(json.dumps(results, indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to measure (every part but bound trains the recipe run "
                             "first)")
    parser.add_argument("--runs", type=Path, default=Path("runs"),
                        help="folder of the run folders (reused across invocations)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 30 synthetic pairs, 32x32, 1 epoch, in a temp folder, "
                             "functions run eagerly")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.quick:
            data = quick_data(Path(scratch))
            recipe, runs, figure = QUICK, Path(scratch), Path(scratch) / "curve.png"
            fractions, changes = QUICK_FRACTIONS, QUICK_CHANGES
        elif not ISIC2018.is_dir():
            print(json.dumps({"skipped": f"no ISIC 2018 data at {ISIC2018}"}))
            return
        else:
            data, recipe, runs = ISIC2018, RECIPE, args.runs
            figure, fractions, changes = HERE / "learning_curve.png", FRACTIONS, CHANGES
        results = {"recipe_config": recipe.to_dict()}
        if "bound" in args.parts:
            test = segment.train_val_test_split(pairs_of(data), recipe.data).test
            results["bound"] = {f"{side}x{side}": resolution_bound(test, (side, side))
                                for side in (128, 256)}
        if set(args.parts) - {"bound"}:
            results.update(training_parts(data, recipe, runs, args.parts, fractions, figure,
                                          changes))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
