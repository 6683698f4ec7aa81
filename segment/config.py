"""Settings with the paper's defaults (Isensee et al. 2017), in one place.

The library functions take these settings as keyword arguments whose defaults are read from
these dataclasses, and the command-line flags read theirs from here too. Every run writes the
settings it used to `config.json` beside the model.
"""

from dataclasses import dataclass

__all__ = ["DataConfig", "ModelConfig", "TrainConfig"]


@dataclass(frozen=True)
class DataConfig:
    image_size: tuple[int, int] = (256, 256)  # (height, width) fed to the network
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / val / test fractions
    batch_size: int = 16  # images per training step (the paper's seeds used 16)
    seed: int = 0  # split, shuffling, augmentation and weight initialisation


@dataclass(frozen=True)
class ModelConfig:
    input_shape: tuple = (256, 256, 3)  # (height, width, channels); (None, None, 3) builds too
    base_filters: int = 16  # filters at level 1; doubled at each deeper level
    depth: int = 5  # number of levels (16, 32, 64, 128, 256 filters at base 16)
    num_classes: int = 1  # 1: sigmoid lesion probability; k > 1: softmax over k classes
    dropout: float = 0.3  # dropout inside each context module
    deep_supervision: bool = True  # add the segmentation maps of levels 3 and 2 to level 1's
    l2: float = 1e-5  # L2 weight decay on every convolution kernel
    leaky_relu_slope: float = 0.01  # negative slope of every LeakyReLU


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50  # passes over the training split
    learning_rate: float = 5e-4  # Adam's initial learning rate
    lr_decay: float = 0.985  # learning rate multiplied by this after every epoch
    lr_schedule: str = "exponential"  # "exponential" (paper), "cosine" or "plateau"
    loss: str = "dice"  # "dice" (soft, per image) or "bce_dice"
    early_stopping_patience: int | None = None  # epochs without val dice gain; None: off
    precision: str = "float32"  # "float32", "mixed_bfloat16" (CPU with bf16) or "mixed_float16"
