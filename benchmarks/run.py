"""Run the benchmark suite and rewrite benchmarks/RESULTS.md and benchmarks/results.json.

    make bench                                   # the whole suite
    .venv/bin/python benchmarks/run.py --quick   # a smoke run (the tests use it), writes to --out
    .venv/bin/python benchmarks/run.py --only compute   # rerun one part, keep the others
    .venv/bin/python benchmarks/run.py --render  # rewrite RESULTS.md from results.json

Each benchmark runs in a fresh process (bench_*.py, each runnable on its own) and prints JSON;
this script collects them, records the machine each ran on, checks each target and writes
RESULTS.md whole (its hand-written analysis is NOTES.md, linked from it). Every ratio is
measured within one run on one machine, so differences between machines cancel.
"""

import argparse
import datetime
import json
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Which benchmark's run measured each numbered row of the targets table.
ROW_PARTS = {"1": "compute", "2": "pipeline", "3": "pipeline", "4": "precision", "5": "peer",
             "6": "quality", "7": "backends", "8": "isic2018", "9": "pretrained", "10": "review",
             "11": "confidence", "12": "second_look", "13": "torch_twin", "14": "encoders",
             "15": "lesion_crops", "16": "bf16_retrain", "17": "epoch",
             "18": "small_lesion_loss", "19": "first_size", "20": "fused_norm",
             "21": "fused_batch_norm", "22": "longer_training", "23": "depthwise_bf16",
             "24": "augmented_training", "25": "larger_input", "26": "folded_prediction",
             "27": "folded_training", "28": "artifacts", "29": "per_sample_norm",
             "30": "upsampling_conv", "31": "colour_constancy", "32": "depthwise_gradients",
             "33": "without_bf16", "34": "metrics"}
# Parts each of whose runs adds to what the part holds: `bench_encoders.py --only` trains one
# variant, and `bench_small_lesion_loss.py --seed N` (bench_first_size.py) one seed; the others'
# results stay.
ADDITIVE_PARTS = {"encoders", "small_lesion_loss", "first_size"}
PRETRAINED = "9 pretrained encoder (ISIC 2018)"  # the rows of bench_pretrained.py's parts
BENCHMARKS = ["compute", "pipeline", "precision", "scaling", "data", "peer", "quality",
              "backends", "isic2018", "pretrained", "pretrained_tuning", "pretrained_large",
              "review", "confidence", "second_look", "torch_twin", "encoders", "step_trace",
              "lesion_crops", "bf16_retrain", "epoch", "small_lesion_loss", "first_size",
              "fused_norm", "fused_batch_norm", "longer_training", "depthwise_bf16",
              "augmented_training", "larger_input", "folded_prediction", "folded_training",
              "artifacts", "per_sample_norm", "upsampling_conv", "colour_constancy",
              "depthwise_gradients", "without_bf16", "metrics"]
# A part that is not bench_<part>.py run as it is: its script and arguments. bench_pretrained.py's
# step 6 (a run of over an hour) and its tuning of the encoder's learning rate are parts of
# their own, so that each can be rerun alone.
COMMANDS = {"pretrained": ["bench_pretrained.py", "--large-side", "0"],
            "pretrained_tuning": ["bench_pretrained.py", "--only", "tuning"],
            "pretrained_large": ["bench_pretrained.py", "--only", "large"],
            # the README's pretrained run (part pretrained_large's isic2018-224-lite0)
            "confidence": ["bench_confidence.py", "runs/isic2018-224-lite0"],
            "second_look": ["bench_second_look.py", "runs/isic2018-224-lite0"],
            "torch_twin": ["bench_torch_twin.py", "--compile"]}


def invocation(name):
    """The bench_*.py file that measures part `name`, and its arguments."""
    script, *arguments = COMMANDS.get(name, [f"bench_{name}.py"])
    return HERE / script, arguments


def run_benchmark(name, quick, more_arguments=()):
    script, arguments = invocation(name)
    arguments += [*more_arguments, *(["--quick"] if quick else [])]
    print(f"[{time.strftime('%H:%M:%S')}] {' '.join([script.name, *arguments])} ...",
          file=sys.stderr, flush=True)
    command = [sys.executable, str(script), *arguments]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    output = done.stdout[done.stdout.index("{"):]
    given = {"arguments": list(more_arguments)} if more_arguments else {}
    return {**json.loads(output), **given, "seconds": time.perf_counter() - start}


def machine():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines()
                  if line.startswith("model name")), platform.processor())
    import os

    import keras
    import tensorflow as tf

    return {"cpu": model, "cores": os.cpu_count(),
            "bf16": "avx512_bf16" in flags or "amx_bf16" in flags, "amx": "amx_bf16" in flags,
            "avx512": "avx512f" in flags, "gpus": len(tf.config.list_physical_devices("GPU")),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}


def describe(machine):
    """'AMD EPYC, AVX-512 + bf16, 2026-11-27': the CPU kind a row was measured on, and when."""
    kind = ("AVX-512 + bf16 + AMX" if machine.get("amx") else "AVX-512 + bf16"
            if machine.get("bf16") else "AVX-512" if machine.get("avx512") else "AVX2")
    gpus = f", {machine['gpus']} GPUs" if machine.get("gpus") else ""
    return f"{machine.get('cpu', '?')}, {kind}{gpus}, {machine.get('date', '?')}"


