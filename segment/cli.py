"""The two command-line programs: argparse in, one library call out, a one-line error on failure.

`driver_train_save_evaluate.py` -> `train_main`; `driver_load_evaluate.py` -> `evaluate_main`.
Every default comes from `config.py`. Errors the user can fix (a missing folder, no pairs, a
file that is not a model, a finished run in the way) end the program with exit status 2 and
one line on stderr, not a traceback.
"""

import argparse
import logging
import sys
from pathlib import Path

from .config import DataConfig, ModelConfig, TrainConfig
from .data import find_pairs, inspect, load_split, save_split, train_val_test_split
from .distribute import STRATEGIES, create_strategy, is_chief, task_id
from .errors import RunFolderError, SegmentError
from .evaluation import export_predictions
from .files import save_figure_atomic, write_text_atomic
from .model import create_model
from .pipeline import create_generator
from .report import results
from .synthetic import make_synthetic_dataset
from .training import (
    LR_SCHEDULES,
    MODEL_FILE,
    load_model,
    resolve_precision,
    set_seed,
    train_model,
)

__all__ = ["evaluate_main", "train_main"]

logger = logging.getLogger("segment")


def train_main(argv=None):
    """Entry point of driver_train_save_evaluate.py; returns the exit status."""
    args = _train_parser().parse_args(argv)
    return _run(_train, args)


def evaluate_main(argv=None):
    """Entry point of driver_load_evaluate.py; returns the exit status."""
    args = _evaluate_parser().parse_args(argv)
    return _run(_evaluate, args)


def _train(args):
    # First: splitting the CPU into logical devices must happen before TensorFlow starts.
    strategy = create_strategy(args.distribute, num_cpu_devices=args.cpu_devices)
    chief = is_chief(strategy)
    run_dir = Path(args.run_dir)
    resuming = (run_dir / "backup").exists()
    if (run_dir / "report.html").exists() and not resuming and not args.overwrite:
        raise RunFolderError(f"'{run_dir}' already holds a finished run; pass --overwrite or "
                             f"choose another --run-dir")
    pairs = _training_pairs(args)
    if args.inspect and chief:
        report = inspect(pairs, progress=not args.quiet)
        logger.info("image sizes:\n%s", report)
        save_figure_atomic(report.figure, run_dir / "image_sizes.png")
    manifest = run_dir / "split.json"
    if resuming and manifest.exists():
        split = load_split(manifest, pairs)
        logger.info("resuming: reusing the split in '%s'", manifest)
    else:
        split = train_val_test_split(pairs, seed=args.seed)  # the same on every worker
        if chief:
            save_split(split, manifest, seed=args.seed, ratios=DataConfig.ratios)
    logger.info("split: %d train, %d validation, %d test", *map(len, split))
    _check_replica_batches(strategy, args.batch_size, split)

    set_seed(args.seed)
    size = args.size
    precision = resolve_precision("mixed" if args.mixed_precision else "float32")
    with strategy.scope():
        model = create_model((*size, 3), base_filters=args.base_filters, depth=args.depth,
                             dtype_policy=None if precision == "float32" else precision)
    model.summary(print_fn=logger.debug)
    logger.info("model: %s, %d parameters, %s", model.name, model.count_params(), precision)
    train_ds = create_generator(split.train, size, args.batch_size, augment=args.augment,
                                shuffle=True, cache=_cache(args, run_dir, "train"),
                                seed=args.seed)
    val_ds = create_generator(split.val, size, args.batch_size,
                              cache=_cache(args, run_dir, "val")) if split.val else None
    settings = {"model": {"input_shape": [*size, 3], "base_filters": args.base_filters,
                          "depth": args.depth, "precision": precision},
                "data": {"images": args.images, "masks": args.masks, "seed": args.seed,
                         "batch_size": args.batch_size, "augment": args.augment,
                         "num_pairs": len(pairs)}}
    history = train_model(model, train_ds, val_ds, args.epochs, run_dir,
                          learning_rate=args.learning_rate, lr_decay=args.lr_decay,
                          lr_schedule=args.lr_schedule, loss=args.loss,
                          early_stopping_patience=args.early_stopping, strategy=strategy,
                          overwrite=args.overwrite, settings=settings,
                          verbose=0 if args.quiet else 1)
    if history.stopped_on_nan:
        raise SegmentError("training stopped because the loss became NaN; lower "
                           "--learning-rate (the best epoch before it is kept)")
    if not chief:
        logger.info("%s done; the chief writes the model and the report", task_id(strategy))
        return
    if strategy.num_replicas_in_sync > 1 or args.distribute == "multiworker":
        model = load_model(run_dir / MODEL_FILE)  # evaluate on one device, off the cluster
    test = split.test or split.val
    report = results(model, test, history=run_dir / "log.csv", run_dir=run_dir,
                     **_evaluation_options(args))
    _write_skipped(run_dir, train_ds.skipped + (val_ds.skipped if val_ds else [])
                   + report.evaluation.skipped)
    _print_summary(report, "test" if split.test else "validation")


