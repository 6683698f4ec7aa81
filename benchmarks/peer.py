"""The peer for benchmark 5: MONAI's DynUNet (PyTorch), built, timed and trained like our network.

Only the benchmarks import this module; it needs the optional `[peer]` extra (torch, monai).
`available()` says whether they are installed. The peer trains on the very batches our
`segment.create_generator` makes (same pairs, split, resolution and augmentation), with the same
per-image bce+dice loss and Adam, and is scored by `segment.evaluate` through `KerasLikePredictor`,
so the only difference left is the network and its framework.
"""

import importlib.util
import math
import time

import numpy as np

SLOPE = 0.01  # LeakyReLU negative slope, as in our network


def available():
    """None when torch and monai import, else a message saying how to install them."""
    missing = [name for name in ("torch", "monai") if importlib.util.find_spec(name) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed: pip install -e '.[peer]' "
                f"-c requirements/constraints.txt")
    return None


def create_dynunet(base_filters=16, depth=5):
    """nnU-Net-style 2-D DynUNet: `depth` levels, filters base..base*2^(depth-1), instance norm,
    LeakyReLU 0.01, residual blocks, transposed-convolution upsampling; 3 channels in, 1 logit
    out."""
    import torch
    from monai.networks.nets import DynUNet

    torch.manual_seed(0)
    return DynUNet(spatial_dims=2, in_channels=3, out_channels=1, kernel_size=[3] * depth,
                   strides=[1] + [2] * (depth - 1), upsample_kernel_size=[2] * (depth - 1),
                   filters=[base_filters * 2**level for level in range(depth)],
                   norm_name=("instance", {"affine": True}),
                   act_name=("leakyrelu", {"negative_slope": SLOPE, "inplace": True}),
                   res_block=True)


def forward_flops(model, size):
    """FLOPs (2 per multiply-add) of the model's convolutions for one (3, size, size) image."""
    import torch

    total = 0

    def count(module, inputs, output):
        nonlocal total
        kernel = math.prod(module.kernel_size) * module.in_channels // module.groups
        # A transposed convolution does its multiply-adds once per *input* pixel.
        pixels = (inputs[0] if isinstance(module, torch.nn.ConvTranspose2d) else output)
        total += 2 * kernel * module.out_channels * pixels.shape[-2] * pixels.shape[-1]

    hooks = [module.register_forward_hook(count) for module in model.modules()
             if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return total


def bce_dice_loss(logits, masks, smooth=1.0):
    """Per-image mean BCE plus per-image soft dice loss (as segment.bce_dice_loss), batch mean."""
    import torch

    probabilities = torch.sigmoid(logits)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    intersection = (probabilities * masks).sum(dim=(1, 2, 3))
    total = probabilities.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3))
    dice = 1.0 - (2.0 * intersection + smooth) / (total + smooth)
    return (bce.mean(dim=(1, 2, 3)) + dice).mean()


def to_torch(batch):
    """NHWC float32 NumPy -> NCHW torch tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.transpose(batch, (0, 3, 1, 2))))


class Trainer:
    """One Adam step of bce+dice on a DynUNet, eager or under torch.compile."""

    def __init__(self, model, learning_rate, compiled):
        import torch

        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        self.forward = torch.compile(model) if compiled else model

    def step(self, images, masks):
        """One training step on float32 NHWC NumPy batches."""
        self.model.train()
        loss = bce_dice_loss(self.forward(to_torch(images)), to_torch(masks))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def set_learning_rate(self, value):
        for group in self.optimizer.param_groups:
            group["lr"] = value


class KerasLikePredictor:
    """What `segment.evaluate` needs of a model: `input_shape` and `predict_on_batch`."""

    def __init__(self, forward, model, size):
        self.forward, self.model = forward, model
        self.input_shape = (None, size, size, 3)

    def predict_on_batch(self, batch):
        """float32 (batch, h, w, 3) images in [0, 1] -> float32 (batch, h, w, 1) probabilities."""
        import torch

        self.model.eval()
        with torch.no_grad():
            probabilities = torch.sigmoid(self.forward(to_torch(np.asarray(batch, np.float32))))
        return probabilities.permute(0, 2, 3, 1).numpy()


def train_for(trainer, train_ds, val_ds, learning_rate, budget_seconds, size):
    """Train until `budget_seconds` of wall-clock time are spent (first batch included), with a
    cosine learning rate over the budget; keep the epoch with the best validation dice.

    Returns (predictor with the best weights, dict of epochs run and best validation dice)."""
    import segment

    predictor = KerasLikePredictor(trainer.forward, trainer.model, size)
    best_dice, best_state, epochs = -1.0, None, 0
    start = time.perf_counter()
    while time.perf_counter() - start < budget_seconds:
        for images, masks in train_ds.as_numpy_iterator():
            elapsed = time.perf_counter() - start
            if elapsed >= budget_seconds:
                break
            trainer.set_learning_rate(
                learning_rate * (1 + math.cos(math.pi * elapsed / budget_seconds)) / 2)
            trainer.step(images, masks)
        epochs += 1
        dice = np.mean(np.concatenate([  # per-image dice of every validation image, as Keras'
            segment.dice_coefficient(masks, predictor.predict_on_batch(images))
            for images, masks in val_ds.as_numpy_iterator()]))
        if dice > best_dice:
            best_dice = float(dice)
            best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.model.load_state_dict(best_state)
    return predictor, {"epochs": epochs, "best_val_dice": best_dice,
                       "train_seconds": time.perf_counter() - start}
