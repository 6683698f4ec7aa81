"""train_and_evaluate / load_and_evaluate: the drivers' workflow as library calls."""

import html
import json
import logging
import re

import segment
from segment import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
    RunFolder,
    TrainConfig,
    load_and_evaluate,
    train_and_evaluate,
)
from segment.files import file_sha256
from segment.provenance import check_unseen, seen_note

import pytest

# Which files a run reads and writes, tested without tracing graphs (conftest.keras_eagerly).
pytestmark = pytest.mark.usefixtures("keras_eagerly")

TINY = RunConfig(data=DataConfig(image_size=(32, 32), batch_size=4, cache="disk"),
                 model=ModelConfig(base_filters=2, depth=2),
                 train=TrainConfig(epochs=1),
                 evaluation=EvalConfig(threshold=0.3, postprocess=True, num_examples=2))


@pytest.mark.slow
def test_rerun_with_another_seed_never_reads_the_first_runs_cache_or_model(synthetic_pairs,
                                                                           tmp_path, caplog):
    # Problem 1 of the run-folder issue: --overwrite --seed 1 read the old split's cache.
    with caplog.at_level(logging.INFO, logger="segment.workflow"):
        first = train_and_evaluate(synthetic_pairs[:15], tmp_path, TINY, verbose=0,
                                   progress=False)
    assert "model: improved_unet, encoder improved_unet, " in caplog.text  # the log names both
    first_caches = sorted(path.name for path in (tmp_path / "cache").rglob("*.index"))
    assert first.results.summary["settings"]["threshold"] == 0.3
    with pytest.raises(segment.RunFolderError, match="already holds a finished run"):
        train_and_evaluate(synthetic_pairs[:15], tmp_path, TINY, verbose=0, progress=False)
    reseeded = RunConfig(data=DataConfig(image_size=(32, 32), batch_size=4, cache="disk",
                                         seed=1), model=TINY.model, train=TINY.train)
    second = train_and_evaluate(synthetic_pairs[:15], tmp_path, reseeded, overwrite=True,
                                verbose=0, progress=False)
    assert [pair.id for pair in second.split.train] != [pair.id for pair in first.split.train]
    manifest = json.loads((tmp_path / "split.json").read_text())
    assert [entry["id"] for entry in manifest["train"]] == [p.id for p in second.split.train]
    second_caches = sorted(path.name for path in (tmp_path / "cache").rglob("*.index"))
    assert len(second_caches) == 2 and not set(second_caches) & set(first_caches)
    config = json.loads((tmp_path / "config.json").read_text())
    assert RunConfig.from_dict(config) == reseeded  # config.json is the configs, whole
    assert config["pairs"]["count"] == 15 and config["versions"]["segment"]
    assert isinstance(second.run, RunFolder) and second.run.state == "finished"


def test_an_unreadable_config_json_is_named_not_replaced_by_the_defaults(synthetic_pairs,
                                                                         tmp_path):
    # config.json records the evaluation settings chosen at training (--tta, a threshold, ...):
    # evaluating with the defaults instead would silently score another way.
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    segment.save_model(segment.create_model((32, 32, 3), base_filters=2, depth=3), run.model)
    folder = synthetic_pairs[0].image_path.parent
    for text, problem in [('{"evaluation": {"tta": true}', "Expecting ',' delimiter"),
                          ("[1]", "it holds a JSON list, not an object")]:
        run.config.write_text(text)
        expected = re.escape(f"'{run.config}' cannot be read ({problem}") + ".*repair it, or move"
        with pytest.raises(segment.SegmentError, match=expected):
            load_and_evaluate(run.model, synthetic_pairs[:2], out_dir=tmp_path / "out",
                              progress=False)
        with pytest.raises(segment.SegmentError, match=expected):
            segment.load_and_predict(run.model, folder, tmp_path / "masks", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "masks").exists()


