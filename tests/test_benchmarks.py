"""The benchmark suite's --quick smoke run works end to end and writes its two result files."""

import json
import subprocess
import sys

from segment.runtime import cpu_has_native_bf16

import keras
import numpy as np
import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from run import BENCHMARKS, lesion_size_table, targets  # noqa: E402


@pytest.mark.slow
def test_quick_run_writes_results_and_targets(tmp_path):
    # Every benchmark but those named here: three whose code paths other tests run already,
    # each costing fresh processes here: bench_backends.py (test_backends.py trains on every
    # backend; its measure() is tested below), bench_scaling.py (test_distribute.py trains
    # mirrored on two logical CPUs) and bench_precision.py (test_training.py covers the
    # precision choice); and bench_review.py, whose smoke run needs the browser that
    # `make test-browser` installs (tests/test_review_browser.py). `make bench` runs them all.
    # bench_pretrained.py (parts pretrained, pretrained_tuning and pretrained_large) trains
    # Lite0 networks: test_bench_pretrained.py tests its rows from its recorded runs.
    # bench_confidence.py's measures are tested below, in this process.
    # bench_torch_twin.py traces the Lite0 network in two precisions (a minute at any size);
    # test_torch_twin.py checks its PyTorch twin gives the library's output. bench_encoders.py
    # trains three EfficientNet-Lite networks, bench_lesion_crops.py two Lite0 networks: their
    # rows are tested below, from their output.
    # bench_step_trace.py traces Lite0 in three precisions; its grouping is tested below.
    # bench_bf16_retrain.py and bench_small_lesion_loss.py train two Lite0 networks each,
    # bench_epoch.py one for 7 epochs, bench_fused_norm.py, bench_fused_batch_norm.py,
    # bench_longer_training.py, bench_augmented_training.py (the augmentation itself in
    # test_augment.py), bench_larger_input.py and bench_depthwise_bf16.py one each, and
    # bench_folded_prediction.py re-scores one (the fold itself: test_batch_norm_folding.py),
    # bench_folded_training.py trains one (the folded layers: test_layers.py),
    # bench_artifacts.py one (the artifacts themselves: test_augment.py), bench_colour_constancy.py
    # one through the same function (its layer: test_model.py, test_efficientnet.py), and
    # bench_per_sample_norm.py one and four epochs (its kernel per sample: below; whole
    # batches: test_pipeline.py), bench_upsampling_conv.py one and one epoch twice (its layer:
    # test_layers.py), bench_depthwise_gradients.py one and one epoch twice (its layers:
    # test_layers.py), bench_without_bf16.py three processes, each building two networks
    # even in --quick (72 s; its row below), bench_first_size.py one with its first
    # epochs small (the switch itself: test_training.py, test_drivers.py and backend_run.py;
    # about 40 s of this test);
    # their rows are tested below (validate_every itself in test_training.py, the small-lesion
    # loss in test_losses.py, the fused norm kernels and the depthwise layer in test_layers.py).
    # bench_data.py, bench_compute.py and bench_metrics.py's measurements run in this process
    # below (each part run here starts a TensorFlow process); bench_peer.py's quick run prints
    # only its "pip install" line without the [peer] extra (as in CI), which isic2018's part
    # prints too, and its row is tested below: each would spend most of its process starting
    # TensorFlow.
    parts = [name for name in BENCHMARKS if name not in ("backends", "scaling", "precision",
                                                         "compute", "data", "peer",
                                                         "review", "confidence", "torch_twin",
                                                         "encoders", "step_trace",
                                                         "lesion_crops", "bf16_retrain",
                                                         "epoch", "small_lesion_loss",
                                                         "fused_norm", "fused_batch_norm",
                                                         "longer_training", "depthwise_bf16",
                                                         "augmented_training", "larger_input",
                                                         "folded_prediction",
                                                         "folded_training", "artifacts",
                                                         "per_sample_norm", "upsampling_conv",
                                                         "colour_constancy", "first_size",
                                                         "depthwise_gradients",
                                                         "without_bf16", "metrics")
             and not name.startswith("pretrained")]
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick",
                           "--out", str(tmp_path), "--only", *parts], capture_output=True,
                          text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [name for name in parts if "error" in results[name]] == []
    assert all(results[name]["machine"]["cores"] >= 1 for name in parts)
    assert results["pipeline"]["memory"]["disk_10"]["peak_rss_mb"] > 0  # one child in --quick
    augmentation = results["pipeline"]["augmentation"]
    assert set(augmentation["speed_relative_to_plain"]) == {"flips", "full"}
    assert all(len(epochs) == 1 for epochs in augmentation["epoch_seconds"].values())
    synthetic = results["quality"]["synthetic"]
    assert synthetic["recipe"]["train"]["epochs"] == 2 and 0 <= synthetic["plain"]["mean_dice"] <= 1
    full = results["isic2018"]  # on synthetic data: one curve point besides the recipe run
    assert [point["fraction"] for point in full["curve"]] == [0.5, 1.0]
    assert full["curve"][0]["num_train"] == 9 and full["recipe"]["num_train"] == 18
    if cpu_has_native_bf16():
        assert full["bf16"]["epochs"] == 1 and 0 <= full["bf16"]["plain"]["mean_dice"] <= 1
    else:  # the library would train the recipe again in float32
        assert full["bf16"] == {"skipped": "no native bf16 on this CPU (mixed precision falls "
                                           "back to float32)"}
    assert all(0.9 < full["bound"][size]["mean_dice"] <= 1 for size in ("128x128", "256x256"))
    if "skipped" in full["peer"]:  # no [peer] extra, as in CI
        assert "pip install -e '.[peer]'" in full["peer"]["skipped"]
    else:  # paired with the peer image by image; its per-image dice stay out of results.json
        assert full["recipe"]["against_peer"]["images"] == 6 and "test_dice" not in full["peer"]
        assert full["changes"]["flips"]["against_peer"]["images"] == 6
    flips = full["changes"]["flips"]
    assert flips["settings"] == {"augment": "flips"} and flips["epochs"] == 1
    assert 0 <= flips["tta+postprocess"]["mean_dice"] <= 1
    paired = flips["against_recipe"]
    assert paired["images"] == 6 and abs(paired["mean_dice_difference"] - (
        flips["plain"]["mean_dice"] - full["recipe"]["plain"]["mean_dice"])) < 1e-6
    second_look = results["second_look"]  # one margin and share in --quick: chosen as they are
    assert second_look["chosen"] == {"crop_margin": 0.5, "whole_view_share": 0.5}
    assert set(second_look["test"]) == {"one pass", "second look", "one pass with TTA",
                                        "second look with TTA"}
    assert second_look["test"]["second look"]["against_one_pass"]["images"] == 6
    page = (tmp_path / "RESULTS.md").read_text()
    assert "QUICK smoke run" in page
    recipe = full["recipe"]["plain"]  # every evaluation's per-size scores, in one table
    assert sum(each["count"] for each in recipe["by_lesion_size"].values()) == recipe["count"]
    assert f"| isic2018 / recipe / plain | {recipe['count']} | {recipe['mean_dice']:.3f} |" in page
    for row in ["| 2 pipeline |",  # rows 1 and 3 from measured results: test_target_verdicts
                "| 5 peer (MONAI DynUNet) |", "| 6 quality |", "| 7 backends |",
                "| 8 ISIC 2018 (1,878 pairs) |", "| 9 pretrained encoder (ISIC 2018) |",
                "| 12 second look |"]:
        assert row in page


