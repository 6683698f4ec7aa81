"""The review page at ISIC 2018 scale: its folder's size, the cost of its pictures, and how soon a
browser shows its table.

    .venv/bin/python benchmarks/bench_review.py           # 530 pairs of ../shared/data/isic2018-512
    .venv/bin/python benchmarks/bench_review.py --quick   # a smoke run: 16 synthetic pairs
    .venv/bin/python benchmarks/bench_review.py --screenshots docs/images   # and the README's

1. A small network (base 8 filters, 128x128) trained for 2 epochs on 400 other pairs, so that
   its masks and probability maps look like a model's, not like noise (the page's size depends
   on them; its quality does not matter here).
2. `evaluate` on 530 pairs at 512x512 without and then with `review=True`: the seconds per image
   that the pictures add to the evaluation's one pass.
3. `results(..., run_dir=...)`: the size of `review.html` and `review/` together.
4. Debian's Chromium (through Playwright, `make test-browser` installs both) opens the page from
   the disk: milliseconds from the start of navigation until every row of the table is shown,
   the median of 3 loads. With --screenshots, the table and the detail view of its worst
   image are saved there as review_table.png and review_detail.png.

Prints one JSON object; benchmarks/RESULTS.md records the numbers.
"""

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import segment
from segment.training import compile_model

from measure import run_eagerly, seconds

ISIC2018_512 = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2018-512"
CHROMIUM = Path("/usr/bin/chromium")


def trained_model(pairs, size, epochs):
    segment.training.set_seed(0)
    model = segment.create_model((size, size, 3), base_filters=8)
    compile_model(model)
    model.fit(segment.create_generator(pairs, image_size=(size, size), batch_size=8,
                                       shuffle=True), epochs=epochs, verbose=0,
              shuffle=False)  # the pipeline shuffles
    return model


def folder_bytes(folder):
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def table_milliseconds(page_path, num_rows, screenshots=None, loads=3):
    """Median ms from navigation start until the page's table holds all `num_rows` rows; the
    screenshots of the table and of its first row's detail view into `screenshots`, if given."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        for _ in range(loads):
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(page_path.as_uri(), wait_until="commit")
            # functions, not expressions: Playwright polls an expression with eval, which the
            # page's Content-Security-Policy refuses
            page.wait_for_function(f"() => document.querySelectorAll('#rows tbody tr').length "
                                   f"=== {num_rows}", polling="raf")
            times.append(page.evaluate("performance.now()"))
        if screenshots is not None:
            page.wait_for_load_state("load")  # every thumbnail
            page.screenshot(path=Path(screenshots) / "review_table.png")
            page.click("#rows tbody tr")
            page.wait_for_load_state("load")
            page.wait_for_function("() => [...document.querySelectorAll('#panels img')]"
                                   ".every(image => image.complete)")
            page.screenshot(path=Path(screenshots) / "review_detail.png")
        browser.close()
    return statistics.median(times)


def measure(train_pairs, pairs, size, epochs, screenshots=None):
    model = trained_model(train_pairs, size, epochs)
    segment.evaluate(model, pairs[:8], progress=False)  # traces the model, not counted
    plain = seconds(lambda: segment.evaluate(model, pairs, progress=False))
    with_review = seconds(lambda: segment.evaluate(model, pairs, progress=False, review=True))
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder)
        segment.results(model, pairs, run_dir=run, progress=False)
        review_bytes = folder_bytes(run / "review") + (run / "review.html").stat().st_size
        page_ms = (table_milliseconds(run / "review.html", len(pairs), screenshots)
                   if CHROMIUM.is_file() else None)
    return {"images": len(pairs), "network": [size, size], "train_epochs": epochs,
            "evaluate_seconds": plain, "evaluate_with_review_seconds": with_review,
            "review_ms_per_image": 1000 * (with_review - plain) / len(pairs),
            "review_mb": review_bytes / 2**20, "review_kb_per_image": review_bytes / 1024
            / len(pairs), "table_shown_ms": page_ms,
            **({} if page_ms is not None else {"browser": f"no Chromium at {CHROMIUM}"})}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 16 synthetic pairs, functions run eagerly")
    parser.add_argument("--screenshots", type=Path, metavar="FOLDER",
                        help="save the page's table and detail view there as PNG")
    args = parser.parse_args()
    if args.quick:
        run_eagerly()
        with tempfile.TemporaryDirectory() as folder:
            segment.make_synthetic_dataset(folder, 24, size=(96, 96), seed=0)
            pairs = segment.find_pairs(folder)
            results = measure(pairs[:8], pairs[8:], 32, 1)
    else:
        pairs = segment.find_pairs(ISIC2018_512)
        results = measure(pairs[:400], pairs[-530:], 128, 2, args.screenshots)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