def _evaluate(args):
    model_path = Path(args.model)
    model = load_model(model_path)
    if args.predict_only:
        out = Path(args.out or model_path.parent / "predictions")
        written, skipped = export_predictions(
            model, args.predict_only, out, threshold=args.threshold, tta=args.tta,
            postprocess=args.postprocess, image_size=args.size, batch_size=args.batch_size,
            progress=not args.quiet)
        print(f"wrote {len(written)} masks to {out}" + (f"; {len(skipped)} images unreadable "
                                                        f"(see the log)" if skipped else ""))
        return
    out = Path(args.out or model_path.parent / "evaluation")
    if (out / "report.html").exists() and not args.overwrite:
        raise RunFolderError(f"'{out}' already holds a report; pass --overwrite or choose "
                             f"another --out")
    manifest = args.split_manifest or (model_path.parent / "split.json")
    pairs = find_pairs(args.images, args.masks) if args.images else None
    if args.images and not args.split_manifest:
        chosen, part = pairs, "all given"
    elif Path(manifest).exists():
        split = load_split(manifest, pairs)
        chosen, part = getattr(split, args.part), f"{args.part} part of {manifest}"
    else:
        raise SegmentError(f"no split manifest at '{manifest}': pass --images (and --masks) "
                           f"to evaluate on a folder, or --split-manifest")
    if not chosen:
        raise SegmentError(f"the {part} holds no pairs to evaluate")
    log = model_path.parent / "log.csv"
    report = results(model, chosen, history=log if log.exists() else None, run_dir=out,
                     **_evaluation_options(args))
    _write_skipped(out, report.evaluation.skipped)
    _print_summary(report, part)