def test_data_layer_measurement_in_this_process(synthetic_dir, capsys):
    import bench_data

    bench_data.main(synthetic_dir, quick=True)  # the first 20 pairs
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == 20 and result["decode_to_256_images_per_s_scaled"] > 0
    assert result["inspect_seconds_for_isic2018"] > result["inspect_seconds"] > 0
    full = result["isic2018_512"]  # its first 40 pairs, where ../shared has them
    if "skipped" in full:
        assert full["skipped"].startswith("no ISIC 2018 data at")
    else:
        assert full["pairs"] == 40 and set(full["first_epoch_images_per_s"]) == {"128x128",
                                                                                "256x256"}


def test_backend_measurement_in_this_process():
    from bench_backends import measure

    rates = measure(32, 2, 1, 2)  # size, batch, steps, depth; on this process's backend
    assert rates["backend"] == keras.backend.backend()
    assert rates["train_images_per_s"] > 0 and rates["predict_images_per_s"] > 0


def test_compute_measurement_in_this_process(keras_eagerly):
    import bench_compute

    peak = bench_compute.matmul_peak(256, repeats=2)  # GFLOP/s
    rates = bench_compute.measure(64, 1, peak)  # the base-16 network at 64x64, one step
    assert peak > 0 and rates["forward_gflop_per_image"] > 0
    assert rates["train_images_per_s"] > 0 and 0 < rates["train_fraction_of_peak"] < 2


def test_target_verdicts():
    results = {"compute": {"128x128": {"train_fraction_of_peak": 0.61}},
               "pipeline": {"overhead": {"epoch2_speed_relative_to_memory": 0.9},
                            "memory": {"disk_cache_growth": 0.04}},
               "precision": {"case": "no native bf16", "mixed_speedup": 0.13,
                             "dice_difference": 0.0}}
    results["compute"]["128x128_xla"] = {"train_fraction_of_peak": 0.2}  # no row of its own
    results["compute"]["threads"] = {"intra_op": 0}
    rows = targets(results)
    assert [met for name, target, _, met, *_ in targets({"pipeline": {"augmentation": {
        "speed_relative_to_plain": {"flips": 0.99, "full": 0.93}}}}) if "augmented" in target
            ] == [False]
    assert [target for name, target, _, _, *_ in rows if name == "1 compute"] == [
        "training at 128x128: >= 0.60 of matmul peak"]
    verdicts = {name: met for name, _, _, met, *_ in rows}
    assert verdicts["1 compute"] is True and verdicts["2 pipeline"] is False
    assert [(value, met) for name, _, value, met, *_ in rows if name == "3 memory"] == [
        ("+4.0 %", True)]
    assert verdicts["4 mixed precision"].startswith("n/a: no native bf16")


def test_peer_and_quality_verdicts():
    speeds = {"train_gflop_per_s": 100.0, "predict_gflop_per_s": 150.0}
    peer = {"size": 128, "ours": speeds,
            "peer_eager": {"train_gflop_per_s": 90.0, "predict_gflop_per_s": 120.0},
            "peer_compiled": {"train_gflop_per_s": 110.0, "predict_gflop_per_s": 100.0}}
    scores = {"plain": {"mean_dice": 0.90}, "tta+postprocess": {"mean_dice": 0.921}}
    quality = {"budget_seconds": 600, "isic": {**scores, "train_seconds": 590},
               "peer": {"plain": {"mean_dice": 0.91}, "tta+postprocess": {"mean_dice": 0.92}}}
    rows = targets({"peer": peer, "quality": quality})
    peer_rows = [(target, met) for name, target, _, met, *_ in rows if name.startswith("5")]
    assert peer_rows == [
        ("train GFLOP/s at 128^2 >= the peer's best mode (torch.compile)", False),
        ("predict GFLOP/s at 128^2 >= the peer's best mode (eager)", True),
        ("test mean dice, equal budget (plain) >= the peer's", False),
        ("test mean dice, equal budget (tta+postprocess) >= the peer's", True)]
    assert [met for name, _, _, met, *_ in rows if name == "6 quality"] == [True]
    quality["isic"]["train_seconds"] = 700  # over the 10-minute budget
    assert [met for name, _, _, met in targets({"quality": quality})
            if name == "6 quality"] == [False]
    skipped = targets({"peer": {"skipped": "torch not installed: pip install ..."}})
    assert ("5 peer (MONAI DynUNet)", "our GFLOP/s and test dice >= the peer's", "-",
            "not run: torch not installed: pip install ...") in skipped


