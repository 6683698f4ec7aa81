"""Benchmark 9's rows as run.py writes them from bench_pretrained.py's three recorded parts
(benchmarks/results.json): the fine-tuning choice, the full and ensemble runs (part
pretrained), the larger-size run (part pretrained_large) and the encoder's learning rate (part
pretrained_tuning).

Their --quick smoke runs (200 s of the suite on an AVX2-only AMD EPYC, 2026-12-07) are left to
`make bench`, as the other benchmarks that train Lite0 networks are (tests/test_benchmarks.py).
"""

import json
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from run import pretrained_tuning_row, targets  # noqa: E402

RECORDED = json.loads((REPO / "benchmarks" / "results.json").read_text())


def test_pretrained_rows_give_the_full_run_and_its_ensemble_against_the_recipe():
    pretrained = RECORDED["pretrained"]
    tuning = pretrained["tuning"]
    assert pretrained["chosen"] == max(tuning, key=lambda run: tuning[run]["best_val_dice"])
    full = pretrained["full"]
    rows = [row for row in targets({"pretrained": pretrained}) if row[0].startswith("9 ")]
    assert len(rows) == 6 and not any(str(row[3]).startswith("not run") for row in rows)
    plain = full["plain"]
    assert rows[1][2] == (f"{plain['mean_dice']:.3f} / {plain['isic_score']:.3f} after "
                          f"{full['train_seconds'] / 60:.0f} min ({full['epochs']} epochs)")
    assert rows[1][3] is (plain["mean_dice"] >= 0.89 and plain["isic_score"] >= 0.80)
    best = max(pretrained["ensemble"]["plain"]["mean_dice"],
               pretrained["ensemble"]["tta"]["mean_dice"], full["tta+postprocess"]["mean_dice"])
    assert rows[2][2].startswith(f"{best:.3f} (") and rows[2][3] is (best >= 0.90)
    rates = pretrained["train_images_per_s"]
    assert rows[-1][2] == (f"{rates['efficientnet_lite0']:.1f} vs "
                           f"{rates['improved_unet']:.1f}")
    assert rows[-1][3] is (rates["efficientnet_lite0"] >= rates["improved_unet"])


def test_larger_size_rows_judge_the_run_and_its_ensemble_at_their_size():
    part = RECORDED["pretrained_large"]
    large = part["large"]
    side = large["side"]
    rows = [row for row in targets({"pretrained_large": part}) if row[0].startswith("9 ")]
    assert [row[1] for row in rows] == [
        "test mean dice >= 0.89 and ISIC score >= 0.80 (plain, one model) in <= 90 min",
        "test mean dice >= 0.89 and ISIC score >= 0.80 (plain, one model) in <= 90 min of CPU "
        f"training, at {side}x{side}",
        f"test mean dice >= 0.90 with an ensemble or TTA, at {side}x{side}"]  # first: not run
    assert rows[1][2].startswith(f"{large['plain']['mean_dice']:.3f} / ")
    best = max(large["ensemble"]["plain"]["mean_dice"], large["ensemble"]["tta"]["mean_dice"],
               large["tta+postprocess"]["mean_dice"])
    assert rows[2][2].startswith(f"{best:.3f} (") and rows[2][3] is (best >= 0.90)
    assert all(row[4] == "pretrained_large" for row in rows[1:])


def test_tuning_row_gives_each_encoder_rates_validation_dice_and_the_one_chosen():
    part = RECORDED["pretrained_tuning"]
    tuning = part["tuning"]
    assert part["chosen"] == max(tuning, key=lambda run: tuning[run]["best_val_dice"])
    (row,) = [row for row in targets({"pretrained_tuning": part})
              if row[4:] == ("pretrained_tuning",)]
    assert row[2].endswith(f": {part['chosen'].split('train25-')[-1]}")
    tenth = tuning["128-lite0-train25-encoder-lr0.1"]["best_val_dice"]
    assert f"encoder-lr0.1 {tenth:.3f}" in row[2]
    assert row[3] == "measured (no target)"
    assert pretrained_tuning_row({"error": "failed"})[3] == "not run: failed"
