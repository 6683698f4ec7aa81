"""The configs: checked values, keyword overrides, the round trip through config.json."""

import json

from segment import DataConfig, EvalConfig, ModelConfig, RunConfig, TrainConfig
from segment.config import with_overrides

import pytest


@pytest.mark.parametrize("make, message", [
    (lambda: DataConfig(image_size=(0, 32)), "Received: image_size=\\(0, 32\\)"),
    (lambda: DataConfig(batch_size=0), "Received: batch_size=0"),
    (lambda: DataConfig(ratios=(0.5, 0.5, 0.5)), "summing to 1"),
    (lambda: DataConfig(cache="floppy"), "Received: cache='floppy'"),
    (lambda: DataConfig(augment="rotate"), "Received: augment='rotate'"),
    (lambda: DataConfig(lesion_crops=1.5), "Received: lesion_crops=1.5"),
    (lambda: DataConfig(artifacts=-0.5), "Received: artifacts=-0.5"),
    (lambda: ModelConfig(depth=1), "Received: depth=1"),
    (lambda: ModelConfig(dropout=1.0), "Received: dropout=1.0"),
    (lambda: TrainConfig(epochs=0), "Received: epochs=0"),
    (lambda: TrainConfig(learning_rate=0), "Received: learning_rate=0"),
    (lambda: TrainConfig(lr_decay=1.5), "Received: lr_decay=1.5"),
    (lambda: TrainConfig(lr_schedule="step"), "Received: lr_schedule='step'"),
    (lambda: TrainConfig(encoder_lr_scale=1.5), "Received: encoder_lr_scale=1.5"),
    (lambda: TrainConfig(encoder_frozen_epochs=-1), "Received: encoder_frozen_epochs=-1"),
    (lambda: TrainConfig(validate_every=0), "Received: validate_every=0"),
    (lambda: TrainConfig(first_epochs=2), "first_size and first_epochs go together.*"
                                          "Received: first_size=None, first_epochs=2"),
    (lambda: TrainConfig(epochs=3, first_epochs=3, first_size=64),
     "first_epochs below epochs. Received: first_size=64, first_epochs=3, epochs=3"),
    (lambda: TrainConfig(epochs=3, first_epochs=1, first_size=(0, 64)),
     "first_size must be \\(height, width\\) with positive sides"),
    (lambda: RunConfig(train=TrainConfig(epochs=3, first_epochs=1, first_size=(40, 64))),
     "divisible by 2 \\*\\* \\(depth - 1\\) = 16 for depth=5. Received: size=40x64"),
    (lambda: RunConfig(train=TrainConfig(encoder_lr_scale=0.1)),
     "apply to a pretrained encoder; the model has encoder='improved_unet'"),
    (lambda: TrainConfig(epochs=3, encoder_frozen_epochs=3),
     "encoder_frozen_epochs must be below epochs.*Received: encoder_frozen_epochs=3, epochs=3"),
    (lambda: RunConfig(model=ModelConfig(encoder="efficientnet_lite0", encoder_batchnorm="train"),
                       train=TrainConfig(epochs=3, encoder_frozen_epochs=1)),
     "needs encoder_batchnorm='frozen'"),
    (lambda: ModelConfig(encoder_weights="lite0.pth"),
     "encoder_weights applies to a pretrained encoder"),
    (lambda: EvalConfig(threshold=1.0), "Received: threshold=1.0"),
    (lambda: EvalConfig(batch_size=-1), "Received: batch_size=-1"),
    (lambda: RunConfig(data=DataConfig(image_size=(100, 100))), "divisible by 2 \\*\\* \\(depth"),
])
def test_bad_values_are_refused_with_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_augment_is_a_name_and_old_config_json_booleans_still_read():
    with pytest.raises(ValueError, match="Unknown augment. Received: augment=True"):
        DataConfig(augment=True)
    # config.json of versions before 0.1.0 recorded true / false
    assert [RunConfig.from_dict({"data": {"augment": value}}).data.augment
            for value in (True, False, "flips")] == ["full", "none", "flips"]


def test_pretrained_runs_written_before_encoder_batchnorm_read_as_trained_batch_norms():
    def batchnorm(model_settings):
        return RunConfig.from_dict({"model": model_settings}).model.encoder_batchnorm

    assert batchnorm({"encoder": "efficientnet_lite0"}) == "train"  # what those runs did
    assert batchnorm({"encoder": "efficientnet_lite0", "encoder_batchnorm": "frozen"}) == "frozen"
    assert batchnorm({}) == ModelConfig.encoder_batchnorm == "frozen"


def test_overrides_replace_fields_and_unknown_names_are_type_errors():
    config = with_overrides(EvalConfig(tta=True), EvalConfig, {"threshold": 0.3})
    assert (config.tta, config.threshold) == (True, 0.3)
    with pytest.raises(TypeError, match="unknown EvalConfig setting\\(s\\): thresold"):
        with_overrides(None, EvalConfig, {"thresold": 0.3})
    with pytest.raises(TypeError, match="expected a EvalConfig"):
        with_overrides(TrainConfig(), EvalConfig, {})


def test_config_json_round_trip_keeps_every_setting():
    config = RunConfig(data=DataConfig(image_size=(64, 96), augment="full", cache="disk"),
                       model=ModelConfig(base_filters=8, depth=4, dropout=0.1, l2=0.0,
                                         deep_supervision=False, standardize_input=True),
                       train=TrainConfig(epochs=3, lr_schedule="cosine", loss="bce_dice"),
                       evaluation=EvalConfig(tta=True, threshold=0.4))
    written = json.loads(json.dumps(config.to_dict()))  # what config.json holds
    assert written["model"] == {"base_filters": 8, "depth": 4, "num_classes": 1, "dropout": 0.1,
                                "deep_supervision": False, "l2": 0.0, "leaky_relu_slope": 0.01,
                                "standardize_input": True, "colour_constancy": False,
                                "encoder": "improved_unet",
                                "encoder_batchnorm": "frozen", "encoder_weights": None}
    assert RunConfig.from_dict(written) == config
    with pytest.raises(ValueError, match="unknown TrainConfig settings: epoch"):
        RunConfig.from_dict({"train": {"epoch": 3}})