def test_ablation_words_choose_runs():
    from bench_quality import ABLATIONS, chosen_ablations

    assert chosen_ablations(None) == []  # no --ablation
    assert chosen_ablations([]) == list(ABLATIONS)  # --ablation alone: every run
    assert chosen_ablations(["batch", "192"]) == [
        "batch 16 instead of 8", "192x192 instead of 128x128 (13 epochs: the same training time)"]
    with pytest.raises(SystemExit, match="no ablation matches"):
        chosen_ablations(["resnet"])


def test_isic2018_verdicts():
    def scores(dice, isic=0.8):
        return {"plain": {"mean_dice": dice, "isic_score": isic}}

    curve = [{"num_train": count, **scores(dice)}
             for count, dice in [(113, 0.80), (282, 0.84), (564, 0.86), (1127, 0.88)]]
    full = {"recipe": {**scores(0.891, 0.801), "train_seconds": 80 * 60,
                       "median_epoch_seconds": 80.0, "best_val_dice": 0.88},
            "peer": {**scores(0.895), "train_seconds": 80.5 * 60}, "curve": curve,
            "bf16": {**scores(0.887), "train_seconds": 55 * 60, "median_epoch_seconds": 55.0,
                     "policy": "mixed_bfloat16"},
            "changes": {  # judged: the full-data run best on validation, not the 25 % one;
                # against the peer: the best on validation of those trained in the recipe's time
                "256-flips": {**scores(0.893, 0.805), "train_seconds": 85 * 60,
                              "best_val_dice": 0.89, "against_recipe": {}},
                "128-flips": {**scores(0.889), "train_seconds": 83 * 60,
                              "best_val_dice": 0.885, "against_recipe": {},
                              "against_peer": {"mean_dice_difference": -0.006,
                                               "standard_error": 0.00214}},
                "128-long": {**scores(0.899), "train_seconds": 85 * 60,
                             "best_val_dice": 0.887, "against_recipe": {}},
                "128-train25-flips": {**scores(0.5), "best_val_dice": 0.95}},
            "bound": {"128x128": {"mean_dice": 0.995}, "256x256": {"mean_dice": 0.998}}}
    data = {"isic2018_512": {"first_epoch_images_per_s": {"128x128": 149.0}}}
    rows = {target: (value, met) for name, target, value, met, *_ in targets(
        {"isic2018": full, "data": data}) if name.startswith("8 ")}
    assert rows["first-epoch decode of every file at 128x128: >= 150 images/s"] == ("149", False)
    assert rows["test mean dice >= 0.89 and ISIC score >= 0.80 (plain) in <= 90 min of CPU "
                "training (the run best on validation)"] == (
        "0.893 / 0.805 after 85 min (256-flips)", True)
    assert rows["test mean dice >= the peer's at equal training time (plain)"] == (
        "0.889 (128-flips, 83.0 min) vs 0.895 (80.5 min); paired -0.0060 +- 0.0021", False)
    assert rows["bound: a perfect network's test mean dice at 128x128 / 256x256 (measured, no "
                "target)"] == ("0.995 / 0.998", "measured (no target)")
    curve_target = ("learning curve: test mean dice rises with every larger training share "
                    "(training images: dice)")
    assert rows[curve_target] == ("113: 0.800, 282: 0.840, 564: 0.860, 1127: 0.880", True)
    assert rows["mixed bf16 at equal epochs: test mean dice within 0.005 of float32"] == (
        "1.45x faster, dice -0.004", True)
    full["changes"]["256-flips"]["train_seconds"] = 91 * 60  # the judged run: over the budget
    full["bf16"] = {"skipped": "no native bf16 on this CPU"}
    curve[2]["plain"]["mean_dice"] = 0.83  # more data, a lower score: the curve verdict fails
    rows = {target: met for name, target, _, met, *_ in targets({"isic2018": full})
            if name[0] == "8"}
    assert rows[curve_target] is False
    assert rows["test mean dice >= 0.89 and ISIC score >= 0.80 (plain) in <= 90 min of CPU "
                "training (the run best on validation)"] is False
    assert rows["mixed bf16 at equal epochs: test mean dice within 0.005 of float32"] == (
        "not measurable here: no native bf16 on this CPU")