def targets(results):
    """(benchmark, target, value, met[, part]) rows; met is True, False or a reason it does not
    apply; `part`, where given, names the benchmark that measured the row (else ROW_PARTS)."""
    rows = []
    compute = results.get("compute", {})
    for size, measured in compute.items():  # "128x128", ...; not the XLA or ablation runs
        if re.fullmatch(r"\d+x\d+", size):
            value = measured["train_fraction_of_peak"]
            rows.append(("1 compute", f"training at {size}: >= 0.60 of matmul peak",
                         f"{value:.2f}", value >= 0.60))
    pipeline = results.get("pipeline", {})
    if "overhead" in pipeline:
        value = pipeline["overhead"]["epoch2_speed_relative_to_memory"]
        rows.append(("2 pipeline", "epoch >= 2 from files: >= 0.95 of in-memory speed",
                     f"{value:.2f}", value >= 0.95))
    if "augmentation" in pipeline:
        relative = pipeline["augmentation"]["speed_relative_to_plain"]
        rows.append(("2 pipeline", "augmented epochs (full; flips) >= 0.95 of plain epochs' "
                                   "speed", f"{relative['full']:.2f}; {relative['flips']:.2f}",
                     min(relative.values()) >= 0.95))
    if "memory" in pipeline and "disk_cache_growth" in pipeline["memory"]:
        value = pipeline["memory"]["disk_cache_growth"]
        rows.append(("3 memory", "disk-cache peak RSS growth, 500 -> 2,000 files: <= 10 %",
                     f"{100 * value:+.1f} %", value <= 0.10))
    precision = results.get("precision", {})
    if "mixed_speedup" in precision:
        applies = precision["case"] != "no native bf16"
        speedup, dice = precision["mixed_speedup"], precision["dice_difference"]
        rows.append(("4 mixed precision", ">= 1.3x faster, dice within 0.01",
                     f"{speedup:.2f}x, dice {dice:+.3f}",
                     (speedup >= 1.3 and abs(dice) <= 0.01) if applies else
                     "n/a: no native bf16 on this CPU; the library falls back to float32"))
    rows += peer_targets(results.get("peer", {}), results.get("quality", {}))
    rows += quality_targets(results.get("quality", {}))
    rows += backend_rows(results.get("backends", {}))
    rows += isic2018_targets(results.get("isic2018", {}), results.get("data", {}))
    rows += pretrained_targets(results.get("pretrained", {}),
                               results.get("isic2018", {}).get("peer", {}))
    for part, make_rows in _PART_ROWS:
        if part in results:
            rows += make_rows(results[part])
    return rows


def epoch_row(epoch):
    """A whole epoch (pipeline, checkpoints, validation) against the bare train step."""
    target = ("a whole epoch at 224x224 from the second on (input pipeline, checkpoints, "
              "validation) >= 0.95 of the bare train step's images/s")
    if "fraction_of_bare_step" not in epoch:
        return "17 epoch", target, "-", not_run(epoch)
    fractions = epoch["fraction_of_bare_step"]
    value = "; ".join(f"{name}: {fraction:.2f}" for name, fraction in fractions.items())
    return ("17 epoch", target, f"{epoch['precision']}, {value}",
            max(fraction for name, fraction in fractions.items()
                if name.startswith("validate_every")) >= 0.95)


def small_lesion_dice(scores):
    """(mean dice, count) over the test images whose lesion covers under 5 % of the view."""
    bins = [scores["by_lesion_size"][label] for label in ("under 2 %", "2-5 %")]
    count = sum(each["count"] for each in bins)
    return (sum(each["count"] * each["mean_dice"] for each in bins if each["count"]) / count
            if count else float("nan")), count


SMALL_LESION_TARGET = ("test part, training <= 60 min: lesions under 5 % of the view mean dice "
                       ">= 0.87, and at most half of the Lite0 224x224 run's images below 0.6 "
                       "dice")


def small_lesion_verdict(name, scores, minutes, paired, before):
    """(value, met) of SMALL_LESION_TARGET for one candidate: `scores` its test evaluation,
    `paired` its difference from the Lite0 baseline, `before` that baseline's count below 0.6."""
    small, count = small_lesion_dice(scores)
    below = scores["low_dice"]["count"]
    value = (f"{name}, {minutes:.0f} min: mean {scores['mean_dice']:.3f} "
             f"({paired['mean_dice_difference']:+.3f} ± {paired['standard_error']:.3f}); "
             f"{small:.3f} over {count}; {below} below 0.6 (Lite0 {before})")
    return value, small >= 0.87 and below <= before / 2 and minutes <= 60


def encoder_rows(encoders):
    """Lite1 and Lite2 against the Lite0 224x224 baseline, each within the training budget."""
    if "baseline" not in encoders:
        return [("14 stronger encoders", SMALL_LESION_TARGET, "-", not_run(encoders))]
    before = encoders["baseline"]["plain"]["low_dice"]["count"]
    rows = []
    for name, scores in encoders.items():
        if not isinstance(scores, dict) or "against_baseline" not in scores:
            continue
        trained = f" ({scores['date']})" if "date" in scores else ""
        rows.append(("14 stronger encoders", SMALL_LESION_TARGET, *small_lesion_verdict(
            f"{name}{trained}, {scores['epochs']} epochs", scores["plain"],
            scores["train_seconds"] / 60, scores["against_baseline"], before)))
    return rows


def lesion_crops_row(crops):
    """The model trained with lesion crops, predicting with the second look, against Lite0."""
    if "baseline" not in crops:
        return "15 crop-trained model", SMALL_LESION_TARGET, "-", not_run(crops)
    looked = crops["crops"]["test"]["second look"]
    return ("15 crop-trained model", SMALL_LESION_TARGET, *small_lesion_verdict(
        f"{crops['crops']['run']}, second look", looked, crops["crops"]["train_seconds"] / 60,
        looked["against_baseline"], crops["baseline"]["plain"]["low_dice"]["count"]))


def added(part, result):
    """An additive part's `result` over what the part held: a seed's entry keeps the candidates
    (bench_first_size.py's schedules) that this run did not measure."""
    return {**part, **{name: {**part[name], **value} if name.startswith("seed ") and name in part
                       else value for name, value in result.items()}}


def first_size_rows(part):
    """Row 19: `seeded_rows` of each schedule bench_first_size.py measured (results key
    first_size for 16 small epochs of 22, first_size_<N>of<E> for the others)."""
    keys = sorted({key for name, seed in part.items() if name.startswith("seed ")
                   for key in seed if key.startswith("first_size")}) or ["first_size"]
    rows = []
    for key in keys:
        schedule = key.removeprefix("first_size").lstrip("_").replace("of", " of ")  # "10 of 22"
        rows.extend(seeded_rows(part, f"19 small first{f' ({schedule})' if schedule else ''}, "
                                      "then large", key))
    return rows