def _check_replica_batches(strategy, batch_size, split):
    """Keras averages the first batch over the replicas to learn its shapes: it must split
    evenly, so the global batch must be a multiple of the replicas and no part smaller."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return
    if batch_size % replicas:
        raise SegmentError(f"--batch-size {batch_size} must be a multiple of the {replicas} "
                           f"replicas (it is the global batch, split evenly across them)")
    small = [name for name, part in [("train", split.train), ("validation", split.val)]
             if 0 < len(part) < batch_size]
    if small:
        raise SegmentError(f"with {replicas} replicas each part needs at least one full batch "
                           f"of {batch_size}; too small: {', '.join(small)} (lower --batch-size)")


def _training_pairs(args):
    if args.images:
        return find_pairs(args.images, args.masks)
    folder = Path(args.synthetic_dir)
    logger.info("no --images given: using %d synthetic pairs in '%s'", args.num_synthetic, folder)
    return make_synthetic_dataset(folder, args.num_synthetic, seed=args.seed)


def _cache(args, run_dir, part):
    return {"memory": "memory", "none": None}.get(args.cache, run_dir / "cache" / part)


def _evaluation_options(args):
    return {"threshold": args.threshold, "tta": args.tta, "postprocess": args.postprocess,
            "original_size": args.eval_resolution == "original", "batch_size": args.batch_size,
            "progress": not args.quiet}


def _write_skipped(run_dir, skipped):
    if skipped:
        write_text_atomic(run_dir / "skipped_files.txt",
                          "".join(f"{path}\t{reason}\n" for path, reason in skipped))
        logger.warning("%d unreadable files were skipped; listed in '%s'", len(skipped),
                       run_dir / "skipped_files.txt")


def _print_summary(report, part):
    summary = report.summary
    print(f"Evaluated {summary['count']} images ({part}), per-image metrics at "
          f"{summary['settings']['resolution']} resolution:")
    for name in ["dice", "jaccard", "sensitivity", "specificity", "hd95"]:
        print(f"  {name:<12} mean {summary[name]['mean']:.4f}  median "
              f"{summary[name]['median']:.4f}")
    print(f"  ISIC 2018 score (thresholded jaccard): {summary['isic_score']:.4f}")
    print(f"Report: {report.files['report']}")


def _run(command, args):
    logging.basicConfig(level=logging.WARNING if args.quiet else
                        logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        command(args)
    except (SegmentError, OSError) as error:  # bad input, or a folder that cannot be written
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing more was written", file=sys.stderr)
        return 130
    return 0


def _size(text):
    """'256' -> (256, 256); '192x256' -> (192, 256) (height x width)."""
    try:
        sides = [int(side) for side in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got '{text}'") from None
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive sides, got '{text}'")
    return (sides[0], sides[-1])


def _common_arguments(parser):
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--threshold", type=float, default=0.5,
                            help="probability at or above which a pixel is lesion")
    evaluation.add_argument("--tta", action="store_true",
                            help="average predictions over flips (test-time augmentation)")
    evaluation.add_argument("--postprocess", action="store_true",
                            help="keep the largest lesion region and fill its holes")
    evaluation.add_argument("--eval-resolution", choices=["original", "network"],
                            default="original", help="score at each image's own size or at the "
                                                     "network's")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished model or report in the output folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only warnings and the final summary; no progress bars")


def _train_parser():
    parser = argparse.ArgumentParser(
        prog="driver_train_save_evaluate.py",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Load image/mask pairs, split them 6:2:2, train the Improved UNet, save it "
                    "and evaluate it on the test part. Without --images a synthetic data set is "
                    "made and used. Started again with the same --run-dir after being killed, "
                    "training resumes from the last completed epoch.")
    data = parser.add_argument_group("data")
    data.add_argument("--images", help="folder of images, or a parent folder with the ISIC "
                                       "image and ground-truth folders (default: synthetic data)")
    data.add_argument("--masks", help="folder of masks (default: found beside --images)")
    data.add_argument("--synthetic-dir", default="data/synthetic",
                      help="where the synthetic data set is written when --images is not given")
    data.add_argument("--num-synthetic", type=int, default=200,
                      help="number of synthetic pairs")
    data.add_argument("--inspect", action="store_true",
                      help="report image sizes and save image_sizes.png in the run folder")
    data.add_argument("--size", type=_size, default=DataConfig.image_size,
                      help="network input: N (square) or HxW, each divisible by 2^(depth-1)")
    data.add_argument("--augment", action="store_true",
                      help="random flips, turns, crops and colour jitter while training")
    data.add_argument("--cache", choices=["memory", "disk", "none"], default="memory",
                      help="keep decoded images in RAM, in <run-dir>/cache, or decode every "
                           "epoch")
    data.add_argument("--seed", type=int, default=DataConfig.seed,
                      help="seed of the split, shuffling, augmentation and initial weights")
    model = parser.add_argument_group("model")
    model.add_argument("--base-filters", type=int, default=ModelConfig.base_filters,
                       help="filters at the first level, doubled at each deeper level")
    model.add_argument("--depth", type=int, default=ModelConfig.depth, help="number of levels")
    model.add_argument("--distribute", choices=STRATEGIES, default="none",
                       help="tf.distribute strategy: mirrored = all local GPUs (or the "
                            "--cpu-devices), multiworker = the workers in TF_CONFIG; "
                            "--batch-size is the global batch")
    model.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                       help="split the CPU into N logical devices (to try --distribute "
                            "mirrored without GPUs)")
    model.add_argument("--mixed-precision", action="store_true",
                       help="mixed_float16 on GPU, mixed_bfloat16 on CPUs with native bf16 "
                            "(float32 with a warning elsewhere)")
    training = parser.add_argument_group("training")
    training.add_argument("--run-dir", default="runs/default",
                          help="folder for the model, split, logs and report")
    training.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    training.add_argument("--batch-size", type=int, default=DataConfig.batch_size)
    training.add_argument("--learning-rate", type=float, default=TrainConfig.learning_rate)
    training.add_argument("--lr-decay", type=float, default=TrainConfig.lr_decay,
                          help="learning rate factor per epoch (exponential schedule)")
    training.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                          default=TrainConfig.lr_schedule)
    training.add_argument("--loss", choices=["dice", "bce_dice"], default=TrainConfig.loss)
    training.add_argument("--early-stopping", type=int, default=None, metavar="EPOCHS",
                          help="stop after this many epochs without a better validation dice")
    _common_arguments(parser)
    return parser


def _evaluate_parser():
    parser = argparse.ArgumentParser(
        prog="driver_load_evaluate.py",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Load a saved model (.keras, or a legacy tensorflow-addons .h5) and "
                    "evaluate it on the test part of its split manifest or on a folder of "
                    "pairs, writing a report; or, with --predict-only, write one mask PNG per "
                    "image in ISIC's naming.")
    parser.add_argument("--model", required=True, help=f"the model file, e.g. runs/x/{MODEL_FILE}")
    parser.add_argument("--images", help="folder of images (or ISIC parent folder) to evaluate on")
    parser.add_argument("--masks", help="folder of masks (default: found beside --images)")
    parser.add_argument("--split-manifest",
                        help="split.json to take the pairs from (default: the one beside the "
                             "model, when --images is not given)")
    parser.add_argument("--part", choices=["train", "val", "test"], default="test",
                        help="which part of the split manifest to evaluate")
    parser.add_argument("--predict-only", metavar="IMAGES_DIR",
                        help="only predict: write <id>_segmentation.png (0/255, original size) "
                             "for every image in this folder to --out")
    parser.add_argument("--out", help="output folder (default: evaluation/ or predictions/ "
                                      "beside the model)")
    parser.add_argument("--size", type=_size, default=None,
                        help="network input size, for a model built for any size")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    _common_arguments(parser)
    return parser