def test_pretrained_verdicts():
    def scores(dice, isic=0.8, **more):
        return {"plain": {"mean_dice": dice, "isic_score": isic}, **more}

    paired = {"mean_dice_difference": 0.012, "standard_error": 0.005, "images": 375}
    pretrained = {
        "recipe": scores(0.872, train_seconds=25 * 60),
        "tuning": {"128-lite0-train25-bn-train": scores(0.85, best_val_dice=0.87),
                   "128-lite0-train25-bn-frozen": scores(0.86, best_val_dice=0.88)},
        "chosen": "128-lite0-train25-bn-frozen",
        "full": scores(0.891, 0.801, train_seconds=24 * 60, epochs=40, against_recipe=paired,
                       **{"tta+postprocess": {"mean_dice": 0.897}}),
        "ensemble": {"plain": {"mean_dice": 0.899}, "tta": {"mean_dice": 0.902}},
        "curve": [{"fraction": 0.1, "num_train": 113, **scores(0.859)}],
        "train_images_per_s": {"improved_unet": 14.0, "efficientnet_lite0": 28.0}}
    peer = scores(0.875)
    rows = {target: (value, met) for name, target, value, met, *_ in targets(
        {"pretrained": pretrained, "isic2018": {"peer": peer}}) if name.startswith("9 ")}
    assert rows["fine-tuning chosen by validation dice on 25 % of the training part (measured, "
                "no target)"] == ("bn-train 0.870; bn-frozen 0.880: bn-frozen",
                                  "measured (no target)")
    assert rows["test mean dice >= 0.89 and ISIC score >= 0.80 (plain, one model) in <= 90 min "
                "of CPU training"] == ("0.891 / 0.801 after 24 min (40 epochs)", True)
    assert rows["test mean dice >= 0.90 with an ensemble or TTA"] == (
        "0.902 (ensemble + TTA)", True)
    assert rows["test mean dice >= the recipe's + 0.01 at equal training time, by more than 2 "
                "paired standard errors"] == ("+0.0120 +- 0.0050 (24.0 vs 25.0 min)", True)
    assert rows["test mean dice >= the peer's (benchmark 8, same test part)"] == (
        "0.891 vs 0.875", True)
    assert rows["test mean dice >= 0.86 at 10 % of the training part"] == (
        "0.859 (113 images)", False)
    assert rows["training images/s at 128x128 >= the Improved UNet's (same process)"] == (
        "28.0 vs 14.0", True)
    paired["standard_error"] = 0.007  # +0.012 is then within 2 standard errors
    rows = {target: met for name, target, _, met, *_ in targets({"pretrained": pretrained})
            if name.startswith("9 ")}
    assert rows["test mean dice >= the recipe's + 0.01 at equal training time, by more than 2 "
                "paired standard errors"] is False
    assert not any("peer" in target for target in rows)  # no benchmark 8 peer: no row


def test_lesion_size_table_has_a_row_per_evaluation_with_per_size_scores():
    def scores(dice, counts, low):
        bins = {label: {"count": count, "mean_dice": dice if count else float("nan")}
                for label, count in zip(["under 2 %", "2-5 %", "5-15 %", "15-40 %", "over 40 %"],
                                        counts, strict=True)}
        return {"mean_dice": dice, "count": sum(counts), "by_lesion_size": bins,
                "low_dice": {"below": 0.6, "count": low}}

    results = {"isic2018": {"recipe": {"plain": scores(0.88, [3, 0, 5, 1, 1], 2),
                                       "train_seconds": 60}},
               "pretrained": {"full": {"plain": scores(0.9, [1, 1, 1, 1, 1], 0)}},
               "compute": {"64x64": {"train_images_per_s": 3.0}}}
    lines = lesion_size_table(results)
    assert lines[5] == ("| run | images | mean dice | under 2 % | 2-5 % | 5-15 % | 15-40 % | "
                        "over 40 % | below 0.6 |")
    assert lines[7:] == [
        "| isic2018 / recipe / plain | 10 | 0.880 | 0.880 (3) | - (0) | 0.880 (5) | 0.880 (1) "
        "| 0.880 (1) | 2 |",
        "| pretrained / full / plain | 5 | 0.900 | 0.900 (1) | 0.900 (1) | 0.900 (1) | 0.900 (1) "
        "| 0.900 (1) | 0 |"]
    assert lesion_size_table({"compute": {}}) == []


def test_confidence_candidates_and_their_ranking_of_failures():
    from bench_confidence import candidates, ranking

    sure = np.zeros((4, 16, 16), np.float32)
    sure[:, 4:12, 4:12] = 1.0  # four views agreeing on one square, every pixel certain
    skin = np.full((16, 16, 3), 0.8, np.float32)
    lesion = skin.copy()
    lesion[4:12, 4:12] = (0.5, 0.4, 0.4)  # the image's dark square is where the mask is
    assert candidates(sure, lesion) == pytest.approx(
        {"soft_dice": 1.0, "border_entropy": 1.0, "one_component": 1.0, "flip_agreement": 1.0,
         "soft_dice_x_component": 1.0, "soft_dice_x_flips": 1.0, "halo": 1.0,
         "edge_contrast": float(np.linalg.norm([0.3, 0.4, 0.4]))}, abs=1e-4)
    assert candidates(sure, skin)["edge_contrast"] == pytest.approx(0.0, abs=1e-5)  # no edge
    split = sure.copy()
    split[:, 0:2, 0:2] = 0.6  # a second, unsure component of 4 pixels beside the 64
    split[1:, 4:12, 4:12] = 0.0  # three of the four views see no lesion
    measures = candidates(split, lesion)
    assert measures["one_component"] == pytest.approx(64 / 68)
    # The views' mean marks the corner alone: view 0 (68 pixels) agrees with it at 8 / 72.
    assert measures["flip_agreement"] == pytest.approx((8 / 72 + 3) / 4)
    assert measures["soft_dice"] < 1.0 and measures["border_entropy"] < 1.0
    # The views' mean: 0.6 on the corner (its mask), 0.25 on the square, just below 0.5.
    assert measures["halo"] == pytest.approx(4 / 68)
    dice = np.array([0.1, 0.9, 0.5, 0.95, 0.3, 0.8, 0.85, 0.9, 0.92, 0.97])
    by_dice = ranking(dice, dice)  # a confidence that is the dice itself: the ideal
    assert by_dice["spearman"] == pytest.approx(1.0)
    assert by_dice["low_dice_within"] == {"5 %": 1 / 3, "10 %": 1 / 3, "20 %": 2 / 3}
    assert ranking(dice, -dice)["low_dice_within"]["20 %"] == 0.0