def seeded_rows(part, label, key):
    """For each training seed of a part measured per seed (bench_small_lesion_loss.py,
    bench_first_size.py, bench_longer_training.py, bench_augmented_training.py,
    bench_larger_input.py, bench_artifacts.py, bench_colour_constancy.py), its candidate
    `part[seed][key]` against the bf16 Lite0 run of the same seed (with the gain on the small
    lesions alone where the seed's run measured it)."""
    seeds = sorted((name for name in part if name.startswith("seed ") and key in part[name]),
                   key=lambda name: int(name[5:]))
    if not seeds:
        return [(label, SMALL_LESION_TARGET, "-", not_run(part))]
    rows = []
    for seed in seeds:
        candidate = part[seed][key]
        small = candidate.get("against_baseline_by_size", {}).get("under 5 %")
        gain = (f"; under 5 % {small['mean_dice_difference']:+.3f} ± "
                f"{small['standard_error']:.3f}" if small else "")
        rows.append((label, SMALL_LESION_TARGET, *small_lesion_verdict(
            f"{seed} ({candidate.get('date', part[seed]['date'])}{gain}), {candidate['run']}",
            candidate["plain"],
            candidate["train_seconds"] / 60, candidate["against_baseline"],
            part[seed]["baseline"]["plain"]["low_dice"]["count"])))
    return rows


def bf16_retrain_row(retrain):
    """The README's pretrained command retrained in mixed bfloat16, against its float32 run."""
    target = ("the README's Lite0 224x224 run retrained in bf16: test mean dice within noise "
              "of float32 (paired: the difference within 2 standard errors)")
    if "bf16" not in retrain:
        return "16 bf16 retrain", target, "-", not_run(retrain)
    bf16, float32 = retrain["bf16"]["plain"], retrain["float32"]["plain"]
    paired = retrain["bf16"]["against_float32"]
    difference, error = paired["mean_dice_difference"], paired["standard_error"]
    return ("16 bf16 retrain", target,
            f"{bf16['mean_dice']:.4f} against {float32['mean_dice']:.4f} ({difference:+.4f} ± "
            f"{error:.4f}); train step {retrain['bf16_speedup']:.2f}x",
            abs(difference) < 2 * error)


BF16_SPEED_TARGET = "mixed_bfloat16 >= 1.6x float32 training at 224 (train step, one window)"


def retrained_bf16_rows(label, dice_target, part, names, speed):
    """Two rows of a retrain of the README's bf16 command: its test mean dice paired with a
    reference run's (`names`: the candidate's key, the reference's key, the key of the pairing
    in the candidate's results), and bf16's speed-up: `speed(ratios)` gives (text, met)."""
    if "ratios" not in part:
        return [(label, dice_target, "-", not_run(part)),
                (label, BF16_SPEED_TARGET, "-", not_run(part))]
    candidate_key, reference_key, paired_key = names
    candidate, reference = part["seed 0"][candidate_key], part["seed 0"][reference_key]
    paired = candidate[paired_key]
    difference, error = paired["mean_dice_difference"], paired["standard_error"]
    return [(label, dice_target,
             f"{candidate['plain']['mean_dice']:.4f} against "
             f"{reference['plain']['mean_dice']:.4f} ({difference:+.4f} ± {error:.4f}); "
             f"{candidate['train_seconds'] / 60:.1f} min against "
             f"{reference['train_seconds'] / 60:.1f}", abs(difference) < 2 * error),
            (label, BF16_SPEED_TARGET, *speed(part["ratios"]))]


def fused_norm_rows(part):
    """Row 20: the README's bf16 command retrained with the fused instance-norm kernel and
    `--validate-every 3`, against the bf16 run before it; and bf16 against float32 after it."""
    def speed(ratios):
        bf16 = ratios["bf16 fused / float32"]
        stock_bf16 = bf16 / ratios["bf16 fused / bf16 Keras' ops"]
        return f"{bf16:.2f}x (bf16 with Keras' norm ops: {stock_bf16:.2f}x)", bf16 >= 1.6
    return retrained_bf16_rows(
        "20 fused norm kernel",
        "the README's bf16 Lite0 224x224 command retrained with the fused norm kernel and "
        "--validate-every 3: test mean dice within noise of the bf16 run before (paired: the "
        "difference within 2 standard errors)",
        part, ("fused_norm", "baseline", "against_baseline"), speed)


def bf16_speeds(candidate, before, before_label):
    """A `speed` for `retrained_bf16_rows`: the ratios of variant `candidate` (bf16) to float32
    in training and prediction, variant `before`'s in brackets; met at 1.6x in training."""
    def speed(ratios):
        text = "; ".join(f"{kind} {ratios[f'{kind}: {candidate} / float32']:.2f}x "
                         f"({before_label}: {ratios[f'{kind}: {before} / float32']:.2f}x)"
                         for kind in ("train", "predict"))
        return text, ratios[f"train: {candidate} / float32"] >= 1.6
    return speed


def fused_batch_norm_rows(part):
    """Row 21: the README's bf16 command retrained with the encoder's batch norms as one kernel
    in inference, against the README's run; and bf16 against float32, training and prediction."""
    return retrained_bf16_rows(
        "21 fused batch norm kernel",
        "the README's bf16 Lite0 224x224 command retrained with the batch norms' inference "
        "kernel: test mean dice within noise of the README's run (paired: the difference "
        "within 2 standard errors)",
        part, ("fused_batch_norm", "readme_run", "against_readme_run"),
        bf16_speeds("bf16, both kernels", "bf16, instance norm kernel",
                    "instance norm kernel only"))


def depthwise_bf16_rows(part):
    """Row 23: the README's bf16 command retrained with the encoder's depthwise convolutions in
    bf16 in prediction, against the same command before; bf16 against float32; and the run
    before it re-scored with the new layer (the change prediction alone makes)."""
    label = "23 depthwise bf16 in prediction"
    rows = retrained_bf16_rows(
        label, "the README's bf16 Lite0 224x224 command retrained with the depthwise "
               "convolutions in bf16 in prediction: test mean dice within noise of the same "
               "command before (paired: the difference within 2 standard errors)",
        part, ("depthwise_bf16", "readme_run", "against_readme_run"),
        bf16_speeds("bf16, depthwise in bf16 in prediction", "bf16, depthwise in float32",
                    "depthwise in float32"))
    target = ("the run before, its weights predicting with the new layer: test mean dice within "
              "noise of its own evaluation")
    if "ratios" not in part:
        return [*rows, (label, target, "-", not_run(part))]
    rescored = part["seed 0"]["readme_run_rescored"]
    paired = rescored["against_its_evaluation"]
    difference, error = paired["mean_dice_difference"], paired["standard_error"]
    return [*rows, (label, target, f"{rescored['mean_dice']:.4f} ({difference:+.4f} ± "
                                   f"{error:.4f}; {len(paired['broken'])} images lose 0.2)",
                    abs(difference) < 2 * error)]


