"""segment: Improved UNet skin-lesion segmentation for ISIC 2017/2018 on TensorFlow/Keras 3.

The whole workflow in one call (what `driver_train_save_evaluate.py` does):

    import segment
    config = segment.RunConfig(data=segment.DataConfig(image_size=(128, 128), augment=True),
                               train=segment.TrainConfig(epochs=20))
    model, history, report, split, run = segment.train_and_evaluate(
        "ISIC2018", "runs/first", config)

or step by step:

    pairs = segment.find_pairs("ISIC2018_Task1-2_Training_Input",
                               "ISIC2018_Task1_Training_GroundTruth")
    train, val, test = segment.train_val_test_split(pairs)
    model = segment.create_model((256, 256, 3))
    segment.train_model(model, segment.create_generator(train, augment=True, shuffle=True),
                        segment.create_generator(val), segment.TrainConfig(epochs=50),
                        "runs/first")
    report = segment.results(model, test, run_dir="runs/first")

Importing the package registers its Keras objects, so `keras.models.load_model` reads our
`.keras` files too.
"""

from . import runtime  # noqa: F401  (first: sets up TensorFlow before anything loads it)
from ._version import __version__
from .config import DataConfig, EvalConfig, ModelConfig, RunConfig, TrainConfig
from .data import (
    Pair,
    PairList,
    SizeReport,
    Split,
    as_pair,
    find_pairs,
    fingerprint_pairs,
    inspect,
    load_split,
    save_split,
    train_val_test_split,
)
from .distribute import create_strategy, is_chief
from .errors import ImageReadError, ModelLoadError, PairingError, RunFolderError, SegmentError
from .evaluation import (
    Evaluation,
    Example,
    evaluate,
    export_predictions,
    iter_predictions,
    predict_masks,
)
from .images import load_input_image, load_segmented_image, read_image_size, save_mask
from .layers import InstanceNormalization
from .losses import bce_dice_loss, dice_loss
from .metrics import (
    DiceCoefficient,
    confusion_counts,
    dice_coefficient,
    hausdorff_distance_95,
    jaccard,
    scores_from_counts,
)
from .model import create_model
from .pipeline import create_generator
from .postprocess import fill_holes, keep_largest_component, postprocess_mask, predict_with_flips
from .report import (
    Results,
    plot_dice_histogram,
    plot_predictions,
    plot_training_curves,
    results,
    show_prediction,
)
from .run_folder import RunFolder
from .synthetic import make_synthetic_dataset
from .training import (
    compile_model,
    load_model,
    resolve_precision,
    save_model,
    set_seed,
    train_model,
)
from .workflow import (
    EvaluationOutcome,
    TrainingOutcome,
    load_and_evaluate,
    load_and_predict,
    train_and_evaluate,
)

__all__ = [
    "__version__", "as_pair", "bce_dice_loss", "compile_model", "confusion_counts",
    "create_generator", "create_model", "create_strategy", "DataConfig", "dice_coefficient",
    "dice_loss", "DiceCoefficient", "EvalConfig", "evaluate", "Evaluation",
    "EvaluationOutcome", "Example", "export_predictions", "fill_holes", "find_pairs",
    "fingerprint_pairs", "hausdorff_distance_95", "ImageReadError", "inspect",
    "InstanceNormalization", "is_chief", "iter_predictions", "jaccard",
    "keep_largest_component", "load_and_evaluate", "load_and_predict", "load_input_image",
    "load_model", "load_segmented_image", "load_split", "make_synthetic_dataset",
    "ModelConfig", "ModelLoadError", "Pair", "PairingError", "PairList", "plot_dice_histogram",
    "plot_predictions", "plot_training_curves", "postprocess_mask", "predict_masks",
    "predict_with_flips", "read_image_size", "resolve_precision", "results", "Results",
    "RunConfig", "RunFolder", "RunFolderError", "save_mask", "save_model", "save_split",
    "scores_from_counts", "SegmentError", "set_seed", "show_prediction", "SizeReport", "Split",
    "train_and_evaluate", "train_model", "train_val_test_split", "TrainConfig",
    "TrainingOutcome",
]