def test_encoder_rows_judge_each_variant_against_the_lite0_baseline():
    from run import encoder_rows

    def scores(mean, small, below):
        bins = {"under 2 %": {"count": 2, "mean_dice": small}, "2-5 %": {"count": 2,
                                                                         "mean_dice": small}}
        return {"mean_dice": mean, "by_lesion_size": bins, "low_dice": {"count": below}}

    lite2 = {"plain": scores(0.9, 0.88, 10), "epochs": 12, "train_seconds": 3540,
             "against_baseline": {"mean_dice_difference": 0.014, "standard_error": 0.003}}
    rows = encoder_rows({"baseline": {"plain": scores(0.886, 0.82, 24)}, "256-lite2": lite2,
                         "budget_minutes": 60,
                         "256-lite1": {**lite2, "plain": scores(0.9, 0.88, 13)}})
    assert [(row[2], row[3]) for row in rows] == [
        ("256-lite2, 12 epochs, 59 min: mean 0.900 (+0.014 ± 0.003); 0.880 over 4; 10 below "
         "0.6 (Lite0 24)", True),
        ("256-lite1, 12 epochs, 59 min: mean 0.900 (+0.014 ± 0.003); 0.880 over 4; 13 below "
         "0.6 (Lite0 24)", False)]
    assert encoder_rows({"error": "failed"})[0][3] == "not run: failed"


def test_lesion_crops_row_judges_the_second_look_of_the_crop_model_against_lite0():
    from run import lesion_crops_row

    bins = {"under 2 %": {"count": 3, "mean_dice": 0.85}, "2-5 %": {"count": 1, "mean_dice": 0.95}}
    looked = {"mean_dice": 0.89, "by_lesion_size": bins, "low_dice": {"count": 9},
              "against_baseline": {"mean_dice_difference": 0.004, "standard_error": 0.002}}
    crops = {"baseline": {"plain": {"low_dice": {"count": 19}}},
             "crops": {"run": "isic2018-224-lite0-crops50", "train_seconds": 1920,
                       "test": {"second look": looked}}}
    row = lesion_crops_row(crops)
    assert row[2:] == ("isic2018-224-lite0-crops50, second look, 32 min: mean 0.890 (+0.004 ± "
                       "0.002); 0.875 over 4; 9 below 0.6 (Lite0 19)", True)
    looked["low_dice"]["count"] = 10  # more than half of the baseline's 19
    assert lesion_crops_row(crops)[3] is False
    assert lesion_crops_row({"error": "failed"})[3] == "not run: failed"


def test_seeded_rows_judge_each_seeds_candidate_against_its_plain_twin():
    from run import seeded_rows

    bins = {"under 2 %": {"count": 1, "mean_dice": 0.8}, "2-5 %": {"count": 3, "mean_dice": 0.9}}

    def seed(run, minutes, **by_size):
        return {"date": "2026-12-04", "baseline": {"plain": {"low_dice": {"count": 18}}},
                "small_lesion_loss": {
                    "run": run, "train_seconds": minutes * 60, **by_size,
                    "plain": {"mean_dice": 0.887, "by_lesion_size": bins, "low_dice": {"count": 9}},
                    "against_baseline": {"mean_dice_difference": 0.003, "standard_error": 0.002}}}
    small = {"under 5 %": {"mean_dice_difference": 0.0274, "standard_error": 0.0112}}
    part = {"seed 10": seed("small-seed10", 61), "seed 2": seed(
        "small-seed2", 43, against_baseline_by_size=small)}
    rows = seeded_rows(part, "18 small-lesion loss", "small_lesion_loss")
    assert {row[0] for row in rows} == {"18 small-lesion loss"}
    assert [row[2:] for row in rows] == [
        ("seed 2 (2026-12-04; under 5 % +0.027 ± 0.011), small-seed2, 43 min: mean 0.887 (+0.003 "
         "± 0.002); 0.875 over 4; 9 below 0.6 (Lite0 18)", True),
        ("seed 10 (2026-12-04), small-seed10, 61 min: mean 0.887 (+0.003 ± 0.002); 0.875 over 4; "
         "9 below 0.6 (Lite0 18)", False)]  # over the 60 minutes
    assert seeded_rows({"skipped": "no native bf16"}, "19 small first, then large", "first_size")[
        0][2:] == ("-", "not run: no native bf16")


def test_a_seeds_new_results_keep_the_schedules_an_earlier_run_measured():
    from run import added, seeded_rows

    part = {"seed 0": {"date": "2026-12-03", "baseline": "old", "first_size": "16 of 22"},
            "seed 1": {"first_size": "16 of 22, seed 1"}, "machine": "one"}
    result = {"seed 0": {"date": "2026-12-04", "baseline": "new", "first_size_10of22": "10 of 22"},
              "machine": "two"}
    assert added(part, result) == {
        "seed 0": {"date": "2026-12-04", "baseline": "new", "first_size": "16 of 22",
                   "first_size_10of22": "10 of 22"},
        "seed 1": {"first_size": "16 of 22, seed 1"}, "machine": "two"}
    # rows only for the seeds that measured the schedule
    assert seeded_rows(part, "19 small first (10 of 22), then large",
                       "first_size_10of22")[0][2] == "-"


def test_row_19_has_the_rows_of_every_schedule_measured():
    from run import SMALL_LESION_TARGET, first_size_rows

    def candidate(run):
        return {"run": run, "train_seconds": 2880, "plain": {
                    "mean_dice": 0.882, "low_dice": {"count": 22},
                    "by_lesion_size": {"under 2 %": {"count": 1, "mean_dice": 0.8},
                                       "2-5 %": {"count": 3, "mean_dice": 0.9}}},
                "against_baseline": {"mean_dice_difference": -0.002, "standard_error": 0.002}}
    baseline = {"plain": {"low_dice": {"count": 18}}}
    part = {"seed 0": {"date": "2026-12-04", "baseline": baseline, "first_size": candidate(
        "first128"), "first_size_10of22": candidate("first128-10of22")},
            "seed 1": {"date": "2026-12-04", "baseline": baseline,
                       "first_size_8of22": candidate("first128-8of22-seed1")}}
    assert [(row[0], row[2].split(", ")[1]) for row in first_size_rows(part)] == [
        ("19 small first, then large", "first128"),
        ("19 small first (10 of 22), then large", "first128-10of22"),
        ("19 small first (8 of 22), then large", "first128-8of22-seed1")]
    assert first_size_rows({"skipped": "no native bf16"}) == [
        ("19 small first, then large", SMALL_LESION_TARGET, "-", "not run: no native bf16")]