def folded_prediction_rows(part):
    """Row 26: the README's bf16 run predicting with the encoder's batch norms folded, against
    the same evaluations without the fold; and the fold's speed-up of prediction."""
    label = "26 batch norms folded in prediction"
    scores = ("the README's bf16 Lite0 224x224 run predicting with its batch norms folded: test "
              "mean dice (plain; TTA + pp) within noise of the same evaluation without the fold "
              "(paired: within 2 standard errors)")
    speed = "prediction of a batch with the fold at least as fast as without (float32; bf16)"
    if "ratios" not in part:
        return [(label, scores, "-", not_run(part)), (label, speed, "-", not_run(part))]
    rescored = [part["rescored"][name] for name in ("plain", "tta+postprocess")]
    paired = [each["against_without_the_fold"] for each in rescored]
    ratios = [part["ratios"][f"{precision}: folded / as built"]
              for precision in ("float32", "bf16")]
    return [(label, scores, "; ".join(
        f"{each['mean_dice']:.4f} ({pair['mean_dice_difference']:+.4f} ± "
        f"{pair['standard_error']:.4f})" for each, pair in zip(rescored, paired, strict=True)),
        all(abs(pair["mean_dice_difference"]) < 2 * pair["standard_error"] for pair in paired)),
        (label, speed, "; ".join(f"{ratio:.2f}x" for ratio in ratios), min(ratios) >= 1.0)]


def readme_retrain_rows(part, label, change, speed_target, speed):
    """Two rows of a retrain of the README's bf16 command `change`d, against the README's run
    (paired image by image, plain): its test mean dice, plain and with TTA + pp, within ±0.005
    of that run's; and `speed(part)`, (text, met), for `speed_target`."""
    scores = (f"the README's bf16 Lite0 224x224 command retrained {change}: test mean dice "
              f"(plain; TTA + pp) within ±0.005 of the README's run")
    if "ratios" not in part:
        return [(label, scores, "-", not_run(part)), (label, speed_target, "-", not_run(part))]
    names = ("plain", "tta+postprocess")
    ours = [part[name]["mean_dice"] for name in names]
    theirs = [part["readme_run"][name]["mean_dice"] for name in names]
    paired = part["against_readme_run"]
    return [(label, scores,
             f"{ours[0]:.4f} against {theirs[0]:.4f} ({paired['mean_dice_difference']:+.4f} ± "
             f"{paired['standard_error']:.4f}); {ours[1]:.4f} against {theirs[1]:.4f}",
             all(abs(mine - row) <= 0.005 for mine, row in zip(ours, theirs, strict=True))),
            (label, speed_target, *speed(part))]


def folded_training_rows(part):
    """Row 27: the README's bf16 command retrained with the encoder's frozen batch norms folded
    in training; and the train step with the fold against the layers, and bf16 against
    float32."""
    def speed(part):
        train = part["step_images_per_s"]["train"]
        fold, bf16 = part["ratios"]["train: bf16 folded / as layers"], (
            train["bf16, folded"] / train["float32, folded"])
        return f"fold {fold:.2f}x; bf16 {bf16:.2f}x float32", fold > 1 and bf16 >= 1.6
    return readme_retrain_rows(
        part, "27 batch norms folded in training",
        "with its frozen batch norms folded in training",
        "bf16 train step with the fold faster than with the batch norms as layers; "
        + BF16_SPEED_TARGET, speed)


def candidate_speed(against_before, against_float32):
    """The speed verdict of a candidate's part: (text, met) from its ratios "train: <against_
    before>", "predict: <against_before>" and "train: <against_float32>"; met when it trains
    faster than before, predicts no slower, and bf16 trains >= 1.6x float32."""
    def speed(part):
        ratios = part["ratios"]
        train, predict, bf16 = (ratios[name] for name in (
            f"train: {against_before}", f"predict: {against_before}", f"train: {against_float32}"))
        return (f"train {train:.2f}x, predict {predict:.2f}x; bf16 {bf16:.2f}x float32",
                train > 1 and predict >= 1 and bf16 >= 1.6)
    return speed


def changed_layer_rows(part, label, change, faster, ratios, judged):
    """Row `label`'s three for the README's bf16 command retrained `change`d: its test dice
    against the README's run; its bf16 train step `faster` than before, its prediction not
    slower and bf16 >= 1.6x float32 (`ratios`: `candidate_speed`'s two names); and whether one
    epoch of variant `judged` repeats bit for bit in fresh processes."""
    rows = readme_retrain_rows(part, label, change, f"bf16 train step {faster}, prediction not "
                               "slower; " + BF16_SPEED_TARGET, candidate_speed(*ratios))
    return [*rows, repeat_row(part, label, judged)]


def per_sample_norm_rows(part):
    """Row 29: the README's bf16 command retrained with the candidate instance norms, one kernel
    per sample on training batches of one size, against the instance norms transposed."""
    return changed_layer_rows(
        part, "29 instance norms per sample (withdrawn)",
        "with training batches of one size (each epoch's last, smaller one left out)",
        "with the instance norms per sample faster than transposed",
        ("bf16 per sample / transposed", "bf16 per sample / float32"), "per sample")


def repeat_row(part, label, judged):
    """The row of the target that one epoch of training repeats bit for bit in fresh processes,
    met when variant `judged` of `part["one_epoch_twice"]` gave equal weights."""
    target = ("one epoch of training from seed 0, each time in a fresh process, gives the same "
              "weights bit for bit")
    if "one_epoch_twice" not in part:
        return (label, target, "-", not_run(part))
    repeats = part["one_epoch_twice"]
    return (label, target, "; ".join(
        f"{variant}: {'equal' if each['equal'] else 'differ'} ({len(each['weights'])} runs)"
        for variant, each in repeats.items()), repeats[judged]["equal"])


