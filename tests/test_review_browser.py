"""The review page in a real browser, as a person uses it: Debian's Chromium driven by
Playwright (`make test-browser` installs both). Skipped, with the reason, where either is absent.

The page is the one the library writes for a small synthetic evaluation whose file names and
folder hold spaces, quotes, `<` and `&`; one thumbnail is deleted, to be shown as missing.
"""

import os
import shutil
import sys
from pathlib import Path

import segment
from segment.comparison import compare_and_write

import pytest
from conftest import REPO

CHROMIUM = Path(os.environ.get("SEGMENT_CHROMIUM", "/usr/bin/chromium"))
HOSTILE_ID = "ISIC <b>&amp; \"x\" 'y'<i> 1"  # a file name: no "/"
# A function, not an expression: Playwright polls an expression with eval, which the page's
# Content-Security-Policy (no 'unsafe-eval') refuses whenever the first check is false.
IMAGES_LOADED = ("() => [...document.querySelectorAll('#panels img')]"
                 ".every(image => image.complete && image.naturalWidth > 0)")
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def review(synthetic_dir, tmp_path_factory):
    """(the page's file URL, its rows as written): 8 pairs, one named `HOSTILE_ID`."""
    playwright = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed: make test-browser")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: make test-browser installs Debian's")
    data = tmp_path_factory.mktemp("data") / "a folder's \"name\" <&>"
    for folder in ("images", "masks"):
        shutil.copytree(synthetic_dir / folder, data / folder)
    (data / "images" / "SYNTH_0000001.jpg").rename(data / "images" / f"{HOSTILE_ID}.jpg")
    (data / "masks" / "SYNTH_0000001_segmentation.png").rename(
        data / "masks" / f"{HOSTILE_ID}_segmentation.png")
    run = data / "run <&> 'here'"
    segment.training.set_seed(0)
    model = segment.create_model((32, 32, 3), base_filters=4, depth=3)
    pairs = segment.find_pairs(data)[:8]
    report = segment.results(model, pairs, run_dir=run, progress=False)
    compared = segment.results(model, pairs, run_dir=data / "compared", threshold=0.3,
                               progress=False)
    compare_and_write(compared, run)
    table = segment.review.review_table(run)
    table["thumbnail"].iloc[-1].unlink()  # the best row's thumbnail: a missing file
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser, (run / "review.html").as_uri(), report.table, table.index[-1], table[
            "thumbnail"].iloc[-1].name, (data / "compared" / "review.html").as_uri()
        browser.close()


@pytest.fixture
def page(review):
    """A fresh tab on the page (see `open_tab`)."""
    yield from open_tab(*review[:2], review[4])


@pytest.fixture
def compared_page(review):
    """A fresh tab on the page of an evaluation compared with the page's (`open_tab`)."""
    yield from open_tab(review[0], review[5], review[4])


def open_tab(browser, url, deleted):
    """A tab on `url`, recording every request and every console error but the one that the
    deleted thumbnail causes; both are checked when the test is done."""
    tab = browser.new_page()
    tab.requests, tab.errors = [], []

    def on_console(message):
        if message.type == "error" and not message.location["url"].endswith(deleted):
            tab.errors.append(message.text)

    tab.on("request", lambda request: tab.requests.append(request.url))
    tab.on("console", on_console)
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.goto(url)
    tab.wait_for_selector("#rows tbody tr")
    yield tab
    assert tab.errors == []
    assert [request for request in tab.requests if not request.startswith("file://")] == []
    tab.close()


def column(tab, index):
    """The texts of one column of the shown rows (0: thumbnail, 1: id, 2: dice, ...)."""
    return tab.eval_on_selector_all(
        "#rows tbody tr", f"rows => rows.map(row => row.cells[{index}].textContent)")


def test_rows_are_worst_first_and_sort_by_any_column(page, review):
    table = review[2]
    dice = table["dice"]  # the summary above the rows: the mean and its standard error
    assert (f"mean dice {dice.mean():.4f} \u00b1 {dice.std(ddof=1) / len(dice) ** 0.5:.4f}"
            in page.text_content("#summary-numbers"))
    assert column(page, 1) == list(table.sort_values("dice", kind="stable").index)
    page.click("#rows th[data-key='confidence']")
    confidence = [float(text) for text in column(page, 8)]
    assert confidence == sorted(confidence)
    page.click("#rows th[data-key='confidence']")  # again: the other way
    assert [float(text) for text in column(page, 8)] == sorted(confidence, reverse=True)