def test_bf16_retrain_row_pairs_bf16_with_float32_within_two_standard_errors():
    from run import bf16_retrain_row

    retrain = {"float32": {"plain": {"mean_dice": 0.8855}}, "bf16_speedup": 1.33,
               "bf16": {"plain": {"mean_dice": 0.8841},
                        "against_float32": {"mean_dice_difference": -0.0014,
                                            "standard_error": 0.0020}}}
    assert bf16_retrain_row(retrain)[2:] == (
        "0.8841 against 0.8855 (-0.0014 ± 0.0020); train step 1.33x", True)
    retrain["bf16"]["against_float32"]["mean_dice_difference"] = -0.0041  # beyond 2 errors
    assert bf16_retrain_row(retrain)[3] is False
    skipped = bf16_retrain_row({"skipped": "no native bf16 on this CPU"})
    assert skipped[3] == "not run: no native bf16 on this CPU"


def test_fused_norm_rows_pair_the_retrained_bf16_run_and_judge_the_bf16_speed_up():
    from run import fused_norm_rows

    part = {"seed 0": {"baseline": {"plain": {"mean_dice": 0.8844}, "train_seconds": 2664},
                       "fused_norm": {"plain": {"mean_dice": 0.8850}, "train_seconds": 1920,
                                      "against_baseline": {"mean_dice_difference": 0.0006,
                                                           "standard_error": 0.0020}}},
            "ratios": {"bf16 fused / float32": 1.62, "bf16 fused / bf16 Keras' ops": 1.25}}
    dice, speed = fused_norm_rows(part)
    assert dice[2:] == ("0.8850 against 0.8844 (+0.0006 ± 0.0020); 32.0 min against 44.4", True)
    assert speed[2:] == ("1.62x (bf16 with Keras' norm ops: 1.30x)", True)
    part["ratios"]["bf16 fused / float32"] = 1.55
    part["seed 0"]["fused_norm"]["against_baseline"]["mean_dice_difference"] = -0.0045
    assert [row[3] for row in fused_norm_rows(part)] == [False, False]
    assert [row[3] for row in fused_norm_rows({"skipped": "no native bf16"})] == [
        "not run: no native bf16"] * 2


def test_fused_batch_norm_rows_pair_with_the_readme_run_and_give_both_speed_ups():
    from run import fused_batch_norm_rows

    ratios = {f"{kind}: bf16, {variant} / float32": value for kind, values in
              [("train", (1.55, 1.62)), ("predict", (1.38, 1.50))]
              for variant, value in zip(("instance norm kernel", "both kernels"), values,
                                        strict=True)}
    part = {"seed 0": {"readme_run": {"plain": {"mean_dice": 0.8868}, "train_seconds": 2160},
                       "fused_batch_norm": {"plain": {"mean_dice": 0.8861}, "train_seconds": 2100,
                                            "against_readme_run": {"mean_dice_difference": -0.0007,
                                                                   "standard_error": 0.0021}}},
            "ratios": ratios}
    dice, speed = fused_batch_norm_rows(part)
    assert dice[2:] == ("0.8861 against 0.8868 (-0.0007 ± 0.0021); 35.0 min against 36.0", True)
    assert speed[2:] == ("train 1.62x (instance norm kernel only: 1.55x); predict 1.50x "
                         "(instance norm kernel only: 1.38x)", True)
    ratios["train: bf16, both kernels / float32"] = 1.58
    part["seed 0"]["fused_batch_norm"]["against_readme_run"]["mean_dice_difference"] = 0.005
    assert [row[3] for row in fused_batch_norm_rows(part)] == [False, False]
    assert [row[3] for row in fused_batch_norm_rows({"skipped": "no native bf16"})] == [
        "not run: no native bf16"] * 2


def test_depthwise_bf16_rows_add_the_rescored_readme_run_to_the_retrain():
    from run import depthwise_bf16_rows

    ratios = {f"{kind}: bf16, {variant} / float32": value for kind, values in
              [("train", (1.60, 1.63)), ("predict", (1.55, 1.71))]
              for variant, value in zip(("depthwise in float32",
                                         "depthwise in bf16 in prediction"), values, strict=True)}
    part = {"seed 0": {"readme_run": {"plain": {"mean_dice": 0.8869}, "train_seconds": 1902},
                       "depthwise_bf16": {"plain": {"mean_dice": 0.8872}, "train_seconds": 1950,
                                          "against_readme_run": {"mean_dice_difference": 0.0003,
                                                                 "standard_error": 0.0011}},
                       "readme_run_rescored": {"mean_dice": 0.8866, "against_its_evaluation": {
                           "mean_dice_difference": -0.0003, "standard_error": 0.0001,
                           "broken": []}}},
            "ratios": ratios}
    dice, speed, rescored = depthwise_bf16_rows(part)
    assert dice[2:] == ("0.8872 against 0.8869 (+0.0003 ± 0.0011); 32.5 min against 31.7", True)
    assert speed[2:] == ("train 1.63x (depthwise in float32: 1.60x); predict 1.71x (depthwise "
                         "in float32: 1.55x)", True)
    assert rescored[2:] == ("0.8866 (-0.0003 ± 0.0001; 0 images lose 0.2)", False)
    assert [row[3] for row in depthwise_bf16_rows({"skipped": "no native bf16"})] == [
        "not run: no native bf16"] * 3


