"""The benchmark suite's --quick smoke run works end to end and writes its two result files."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from run import BENCHMARKS, targets  # noqa: E402


@pytest.mark.slow
def test_quick_run_writes_results_and_targets(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [name for name in BENCHMARKS if "error" in results[name]] == []
    compute = results["compute"]["64x64"]
    assert compute["train_images_per_s"] > 0 and 0 < compute["train_fraction_of_peak"] < 2
    assert results["pipeline"]["memory"]["disk_cache_growth"] > -0.5
    page = (tmp_path / "RESULTS.md").read_text()
    assert "QUICK smoke run" in page
    for row in ["| 1 compute |", "| 2 pipeline |", "| 3 memory |", "| 4 mixed precision |"]:
        assert row in page


def test_target_verdicts():
    results = {"compute": {"128x128": {"train_fraction_of_peak": 0.61}},
               "pipeline": {"overhead": {"epoch2_speed_relative_to_memory": 0.9}},
               "precision": {"case": "no native bf16", "mixed_speedup": 0.13,
                             "dice_difference": 0.0}}
    results["compute"]["128x128_xla"] = {"train_fraction_of_peak": 0.2}  # no row of its own
    results["compute"]["threads"] = {"intra_op": 0}
    rows = targets(results)
    assert [target for name, target, _, _ in rows if name == "1 compute"] == [
        "training at 128x128: >= 0.60 of matmul peak"]
    verdicts = {name: met for name, _, _, met in rows}
    assert verdicts["1 compute"] is True and verdicts["2 pipeline"] is False
    assert verdicts["4 mixed precision"].startswith("n/a: no native bf16")
