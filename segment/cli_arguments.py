"""The command-line programs' argument types and checks: argparse in, a one-line usage error out.

    parser = OneLineParser(prog="driver_train_save_evaluate.py")
    parser.add_argument("--size", type=image_size)                 # '256' or '192x256'
    parser.add_argument("--epochs", type=positive_int)
    parser.add_argument("--threshold", type=float_in(0, 1))        # open interval
"""

import argparse
from pathlib import Path

from .comparison import COMPARISON_FILE
from .config import (
    AUGMENTATIONS,
    CACHE_MODES,
    DataConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from .errors import SegmentError
from .run_folder import OUTPUTS, RunFolder
from .runtime import BACKENDS

__all__ = ["NETWORK_ARGUMENTS", "DefaultsHelpFormatter", "OneLineParser", "add_common_arguments",
           "add_comparison_argument", "add_data_arguments", "add_evaluation_arguments",
           "add_schedule_arguments", "check_evaluate_arguments", "check_train_arguments",
           "evaluation_settings", "fill_network_arguments", "float_in", "image_size", "int_from",
           "positive_int"]

# The train driver's flags that shape the network (argparse's attribute: ModelConfig field).
NETWORK_ARGUMENTS = ("encoder", "encoder_batchnorm", "base_filters", "depth", "standardize_input",
                     "colour_constancy")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's formatter that ends each flag's help with "(default: X)", once: not where the
    help says "(default: ...)" itself, nor where there is none to show (None: the value comes
    from a config, whose default the help gives as "[value]"; False: a switch left off)."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if action.default is None or action.default is False or "(default:" in help_text:
            return help_text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: `error: ...`, exit status 2, and
    whose help shows each flag's default once (`DefaultsHelpFormatter`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"formatter_class": DefaultsHelpFormatter, **kwargs})

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def image_size(text):
    """'256' -> (256, 256); '192x256' -> (192, 256) (height x width)."""
    try:
        sides = [int(side) for side in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got '{text}'") from None
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive sides, got '{text}'")
    return (sides[0], sides[-1])


def int_from(low):
    """An argparse type: an integer >= low."""
    what = "a positive integer" if low == 1 else f"an integer >= {low}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        return value
    return parse


positive_int = int_from(1)


def float_in(low, high, *, low_included=False, high_included=False):
    """An argparse type: a float in (low, high); `low_included`, `high_included` close it.

    Example:
        >>> float_in(0, 1, low_included=True)("0"), int_from(0)("2"), image_size("192x256")
        (0.0, 2, (192, 256))
    """
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not (low < value < high or (low_included and value == low)
                                 or (high_included and value == high)):
            interval = f"{'[' if low_included else '('}{low}, {high}{']' if high_included else ')'}"
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got '{text}'")
        return value
    return parse


def fill_network_arguments(parser, args):
    """Give each network flag left out (None) the value the `config.json` beside --init-model
    records, so that a fine-tuning run builds the network it starts from, else the ModelConfig
    default; --depth only with the paper's encoder, --encoder-batchnorm only with a pretrained
    one (the other is unused). A recorded value is only a guess: `saving.start_from` still
    checks the network weight by weight. An unreadable record is a usage error naming it.

    Example:
        >>> args = argparse.Namespace(init_model=None, **dict.fromkeys(NETWORK_ARGUMENTS))
        >>> fill_network_arguments(None, args)
        >>> args.encoder, args.base_filters, args.depth, args.encoder_batchnorm
        ('improved_unet', 16, 5, None)
    """
    recorded = {}
    if args.init_model:
        folder = RunFolder(Path(args.init_model).parent)
        try:
            section = folder.recorded_settings(strict=True).get("model") or {}
            model = RunConfig.from_dict({"model": section}).model
        except (SegmentError, ValueError, TypeError) as error:
            parser.error(f"--init-model: the model settings of '{folder.config}' cannot be "
                         f"used ({error}); give the model flags it was trained with")
        # The batch norms' setting goes with the encoder (from_dict gives an old record's).
        recorded = {name: getattr(model, name) for name in NETWORK_ARGUMENTS
                    if name in section or (name == "encoder_batchnorm" and "encoder" in section)}
    for name in NETWORK_ARGUMENTS:  # the encoder first: it decides which one is unused
        unused = name == ("encoder_batchnorm" if args.encoder == "improved_unet" else "depth")
        if getattr(args, name) is None and not unused:
            setattr(args, name, recorded.get(name, getattr(ModelConfig, name)))


def check_train_arguments(parser, args):
    """Stop with a usage error for a size the model cannot take, parts given by halves, or
    settings the chosen encoder would not use (nothing is written)."""
    _check_given_parts(parser, args)
    pretrained = args.encoder != "improved_unet"
    for flag, size in [("--size", args.size), ("--first-size", args.first_size or args.size)]:
        try:
            ModelConfig(depth=args.depth or ModelConfig.depth, encoder=args.encoder).check_size(
                *size)
        except ValueError as error:
            parser.error(f"{flag} {size[0]}x{size[1]}: {error}")
    if (args.first_size is None) != (args.first_epochs == 0):
        parser.error("--first-size and --first-epochs go together")
    if args.first_epochs >= args.epochs:
        parser.error(f"--first-epochs {args.first_epochs} must be below --epochs {args.epochs}: "
                     f"the last epochs train at --size")
    unused = [flag for flag, given in [
        ("--encoder-lr-scale", args.encoder_lr_scale != TrainConfig.encoder_lr_scale),
        ("--encoder-frozen-epochs", args.encoder_frozen_epochs != 0),
        ("--encoder-batchnorm", args.encoder_batchnorm is not None),
        ("--encoder-weights", args.encoder_weights is not None)] if given]
    if not pretrained and unused:
        verb = "apply" if len(unused) > 1 else "applies"
        parser.error(f"{' and '.join(unused)} {verb} to a pretrained encoder: add --encoder "
                     f"efficientnet_lite0")
    if args.init_model and args.encoder_weights:
        parser.error("--encoder-weights with --init-model: the trained model gives every weight")
    if pretrained and args.depth is not None:
        parser.error(f"--depth is unused with --encoder {args.encoder} (its levels are fixed "
                     f"at {ModelConfig(encoder=args.encoder).num_levels}): leave it out")
    if args.encoder_frozen_epochs and args.encoder_frozen_epochs >= args.epochs:
        parser.error(f"--encoder-frozen-epochs {args.encoder_frozen_epochs} must be below "
                     f"--epochs {args.epochs}, or the encoder never trains")
    if args.encoder_frozen_epochs and args.encoder_batchnorm == "train":
        parser.error("--encoder-frozen-epochs with --encoder-batchnorm train: the batch norms' "
                     "statistics would still change while the encoder is 'frozen'; use "
                     "--encoder-batchnorm frozen")


def _check_given_parts(parser, args):
    """--val-data and --test-data: both, with --images (the training part), each one or two
    folders, and not with --split-manifest (which names the parts itself)."""
    given = {flag: folders for flag, folders in [("--val-data", args.val_data),
                                                 ("--test-data", args.test_data)] if folders}
    if not given:
        return
    if len(given) == 1 or args.images is None:
        parser.error("--val-data and --test-data go together, with --images as the training part")
    if args.split_manifest:
        parser.error("--split-manifest names the parts itself: leave out --val-data and "
                     "--test-data")
    for flag, folders in given.items():
        if len(folders) > 2:
            parser.error(f"{flag} takes an images folder and, optionally, its masks folder; got "
                         f"{len(folders)} folders")


def check_evaluate_arguments(parser, args):
    """Stop with a usage error for --against with --predict-only, which scores nothing to
    compare (nothing is written); and for --predicted-masks with the flags of a model, or
    without --out (the report belongs to no model's folder)."""
    if args.against and args.predict_only:
        parser.error("--against compares two evaluations; --predict-only has no masks to "
                     "score against: leave one out")
    if not args.predicted_masks:
        return
    of_a_model = [flag for flag, given in [("--predict-only", args.predict_only),
                                           ("--size", args.size),
                                           ("--accept-leakage-risk", args.accept_leakage_risk)]
                  if given]
    if of_a_model:
        parser.error(f"{', '.join(of_a_model)}: for a model; --predicted-masks scores masks "
                     f"made elsewhere")
    if not args.out:
        parser.error("--predicted-masks needs --out: the report belongs to no model's folder")


def add_common_arguments(parser):
    """--overwrite, --backend, -v and -q, which both programs take."""
    parser.add_argument("--overwrite", action="store_true",
                        help="clear what an earlier run left in the output folder (model, "
                             "report, logs, cache, backup, split; with --predict-only its "
                             "masks, once the new ones are written)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend to run on (default: KERAS_BACKEND, else tensorflow); "
                             "jax and torch train on one device and need no TensorFlow; another "
                             "backend than the loaded one runs the program in a fresh Python")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug detail, and other libraries' INFO lines")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only warnings and the final summary; no progress bars")


def add_data_arguments(parser):
    """The train driver's data flags: where the pairs come from, how they are split, fed and
    augmented (the argument group "data")."""
    data = parser.add_argument_group("data")
    data.add_argument("--images", help="folder of images, or a parent folder with the ISIC "
                                       "image and ground-truth folders (default: synthetic data)")
    data.add_argument("--masks", help="folder of masks (default: found beside --images)")
    data.add_argument("--split-manifest",
                      help=f"train, validate and test on the parts this {OUTPUTS['split']} "
                           f"names (another run's, or one written with segment.save_split, e.g. "
                           f"ISIC 2017's own parts) instead of drawing 6:2:2; with --images, "
                           f"its ids are taken from that folder (default: none)")
    for part, verb, other in [("val", "validate", "test"), ("test", "test", "val")]:
        data.add_argument(f"--{part}-data", nargs="+", metavar=("IMAGES", "MASKS"),
                          help=f"{verb} on these pairs (a folder as --images takes, or an images "
                               f"folder and its masks folder), with --{other}-data, instead of "
                               f"drawing 6:2:2: --images holds the training part alone, e.g. "
                               f"ISIC 2017's own parts (default: none)")
    data.add_argument("--synthetic-dir", default="data/synthetic",
                      help="where the synthetic data set is written when --images is not given")
    data.add_argument("--num-synthetic", type=positive_int, default=200,
                      help="number of synthetic pairs")
    data.add_argument("--inspect", action="store_true",
                      help=f"report image sizes and save {OUTPUTS['image_sizes']} in the run dir")
    data.add_argument("--size", type=image_size, default=DataConfig.image_size,
                      help="network input: N (square) or HxW, each divisible by 2^(depth-1)")
    data.add_argument("--augment", nargs="?", const="full", default=DataConfig.augment,
                      choices=AUGMENTATIONS,
                      help="augment while training: flips = random flips and 90-degree turns; "
                           "full (--augment alone) = these, random crops and colour jitter")
    data.add_argument("--cache", choices=CACHE_MODES, default=DataConfig.cache,
                      help="keep decoded images in RAM, in <run-dir>/cache (one file per "
                           "fingerprint of the pairs, size and version), or decode every epoch")
    data.add_argument("--train-fraction", type=float_in(0, 1, high_included=True),
                      default=DataConfig.train_fraction,
                      help="train on this share of the training part (drawn with the split's "
                           "seed; the validation and test parts stay whole), for learning curves")
    data.add_argument("--lesion-crops", type=float_in(0, 1, low_included=True, high_included=True),
                      default=DataConfig.lesion_crops, metavar="SHARE",
                      help="show this share of the training images as a crop around their "
                           "lesion (random margin and shift), as --second-look predicts; "
                           "evaluate such a model with --second-look")
    data.add_argument("--artifacts", type=float_in(0, 1, low_included=True, high_included=True),
                      default=DataConfig.artifacts, metavar="SHARE",
                      help="draw ink marks (dots or lines around the lesion, strokes), rulers "
                           "or a contact plate's rim beside the lesion on this share of the "
                           "training images, so the network learns them as skin")
    data.add_argument("--seed", type=int, default=DataConfig.seed,
                      help="seed of the shuffling, augmentation, initial weights and the split")
    data.add_argument("--split-seed", type=int, default=None,
                      help="seed of the split and the synthetic pairs alone (default: --seed): "
                           "vary --seed with it fixed to see how much training runs of the "
                           "same data differ")


def add_comparison_argument(parser):
    """--against: the evaluation to compare the new one with, image by image."""
    parser.add_argument("--against", metavar="EVALUATION",
                        help=f"compare this evaluation image by image with an earlier one of the "
                             f"same images (its folder or evaluation.csv): the mean dice's change "
                             f"± its standard error, by lesion size, and the images fixed and "
                             f"broken; printed and written to {COMPARISON_FILE} beside the "
                             f"report. Its review page gets each image's dice change as a column "
                             f"and the earlier overlay in the detail view")


def add_schedule_arguments(training):
    """The training flags that change settings as the epochs go (the argument group `training`)."""
    training.add_argument("--encoder-lr-scale", type=float_in(0, 1, low_included=True,
                                                               high_included=True),
                          default=TrainConfig.encoder_lr_scale,
                          help="the pretrained encoder's learning rate as a fraction of the "
                               "rest's, in [0, 1] (with a pretrained --encoder)")
    training.add_argument("--encoder-frozen-epochs", type=int_from(0),
                          default=TrainConfig.encoder_frozen_epochs, metavar="EPOCHS",
                          help="epochs at the start in which the pretrained encoder does not "
                               "train, below --epochs (with a pretrained --encoder and its "
                               "batch norms frozen)")
    training.add_argument("--first-size", type=image_size, default=None,
                          help="train the first --first-epochs epochs at this smaller network "
                               "input (N or HxW), the rest at --size; validation, the saved "
                               "model and evaluation stay at --size (default: off)")
    training.add_argument("--first-epochs", type=int_from(0), default=TrainConfig.first_epochs,
                          metavar="EPOCHS", help="epochs at --first-size, below --epochs")


def add_evaluation_arguments(parser, *, recorded):
    """Evaluation flags; with `recorded`, an absent flag keeps the trained run's setting, and
    each switch has a --no- form that turns a recorded one off (`--no-tta`)."""
    default = EvalConfig()
    switch = argparse.BooleanOptionalAction if recorded else "store_true"
    evaluation = parser.add_argument_group(
        "evaluation" + (" (an absent flag keeps the setting in config.json beside the model, "
                        "else the default)" if recorded else ""))
    evaluation.add_argument("--threshold", type=float_in(0, 1),
                            default=None if recorded else default.threshold,
                            help=f"probability at or above which a pixel is lesion, in (0, 1) "
                                 f"[{default.threshold}]")
    evaluation.add_argument("--tta", action=switch, default=None if recorded else False,
                            help="average predictions over flips (test-time augmentation)")
    evaluation.add_argument("--postprocess", action=switch,
                            default=None if recorded else False,
                            help="keep the largest lesion region and fill its holes")
    evaluation.add_argument("--second-look", action=switch,
                            default=None if recorded else False,
                            help="predict each image again in a crop around the lesion the "
                                 "first pass found, pasted back at the image's own size")
    evaluation.add_argument("--crop-margin", type=float_in(0, 10, low_included=True,
                                                           high_included=True),
                            default=None if recorded else default.crop_margin,
                            help=f"with --second-look: the crop's margin around the lesion, a "
                                 f"share of its size on each side [{default.crop_margin}]")
    evaluation.add_argument("--eval-resolution", choices=["original", "network"],
                            default=None if recorded else "original",
                            help="score at each image's own size or at the network's "
                                 "[original]")


def evaluation_settings(args):
    """The evaluation flags given on the command line, as EvalConfig fields."""
    settings = {"threshold": args.threshold, "tta": args.tta, "postprocess": args.postprocess,
                "second_look": args.second_look, "crop_margin": args.crop_margin,
                "original_size": (None if args.eval_resolution is None
                                  else args.eval_resolution == "original"),
                "batch_size": getattr(args, "eval_batch_size", None),
                "flag_share": getattr(args, "flag_share", None)}
    return {name: value for name, value in settings.items() if value is not None}
