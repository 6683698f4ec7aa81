"""The documents stay true to the code: cited tests exist, links resolve, numbers match their
source, the public API is small and every example in it runs."""

import ast
import json
import re

import pytest
from conftest import REPO


def defined_tests(path):
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


@pytest.mark.parametrize("document", ["docs/RELIABILITY.md"])
def test_every_cited_test_exists(document):
    text = (REPO / document).read_text()
    defined = set().union(*(defined_tests(path) for path in (REPO / "tests").glob("test_*.py")))
    cited = re.findall(r"`(?:tests/[\w/]+\.py::)?(test_\w+)", text)
    assert len(cited) > 20
    assert sorted(set(cited) - defined) == []


def test_every_public_function_and_class_has_an_example():
    import inspect

    import segment

    missing = [name for name in segment.__all__
               if (inspect.isfunction(getattr(segment, name))
                   or inspect.isclass(getattr(segment, name))
                   and not issubclass(getattr(segment, name), Exception))
               and "Example:" not in (getattr(segment, name).__doc__ or "")]
    assert missing == []


def test_top_level_examples_run_or_say_why_not():
    import segment

    skipped = [name for name in segment.__all__
               if "+SKIP" in (getattr(getattr(segment, name), "__doc__", None) or "")
               and "Skipped under doctest:" not in getattr(segment, name).__doc__]
    assert skipped == []


def test_public_api_is_small_and_former_names_still_work():
    import segment

    assert len(segment.__all__) <= 35
    assert sorted(set(segment.__all__) & set(segment._FORMER_NAMES)) == []
    for name, module in segment._FORMER_NAMES.items():
        assert getattr(segment, name) is getattr(getattr(segment, module), name)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        segment.no_such_name  # noqa: B018


def test_modules_stay_under_400_lines_and_the_readme_under_200():
    long = {path.name: count for path in (REPO / "segment").glob("*.py")
            if (count := len(path.read_text().splitlines())) > 400}
    assert long == {}
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


def test_each_layer_imports_only_from_the_layers_above_it():
    # The layers as docs/ARCHITECTURE.md's table gives them, top first; its one exception:
    # augment.py crops training images with the second look's own box.
    table = (REPO / "docs" / "ARCHITECTURE.md").read_text().split("## Layers")[1].split("##")[0]
    layers = [re.findall(r"`(\w+)\.py`", row) for row in table.splitlines()[4:] if row]
    rank = {module: index for index, modules in enumerate(layers) for module in modules}
    assert set(rank) == {path.stem for path in (REPO / "segment").glob("*.py")} - {
        "__init__", "_version"}  # every module is in the table
    upward = {(module, imported) for module in rank for imported in re.findall(
        r"^from \.(\w+) import", (REPO / "segment" / f"{module}.py").read_text(), re.M)
        if rank.get(imported, -1) > rank[module]}
    assert upward == {("augment", "second_look")}