def test_load_and_evaluate_takes_size_and_settings_from_config_json(synthetic_pairs,
                                                                    tmp_path, caplog):
    # A model that accepts any size: without config.json the size would have to be repeated.
    segment.set_seed(0)
    model = segment.create_model((None, None, 3), base_filters=2, depth=2)
    run = RunFolder(tmp_path / "run")
    run.begin({**TINY.to_dict(), "versions": {}})
    segment.save_model(model, run.model)
    segment.save_split(segment.train_val_test_split(synthetic_pairs[:10]), run.split)
    _, report, part = load_and_evaluate(run.model, progress=False)
    assert part == f"test part of {run.split}"
    settings = report.summary["settings"]
    assert settings["image_size"] == [32, 32] and settings["threshold"] == 0.3
    assert settings["postprocess"] is True
    assert (run.evaluation_dir / "report.html").exists()
    # An earlier evaluation's list of unreadable files does not outlive it.
    (run.evaluation_dir / "skipped_files.txt").write_text("gone.jpg\tcannot be decoded\n")
    with caplog.at_level("INFO", logger="segment.workflow"):
        _, again, _ = load_and_evaluate(run.model, threshold=0.6, overwrite=True,
                                        progress=False)
    assert again.summary["settings"]["threshold"] == 0.6  # an explicit setting wins
    assert "evaluation settings (config.json beside the model; threshold set here): " \
           "EvalConfig(threshold=0.6, " in caplog.text
    assert not (run.evaluation_dir / "skipped_files.txt").exists()
    with pytest.raises(segment.RunFolderError, match="already holds a report"):
        load_and_evaluate(run.model, progress=False)
    # Scored on pairs it trained or validated on, one model is scored, and said not to be tested.
    split = segment.load_split(run.split)
    seen = sorted(pair.id for pair in [*split.train, *split.val])
    _, _, part = load_and_evaluate(run.model, synthetic_pairs[:10], out_dir=tmp_path / "all",
                                   progress=False)
    assert part == (f"all given; {len(seen)} of them in the train and validation parts of "
                    f"{run.split} (e.g. {seen[0]}): not a test score")
    assert json.loads((tmp_path / "all" / "summary.json").read_text())["scored"] == part
    assert f"<p>Scored: {html.escape(part)}.</p>" in (tmp_path / "all" / "report.html").read_text()
    assert report.summary["scored"] == f"test part of {run.split}"


def test_train_fraction_trains_on_a_nested_share_and_keeps_validation_and_test(synthetic_pairs,
                                                                              tmp_path):
    # Learning curves: each point trains on more of the same training part, scored on the same
    # validation and test parts.
    pairs = synthetic_pairs[:40]
    full = segment.train_val_test_split(pairs, seed=0)
    splits = {}
    for fraction in (0.25, 0.5):
        config = RunConfig(data=DataConfig(image_size=(32, 32), batch_size=4,
                                           train_fraction=fraction),
                           model=TINY.model, train=TINY.train)
        outcome = train_and_evaluate(pairs, tmp_path / str(fraction), config, verbose=0,
                                     progress=False)
        splits[fraction] = outcome.split
        assert (outcome.split.val, outcome.split.test) == (full.val, full.test)
        assert len(outcome.split.train) == round(fraction * len(full.train))
        manifest = json.loads((tmp_path / str(fraction) / "split.json").read_text())
        assert len(manifest["train"]) == len(outcome.split.train)
        recorded = json.loads((tmp_path / str(fraction) / "config.json").read_text())
        assert recorded["data"]["train_fraction"] == fraction
    quarter, half = ({pair.id for pair in splits[f].train} for f in (0.25, 0.5))
    assert quarter < half <= {pair.id for pair in full.train}
    ids = [pair.id for pair in splits[0.5].train]
    assert ids == sorted(ids) and ids != [pair.id for pair in full.train][:len(ids)]
    with pytest.raises(ValueError, match="train_fraction must be in"):
        DataConfig(train_fraction=0)


