"""ISIC 2018 with the ImageNet-pretrained EfficientNet-Lite0 encoder, against the recipe.

    .venv/bin/python benchmarks/bench_pretrained.py --large-side 0  # steps 1-5: 1 h 40 min
    .venv/bin/python benchmarks/bench_pretrained.py                 # and step 6, at 224x224
    .venv/bin/python benchmarks/bench_pretrained.py --only large    # steps 1 and 6
    .venv/bin/python benchmarks/bench_pretrained.py --only tuning   # step 2 for the encoder's rate
    .venv/bin/python benchmarks/bench_pretrained.py --quick         # a smoke run, synthetic data

(Steps 1-5: 1 h 38 min on a 2-core Intel Xeon with AMX, 2026-12-02, from empty run folders.
--only large: 58 min on a 2-core AMD EPYC with AVX-512 and bf16, 2026-12-02, the recipe run
included, 32 of them the 224x224 training; again with both runs reused, to add the ensemble:
5 min. --only tuning: 21 min there, the recipe run reused.)

The same data, split (6:2:2, seed 0), test part and run folders as bench_isic2018.py: the recipe
run `isic2018-128` is trained first (or reused), on this machine, so that times compare. Then:

1. speed: training images/s of the recipe's network and of the Lite0 one at the recipe's size
   and batch, and of the Lite0 one at the larger size of step 6, in this process (random data);
2. fine-tuning, on 25 % of the training part (TUNING, run folders isic2018-<name>): the
   encoder's batch norms training (batch statistics) or frozen (ImageNet statistics), and a
   lower learning rate; the one best on validation dice is chosen;
3. the chosen way on all of the training part (`isic2018-128-lite0`), with as many epochs as
   train in about the recipe run's time (the recipe's 20 epochs times the speed ratio of 1.),
   scored plain and with TTA + post-processing, and paired image by image with the recipe;
4. that run and the recipe run as one `Ensemble`, plain and with TTA;
5. the learning curve of the chosen way: 10 % and 50 % of the training part (20 epochs, as
   the recipe's curve), with the 25 % tuning run and the full run;
6. the chosen way at 224x224 (`isic2018-224-lite0`), as many epochs as the full run of 3. (so
   about 3 times its time, within the issue's 90 minutes), scored and paired as 3., and in an
   ensemble with the recipe run as 4. With
   --only large, steps 2 to 5 are left out and the chosen way is the library's default for
   `encoder="efficientnet_lite0"` (what step 2 chose), so step 6 can run on its own.

With --only tuning, step 2 alone, for how fast the encoder learns (ENCODER_RATES): the library's
default (the encoder at the rest's learning rate from the first epoch), a tenth of it, and
frozen for the first 2 epochs, each with the default (frozen) batch norms.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import segment  # noqa: E402
from segment.training import compile_model  # noqa: E402

import bench_isic2018 as isic  # noqa: E402
from measure import train_images_per_second  # noqa: E402

LITE0 = {"encoder": "efficientnet_lite0"}
TUNING = {
    "128-lite0-train25-bn-train": {**LITE0, "encoder_batchnorm": "train"},
    "128-lite0-train25-bn-frozen": {**LITE0, "encoder_batchnorm": "frozen"},
    "128-lite0-train25-bn-train-lr3e-4": {**LITE0, "encoder_batchnorm": "train",
                                          "learning_rate": 3e-4},
}
ENCODER_RATES = {
    "128-lite0-train25-bn-frozen": LITE0,  # the default; the run folder of TUNING's
    "128-lite0-train25-encoder-lr0.1": {**LITE0, "encoder_lr_scale": 0.1},
    "128-lite0-train25-encoder-frozen2": {**LITE0, "encoder_frozen_epochs": 2},
}
TUNING_FRACTION = 0.25
CURVE_FRACTIONS = (0.1, 0.5)
LARGE_SIDE = 224  # step 6; --quick: 64
QUICK_TUNING = {"lite0-bn-train": {**LITE0, "encoder_batchnorm": "train"},
                "lite0-bn-frozen": {**LITE0, "encoder_batchnorm": "frozen"}}
QUICK_ENCODER_RATES = {"lite0-encoder-lr0.1": {**LITE0, "encoder_lr_scale": 0.1},
                       "lite0-encoder-frozen1": {**LITE0, "encoder_frozen_epochs": 1,
                                                 "epochs": 2}}  # frozen epochs < epochs


def training_speeds(recipe, pretrained, large_side, steps=20):
    """Training images/s of the recipe's network and of the pretrained one, in this process,
    at the recipe's size and batch, and of the pretrained one at `large_side` (unless 0),
    compiled as `train_model` compiles them (random data)."""
    batch, side = recipe.data.batch_size, recipe.data.image_size[0]
    networks = [("improved_unet", recipe, side), ("efficientnet_lite0", pretrained, side)]
    if large_side:
        networks.append((f"efficientnet_lite0_{large_side}", pretrained, large_side))
    speeds = {}
    for name, config, size in networks:
        model = compile_model(segment.create_model((size, size, 3), config.model),
                              learning_rate=config.train.learning_rate, loss=config.train.loss)
        speeds[name] = train_images_per_second(model, batch, steps)
    return speeds


def ensemble_scores(models, run, recipe_dice, names):
    """The models as one `Ensemble` on the recipe run's test part, plain and with TTA; the
    plain one paired image by image with the recipe."""
    ensemble = segment.Ensemble(models)
    test = segment.load_split(run.split).test
    plain = segment.evaluate(ensemble, test, progress=False)
    return {"models": names, "sizes": [list(size) for size in ensemble.sizes],
            "plain": isic.headline(plain.summary),
            "tta": isic.headline(segment.evaluate(ensemble, test, tta=True,
                                                  progress=False).summary),
            "against_recipe": isic.paired_difference(plain.table["dice"], recipe_dice)}


def measure(data, recipe, runs, tuning, curve_fractions, large_side, speed_steps=20,
            only=None, large_epochs=None):
    """Steps 1 to 6 of the module docstring (`only="large"`: 1 and 6, with `large_epochs`
    epochs if given; `only="tuning"`: 2); a dict of their results."""
    recipe_model, recipe_run = isic.trained(data, runs / "isic2018-128", recipe)
    results = {"recipe": isic.run_scores(recipe_run, recipe_model)}
    recipe_dice = isic.test_dice(recipe_run)
    if only == "tuning":
        results.update(tuning_runs(data, recipe, runs, tuning, recipe_dice))
        return results
    speeds = training_speeds(recipe, recipe.replace(**next(iter(tuning.values()))), large_side,
                             speed_steps)
    results["train_images_per_s"] = speeds
    epochs = max(1, round(recipe.train.epochs * speeds["efficientnet_lite0"]
                          / speeds["improved_unet"]))
    if only == "large":
        settings = {**LITE0, "epochs": large_epochs or epochs}
    else:
        settings = tuned_runs(data, recipe, runs, tuning, curve_fractions, epochs,
                              recipe_model, recipe_run, recipe_dice, results)
    if not large_side:
        return results
    large = f"{large_side}-lite0"
    results["large"] = {"side": large_side, **isic.changed_runs(
        data, recipe, runs, {large: {**settings, "image_size": (large_side, large_side)}},
        recipe_dice, None)[large]}
    large_model = segment.load_model(runs / f"isic2018-{large}" / "model.keras")
    results["large"]["ensemble"] = ensemble_scores([large_model, recipe_model], recipe_run,
                                                   recipe_dice, names=[large, "recipe"])
    return results


def tuning_runs(data, recipe, runs, tuning, recipe_dice):
    """Step 2: each of `tuning`'s settings on TUNING_FRACTION of the training part;
    {"tuning": their scores, "chosen": the name of the best on validation dice}."""
    scores = isic.changed_runs(
        data, recipe, runs, {name: {**settings, "train_fraction": TUNING_FRACTION}
                             for name, settings in tuning.items()}, recipe_dice, None)
    return {"tuning": scores,
            "chosen": max(scores, key=lambda name: scores[name]["best_val_dice"])}


def tuned_runs(data, recipe, runs, tuning, curve_fractions, epochs, recipe_model, recipe_run,
               recipe_dice, results):
    """Steps 2 to 5 of the module docstring, their results added to `results`; the chosen
    settings with `epochs`."""
    results.update(tuning_runs(data, recipe, runs, tuning, recipe_dice))
    chosen = results["chosen"]
    settings = {**tuning[chosen], "epochs": epochs}
    full = isic.changed_runs(data, recipe, runs, {"128-lite0": settings}, recipe_dice, None)
    results["full"] = full["128-lite0"]

    full_model = segment.load_model(runs / "isic2018-128-lite0" / "model.keras")
    results["ensemble"] = ensemble_scores([full_model, recipe_model], recipe_run, recipe_dice,
                                          names=["128-lite0", "recipe"])

    curve = isic.changed_runs(
        data, recipe, runs, {f"128-lite0-train{round(fraction * 100)}":
                             {**tuning[chosen], "train_fraction": fraction}
                             for fraction in curve_fractions}, recipe_dice, None)
    points = [{"fraction": TUNING_FRACTION, **results["tuning"][chosen]},
              *({"fraction": fraction, **point}
                for fraction, point in zip(curve_fractions, curve.values(), strict=True)),
              {"fraction": 1.0, **results["full"]}]
    results["curve"] = sorted(points, key=lambda point: point["fraction"])
    return settings


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"),
                        help="folder of the run folders (shared with bench_isic2018.py)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 30 synthetic pairs, 32x32, 1 epoch, in a temp folder, "
                             "functions run eagerly")
    parser.add_argument("--large-side", type=int, default=LARGE_SIDE,
                        help=f"side of step 6's run ({LARGE_SIDE}; 0 leaves step 6 out)")
    parser.add_argument("--only", choices=["large", "tuning"],
                        help="large: steps 1 and 6 (the run at --large-side, with the "
                             "library's default fine-tuning); tuning: step 2 for ENCODER_RATES")
    parser.add_argument("--large-epochs", type=int, default=None,
                        help="with --only large: the run's epochs (default: the recipe's times "
                             "the speed ratio of step 1, which varies by up to 10 % between "
                             "processes; give the epochs of a finished run to reuse it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.quick:
            tuning = QUICK_ENCODER_RATES if args.only == "tuning" else QUICK_TUNING
            results = measure(isic.quick_data(Path(scratch)), isic.QUICK, Path(scratch),
                              tuning, (), 64 if args.large_side else 0, speed_steps=2,
                              only=args.only, large_epochs=args.large_epochs)
        elif not isic.ISIC2018.is_dir():
            results = {"skipped": f"no ISIC 2018 data at {isic.ISIC2018}"}
        else:
            tuning = ENCODER_RATES if args.only == "tuning" else TUNING
            results = measure(isic.ISIC2018, isic.RECIPE, args.runs, tuning, CURVE_FRACTIONS,
                              args.large_side, only=args.only, large_epochs=args.large_epochs)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
