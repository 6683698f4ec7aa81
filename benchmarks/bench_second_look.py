"""The second look (segment/second_look.py) on a finished run: chosen on validation, scored on test.

    .venv/bin/python benchmarks/bench_second_look.py runs/isic2018-224-lite0   # about 10 minutes
    .venv/bin/python benchmarks/bench_second_look.py --quick                   # a smoke run

The run's own model and split (run.py gives it the README's pretrained 224x224 run of
bench_pretrained.py; the 128x128 recipe run of bench_isic2018.py was measured too), trained on
whole views: the same model takes the second look; no crop-trained model is measured here.

1. Validation part: one pass, and the second look with each margin of MARGINS and each
   largest share of the view a box may cover (WHOLE_VIEW_SHARES; larger boxes keep the first
   pass). The setting with the fewest images below 0.6 dice, then the highest mean dice, is
   chosen.
2. Test part: one pass and the chosen second look, each plain and with TTA; per-size bins,
   the count below 0.6, the paired difference image by image against one pass, which of the
   one pass's 20 worst images the second look fixes (dice up by 0.2 or more) and which images
   it breaks (dice down by 0.2 or more), and the seconds each evaluation took.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import segment
import segment.second_look

import bench_isic2018 as isic

MARGINS = (0.25, 0.5, 1.0)
WHOLE_VIEW_SHARES = (0.5, 1.0)


def scored(model, pairs, **settings):
    """(headline scores and seconds, per-image dice) of one evaluation."""
    share = settings.pop("whole_view_share", segment.second_look.WHOLE_VIEW_SHARE)
    kept, segment.second_look.WHOLE_VIEW_SHARE = segment.second_look.WHOLE_VIEW_SHARE, share
    try:
        start = time.perf_counter()
        evaluation = segment.evaluate(model, pairs, progress=False, **settings)
        seconds = time.perf_counter() - start
    finally:
        segment.second_look.WHOLE_VIEW_SHARE = kept
    return {**isic.headline(evaluation.summary), "seconds": seconds}, evaluation.table["dice"]


def changes(looked, plain):
    """Which of the one pass's 20 worst images the second look fixes (dice up by 0.2 or more),
    and which images it breaks (down by 0.2 or more), each sorted by id
    (`segment.comparison.changed_images`)."""
    fixed, broken = segment.comparison.changed_images(looked, plain)
    return {"fixed_of_worst": sorted(fixed), "broken": sorted(broken)}


def measure(model, split, margins, shares, baseline=None):
    """Steps 1 and 2 of the module docstring: a dict of their results. With `baseline` (another
    model's test dice, a Series by id) each test evaluation is also paired with it."""
    validation = {"one pass": scored(model, split.val)[0]}
    for margin in margins:
        for share in shares:
            validation[f"margin {margin}, share {share}"] = scored(
                model, split.val, second_look=True, crop_margin=margin,
                whole_view_share=share)[0]
    chosen = min((name for name in validation if name != "one pass"),
                 key=lambda name: (validation[name]["low_dice"]["count"],
                                   -validation[name]["mean_dice"]))
    margin, share = (float(part.split()[-1]) for part in chosen.split(", "))
    test = {}
    for tta in (False, True):
        plain, plain_dice = scored(model, split.test, tta=tta)
        looked, looked_dice = scored(model, split.test, tta=tta, second_look=True,
                                     crop_margin=margin, whole_view_share=share)
        name = " with TTA" if tta else ""
        test[f"one pass{name}"] = plain
        test[f"second look{name}"] = {**looked, "against_one_pass": isic.paired_difference(
            looked_dice, plain_dice), **changes(looked_dice, plain_dice)}
        if baseline is not None:
            for kind, dice in (("one pass", plain_dice), ("second look", looked_dice)):
                test[kind + name]["against_baseline"] = {
                    **isic.paired_difference(dice, baseline), **changes(dice, baseline)}
    return {"validation": validation, "chosen": {"crop_margin": margin,
                                                 "whole_view_share": share},
            "test": test}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", type=Path, help="a finished run folder")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: a tiny model trained for one epoch on synthetic pairs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.quick:
            run = Path(scratch) / "run"
            segment.train_and_evaluate(isic.quick_data(Path(scratch)), run, isic.QUICK,
                                       verbose=0, progress=False)
            margins, shares = (0.5,), (0.5,)
        elif args.run is None:
            parser.error("give a finished run folder, or --quick")
        else:
            run, margins, shares = args.run, MARGINS, WHOLE_VIEW_SHARES
        model = segment.load_model(run / "model.keras")
        results = {"run": str(run), **measure(model, segment.load_split(run / "split.json"),
                                              margins, shares)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