DOCUMENTS = ["README.md", *sorted(str(path.relative_to(REPO)) for path in (REPO / "docs").glob(
    "*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_local_links_resolve(document):
    path = REPO / document
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    local = [target for target in targets if "://" not in target]
    assert [target for target in local if not (path.parent / target).exists()] == []


def test_nothing_cites_a_document_outside_the_repository():
    texts = [*(REPO / "segment").glob("*.py"), *(REPO / "benchmarks").glob("*.py"),
             *(REPO / "tests").glob("*.py"), *(REPO / "docs").glob("*.md"), REPO / "README.md"]
    citing = [path.name for path in texts
              if re.search(r"DESIGN(\.md| §)|STYLE\.md|shared/(DESIGN|STYLE)", path.read_text())
              and path.name != "test_docs.py"]
    assert citing == []


def assert_rows_match(lines, rows, columns):
    """Each table row whose first cell holds a label shows its scores' `columns` next (HD95 to
    1 decimal, the rest to 3) and, in its last cell, its training time where one is given."""
    for label, (scores, seconds) in rows.items():
        (line,) = [line for line in lines if line.startswith("|") and label in line]
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[1:1 + len(columns)] == [
            f"{scores[name]:.{1 if name.startswith('hd95') else 3}f}" for name in columns], label
        if seconds is not None:
            assert cells[-1] == f"{seconds / 60:.1f} min", label


def test_readme_results_tables_are_the_benchmark_record():
    # One source for each number: the README's ISIC 2018 rows are benchmarks/results.json's.
    stored = json.loads((REPO / "benchmarks" / "results.json").read_text())
    results, pretrained = stored["isic2018"], stored["pretrained"]
    lines = (REPO / "README.md").read_text().splitlines()
    assert_rows_match(lines, {
        "the command above (20 epochs, float32)": (results["recipe"]["plain"],
                                                   results["recipe"]["train_seconds"]),
        "same model, `--tta --postprocess`": (results["recipe"]["tta+postprocess"], None),
        "best on validation": (results["changes"]["128-flips-bf16"]["plain"],
                               results["changes"]["128-flips-bf16"]["train_seconds"]),
        "MONAI DynUNet (the peer)": (results["peer"]["plain"], results["peer"]["train_seconds"]),
    }, ("mean_dice", "median_dice", "isic_score"))
    full, recipe, ensemble = pretrained["full"], pretrained["recipe"], pretrained["ensemble"]
    assert_rows_match(lines, {
        "from scratch, the command above, on this machine": (recipe["plain"],
                                                            recipe["train_seconds"]),
        "`--encoder efficientnet_lite0`": (full["plain"], full["train_seconds"]),
        "that model, `--tta --postprocess` |": (full["tta+postprocess"], None),
        "ensemble of the two, `--tta`": (ensemble["tta"], None),
    }, ("mean_dice", "median_dice", "isic_score", "pooled_dice"))
    large = stored["pretrained_large"]["large"]
    assert_rows_match(lines, {
        "`--encoder efficientnet_lite0 --size 224 --epochs 15`": (large["plain"],
                                                                  large["train_seconds"]),
        "that 224² model, `--tta --postprocess`": (large["tta+postprocess"], None),
    }, ("mean_dice", "median_dice", "isic_score", "pooled_dice"))
    # The README's bf16 run: trained by the library as it is (the encoder's batch norms folded in
    # training, each upsampling module one transposed convolution, the stride-1 depthwise
    # gradients as forward convolutions), scored by bench_depthwise_gradients.py.
    encoders, bf16 = stored["encoders"], stored["depthwise_gradients"]
    assert_rows_match(lines, {
        "that command + `--mixed-precision --validate-every 3`": (bf16["plain"],
                                                                  bf16["train_seconds"]),
        "that bf16 model, `--tta --postprocess`": (bf16["tta+postprocess"], None),
        "`--encoder efficientnet_lite1 --size 256": (encoders["256-lite1"]["plain"], None),
        "`--encoder efficientnet_lite2 --size 256": (encoders["256-lite2"]["plain"], None),
    }, ("mean_dice", "median_dice", "isic_score", "pooled_dice"))


def test_docs_isic2018_table_is_the_benchmark_record():
    results = json.loads((REPO / "benchmarks" / "results.json").read_text())["isic2018"]
    changes = results["changes"]
    runs = {  # row label in docs/RESULTS.md -> (the run's record, which scores)
        "recipe below (float32)": (results["recipe"], "plain"),
        "same model, `--tta --postprocess`": (results["recipe"], "tta+postprocess"),
        "`--augment flips --mixed-precision --epochs 30`": (changes["128-flips-bf16"], "plain"),
        "`--augment full --mixed-precision --epochs 30`": (changes["128-full-bf16"], "plain"),
        "`--augment full --mixed-precision --epochs 90`": (changes["128-full-bf16-90"], "plain"),
        "`--size 256 --augment flips": (changes["256-flips-bf16"], "plain"),
        "MONAI DynUNet": (results["peer"], "plain"),
        "recipe with `--mixed-precision` (bf16)": (results["bf16"], "plain"),
    }
    page = (REPO / "docs" / "RESULTS.md").read_text()
    lines = page.split("## ISIC 2018")[1].split("\n## ")[0].splitlines()  # that section only
    for label, (run, variant) in runs.items():
        (line,) = [line for line in lines if line.startswith("|") and label in line]
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        scores = run[variant]
        assert cells[2:6] == [f"{scores[name]:.3f}" for name in (
            "mean_dice", "median_dice", "mean_jaccard", "isic_score")], label
        if "hd95_median" in scores:
            assert cells[6] == f"{scores['hd95_median']:.1f}", label
        if variant == "plain":
            best = f" ({run['best_epoch']})" if "best_epoch" in run else ""
            assert cells[1] == f"{run['epochs']}{best}", label
            assert cells[7] == f"{run['train_seconds'] / 60:.1f} min", label


def test_docs_pretrained_table_is_the_benchmark_record():
    pretrained = json.loads((REPO / "benchmarks" / "results.json").read_text())["pretrained"]
    full, recipe, ensemble = pretrained["full"], pretrained["recipe"], pretrained["ensemble"]
    page = (REPO / "docs" / "RESULTS.md").read_text()
    lines = page.split("## ISIC 2018 with the pretrained encoder")[1].split("\n## ")[0].splitlines()
    assert_rows_match(lines, {
        "from scratch, the recipe (README's command)": (recipe["plain"], recipe["train_seconds"]),
        "from scratch, `--tta --postprocess`": (recipe["tta+postprocess"], None),
        "`--encoder efficientnet_lite0`, batch norms frozen": (full["plain"],
                                                               full["train_seconds"]),
        "Lite0, `--tta --postprocess`": (full["tta+postprocess"], None),
        "ensemble of the two, plain": (ensemble["plain"], None),
        "ensemble of the two, `--tta`": (ensemble["tta"], None),
    }, ("mean_dice", "median_dice", "isic_score", "pooled_dice", "hd95_median"))


def test_docs_encoder_learning_rate_table_is_the_benchmark_record():
    tuning = json.loads((REPO / "benchmarks" / "results.json").read_text())[
        "pretrained_tuning"]["tuning"]
    page = (REPO / "docs" / "RESULTS.md").read_text()
    lines = page.split("## ISIC 2018 with the pretrained encoder")[1].split("\n## ")[0].splitlines()
    for label, run in {"**the rest's**": "128-lite0-train25-bn-frozen",
                       "`--encoder-lr-scale 0.1`": "128-lite0-train25-encoder-lr0.1",
                       "`--encoder-frozen-epochs 2`": "128-lite0-train25-encoder-frozen2"}.items():
        (line,) = [line for line in lines if line.startswith("|") and label in line]
        scores = tuning[run]
        assert [cell.strip() for cell in line.strip("|").split("|")][1:] == [
            f"{scores['best_val_dice']:.3f} ({scores['best_epoch']})",
            f"{scores['plain']['mean_dice']:.3f}", f"{scores['median_epoch_seconds']:.1f} s"], label


def test_docs_224_table_is_the_benchmark_record():
    part = json.loads((REPO / "benchmarks" / "results.json").read_text())["pretrained_large"]
    large, recipe = part["large"], part["recipe"]
    page = (REPO / "docs" / "RESULTS.md").read_text()
    lines = page.split("**At 224×224**")[1].split("**Targets**")[0].splitlines()
    assert_rows_match(lines, {
        "from scratch, the recipe at 128²": (recipe["plain"], recipe["train_seconds"]),
        "`--encoder efficientnet_lite0 --size 224 --epochs 15`": (large["plain"],
                                                                  large["train_seconds"]),
        "Lite0 at 224², `--tta --postprocess`": (large["tta+postprocess"], None),
        "ensemble of it and the recipe, plain": (large["ensemble"]["plain"], None),
        "ensemble of it and the recipe, `--tta`": (large["ensemble"]["tta"], None),
    }, ("mean_dice", "median_dice", "isic_score", "pooled_dice", "hd95_median"))
    assert large["epochs"] == 15 and f"{large['against_recipe']['mean_dice_difference']:+.4f} ± " \
        f"{large['against_recipe']['standard_error']:.4f}" in page
