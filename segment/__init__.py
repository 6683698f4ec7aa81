"""segment: Improved UNet skin-lesion segmentation for ISIC 2017/2018 on TensorFlow/Keras 3.

The whole workflow in one call (what `driver_train_save_evaluate.py` does):

    import segment
    config = segment.RunConfig(data=segment.DataConfig(image_size=(128, 128), augment="flips"),
                               train=segment.TrainConfig(epochs=20))
    model, history, report, split, run = segment.train_and_evaluate(
        "ISIC2018", "runs/first", config)

or step by step:

    pairs = segment.find_pairs("ISIC2018_Task1-2_Training_Input",
                               "ISIC2018_Task1_Training_GroundTruth")
    train, val, test = segment.train_val_test_split(pairs)
    model = segment.create_model((256, 256, 3))
    segment.train_model(model, segment.create_generator(train, augment="flips", shuffle=True),
                        segment.create_generator(val), segment.TrainConfig(epochs=50),
                        "runs/first")
    report = segment.results(model, test, run_dir="runs/first")

The names below (`segment.__all__`) are the public API; every other function lives in its
module (`segment.metrics.jaccard`, `segment.report.plot_training_curves`, ...), and the names
earlier versions exported here still work. docs/ARCHITECTURE.md shows the layout. Importing the
package registers its Keras objects, so `keras.models.load_model` reads our `.keras` files too.
"""

import importlib

from . import runtime  # noqa: F401  (first: sets up TensorFlow before anything loads it)
from ._version import __version__ as __version__  # not in __all__ (which holds the API)
from .config import DataConfig, EvalConfig, ModelConfig, RunConfig, TrainConfig
from .data import Pair, find_pairs
from .errors import ImageReadError, ModelLoadError, PairingError, RunFolderError, SegmentError
from .evaluation import evaluate
from .images import load_input_image, load_segmented_image
from .inspection import inspect
from .layers import InstanceNormalization
from .losses import dice_loss
from .metrics import dice_coefficient
from .model import create_model
from .pipeline import create_generator
from .prediction import Ensemble, predict_masks
from .prediction_folder import export_predictions
from .report import results
from .run_folder import RunFolder
from .saving import load_model, save_model
from .split import Split, train_val_test_split
from .synthetic import make_synthetic_dataset
from .training import train_model
from .workflow import load_and_evaluate, load_and_predict, train_and_evaluate

# isort: split
from . import comparison  # noqa: F401  (segment.comparison.compare: two evaluations)

__all__ = [
    # data: files -> pairs -> split
    "load_input_image", "load_segmented_image", "find_pairs", "inspect", "Pair",
    "train_val_test_split", "Split", "make_synthetic_dataset",
    # input pipeline and network
    "create_generator", "create_model", "InstanceNormalization", "dice_coefficient",
    "dice_loss",
    # training and model files
    "train_model", "save_model", "load_model",
    # prediction, scoring, report
    "predict_masks", "export_predictions", "Ensemble", "evaluate", "results",
    # the drivers' workflow, one call each
    "train_and_evaluate", "load_and_evaluate", "load_and_predict",
    # settings and the run folder
    "DataConfig", "ModelConfig", "TrainConfig", "EvalConfig", "RunConfig", "RunFolder",
    # errors
    "SegmentError", "ImageReadError", "PairingError", "ModelLoadError", "RunFolderError",
]

# Names earlier versions exported here, and the module each now lives in.
_FORMER_NAMES = {
    "as_pair": "data", "fingerprint_pairs": "data", "PairList": "data", "SizeReport": "inspection",
    "load_split": "split", "save_split": "split",
    "create_strategy": "distribute", "is_chief": "distribute",
    "Evaluation": "evaluation", "Example": "evaluation",
    "iter_predictions": "prediction", "read_image_size": "images", "save_mask": "images",
    "bce_dice_loss": "losses", "DiceCoefficient": "metrics", "confusion_counts": "metrics",
    "hausdorff_distance_95": "metrics", "jaccard": "metrics", "scores_from_counts": "metrics",
    "fill_holes": "postprocess", "keep_largest_component": "postprocess",
    "postprocess_mask": "postprocess", "predict_with_flips": "postprocess",
    "Results": "report", "plot_dice_histogram": "report", "plot_predictions": "report",
    "plot_training_curves": "report", "show_prediction": "report",
    "compile_model": "training", "set_seed": "training", "resolve_precision": "runtime",
    "EvaluationOutcome": "workflow", "TrainingOutcome": "workflow",
}


def __getattr__(name):
    """`segment.<former name>` still works: the name from its module (see `_FORMER_NAMES`)."""
    if name in _FORMER_NAMES:
        return getattr(importlib.import_module(f".{_FORMER_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'segment' has no attribute '{name}'")
