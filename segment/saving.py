"""Model files: save a `.keras` file atomically; load `.keras`, legacy `.h5` and SavedModel folders.

    save_model(model, "runs/x/model.keras")    # a failed write leaves any old file intact
    model = load_model("runs/x/model.keras")   # safe_mode=True: a file never runs code
    start_from(model, "runs/x/model.keras")    # its weights into the same network: fine-tuning

`load_model` also reads `.h5` files written by tf.keras 2.x with tensorflow-addons (their
`Addons>InstanceNormalization` loads as ours) and, for inference only, TensorFlow SavedModel
folders. A model trained under mixed_bfloat16 computes in float32 where bfloat16 would be slow
(no GPU, a CPU without native bf16), as `runtime.resolve_precision` decides for training.
"""

import itertools
import logging
import zipfile
from pathlib import Path, PurePosixPath

import keras

from .errors import ModelLoadError
from .files import atomic_path, file_sha256
from .layers import InstanceNormalization
from .model import nested_models
from .run_folder import RunFolder
from .runtime import resolve_precision

__all__ = ["init_model_record", "load_model", "save_model", "start_from"]

# The ModelConfig fields that decide a network's layers and weights (what `start_from` needs).
_NETWORK_SETTINGS = ("encoder", "encoder_batchnorm", "base_filters", "depth", "num_classes",
                     "deep_supervision", "colour_constancy", "standardize_input")

logger = logging.getLogger(__name__)


# Names under which other code saved instance normalization; all load as ours.
_LEGACY_OBJECTS = {
    "Addons>InstanceNormalization": InstanceNormalization,
    "InstanceNormalization": InstanceNormalization,
}


