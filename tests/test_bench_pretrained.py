"""bench_pretrained.py's --quick smoke run: the fine-tuning choice, the full, ensemble and
larger-size runs, and the rows of benchmark 9 that run.py writes from them.

Its own file (not test_benchmarks.py) so that the second test worker runs it beside the rest
of the benchmarks' smoke run: its Lite0 models cost most of their time in graph tracing.
"""

import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from run import run_benchmark, targets  # noqa: E402


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
    assert full["against_recipe"]["images"] == 6 and 0 <= full["plain"]["pooled_dice"] <= 1
    assert pretrained["ensemble"]["sizes"] == [[32, 32], [32, 32]]
    assert pretrained["ensemble"]["against_recipe"]["images"] == 6
    # --quick trains no extra curve point: the 25 % tuning run and the full run make the curve.
    assert [point["fraction"] for point in pretrained["curve"]] == [0.25, 1.0]
    assert min(pretrained["train_images_per_s"].values()) > 0
    assert set(pretrained["train_images_per_s"]) == {"improved_unet", "efficientnet_lite0",
                                                      "efficientnet_lite0_64"}
    large = pretrained["large"]  # the chosen way at a larger size, paired with the recipe
    assert large["side"] == 64 and large["settings"]["image_size"] == [64, 64]
    assert large["epochs"] == full["epochs"] and large["against_recipe"]["images"] == 6

    rows = [row for row in targets({"pretrained": pretrained}) if row[0].startswith("9 ")]
    assert len(rows) == 7 and not any(str(row[3]).startswith("not run") for row in rows)
    assert rows[1][2].startswith(f"{full['plain']['mean_dice']:.3f} / ")
    assert rows[4][1] == "the same at 64x64 (measured, no target)"
    assert rows[4][2].startswith(f"{large['plain']['mean_dice']:.3f} / ")
