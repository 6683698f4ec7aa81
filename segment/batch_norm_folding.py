"""Prediction with each batch norm folded into the convolution before it.

Outside training a batch norm scales and shifts each channel by fixed numbers (its moving
statistics, gamma and beta), so after a bias-free convolution the two equal one convolution
whose kernel is scaled per output channel and which adds a bias:

    kernel' = kernel * s,  bias' = beta - moving_mean * s,  s = gamma / sqrt(moving_var + eps)

oneDNN then computes the convolution, the bias and the ReLU6 after it as one kernel: for the 48
pairs of the U-Net on a pretrained Lite0 encoder (`segment.efficientnet`) this made bf16
prediction at 224x224 about 1.17x as fast on a 2-core AMD EPYC with native bf16
(docs/RESULTS.md, "The encoder's batch norms folded into its convolutions"). The U-Nets that
`create_model` builds with frozen encoder batch norms (the default) carry each batch norm in
its convolution already (`segment.layers.FrozenBatchNormConv2D`), and the paper's own network
has none: those predict as they are. The copy serves models saved before that layer and those
whose batch norms train (`encoder_batchnorm="train"`).

    folded = folded_for_prediction(model)   # the same probabilities, to float rounding
"""

import weakref

import keras
import numpy as np

from .layers import fold_batch_norm
from .model import nested_models

__all__ = ["folded_for_prediction", "foldable_pairs"]

_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)  # subclasses included
_copies = weakref.WeakKeyDictionary()  # model -> (its copy, {position: (conv, batch norm)})


def foldable_pairs(model):
    """[(convolution, batch norm)] of a functional or sequential Keras `model` and the models
    nested in it: each batch norm on the channels-last output of a bias-free `Conv2D` or
    `DepthwiseConv2D` that nothing else reads. [] for any other model (a subclassed one, an
    object with a `predict_on_batch`), whose graph cannot be read."""
    if not isinstance(model, keras.Model) or getattr(model, "inputs", None) is None:
        return []
    pairs = []
    for layer in _all_layers(model):
        if not isinstance(layer, keras.layers.BatchNormalization) or layer.axis not in (-1, 3):
            continue
        try:
            producer = layer.input._keras_history.operation
        except (AttributeError, ValueError):  # called in a subclassed model, or shared
            continue
        if (isinstance(producer, _CONVOLUTIONS) and not producer.use_bias
                and producer.data_format == "channels_last"
                and len(producer._outbound_nodes) == 1):
            pairs.append((producer, layer))
    return pairs


def folded_for_prediction(model):
    """A copy of the Keras `model` for prediction, its `foldable_pairs` folded (each
    convolution with a bias, each batch norm an identity), holding the model's weights as they
    are now; `model` itself when it has no such pair (or is no functional Keras model).

    The copy is made once per model and kept while the model lives; each call copies the
    model's current weights into it (training may have changed them), so it always predicts
    what `model` would: the same probabilities in float32 to float rounding (1e-5), within
    bfloat16's rounding under mixed precision. Never train the copy.
    """
    pairs = foldable_pairs(model)
    if not pairs:
        return model
    if model not in _copies:
        _copies[model] = _fold_structure(model, pairs)
    copy, folded_at = _copies[model]
    for position, (original, layer) in enumerate(zip(_all_layers(model), _all_layers(copy),
                                                     strict=True)):
        if position in folded_at:
            layer.set_weights(_folded_weights(*folded_at[position]))
        elif not isinstance(layer, keras.Model) and layer.weights:
            layer.set_weights(original.get_weights())
    return copy


def _fold_structure(model, pairs):
    """(the copy with the pairs' layers replaced, {the convolution's position in `_all_layers`:
    (conv, batch norm)})."""
    norm_of = {id(conv): norm for conv, norm in pairs}
    norms = {id(norm) for _, norm in pairs}

    def clone(layer):
        if id(layer) in norms:
            return keras.layers.Identity(name=layer.name, dtype=layer.dtype_policy)
        config = layer.get_config()
        if id(layer) in norm_of:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):  # an identity takes no `mask` or `training`
        return layer(*args) if isinstance(layer, keras.layers.Identity) else layer(*args, **kwargs)

    copy = keras.models.clone_model(model, clone_function=clone, call_function=call,
                                    recursive=True)
    return copy, {position: (layer, norm_of[id(layer)])
                  for position, layer in enumerate(_all_layers(model)) if id(layer) in norm_of}


def _folded_weights(conv, norm):
    """[kernel', bias'] of a convolution and the batch norm after it, float32 numpy."""
    channels = norm.moving_mean.shape
    gamma = norm.gamma if norm.scale else np.ones(channels, np.float32)
    beta = norm.beta if norm.center else np.zeros(channels, np.float32)
    folded = fold_batch_norm(conv.kernel, gamma, beta, norm.moving_mean, norm.moving_variance,
                             norm.epsilon,
                             depthwise=isinstance(conv, keras.layers.DepthwiseConv2D))
    return [keras.ops.convert_to_numpy(weight) for weight in folded]


def _all_layers(model):
    """Every layer of `model` and of the models nested in it (a nested model is listed among
    its parent's layers too), in one fixed order for a model and its copy."""
    return [layer for nested in nested_models(model) for layer in nested.layers]