def upsampling_conv_rows(part):
    """Row 30: the README's bf16 command retrained with the upsampling modules as one transposed
    convolution, against nearest upsampling then a convolution."""
    return changed_layer_rows(
        part, "30 upsampling as one transposed convolution",
        "with each upsampling module as one transposed convolution",
        "with the transposed convolution faster than upsampling then a convolution",
        ("bf16 layer / pair", "bf16 layer / float32 layer"), "library")


def depthwise_gradients_rows(part):
    """Row 32: the README's bf16 command retrained with the stride-1 depthwise convolutions
    trained in bf16 with forward-convolution gradients, against those convolutions in float32."""
    return changed_layer_rows(
        part, "32 depthwise gradients as forward convolutions",
        "with the stride-1 depthwise convolutions trained in bf16 (gradients as forward "
        "convolutions)", "with them faster than with those convolutions in float32",
        ("bf16 library / float32 depthwise", "bf16 library / float32 library"), "library")


def without_bf16_row(part):
    """Row 33: float32 training and prediction of the library (two copies) against the library
    before the bf16 work, and what a request for mixed_bfloat16 gives; judged on a CPU without
    native bf16: every ratio of both copies >= the part's tolerance, and bf16 refused."""
    label = "33 float32 on a CPU without native bf16"
    if "ratios" not in part:
        return (label, "float32 training and prediction no slower than before the bf16 work",
                "-", not_run(part))
    target = (f"float32 train step and prediction (Lite0 U-Net 224 and 128, Improved UNet 128) "
              f">= {part['tolerance']:.2f}x the library at {part['base']} (one window), and "
              "mixed_bfloat16 refused")
    once, again = part["ratios"]["library / base"], part["ratios"]["library again / base"]
    copies = [again[step] / ratio for step, ratio in once.items()]
    chooses = part["mixed_bfloat16_request"]["chooses"]
    measured = (", ".join(f"{step} {ratio:.2f}x" for step, ratio in once.items())
                + f"; second copy {min(again.values()):.2f}-{max(again.values()):.2f}x; "
                f"copies differ {min(copies):.2f}-{max(copies):.2f}x; mixed_bfloat16 -> "
                f"{chooses}")
    if part["native_bf16"]:
        return label, target, measured, "measured (no target: this CPU has native bf16)"
    slowest = min(*once.values(), *again.values())
    return label, target, measured, slowest >= part["tolerance"] and chooses == "float32"


def metrics_row(part):
    """Row 34: scoring one image at its original size, HD95 against a whole-view distance
    transform's; met when the two are equal at every size measured."""
    label, target = ("34 scoring at original size", "HD95 equal to a whole-view distance "
                     "transform's at every size (ms per image: all metrics; HD95 speed-up)")
    if "sizes" not in part:
        return label, target, "-", not_run(part)
    measured = "; ".join(f"{size}: {each['ms']['score_masks']:.0f} ms, "
                         f"{each['hd95_speedup']:.0f}x" for size, each in part["sizes"].items())
    return label, target, measured, all(each["equal"] for each in part["sizes"].values())


def torch_twin_rows(twin):
    """The Lite0 U-Net in the library against its PyTorch twin, and bf16 against float32."""
    target = ("the project's fastest mode >= 1.3x PyTorch's fastest on the same network, "
              "training and prediction, at 128 and 224")
    sizes = [size for size in ("128x128", "224x224") if size in twin]
    if not sizes:
        return [("13 Lite0 U-Net vs PyTorch", target, "-", not_run(twin))]
    measured = {(size, kind): twin[size]["ratios"][f"{kind}: project fastest / PyTorch fastest"]
                for size in sizes for kind in ("train", "predict")}
    rows = [("13 Lite0 U-Net vs PyTorch", target, "; ".join(
        f"{kind} {size.split('x')[0]}: {ratio:.2f}x" for (size, kind), ratio in measured.items()),
        min(measured.values()) >= 1.3)]
    bf16 = twin.get("224x224", {}).get("ratios", {}).get("train: keras bf16 / float32")
    rows.append(("13 Lite0 U-Net vs PyTorch", "mixed_bfloat16 >= 1.6x float32 training at 224",
                 "-" if bf16 is None else f"{bf16:.2f}x",
                 "n/a: no native bf16 on this CPU" if bf16 is None else bf16 >= 1.6))
    return rows


def second_look_row(second_look):
    """The second look chosen on the validation part, on the test part against one pass."""
    target = ("test part, the same model: lesions under 5 % of the view mean dice >= 0.87, and "
              "at most half of one pass's images below 0.6 dice")
    if "chosen" not in second_look:
        return "12 second look", target, "-", not_run(second_look)
    looked, plain = second_look["test"]["second look"], second_look["test"]["one pass"]
    small, count = small_lesion_dice(looked)
    below, before = looked["low_dice"]["count"], plain["low_dice"]["count"]
    return ("12 second look", target, f"{small:.3f} over {count}; {below} below 0.6 (one pass "
            f"{before}); {second_look['run']}", small >= 0.87 and below <= before / 2)


def confidence_row(confidence):
    """The confidence chosen on the validation part, scored on the test part."""
    target = ("test part: Spearman with dice >= 0.80 and >= 85 % of the images below 0.6 dice "
              "among the least confident 10 %")
    if "chosen" not in confidence:
        return "11 confidence", target, "-", not_run(confidence)
    chosen = confidence["test"]["candidates"][confidence["chosen"]]
    within = chosen["low_dice_within"]["10 %"]
    model = confidence.get("run") or f"small model ({confidence['trained']})"
    return ("11 confidence", target, f"{confidence['chosen']}: {chosen['spearman']:.2f}, "
            f"{100 * within:.0f} % of {confidence['test']['below_0.6']}; {model}",
            chosen["spearman"] >= 0.80 and within >= 0.85)


def review_row(review):
    """The review page's target: its folder and how soon a browser shows its table."""
    target = "530 images at 512x512: review.html and review/ <= 30 MB, table shown <= 2 s"
    if "review_mb" not in review:
        return "10 review page", target, "-", not_run(review)
    seconds = review["table_shown_ms"] / 1000 if review["table_shown_ms"] is not None else None
    shown = f"{seconds:.2f} s" if seconds is not None else review["browser"]
    return ("10 review page", target, f"{review['images']} images: {review['review_mb']:.1f} MB, "
            f"{shown}", review["review_mb"] <= 30 and seconds is not None and seconds <= 2)