def save_model(model, path):
    """Save `model` as a `.keras` file, atomically: a failed write leaves any old file intact.

    Args:
        model: Keras model.
        path: Output path ending in `.keras`.

    Example:
        >>> save_model(model, tmp / "model.keras")
        >>> sorted(path.name for path in tmp.iterdir())  # no temporary file left behind
        ['model.keras']
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"save_model writes the .keras format; the path must end in '.keras'. "
                         f"Received: path='{path}'")
    with atomic_path(path) as tmp:
        model.save(tmp)
    logger.info("saved the model to '%s'", path)


def load_model(path, *, compile=False):
    """Load a model saved by this library, by Keras 3, or by old tensorflow-addons code.

    `.keras` files load with `safe_mode=True`: a file carrying Python code (a `Lambda`
    layer) is refused, never executed. Legacy `.h5` files whose config names
    `Addons>InstanceNormalization` load that layer as ours, with its weights. A TensorFlow
    SavedModel folder (what `model.save("dir")` wrote with tf.keras 2.x and
    tensorflow-addons) loads for inference only: its `serving_default` signature wrapped in a
    `keras.layers.TFSMLayer` (TensorFlow backend); `train_model` refuses it. A model saved
    under mixed_bfloat16 loads with every layer in float32 (the same weights) where
    bfloat16 runs several times slower: no GPU and a CPU without avx512_bf16 or amx_bf16.

    Args:
        path: A `.keras` or `.h5` file, or a SavedModel folder.
        compile: Also restore the optimizer, loss and metrics. Defaults to False (enough to
            predict and evaluate; `train_model` compiles what it trains).

    Returns:
        keras.Model.

    Raises:
        ModelLoadError: the path is missing, is not a model file or SavedModel folder, or is
            refused by safe mode.

    Example:
        >>> model = load_model(finished_run / "model.keras")
        >>> model.input_shape, model.output_shape
        ((None, 32, 32, 3), (None, 32, 32, 1))
    """
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return _load_saved_model(path)
        inside = RunFolder(path).model
        raise ModelLoadError(f"'{path}' is a folder, not a model file (.keras or .h5) nor a "
                             f"TensorFlow SavedModel (no saved_model.pb)" + (
                                 f"; it holds '{inside}': pass that" if inside.is_file() else ""))
    if not path.exists():
        raise ModelLoadError(f"model file '{path}' does not exist")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelLoadError(f"'{path}' is not a model file: expected a .keras or .h5 file")
    if path.suffix == ".keras":
        _check_keras_archive(path)
    try:
        model = keras.models.load_model(path, custom_objects=_LEGACY_OBJECTS, compile=compile,
                                        safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise ModelLoadError(f"'{path}' could not be loaded as a Keras model: {error}") from None
    return _in_float32_where_bf16_is_slow(model, path)


def start_from(model, path):
    """Set every weight of `model` to those of the trained `.keras` file `path` (fine-tuning),
    after checking that the two have the same layers (by name, nested ones too) and weights
    (name and shape), in order: the same network, at any input size and precision.

    Raises:
        ModelLoadError: `path` is not a `.keras` file, or does not load.
        ValueError: the networks differ; the message names the first layer or weight that
            does and the settings that shape the network as `config.json` beside `path`
            records them.

    Example:
        >>> start_from(model, finished_run / "model.keras")  # the same network, trained
        >>> trained = load_model(finished_run / "model.keras").get_weights()
        >>> all((ours == its).all() for ours, its in zip(model.get_weights(), trained))
        True
    """
    if Path(path).suffix != ".keras":
        raise ModelLoadError(f"init_model '{path}' is not a .keras file: fine-tuning starts from "
                             f"a model this library trained and saved")
    trained = load_model(path)
    ours, theirs = ([*(f"layer {layer.name}" for nested in nested_models(each)
                       for layer in nested.layers),
                     *(f"{weight.path} {tuple(weight.shape)}" for weight in each.weights)]
                    for each in (model, trained))
    for mine, its in itertools.zip_longest(ours, theirs, fillvalue="nothing"):
        if mine != its:
            recorded = RunFolder(Path(path).parent).recorded_settings().get("model") or {}
            settings = ", ".join(f"{name}={recorded[name]!r}" for name in _NETWORK_SETTINGS
                                 if name in recorded)
            raise ValueError(f"init_model '{path}' holds another network: {its} where this one "
                             f"has {mine}; build it with the model settings it was trained with"
                             f" ({settings or 'unknown: no config.json beside it'})"
                             + ("; the train driver does when its model flags are left out"
                                if settings else ""))
    model.set_weights(trained.get_weights())
    logger.info("starting from the weights of '%s'", path)


def init_model_record(path):
    """What a run's `config.json` records of the trained model it starts from (`path`; None:
    none): {"init_model_sha256": hex digest}, so that a later check can tell the same file.

    Raises:
        ModelLoadError: `path` is not a file.
    """
    if path is None:
        return {}
    if not Path(path).is_file():
        raise ModelLoadError(f"init_model '{path}' does not exist or is not a file")
    return {"init_model_sha256": file_sha256(path)}


def _in_float32_where_bf16_is_slow(model, path):
    """`model`, its layers (nested ones too) set to compute in float32 where it was saved
    under mixed_bfloat16 and `resolve_precision` refuses bf16 on this machine."""
    layers = [layer for nested in nested_models(model) for layer in [nested, *nested.layers]]
    if ("mixed_bfloat16" not in {layer.dtype_policy.name for layer in layers}
            or resolve_precision("mixed_bfloat16") == "mixed_bfloat16"):
        return model
    for layer in layers:
        layer.dtype_policy = "float32"
    logger.warning("'%s' was trained under mixed_bfloat16; it computes in float32 here, with "
                   "the same weights", path)
    return model


def _load_saved_model(path):
    """An inference-only keras.Model around a SavedModel folder's `serving_default` signature.

    The model takes float32 (batch, height, width, 3) images as the signature declares them
    and returns its one output (probabilities).
    """
    try:
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default",
                                       trainable=False, name="saved_model")
    except (ValueError, OSError, NotImplementedError) as error:
        raise ModelLoadError(f"'{path}' could not be loaded as a TensorFlow SavedModel: "
                             f"{_first_line(error)}") from None
    _, keyword_specs = layer.call_endpoint_fn.structured_input_signature
    if len(keyword_specs) != 1:
        raise ModelLoadError(f"'{path}': its serving_default signature takes "
                             f"{len(keyword_specs)} inputs ({', '.join(keyword_specs)}); "
                             f"an image model takes one")
    (spec,) = keyword_specs.values()
    inputs = keras.Input(shape=tuple(spec.shape[1:]), name="image")
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        if len(outputs) != 1:
            raise ModelLoadError(f"'{path}': its serving_default signature has "
                                 f"{len(outputs)} outputs ({', '.join(outputs)}); expected one")
        (outputs,) = outputs.values()
    logger.info("loaded the SavedModel '%s' for inference only", path)
    return keras.Model(inputs, outputs, name=f"saved_model_{path.name}")


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _check_keras_archive(path):
    """Refuse a `.keras` file that is not a zip or names a member outside its own folder."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelLoadError(f"'{path}' could not be loaded as a Keras model: it is not a "
                             f".keras (zip) archive ({error})") from None
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ModelLoadError(f"'{path}' refused: its member '{name}' points outside the "
                                 f"archive (path traversal)")