def test_folded_prediction_rows_pair_both_evaluations_and_judge_the_speed_up():
    from run import folded_prediction_rows

    def rescored(mean, difference, error):
        return {"mean_dice": mean, "against_without_the_fold": {
            "mean_dice_difference": difference, "standard_error": error}}

    part = {"rescored": {"plain": rescored(0.8868, 0.00001, 0.0002),
                         "tta+postprocess": rescored(0.8950, -0.0005, 0.0002)},
            "ratios": {"float32: folded / as built": 1.08, "bf16: folded / as built": 0.97}}
    scores, speed = folded_prediction_rows(part)
    assert scores[2:] == ("0.8868 (+0.0000 ± 0.0002); 0.8950 (-0.0005 ± 0.0002)", False)
    assert speed[2:] == ("1.08x; 0.97x", False)
    assert [row[3] for row in folded_prediction_rows({"skipped": "no native bf16"})] == [
        "not run: no native bf16"] * 2


def test_folded_training_rows_compare_with_the_readme_run_and_judge_both_speed_ups():
    from run import folded_training_rows

    part = {"plain": {"mean_dice": 0.8901}, "tta+postprocess": {"mean_dice": 0.9001},
            "readme_run": {"plain": {"mean_dice": 0.8868},
                           "tta+postprocess": {"mean_dice": 0.8948}},
            "against_readme_run": {"mean_dice_difference": 0.0033, "standard_error": 0.0021},
            "step_images_per_s": {"train": {"float32, folded": 7.0, "bf16, folded": 11.0}},
            "ratios": {"train: bf16 folded / as layers": 1.07}}
    scores, speed = folded_training_rows(part)
    assert scores[2:] == ("0.8901 against 0.8868 (+0.0033 ± 0.0021); 0.9001 against 0.8948",
                          False)  # TTA + pp: +0.0053
    assert speed[2:] == ("fold 1.07x; bf16 1.57x float32", False)
    part["tta+postprocess"]["mean_dice"], part["step_images_per_s"]["train"]["bf16, folded"] = (
        0.8990, 11.3)
    assert [row[3] for row in folded_training_rows(part)] == [True, True]
    assert [row[3] for row in folded_training_rows({"skipped": "no native bf16"})] == [
        "not run: no native bf16"] * 2


def test_per_sample_norm_rows_compare_with_the_readme_run_and_judge_speed_and_repeats():
    from run import per_sample_norm_rows

    part = {"plain": {"mean_dice": 0.8849}, "tta+postprocess": {"mean_dice": 0.8915},
            "readme_run": {"plain": {"mean_dice": 0.8845},
                           "tta+postprocess": {"mean_dice": 0.8911}},
            "against_readme_run": {"mean_dice_difference": 0.0004, "standard_error": 0.0019},
            "ratios": {"train: bf16 per sample / transposed": 1.05,
                       "predict: bf16 per sample / transposed": 0.99,
                       "train: bf16 per sample / float32": 1.69}}
    scores, speed, repeats = per_sample_norm_rows(part)
    assert scores[2:] == ("0.8849 against 0.8845 (+0.0004 ± 0.0019); 0.8915 against 0.8911",
                          True)
    assert speed[2:] == ("train 1.05x, predict 0.99x; bf16 1.69x float32", False)
    assert repeats[2:] == ("-", "not run: no results")
    part["ratios"]["predict: bf16 per sample / transposed"] = 1.0
    part["one_epoch_twice"] = {"library (transposed)": {"weights": ["a", "a"], "equal": True},
                               "per sample": {"weights": ["b", "c"], "equal": False}}
    rows = per_sample_norm_rows(part)
    assert rows[1][3] is True
    assert rows[2][2:] == ("library (transposed): equal (2 runs); per sample: differ (2 runs)",
                           False)
    assert [row[3] for row in per_sample_norm_rows({"skipped": "no native bf16"})] == [
        "not run: no native bf16"] * 3


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the fused kernels are the TensorFlow backend's")
def test_the_per_sample_candidate_kernel_equals_the_library_kernel_without_transposes():
    from segment.layers import InstanceNormalization

    import tensorflow as tf
    from bench_per_sample_norm import kernels_per_sample

    x = (np.random.default_rng(0).normal(size=(3, 5, 4, 2)) * [1, 10]).astype(np.float32)
    layer = InstanceNormalization(dtype="mixed_bfloat16")
    layer.build(x.shape)
    layer.set_weights([np.array([0.5, 2], np.float32), np.array([-1, 1], np.float32)])
    library = layer(x)
    with kernels_per_sample():
        traced = tf.function(layer).get_concrete_function(tf.TensorSpec(x.shape, tf.float32))
        candidate = traced(tf.constant(x))
    kinds = {op.type for op in traced.graph.get_operations()}
    assert "Split" in kinds and "Transpose" not in kinds
    np.testing.assert_array_equal(candidate.numpy(), library.numpy())


def test_epoch_row_is_met_by_the_best_validation_frequency():
    from run import epoch_row

    epoch = {"precision": "mixed_bfloat16",
             "fraction_of_bare_step": {"epoch without validation": 0.99,
                                       "validate_every 1": 0.88, "validate_every 3": 0.95}}
    assert epoch_row(epoch)[2:] == ("mixed_bfloat16, epoch without validation: 0.99; "
                                    "validate_every 1: 0.88; validate_every 3: 0.95", True)
    epoch["fraction_of_bare_step"]["validate_every 3"] = 0.94  # the epoch alone does not count
    assert epoch_row(epoch)[3] is False
    assert epoch_row({"error": "failed"})[3] == "not run: failed"


