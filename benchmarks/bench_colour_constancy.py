"""Shades of Gray colour constancy (`--colour-constancy`) against the README's bf16 run.

    .venv/bin/python benchmarks/bench_colour_constancy.py          # about 40 min (the README's
                                                                   # run reused)
    .venv/bin/python benchmarks/bench_colour_constancy.py --quick  # a smoke run

Dermoscopy images differ in the colour of their lighting (lamps, cameras, contact plates and
gel), and colour constancy, which divides each image's channels by an estimate of its
illuminant, is the standard preprocessing of ISIC images (Shades of Gray, p = 6). The
candidate is the README's bf16 command (Lite0 at 224x224, `--mixed-precision --validate-every
3`, 15 epochs) with `--colour-constancy`: a parameter-free layer at the model's input corrects
each image, in training and in prediction (segment/colour_constancy.py; run folder
isic2018-224-lite0-bf16-colour-constancy). The baseline is the README's run of the time
(isic2018-224-lite0-bf16-folded-f32bias, reused; trained when missing with the library as it
is, whose stride-1 depthwise gradients differ from that run's: bench_depthwise_gradients.py).
Both are scored on the test part, plain and with TTA + post-processing, and paired image by
image as bench_artifacts.py pairs its candidate. On a CPU without native bf16 the benchmark
says so and trains nothing.

Prints one JSON object; benchmarks/RESULTS.md and docs/RESULTS.md record the numbers.
"""

import bench_isic2018 as isic
from bench_artifacts import against_the_readme_run

KEY = "colour_constancy"


def main(data, runs, args):
    return against_the_readme_run(data, runs, args.quick, {"colour_constancy": True},
                                  "colour-constancy", KEY)


if __name__ == "__main__":
    isic.quick_or_full_main(__doc__, main)