def not_run(part):
    """'not run: <why>': a verdict for a benchmark part that skipped, failed or has no results."""
    return f"not run: {part.get('skipped') or part.get('error') or 'no results'}"


def headline(run):
    """'0.876 / 0.753 after 22 min' of a run's scores, and whether they meet the ISIC 2018
    target: test mean dice >= 0.89 and ISIC score >= 0.80 (plain) in <= 90 min of training."""
    dice, isic, minutes = run["plain"]["mean_dice"], run["plain"]["isic_score"], \
        run["train_seconds"] / 60
    return (f"{dice:.3f} / {isic:.3f} after {minutes:.0f} min",
            dice >= 0.89 and isic >= 0.80 and minutes <= 90)


def best_on_validation(runs):
    """The name of the run, in {name: scores}, with the highest best validation dice."""
    return max(runs, key=lambda run: runs[run].get("best_val_dice", 0))


def isic2018_targets(full, data):
    """Rows of benchmark 8: the recipe, peer, learning curve and bf16 on all of ISIC 2018."""
    name = "8 ISIC 2018 (1,878 pairs)"
    decode = data.get("isic2018_512", {}).get("first_epoch_images_per_s", {}).get("128x128")
    rows = [(name, "first-epoch decode of every file at 128x128: >= 150 images/s",
             f"{decode:.0f}" if decode else "-",
             decode >= 150 if decode else "not run: no ISIC 2018 data")]
    if "recipe" not in full:
        return rows + [(name, "test mean dice >= 0.89 and ISIC score >= 0.80 in <= 90 min", "-",
                        not_run(full))]
    recipe = full["recipe"]
    # The run to judge: of the recipe and the full-data changes, the best on validation dice.
    full_data_changes = {change: scores for change, scores in full.get("changes", {}).items()
                         if "against_recipe" in scores}
    candidates = {"recipe": recipe, **full_data_changes}
    chosen = best_on_validation(candidates)
    best = candidates[chosen]
    scores, met = headline(best)
    rows.append((name, "test mean dice >= 0.89 and ISIC score >= 0.80 (plain) in <= 90 min "
                       "of CPU training (the run best on validation)", f"{scores} ({chosen})",
                 met))
    peer = full.get("peer", {})
    if "plain" in peer:
        # The peer trained for the recipe's time; at equal time means the best on validation of
        # the runs that trained at most 5 % longer than the recipe (the recipe among them).
        in_time = {run: scores for run, scores in candidates.items()
                   if scores["train_seconds"] <= 1.05 * recipe["train_seconds"]}
        mine = best_on_validation(in_time)
        ours, theirs = in_time[mine]["plain"]["mean_dice"], peer["plain"]["mean_dice"]
        paired = in_time[mine].get("against_peer")
        rows.append((name, "test mean dice >= the peer's at equal training time (plain)",
                     f"{ours:.3f} ({mine}, {in_time[mine]['train_seconds'] / 60:.1f} min) vs "
                     f"{theirs:.3f} ({peer['train_seconds'] / 60:.1f} min)" + (
                         f"; paired {paired['mean_dice_difference']:+.4f} +- "
                         f"{paired['standard_error']:.4f}" if paired else ""), ours >= theirs))
    if "bound" in full:
        rows.append((name, "bound: a perfect network's test mean dice at 128x128 / 256x256 "
                           "(measured, no target)",
                     f"{full['bound']['128x128']['mean_dice']:.3f} / "
                     f"{full['bound']['256x256']['mean_dice']:.3f}", "measured (no target)"))
    if "curve" in full:
        points = ", ".join(f"{point['num_train']}: {point['plain']['mean_dice']:.3f}"
                           for point in full["curve"])
        dice = [point["plain"]["mean_dice"] for point in full["curve"]]
        rows.append((name, "learning curve: test mean dice rises with every larger training "
                           "share (training images: dice)", points,
                     all(later > earlier for earlier, later in zip(dice, dice[1:], strict=False))))
    bf16 = full.get("bf16", {})
    bf16_target = "mixed bf16 at equal epochs: test mean dice within 0.005 of float32"
    if "plain" in bf16:
        speedup = recipe["median_epoch_seconds"] / bf16["median_epoch_seconds"]
        change = bf16["plain"]["mean_dice"] - recipe["plain"]["mean_dice"]
        rows.append((name, bf16_target, f"{speedup:.2f}x faster, dice {change:+.3f}",
                     abs(change) <= 0.005))
    elif "skipped" in bf16:
        rows.append((name, bf16_target, "-", f"not measurable here: {bf16['skipped']}"))
    return rows


def pretrained_targets(pretrained, peer):
    """Rows of benchmark 9: the EfficientNet-Lite0 encoder on ISIC 2018 against the recipe run
    trained on the same machine (and the peer of benchmark 8, on the same test part)."""
    name = PRETRAINED
    if "full" not in pretrained:
        return [(name, "test mean dice >= 0.89 and ISIC score >= 0.80 (plain, one model) in <= "
                       "90 min", "-", not_run(pretrained))]
    full, recipe = pretrained["full"], pretrained["recipe"]
    dice, minutes = full["plain"]["mean_dice"], full["train_seconds"] / 60
    scores, met = headline(full)
    rows = [(name, "fine-tuning chosen by validation dice on 25 % of the training part "
                   "(measured, no target)", tuning_choice(pretrained), "measured (no target)"),
            (name, "test mean dice >= 0.89 and ISIC score >= 0.80 (plain, one model) in <= 90 "
                   "min of CPU training", f"{scores} ({full['epochs']} epochs)", met)]
    rows.append((name, "test mean dice >= 0.90 with an ensemble or TTA",
                 *combined(full, pretrained["ensemble"])))
    paired = full["against_recipe"]
    rows.append((name, "test mean dice >= the recipe's + 0.01 at equal training time, by more "
                       "than 2 paired standard errors",
                 f"{paired['mean_dice_difference']:+.4f} +- {paired['standard_error']:.4f} "
                 f"({minutes:.1f} vs {recipe['train_seconds'] / 60:.1f} min)",
                 paired["mean_dice_difference"] >= 0.01
                 and paired["mean_dice_difference"] > 2 * paired["standard_error"]))
    if "plain" in peer:
        rows.append((name, "test mean dice >= the peer's (benchmark 8, same test part)",
                     f"{dice:.3f} vs {peer['plain']['mean_dice']:.3f}",
                     dice >= peer["plain"]["mean_dice"]))
    smallest = pretrained["curve"][0]
    rows.append((name, f"test mean dice >= 0.86 at {100 * smallest['fraction']:.0f} % of the "
                       f"training part", f"{smallest['plain']['mean_dice']:.3f} "
                                         f"({smallest['num_train']} images)",
                 smallest["plain"]["mean_dice"] >= 0.86))
    speeds = pretrained["train_images_per_s"]
    rows.append((name, "training images/s at 128x128 >= the Improved UNet's (same process)",
                 f"{speeds['efficientnet_lite0']:.1f} vs {speeds['improved_unet']:.1f}",
                 speeds["efficientnet_lite0"] >= speeds["improved_unet"]))
    return rows