def test_step_trace_sums_each_ops_time_by_type_and_part():
    from bench_step_trace import grouped, op_times
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    labels = {1: "unet/efficientnet_lite0_features/block1_depthwise_conv/depthwise:"
                 "DepthwiseConv2dNative",
              2: "gradient_tape/unet/localization_1_conv/Conv2D:Conv2DBackpropInput",
              3: "unet/localization_2_1_conv/Cast:Cast", 4: "ExecutorState::Process"}
    for key, label in labels.items():
        plane.event_metadata[key].name = label
    for line_name, events in [("tf_Compute/1", [(1, 3), (2, 5), (4, 100)]),
                              ("tf_Compute/2", [(1, 1), (3, 1)]),
                              ("tf_numa_-1_Eigen/3", [(2, 50)])]:  # not the executor's line
        line = plane.lines.add(name=line_name)
        for key, milliseconds in events:
            line.events.add(metadata_id=key, duration_ps=milliseconds * 10 ** 9)
    times = op_times(space)
    assert sum(times.values()) == pytest.approx(0.010)  # 3 + 5 + 1 + 1 ms; no "A::B" events
    shares = grouped(times, steps=2)
    assert shares["op_seconds_per_step"] == pytest.approx(0.005)
    assert shares["by_type"] == pytest.approx({"Conv2DBackpropInput": 0.5,
                                               "DepthwiseConv2dNative": 0.4, "Cast": 0.1})
    assert shares["by_part"] == pytest.approx({"level 1 (full resolution)": 0.5,
                                               "encoder depthwise convolutions": 0.4,
                                               "casts": 0.1})


def test_upsampling_conv_rows_compare_with_the_readme_run_and_judge_speed_and_repeats():
    from run import upsampling_conv_rows

    part = {"plain": {"mean_dice": 0.8801}, "tta+postprocess": {"mean_dice": 0.8905},
            "readme_run": {"plain": {"mean_dice": 0.8845},
                           "tta+postprocess": {"mean_dice": 0.8911}},
            "against_readme_run": {"mean_dice_difference": -0.0044, "standard_error": 0.002},
            "ratios": {"train: bf16 layer / pair": 1.1, "predict: bf16 layer / pair": 1.09,
                       "train: bf16 layer / float32 layer": 1.59}}
    scores, speed, repeats = upsampling_conv_rows(part)
    assert scores[2:] == ("0.8801 against 0.8845 (-0.0044 ± 0.0020); 0.8905 against 0.8911",
                          True)
    assert speed[2:] == ("train 1.10x, predict 1.09x; bf16 1.59x float32", False)
    assert repeats[2:] == ("-", "not run: no results")
    part["plain"]["mean_dice"] = 0.8794  # 0.0051 below
    part["ratios"]["train: bf16 layer / float32 layer"] = 1.6
    part["one_epoch_twice"] = {"library": {"weights": ["a", "b"], "equal": False}}
    rows = upsampling_conv_rows(part)
    assert [row[3] for row in rows] == [False, True, False]
    assert rows[2][2] == "library: differ (2 runs)"


def test_depthwise_gradients_rows_read_the_ratios_its_benchmark_writes():
    # the ratio names as bench_depthwise_gradients.py's `paired_step_speeds` writes them
    from run import depthwise_gradients_rows

    part = {"plain": {"mean_dice": 0.8850}, "tta+postprocess": {"mean_dice": 0.8900},
            "readme_run": {"plain": {"mean_dice": 0.8844},
                           "tta+postprocess": {"mean_dice": 0.8894}},
            "against_readme_run": {"mean_dice_difference": 0.0006, "standard_error": 0.002},
            "ratios": {"train: bf16 library / float32 depthwise": 1.06,
                       "predict: bf16 library / float32 depthwise": 1.0,
                       "train: bf16 library / float32 library": 1.68},
            "one_epoch_twice": {"library": {"weights": ["a", "a"], "equal": True}}}
    scores, speed, repeats = depthwise_gradients_rows(part)
    assert scores[0] == "32 depthwise gradients as forward convolutions" and scores[3] is True
    assert speed[2:] == ("train 1.06x, predict 1.00x; bf16 1.68x float32", True)
    assert repeats[2:] == ("library: equal (2 runs)", True)


def test_without_bf16_row_judges_both_copies_against_the_base_and_shows_how_they_differ():
    from run import without_bf16_row

    once = {"efficientnet_lite0 224x224 train": 1.01, "efficientnet_lite0 224x224 predict": 0.96}
    again = {"efficientnet_lite0 224x224 train": 1.10, "efficientnet_lite0 224x224 predict": 0.98}
    part = {"base": "7dbbb61", "tolerance": 0.95, "native_bf16": False,
            "ratios": {"library / base": once, "library again / base": again},
            "mixed_bfloat16_request": {"chooses": "float32", "logged": ["no native bfloat16"]}}
    label, target, measured, met = without_bf16_row(part)
    assert label.startswith("33 ") and ">= 0.95x the library at 7dbbb61" in target
    assert measured == ("efficientnet_lite0 224x224 train 1.01x, efficientnet_lite0 224x224 "
                        "predict 0.96x; second copy 0.98-1.10x; copies differ 1.02-1.09x; "
                        "mixed_bfloat16 -> float32")
    assert met is True

    def judged(**changes):
        return without_bf16_row({**part, **changes})[3]

    slower = {**again, "efficientnet_lite0 224x224 predict": 0.94}  # the second copy alone
    assert judged(ratios={**part["ratios"], "library again / base": slower}) is False
    assert judged(mixed_bfloat16_request={"chooses": "mixed_bfloat16"}) is False
    assert judged(native_bf16=True).startswith("measured (no target")


def test_metrics_benchmark_finds_the_library_hd95_equal_to_the_distance_transform():
    from bench_metrics import measure
    from run import metrics_row

    part = {"sizes": measure([(60, 80), (48, 48)], rounds=1, speckled=(40, 50))}
    sizes = part["sizes"]
    assert list(sizes) == ["80x60", "48x48", "50x40 speckled"]
    assert all(each["equal"] and each["hd95"] > 0 for each in sizes.values())
    label, _, measured, met = metrics_row(part)
    assert label.startswith("34 ") and measured.startswith("80x60: ") and met is True
    sizes["48x48"]["equal"] = False
    assert metrics_row(part)[3] is False
