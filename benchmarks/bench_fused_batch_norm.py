"""The README's bf16 command retrained with the encoder's batch norms as one kernel in inference.

    .venv/bin/python benchmarks/bench_fused_batch_norm.py          # about 50 min
    .venv/bin/python benchmarks/bench_fused_batch_norm.py --quick  # a smoke run

Under mixed precision on TensorFlow, Keras' BatchNormalization copies each bfloat16 map to
float32, scales and shifts it in separate ops and casts it back; the pretrained encoder's
`FusedBatchNormalization` (segment/layers.py) normalises by its moving statistics outside
training as one FusedBatchNorm kernel instead (in training it is Keras' layer). The baseline is
the README's run (its instance norms one kernel, its batch norms Keras' ops),
bench_fused_norm.py's candidate (run folder isic2018-224-lite0-bf16-fused, reused). The candidate
is the same command trained with the new layer (run folder isic2018-224-lite0-bf16-fused-bn):
its training steps are the baseline's ops, its validations and test predictions use the kernel.
It is scored and paired image by image as bench_small_lesion_loss.py pairs its candidate (with
the bf16 run before either kernel), and also with the baseline. Then, in one window, the train
step and the prediction of one batch (random data, the command's batch) in float32, in bf16 with
the instance norms' kernel only and in bf16 with both kernels, in ROUNDS alternating rounds
(each variant's best counts; more than bench_fused_norm.py's 3, as the prediction of a batch
takes a third of a second, and a first run's 3 rounds put the kernel 12 % behind where two
checks right after put it 5 and 10 % ahead). On a CPU without native bf16 the benchmark says so
and trains nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import segment
from segment.layers import FusedBatchNormalization, InstanceNormalization

import bench_isic2018 as isic
from bench_encoders import BASELINE, QUICK
from bench_fused_norm import CANDIDATE, STEPS, step_speeds
from bench_second_look import changes
from bench_small_lesion_loss import measure

ROUNDS = 6
BASELINE_RUN = "fused"  # bench_fused_norm.py's candidate: ...-bf16-fused
VARIANTS = [("float32", None, (), False),  # as bench_fused_norm.VARIANTS
            ("bf16, instance norm kernel", "mixed_bfloat16", (InstanceNormalization,), False),
            ("bf16, both kernels", "mixed_bfloat16",
             (InstanceNormalization, FusedBatchNormalization), False)]


def main(data, runs, args):
    baseline = QUICK if args.quick else BASELINE
    results = measure(data, runs, baseline, 0, CANDIDATE, "fused-bn", "fused_batch_norm")
    if "skipped" in results:
        return results
    pair_with_readme_run(data, runs, baseline, results["seed 0"], "fused_batch_norm",
                         BASELINE_RUN)
    return {**results, **train_and_predict_speeds(baseline, VARIANTS, args.quick)}


def train_and_predict_speeds(config, variants, quick):
    """{"step_images_per_s": `step_speeds` of the train step and the prediction of a batch in
    ROUNDS rounds (one with `quick`), "ratios": each variant's to float32's}."""
    speeds = step_speeds(config, 1 if quick else STEPS, variants, ("train", "predict"),
                         1 if quick else ROUNDS)
    return {"step_images_per_s": speeds,
            "ratios": {f"{kind}: {name} / float32": speeds[kind][name] / speeds[kind]["float32"]
                       for kind in speeds for name in speeds[kind] if name != "float32"}}


def pair_with_readme_run(data, runs, baseline, seed_results, key, suffix, settings=None,
                         name="readme_run"):
    """Add the README's bf16 run (`baseline` in bf16 with `--validate-every 3` and `settings`
    replaced; run folder ...-bf16-<suffix>, trained when missing) to `seed_results` under
    `name`, and pair candidate `key` with it image by image (under `against_<name>`)."""
    side = baseline.data.image_size[0]
    run = segment.RunFolder(runs / f"isic2018-{side}-lite0-bf16-{suffix}")
    isic.trained(data, run.path, baseline.replace(precision="mixed", **CANDIDATE,
                                                  **(settings or {})), copied_data=True)
    run_dice = isic.test_dice(run)
    candidate_dice = isic.test_dice(segment.RunFolder(runs / seed_results[key]["run"]))
    seed_results[name] = {"run": run.path.name, **isic.run_scores(run)}
    seed_results[key][f"against_{name}"] = {**isic.paired_difference(candidate_dice, run_dice),
                                            **changes(candidate_dice, run_dice)}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