def tuning_choice(part):
    """'bn-train 0.880; bn-frozen 0.883: bn-frozen': each tuning run's best validation dice
    and the one chosen, of a bench_pretrained.py result."""
    scores = "; ".join(f"{run.split('train25-')[-1]} {run_scores['best_val_dice']:.3f}"
                       for run, run_scores in part["tuning"].items())
    return f"{scores}: {part['chosen'].split('train25-')[-1]}"


def pretrained_tuning_row(part):
    """Benchmark 9's row for how fast the pretrained encoder learns (part pretrained_tuning)."""
    target = ("the encoder's learning rate (the rest's, a tenth, frozen for 2 epochs) on 25 % of "
              "the training part: the best on validation dice (measured, no target)")
    if "tuning" not in part:
        return PRETRAINED, target, "-", not_run(part), "pretrained_tuning"
    return PRETRAINED, target, tuning_choice(part), "measured (no target)", "pretrained_tuning"


def combined(run, ensemble):
    """('0.889 (TTA + post-processing)', met): the best test mean dice of a pretrained run
    with TTA and post-processing or in its ensemble with the recipe, against 0.90."""
    scores = {"ensemble with the recipe": ensemble["plain"]["mean_dice"],
              "ensemble + TTA": ensemble["tta"]["mean_dice"],
              "TTA + post-processing": run["tta+postprocess"]["mean_dice"]}
    best = max(scores, key=scores.get)
    return f"{scores[best]:.3f} ({best})", scores[best] >= 0.90


def pretrained_large_rows(part):
    """Benchmark 9's targets for the pretrained model at a larger size (part pretrained_large,
    step 6 of bench_pretrained.py), paired and in an ensemble with the recipe run trained on
    the same machine."""
    name = PRETRAINED
    target = ("test mean dice >= 0.89 and ISIC score >= 0.80 (plain, one model) in <= 90 min of "
              "CPU training, at")
    if "large" not in part:
        return [(name, f"{target} a larger size", "-", not_run(part), "pretrained_large")]
    large = part["large"]
    side = f"{large['side']}x{large['side']}"
    scores, met = headline(large)
    against = large["against_recipe"]
    return [(name, f"{target} {side}",
             f"{scores} ({large['epochs']} epochs); {against['mean_dice_difference']:+.4f} +- "
             f"{against['standard_error']:.4f} against the recipe", met, "pretrained_large"),
            (name, f"test mean dice >= 0.90 with an ensemble or TTA, at {side}",
             *combined(large, large["ensemble"]), "pretrained_large")]


def backend_rows(backends):
    """Informational rows (no target): images/s per Keras backend on this CPU."""
    if "best" not in backends:
        return [("7 backends", "train / predict images/s per Keras backend (measured, no target)",
                 "-", f"not run: {backends.get('error', 'no results')}")]
    size = f"{backends['size']}^2, batch {backends['batch']}, {backends['precision']}"
    cpu = backends.get("machine", {})
    kind = ("AVX-512 with bf16" if cpu.get("bf16") else "AVX-512" if cpu.get("avx512")
            else "AVX2") if cpu else "this run's"
    return [("7 backends", f"{backend}: train / predict images/s at {size} ({kind} CPU)",
             f"{rates['train_images_per_s']:.1f} / {rates['predict_images_per_s']:.1f}",
             "measured (no target)") for backend, rates in backends["best"].items()]


def peer_targets(peer, quality):
    name = "5 peer (MONAI DynUNet)"
    if "ours" not in peer:
        return [(name, "our GFLOP/s and test dice >= the peer's", "-", not_run(peer))]
    rows = []
    modes = {mode: peer[key] for mode, key in [("eager", "peer_eager"),
                                               ("torch.compile", "peer_compiled")] if key in peer}
    for task in ["train", "predict"]:
        ours = peer["ours"][f"{task}_gflop_per_s"]
        best_mode, best = max(((mode, values[f"{task}_gflop_per_s"])
                               for mode, values in modes.items()), key=lambda item: item[1])
        rows.append((name, f"{task} GFLOP/s at {peer['size']}^2 >= the peer's best mode "
                           f"({best_mode})", f"{ours:.0f} vs {best:.0f}", ours >= best))
    ours, theirs = quality.get("isic", {}), quality.get("peer", {})
    if "plain" in ours and "plain" in theirs:
        for variant in ["plain", "tta+postprocess"]:
            mine, peer_dice = ours[variant]["mean_dice"], theirs[variant]["mean_dice"]
            rows.append((name, f"test mean dice, equal budget ({variant}) >= the peer's",
                         f"{mine:.3f} vs {peer_dice:.3f}", mine >= peer_dice, "quality"))
    else:
        rows.append((name, "test mean dice at equal budget >= the peer's", "-",
                     f"not run: {theirs.get('skipped') or ours.get('skipped') or 'no results'}"))
    return rows


def quality_targets(quality):
    name, target = "6 quality", ">= 0.92 mean per-image test dice (ISIC sample) in 10 minutes"
    isic = quality.get("isic", {})
    if "plain" not in isic:
        return [(name, target, "-", f"not run: {isic.get('skipped') or 'no results'}")]
    dice = isic["tta+postprocess"]["mean_dice"]
    minutes = isic["train_seconds"] / 60
    return [(name, target, f"{dice:.3f} (TTA + post-processing) after {minutes:.1f} min",
             dice >= 0.92 and isic["train_seconds"] <= quality["budget_seconds"])]


