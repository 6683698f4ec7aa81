"""The encoder's batch norms folded into its convolutions for prediction: the README's bf16 run
re-scored, and prediction timed.

    .venv/bin/python benchmarks/bench_folded_prediction.py          # about 7 min
    .venv/bin/python benchmarks/bench_folded_prediction.py --quick  # a smoke run

The library's prediction (`evaluate`, `predict_masks`, `export_predictions`) now runs each
model through `segment.batch_norm_folding.folded_for_prediction`: a copy whose batch norms are
folded into the convolutions before them. Training and validation do not, so a run trains
exactly as before; what changes is the rounding of bf16 prediction. So:

- the README's bf16 run (bench_depthwise_bf16.py's, run folder
  isic2018-224-lite0-bf16-depthwise-bf16; trained when missing) scores its test part as the
  library predicts now, plain and with TTA + post-processing, each paired image by image with
  the same evaluation without the fold;
- in one window, the prediction of one batch (random data, the command's batch) by the
  library's network in float32 and in bf16, each with and without the fold, in ROUNDS
  alternating rounds (each variant's best counts).

On a CPU without native bf16 the benchmark says so and measures nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import functools
from unittest import mock

import segment
from segment.batch_norm_folding import foldable_pairs, folded_for_prediction

import bench_isic2018 as isic
from bench_bf16_retrain import without_native_bf16
from bench_encoders import BASELINE, QUICK
from bench_fused_norm import CANDIDATE
from bench_second_look import changes
from measure import best_rates, random_batch

README_RUN = "depthwise-bf16"  # bench_depthwise_bf16.py's run: ...-bf16-depthwise-bf16
ROUNDS, STEPS = 6, 8
SETTINGS = {"plain": {}, "tta+postprocess": {"tta": True, "postprocess": True}}


def rescored(model, run):
    """{settings: headline scores of the test part as the library predicts now, paired with the
    same evaluation without the fold}."""
    test = segment.load_split(run.split).test
    scores = {}
    for name, settings in SETTINGS.items():
        with mock.patch("segment.prediction.folded_for_prediction", lambda model: model):
            before = segment.evaluate(model, test, progress=False, **settings)
        now = segment.evaluate(model, test, progress=False, **settings)
        dice, before_dice = (evaluation.table["dice"]
                             for evaluation in (now, before))
        scores[name] = {**isic.headline(now.summary),
                        "without_the_fold": isic.headline(before.summary),
                        "against_without_the_fold": {**isic.paired_difference(dice, before_dice),
                                                     **changes(dice, before_dice)}}
    return scores


def prediction_speeds(config, quick):
    """{variant: images/s} of the prediction of one batch by `config`'s network, float32 and
    bf16, with and without the fold, and the folded variants' ratios to the plain ones."""
    size, batch = config.data.image_size[0], config.data.batch_size
    images, _ = random_batch(batch, size)
    steps = {}
    for precision, policy in [("float32", None), ("bf16", "mixed_bfloat16")]:
        model = segment.create_model((size, size, 3), config.model, dtype_policy=policy)
        for variant, predicting in [("as built", model), ("folded", folded_for_prediction(model))]:
            predicting.predict_on_batch(images)  # traced once, here
            steps[f"{precision}, {variant}"] = functools.partial(predicting.predict_on_batch,
                                                                 images)
    speeds = best_rates(steps, batch, 1 if quick else ROUNDS, 1 if quick else STEPS, warmup=2)
    return {"predict_images_per_s": speeds, "folded_pairs": len(foldable_pairs(model)),
            "ratios": {f"{precision}: folded / as built":
                       speeds[f"{precision}, folded"] / speeds[f"{precision}, as built"]
                       for precision in ("float32", "bf16")}}


def main(data, runs, args):
    if skipped := without_native_bf16():
        return skipped
    baseline = QUICK if args.quick else BASELINE
    side = baseline.data.image_size[0]
    model, run = isic.trained(data, runs / f"isic2018-{side}-lite0-bf16-{README_RUN}",
                              baseline.replace(precision="mixed", **CANDIDATE), copied_data=True)
    return {"readme_run": run.path.name, "rescored": rescored(model, run),
            **prediction_speeds(baseline, args.quick)}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
