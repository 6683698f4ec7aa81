"""The encoder's depthwise convolutions in bf16 in prediction: the README's bf16 command retrained,
its model re-scored, and prediction timed.

    .venv/bin/python benchmarks/bench_depthwise_bf16.py          # about 40 min
    .venv/bin/python benchmarks/bench_depthwise_bf16.py --quick  # a smoke run

Under mixed precision on a CPU the pretrained encoder's depthwise convolutions are
`Float32TrainingDepthwiseConv2D` (segment/layers.py): float32 in training, as before, since
oneDNN's bf16 depthwise gradients are slow, and bf16 in prediction and validation, where they
were float32 before and cost a cast of each map to float32 and back. Training steps run the same
ops as before; validation, which picks the best epoch, and prediction do not. So:

- the README's bf16 command (`--mixed-precision --validate-every 3`) is trained again with the
  new layer (run folder isic2018-224-lite0-bf16-depthwise-bf16) and paired image by image as
  bench_fused_batch_norm.py pairs its candidate, also with that benchmark's run of the same
  command before the layer (run folder isic2018-224-lite0-bf16-fused-bn, reused);
- that run's weights, in a network built with the new layer, score the test part again, paired
  with its own evaluation: the change prediction alone makes;
- in one window, the train step and the prediction of one batch (random data, the command's
  batch) in float32, in bf16 with the depthwise convolutions in float32 (the library before)
  and in bf16 with the new layer, in ROUNDS alternating rounds (each variant's best counts).

On a CPU without native bf16 the benchmark says so and trains nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import segment
from segment.layers import FusedBatchNormalization, InstanceNormalization

import bench_isic2018 as isic
from bench_encoders import BASELINE, QUICK
from bench_fused_batch_norm import pair_with_readme_run, train_and_predict_speeds
from bench_fused_norm import CANDIDATE
from bench_second_look import changes
from bench_small_lesion_loss import measure

BEFORE_RUN = "fused-bn"  # bench_fused_batch_norm.py's candidate: ...-bf16-fused-bn
KERNELS = (InstanceNormalization, FusedBatchNormalization)
VARIANTS = [("float32", None, (), False),  # as bench_fused_norm.VARIANTS
            ("bf16, depthwise in float32", "mixed_bfloat16", KERNELS, False),
            ("bf16, depthwise in bf16 in prediction", "mixed_bfloat16", KERNELS, True)]


def rescored(run, config):
    """The finished `run`'s weights in a network built by the library now (`config`'s model,
    mixed bfloat16), scored on its test part: headline scores, and the per-image dice paired
    with the run's own evaluation."""
    saved = segment.load_model(run.model)
    model = segment.create_model(tuple(saved.input_shape[1:]), config.model,
                                 dtype_policy="mixed_bfloat16")
    model.set_weights(saved.get_weights())
    evaluation = segment.evaluate(model, segment.load_split(run.split).test, progress=False)
    dice, before = evaluation.table["dice"], isic.test_dice(run)
    return {"run": run.path.name, **isic.headline(evaluation.summary),
            "against_its_evaluation": {**isic.paired_difference(dice, before),
                                       **changes(dice, before)}}


def main(data, runs, args):
    baseline = QUICK if args.quick else BASELINE
    results = measure(data, runs, baseline, 0, CANDIDATE, "depthwise-bf16", "depthwise_bf16")
    if "skipped" in results:
        return results
    seed = results["seed 0"]
    pair_with_readme_run(data, runs, baseline, seed, "depthwise_bf16", BEFORE_RUN)
    seed["readme_run_rescored"] = rescored(segment.RunFolder(runs / seed["readme_run"]["run"]),
                                           baseline)
    return {**results, **train_and_predict_speeds(baseline, VARIANTS, args.quick)}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