# (results key, the function of results[key] that makes its target rows), in the table's order
_PART_ROWS = [
    ("pretrained_tuning", lambda part: [pretrained_tuning_row(part)]),
    ("pretrained_large", pretrained_large_rows),
    ("review", lambda part: [review_row(part)]),
    ("confidence", lambda part: [confidence_row(part)]),
    ("second_look", lambda part: [second_look_row(part)]),
    ("torch_twin", torch_twin_rows),
    ("encoders", encoder_rows),
    ("lesion_crops", lambda part: [lesion_crops_row(part)]),
    ("bf16_retrain", lambda part: [bf16_retrain_row(part)]),
    ("epoch", lambda part: [epoch_row(part)]),
    ("small_lesion_loss",
     lambda part: seeded_rows(part, "18 small-lesion loss", "small_lesion_loss")),
    ("first_size", first_size_rows),
    ("fused_norm", fused_norm_rows),
    ("fused_batch_norm", fused_batch_norm_rows),
    ("longer_training",
     lambda part: seeded_rows(part, "22 longer training (20 epochs)", "longer_training")),
    ("depthwise_bf16", depthwise_bf16_rows),
    ("augmented_training",
     lambda part: seeded_rows(part, "24 augmented training (--augment full, 20 epochs)",
                              "augmented_training")),
    ("larger_input",
     lambda part: seeded_rows(part, "25 larger input (288x288)", "larger_input")),
    ("folded_prediction", folded_prediction_rows),
    ("folded_training", folded_training_rows),
    ("artifacts",
     lambda part: seeded_rows(part, "28 synthetic artifacts (--artifacts 0.5)", "artifacts")),
    ("per_sample_norm", per_sample_norm_rows),
    ("upsampling_conv", upsampling_conv_rows),
    ("colour_constancy",
     lambda part: seeded_rows(part, "31 colour constancy (--colour-constancy)",
                              "colour_constancy")),
    ("depthwise_gradients", depthwise_gradients_rows),
    ("without_bf16", lambda part: [without_bf16_row(part)]),
    ("metrics", lambda part: [metrics_row(part)]),
]


def scored_runs(tree, path=()):
    """(path, scores) for every evaluation in a results tree that has per-size scores."""
    if not isinstance(tree, dict):
        return
    if "by_lesion_size" in tree:
        yield path, tree
        return
    for key, value in tree.items():
        yield from scored_runs(value, (*path, key))


def lesion_size_table(results):
    """Markdown lines: each evaluation's mean dice, its mean dice (count) per lesion-size bin
    and its count below 0.6 dice; no lines when no run has them."""
    rows = [(path, scores) for name in BENCHMARKS
            for path, scores in scored_runs(results.get(name, {}), (name,))]
    if not rows:
        return []
    labels = list(rows[0][1]["by_lesion_size"])
    lines = ["", "## Test dice by the lesion's share of the image", "",
             "Mean dice (images) per bin of the truth's area over the image's; the count "
             "below 0.6 dice last.", "",
             "| run | images | mean dice | " + " | ".join(labels) + " | below 0.6 |",
             "| --- | --- | --- | " + " | ".join("---" for _ in labels) + " | --- |"]
    for path, scores in rows:
        bins = " | ".join(f"{each['mean_dice']:.3f} ({each['count']})" if each["count"]
                          else "- (0)" for each in scores["by_lesion_size"].values())
        lines.append(f"| {' / '.join(path)} | {scores['count']} | {scores['mean_dice']:.3f} | "
                     f"{bins} | {scores['low_dice']['count']} |")
    return lines


def markdown(results, info, quick):
    def verdict(met):
        return "**met**" if met is True else "**not met**" if met is False else met

    def where(row):  # a row may name the benchmark that measured it as a 5th item
        part = row[4] if len(row) > 4 else ROW_PARTS.get(row[0].split()[0])
        return describe(results.get(part, {}).get("machine") or info)

    lines = ["# Benchmark results", "",
             "Written whole by `benchmarks/run.py` (`make bench`, or `--render` from "
             "results.json); do not edit by hand. Each row names the machine (2 CPU cores "
             "each) and the date it was measured on; compare speeds only as ratios from one "
             f"row's run.{' QUICK smoke run.' if quick else ''} What bounds the targets not "
             "met, and every measurement's analysis: [NOTES.md](NOTES.md).", "",
             "## Targets", "", "| benchmark | target | measured | verdict | machine, date |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {row[0]} | {row[1]} | {row[2]} | {verdict(row[3])} | {where(row)} |"
              for row in targets(results)]
    lines += lesion_size_table(results)
    for name in BENCHMARKS:
        script, arguments = invocation(name)
        lines += ["", f"## {' '.join([script.name, *arguments])}", ""]
        doc = script.read_text().split('"""')[1].strip().splitlines()
        lines += [doc[0], "", "```json", json.dumps(results.get(name, {}), indent=2), "```"]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every part")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="folder for RESULTS.md and results.json")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--args", default="", metavar="ARGUMENTS",
                        help="more arguments for each benchmark run, e.g. --only "
                             "pretrained_large --args='--large-epochs 15'")
    parser.add_argument("--render", action="store_true",
                        help="run nothing: rewrite RESULTS.md from results.json (and NOTES.md)")
    args = parser.parse_args()
    if args.render:
        stored = json.loads((args.out / "results.json").read_text())
        info = stored.pop("machine")
        (args.out / "RESULTS.md").write_text(markdown(stored, info, quick=False))
        return 0
    results, info = {}, machine()
    if args.only and (args.out / "results.json").exists():  # update a previous full run
        results = json.loads((args.out / "results.json").read_text())
        info = results.pop("machine")  # the header keeps describing the full run's machine
    for name in args.only or BENCHMARKS:
        result = {**run_benchmark(name, args.quick, shlex.split(args.args)), "machine": machine()}
        if name in ADDITIVE_PARTS and "error" not in result:
            result = added(results.get(name, {}), result)
        results[name] = result
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"machine": info, **results}, indent=2))
    (args.out / "RESULTS.md").write_text(markdown(results, info, args.quick))
    failed = [name for name, result in results.items() if "error" in result]
    print(f"wrote {args.out / 'RESULTS.md'}" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
