"""bench_pretrained.py's --quick smoke runs, as run.py runs two of its parts: the fine-tuning
choice, the full and ensemble runs (part pretrained) and the larger-size run on its own (part
pretrained_large); the rows of benchmark 9 that run.py writes from them, and from the recorded
run of its third part (pretrained_tuning).

Its own file (not test_benchmarks.py) so that the second test worker runs it beside the rest
of the benchmarks' smoke run: its Lite0 models cost most of their time in graph tracing.
"""

import json
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from run import pretrained_tuning_row, run_benchmark, targets  # noqa: E402


@pytest.mark.slow
def test_quick_pretrained_benchmark_chooses_trains_pairs_and_renders():
    pretrained = run_benchmark("pretrained", quick=True)
    assert "error" not in pretrained, pretrained.get("error")
    tuning = pretrained["tuning"]
    assert pretrained["chosen"] == max(tuning, key=lambda run: tuning[run]["best_val_dice"])
    assert {run["settings"]["encoder_batchnorm"] for run in tuning.values()} == {"train",
                                                                                 "frozen"}
    full = pretrained["full"]
    assert full["settings"]["encoder"] == "efficientnet_lite0"
    assert full["against_recipe"]["images"] == 6
    # The headline carries the run's pooled dice, a number of its own, not a copy of the mean.
    assert full["plain"]["pooled_dice"] != pytest.approx(full["plain"]["mean_dice"], abs=1e-6)
    assert pretrained["ensemble"]["sizes"] == [[32, 32], [32, 32]]
    assert pretrained["ensemble"]["against_recipe"]["images"] == 6
    # --quick trains no extra curve point: the 25 % tuning run and the full run make the curve.
    assert [point["fraction"] for point in pretrained["curve"]] == [0.25, 1.0]
    assert min(pretrained["train_images_per_s"].values()) > 0
    # run.py's part "pretrained" leaves step 6 out: it is part "pretrained_large".
    assert set(pretrained["train_images_per_s"]) == {"improved_unet", "efficientnet_lite0"}
    assert "large" not in pretrained

    rows = [row for row in targets({"pretrained": pretrained}) if row[0].startswith("9 ")]
    assert len(rows) == 6 and not any(str(row[3]).startswith("not run") for row in rows)
    assert rows[1][2].startswith(f"{full['plain']['mean_dice']:.3f} / ")


@pytest.mark.slow
def test_quick_larger_size_run_alone_trains_the_default_way_and_pairs_with_the_recipe():
    # --large-epochs, as when a finished run is rescored (run.py --args passes it on).
    part = run_benchmark("pretrained_large", quick=True, more_arguments=["--large-epochs", "2"])
    assert "error" not in part, part.get("error")
    assert part["arguments"] == ["--large-epochs", "2"]
    assert "tuning" not in part and "full" not in part  # steps 2 to 5 left out
    assert set(part["train_images_per_s"]) == {"improved_unet", "efficientnet_lite0",
                                               "efficientnet_lite0_64"}
    large = part["large"]
    # The library's default fine-tuning (what step 2 chose): no encoder_batchnorm override.
    assert large["side"] == 64 and large["settings"] == {
        "encoder": "efficientnet_lite0", "epochs": 2, "image_size": [64, 64]}
    assert large["against_recipe"]["images"] == 6
    assert abs(large["against_recipe"]["mean_dice_difference"] - (
        large["plain"]["mean_dice"] - part["recipe"]["plain"]["mean_dice"])) < 1e-6
    # In an ensemble with the recipe, each model at its own size.
    assert large["ensemble"]["sizes"] == [[64, 64], [32, 32]]
    assert large["ensemble"]["models"] == ["64-lite0", "recipe"]

    rows = [row for row in targets({"pretrained_large": part}) if row[0].startswith("9 ")]
    assert [row[1] for row in rows] == [
        "test mean dice >= 0.89 and ISIC score >= 0.80 (plain, one model) in <= 90 min",
        "test mean dice >= 0.89 and ISIC score >= 0.80 (plain, one model) in <= 90 min of CPU "
        "training, at 64x64",
        "test mean dice >= 0.90 with an ensemble or TTA, at 64x64"]  # first: pretrained not run
    assert rows[1][2].startswith(f"{large['plain']['mean_dice']:.3f} / ")
    best = max(large["ensemble"]["plain"]["mean_dice"], large["ensemble"]["tta"]["mean_dice"],
               large["tta+postprocess"]["mean_dice"])
    assert rows[2][2].startswith(f"{best:.3f} (") and rows[2][3] is (best >= 0.90)
    assert all(row[4] == "pretrained_large" for row in rows[1:])


def test_tuning_row_gives_each_encoder_rates_validation_dice_and_the_one_chosen():
    # Part pretrained_tuning's row, from its recorded run (its --quick smoke run took 38 s to
    # check two lines of dispatch beside what the test above runs).
    part = json.loads((REPO / "benchmarks" / "results.json").read_text())["pretrained_tuning"]
    tuning = part["tuning"]
    assert part["chosen"] == max(tuning, key=lambda run: tuning[run]["best_val_dice"])
    (row,) = [row for row in targets({"pretrained_tuning": part})
              if row[4:] == ("pretrained_tuning",)]
    assert row[2].endswith(f": {part['chosen'].split('train25-')[-1]}")
    tenth = tuning["128-lite0-train25-encoder-lr0.1"]["best_val_dice"]
    assert f"encoder-lr0.1 {tenth:.3f}" in row[2]
    assert row[3] == "measured (no target)"
    assert pretrained_tuning_row({"error": "failed"})[3] == "not run: failed"
