"""A model trained for the second look's crops (`--lesion-crops`) against the README's Lite0 run.

    .venv/bin/python benchmarks/bench_lesion_crops.py          # about 45 min (with the baseline's
                                                               # run reused; 80 min more without)
    .venv/bin/python benchmarks/bench_lesion_crops.py --quick  # a smoke run

The baseline is the README's pretrained command (bench_encoders.BASELINE: Lite0 at 224x224,
15 epochs; run folder isic2018-224-lite0, reused when it holds that finished run). The crop
model is the same command with `lesion_crops=SHARE` (run folder isic2018-224-lite0-crops<N>),
so it trains as long as the baseline, within the issue's 60 minutes. On the crop model,
bench_second_look.measure chooses the second look's margin and largest box on the validation
part and scores the test part: one pass and the second look, plain and with TTA, each paired
image by image with the baseline's one pass (mean difference ± standard error, which of its 20
worst test images it fixes and which images it breaks), with per-size bins and the count below
0.6. Same data, split (6:2:2, seed 0) and test part as bench_isic2018.py.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import segment

import bench_isic2018 as isic
import bench_second_look
from bench_encoders import BASELINE, QUICK

SHARE = 0.5  # of the training images shown as a crop around their lesion each epoch


def measure(data, runs, baseline, share, margins, shares):
    """The module docstring's runs: a dict of their results."""
    _, base_run = isic.trained(data, runs / f"isic2018-{baseline.data.image_size[0]}-lite0",
                               baseline)
    name = f"isic2018-{baseline.data.image_size[0]}-lite0-crops{round(share * 100)}"
    model, run = isic.trained(data, runs / name, baseline.replace(lesion_crops=share))
    base_scores, scores = isic.run_scores(base_run), isic.run_scores(run)
    looked = bench_second_look.measure(model, segment.load_split(run.split), margins, shares,
                                       baseline=isic.test_dice(base_run))
    return {"baseline": {"run": base_run.path.name, **base_scores},
            "crops": {"run": name, "lesion_crops": share, **scores, **looked}}


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, lambda data, runs, args: measure(
        data, runs, *((QUICK, SHARE, (0.5,), (0.5,)) if args.quick else (
            BASELINE, SHARE, bench_second_look.MARGINS, bench_second_look.WHOLE_VIEW_SHARES))))