def test_a_given_split_is_trained_and_scored_as_it_is_and_recorded(synthetic_pairs, tmp_path):
    # ISIC 2017's own train / validation / test parts, or another run's split.json: used whole,
    # saved as the run's manifest, and part of the settings a resume must match.
    pairs = list(synthetic_pairs[:16])
    given = segment.Split(pairs[4:14], pairs[:4], pairs[14:])  # not what 6:2:2 draws
    config = RunConfig(data=DataConfig(image_size=(32, 32), batch_size=4), model=TINY.model,
                       train=TINY.train)
    outcome = train_and_evaluate(given, tmp_path / "run", config, verbose=0, progress=False)
    assert outcome.split == given and outcome.results.summary["count"] == 2
    assert segment.load_split(tmp_path / "run" / "split.json") == given
    manifest = json.loads((tmp_path / "run" / "split.json").read_text())
    assert "seed" not in manifest  # it was not drawn with one
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    folder = {kind: [str(getattr(pairs[0], f"{kind}_path").parent)] for kind in ("image", "mask")}
    assert recorded["source"] == {kind + "s": dict.fromkeys(["train", "val", "test"], folder[kind])
                                  for kind in ("image", "mask")}  # where its files lie
    assert len(recorded["pairs"]["parts"]) == 3
    swapped = segment.Split(pairs[:10], pairs[10:14], pairs[14:])  # the same pairs, other parts
    with pytest.raises(segment.RunFolderError, match="pairs.parts"):
        train_and_evaluate(swapped, tmp_path / "run", config, verbose=0, progress=False)
    with pytest.raises(segment.PairingError, match=re.escape(
            f"a given split holds each id in one part; 2 ids are in more than one: "
            f"{pairs[9].id} (train, val), {pairs[10].id} (val, test)")):
        train_and_evaluate(segment.Split(pairs[:10], pairs[9:12], pairs[10:11]),
                           tmp_path / "other", config, verbose=0, progress=False)
    with pytest.raises(segment.PairingError, match="needs a training part; it has none"):
        train_and_evaluate(segment.Split([], pairs[9:12], []), tmp_path / "other", config)
    with pytest.raises(ValueError, match="a given split is used whole"):
        train_and_evaluate(given, tmp_path / "other", RunConfig(data=DataConfig(
            image_size=(32, 32), train_fraction=0.5), model=TINY.model), verbose=0)
    assert not (tmp_path / "other").exists()  # refused before anything is written


def test_fine_tuning_starts_only_where_its_first_model_saw_none_of_the_scored_pairs(
        synthetic_pairs, tmp_path):
    pairs = list(synthetic_pairs[:16])
    config = RunConfig(data=DataConfig(image_size=(32, 32), batch_size=4), model=TINY.model,
                       train=TINY.train)
    train_and_evaluate(segment.Split(pairs[4:14], pairs[:2], pairs[14:]), tmp_path / "first",
                       config, verbose=0, progress=False)
    first = tmp_path / "first" / "model.keras"
    with pytest.raises(ValueError, match="build it with the model settings it was trained with "
                                         "\\(encoder='improved_unet', encoder_batchnorm='frozen', "
                                         "base_filters=2, depth=2, num_classes=1, "
                                         "deep_supervision=True, colour_constancy=False, "
                                         "standardize_input=False\\); the train driver "
                                         "does when its model flags are left out$"):
        segment.saving.start_from(segment.create_model((32, 32, 3), base_filters=4, depth=3),
                                  first)
    tuned = config.replace(init_model=first)
    with pytest.raises(segment.SegmentError, match=(
            "first/model.keras' trained or chose its best epoch on 2 of the 2 pairs this run is "
            "to be scored on \\(e.g. SYNTH_0000004, in the train and validation parts of "
            ".*first/split.json\\)")):
        train_and_evaluate(segment.Split(pairs[8:14], pairs[:2], pairs[4:6]), tmp_path / "leaky",
                           tuned, verbose=0, progress=False)
    assert not (tmp_path / "leaky").exists()  # refused before anything is written
    train_and_evaluate(segment.Split(pairs[4:12], pairs[12:14], pairs[14:]), tmp_path / "second",
                       tuned, verbose=0, progress=False)
    recorded = json.loads((tmp_path / "second" / "config.json").read_text())
    assert recorded["train"]["init_model"] == str(first)
    assert recorded["init_model_sha256"] == file_sha256(first)
    # What the first model validated on, the second saw through it: a later score notes it.
    second = tmp_path / "second" / "model.keras"
    assert "2 of them in the train and validation parts of " + str(
        tmp_path / "first" / "split.json") in seen_note(pairs[:2], second)
    with pytest.raises(segment.SegmentError, match="first/split.json"):
        check_unseen(pairs[:2], [second])
    first.write_bytes(first.read_bytes() + b"changed")  # no longer the file it started from
    assert seen_note(pairs[:2], second) == ""
    with pytest.raises(segment.SegmentError, match="or that model's file changed since"):
        check_unseen(pairs[:2], [second])