def test_filters_hide_the_rows_they_should(page, review):
    table = review[2]
    page.fill("#dice-below", "0.5")
    assert sorted(column(page, 1)) == sorted(table.index[table["dice"] < 0.5])
    page.fill("#dice-below", "")
    page.check("#flagged-only")
    assert column(page, 1) == list(table.index[table["flagged"]])
    page.uncheck("#flagged-only")
    page.select_option("#size", label="5-15 %")
    share = table["truth_area"] / (table["height"] * table["width"])
    assert sorted(column(page, 1)) == sorted(table.index[(share >= 0.05) & (share < 0.15)])
    assert page.text_content("#count") == f"showing {len(column(page, 1))} of {len(table)}"


def test_detail_shows_the_clicked_image_and_moves_with_the_keys(page):
    ids = column(page, 1)
    page.click("#rows tbody tr:nth-child(3)")
    assert page.is_visible("#detail") and page.text_content("#detail-id") == ids[2]
    files = page.eval_on_selector_all("#panels img", "images => images.map(i => i.src)")
    assert len({Path(src).name.split("_")[0] for src in files}) == 1 and len(files) == 6
    page.wait_for_function(IMAGES_LOADED)
    page.keyboard.press("ArrowRight")
    assert page.text_content("#detail-id") == ids[3]
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.text_content("#detail-id") == ids[1]
    page.eval_on_selector("#opacity", "slider => { slider.value = '0.2'; "
                          "slider.dispatchEvent(new Event('input')); }")
    assert page.eval_on_selector(".overlay", "overlay => overlay.style.opacity") == "0.2"
    page.keyboard.press("Escape")
    assert not page.is_visible("#detail")


def test_a_compared_page_shows_the_earlier_overlay_beside_the_new_one(compared_page):
    compared_page.click("#rows tbody tr:nth-child(2)")
    captions = compared_page.eval_on_selector_all(
        "#panels figcaption", "captions => captions.map(caption => caption.textContent)")
    assert captions[2].startswith("the earlier evaluation's overlay (") and len(captions) == 6
    overlays = compared_page.locator("#panels img.overlay")
    assert [Path(overlays.nth(index).get_attribute("src")).name.split("_", 1)[1]
            for index in range(2)] == ["overlay.png", "earlier_overlay.png"]
    compared_page.wait_for_function(IMAGES_LOADED)
    boxes = compared_page.eval_on_selector_all("#panels .stack", """stacks => stacks.map(
        stack => [...stack.children].map(one => JSON.stringify(one.getBoundingClientRect())))""")
    assert len(boxes) == 2 and all(image == overlay for image, overlay in boxes)  # exactly over
    compared_page.eval_on_selector("#opacity", "slider => { slider.value = '0.3'; "
                                   "slider.dispatchEvent(new Event('input')); }")
    assert compared_page.eval_on_selector_all(
        "#panels .overlay", "all => all.map(overlay => overlay.style.opacity)") == ["0.3"] * 2


def test_names_are_text_and_a_missing_picture_is_a_placeholder(page, review):
    assert HOSTILE_ID in column(page, 1) and page.locator("#rows b, #rows i").count() == 0
    missing = review[3]
    row = page.locator("#rows tbody tr", has_text=missing)
    assert row.locator(".missing").text_content() == "thumbnail: picture missing"
    thumbnails = page.locator("#rows tbody img")
    thumbnails.last.wait_for()
    assert page.eval_on_selector_all(
        "#rows tbody img", "images => images.every(i => i.complete && i.naturalWidth > 0)")
    # each loads as its row nears the view: a page of 530 rows shows its table twice as soon
    assert page.eval_on_selector_all("#rows tbody img",
                                     "images => images.every(i => i.loading === 'lazy')")


def test_benchmark_of_the_page_measures_its_size_and_load_time(review):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from run import run_benchmark, targets

    part = run_benchmark("review", quick=True)
    assert "error" not in part, part.get("error")
    assert part["images"] == 16 and 0 < part["review_kb_per_image"] < 200
    assert 0 < part["table_shown_ms"] < 60_000
    [row] = [row for row in targets({"review": part}) if row[0] == "10 review page"]
    assert row[2] == f"16 images: {part['review_mb']:.1f} MB, {part['table_shown_ms'] / 1000:.2f} s"
