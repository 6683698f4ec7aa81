"""A pretrained encoder's own learning rate while the whole network trains.

    model.compile(optimizer=EncoderScaledAdam(1e-3, encoder.trainable_variables), ...)
    model.fit(..., callbacks=[EncoderLearningRate(scale=0.1, frozen_epochs=2)])

`train_model` does this from `TrainConfig.encoder_lr_scale` and `encoder_frozen_epochs`: it
binds the optimizer to the model's encoder (a loaded optimizer is bound to no weight) and
refuses settings it could not apply.
"""

import logging

import keras

from .model import batch_norms_train, pretrained_encoder

__all__ = ["EncoderLearningRate", "EncoderScaledAdam", "check_encoder_settings",
           "inner_optimizer"]

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="segment")
class EncoderScaledAdam(keras.optimizers.Adam):
    """Adam whose steps on a pretrained encoder's weights are `encoder_scale` times the rest's.

    `encoder_scale` is an optimizer variable (1 until changed), so a callback can change it
    between epochs without retracing: 0 freezes the encoder. (Scaling the encoder's gradients
    instead would change nothing: Adam's step does not depend on the gradient's scale.) Saved
    with a model, it loads as itself bound to no weight (the encoder's variables are not part
    of its config); `train_model` binds it to the model's encoder (`bind_encoder`) and sets
    its scale from the `TrainConfig` before every fit.

    Args:
        learning_rate: Adam's learning rate (a float or a schedule).
        encoder_variables: The encoder's trainable variables, e.g.
            `pretrained_encoder(model).trainable_variables`.
        **kwargs: Adam's other arguments.

    Example:
        >>> lite0_unet = segment.create_model((32, 32, 3), encoder="efficientnet_lite0")
        >>> encoder = pretrained_encoder(lite0_unet)
        >>> optimizer = EncoderScaledAdam(1e-3, encoder.trainable_variables)
        >>> float(keras.ops.convert_to_numpy(optimizer.encoder_scale))  # 1 until a callback sets it
        1.0
    """

    def __init__(self, learning_rate=0.001, encoder_variables=(), **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.bind_encoder(encoder_variables)
        self.encoder_scale = self.add_variable((), initializer="ones", name="encoder_scale")

    def bind_encoder(self, encoder_variables):
        """Scale the steps of these variables (the encoder's trainable ones) from now on."""
        self._encoder_keys = {self._var_key(variable) for variable in encoder_variables}

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._encoder_keys:
            learning_rate = learning_rate * self.encoder_scale
        super().update_step(gradient, variable, learning_rate)


class EncoderLearningRate(keras.callbacks.Callback):
    """Set `EncoderScaledAdam.encoder_scale` at each epoch's start: 0 in the first
    `frozen_epochs`, `scale` after them."""

    def __init__(self, scale, frozen_epochs):
        super().__init__()
        self.scale, self.frozen_epochs = float(scale), int(frozen_epochs)

    def on_train_begin(self, logs=None):
        frozen = self.frozen_epochs
        if self.scale == 1 and not frozen:
            return
        logger.info("the pretrained encoder learns at %g times the learning rate%s", self.scale,
                    f", after {frozen} epoch{'s' * (frozen != 1)} frozen" if frozen else "")

    def on_epoch_begin(self, epoch, logs=None):
        scale = 0.0 if epoch < self.frozen_epochs else self.scale
        inner_optimizer(self.model.optimizer).encoder_scale.assign(scale)


def check_encoder_settings(model, config):
    """Bind an `EncoderScaledAdam` (a loaded one is bound to no weight) to the model's encoder,
    or refuse encoder settings that would not be applied: never silently the full rate."""
    optimizer, encoder = inner_optimizer(model.optimizer), pretrained_encoder(model)
    if isinstance(optimizer, EncoderScaledAdam) and encoder is not None:
        optimizer.bind_encoder(encoder.trainable_variables)
    elif config.scales_encoder:
        raise ValueError(f"encoder_lr_scale and encoder_frozen_epochs need the model "
                         f"compiled with compile_model(..., scale_encoder=True) on a pretrained "
                         f"encoder; '{model.name}' has {type(optimizer).__name__}")
    if config.encoder_frozen_epochs and batch_norms_train(encoder):
        raise ValueError("encoder_frozen_epochs needs the encoder's batch norms frozen "
                         "(encoder_batchnorm='frozen'): theirs would still update their "
                         "statistics while the encoder is frozen")


def inner_optimizer(optimizer):
    """The optimizer a LossScaleOptimizer wraps, or `optimizer` itself."""
    return getattr(optimizer, "inner_optimizer", optimizer)
