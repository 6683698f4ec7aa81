"""tf.distribute: mirrored replicas match one device; two local workers train one model."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import segment
from segment.distribute import check_last_batches, check_replica_batches, is_chief
from segment.pipeline import leaves_a_replica_without_images

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import EAGER_DRIVER, REPO, backed_up

HELPER = str(REPO / "tests" / "distributed_run.py")


@pytest.fixture(scope="module")
def cluster_data(tmp_path_factory):
    """60 pairs: 36 train, 12 validation, so every first batch of 8 splits evenly."""
    folder = tmp_path_factory.mktemp("cluster-data")
    segment.make_synthetic_dataset(folder, 60, size=(40, 48))
    return folder


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_workers(data_dir, run_dir, epochs, tmp_dir):
    """Two worker processes of one cluster on 127.0.0.1; worker 0 is the chief."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        environment = {**os.environ, "TF_CONFIG": json.dumps(config), "TMPDIR": str(tmp_dir)}
        processes.append(subprocess.Popen(
            [sys.executable, HELPER, "worker", str(data_dir), str(run_dir), str(epochs)],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=REPO, start_new_session=True))
    return processes


def finish(processes, timeout=300):
    """Wait for every process (killing all on timeout); return their parsed JSON outputs."""
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        stop(processes)
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


def stop(processes):
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device(cluster_data):
    done = subprocess.run([sys.executable, HELPER, "compare", str(cluster_data), "3"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    curves = json.loads(done.stdout.strip().splitlines()[-1])
    assert curves["replicas"] == 2
    # What create_generator(replicas=...) leaves out is what leaves a replica without images.
    assert [0 in sizes for sizes in curves["replica_batches"]] == [
        leaves_a_replica_without_images(size, 2) for size in range(1, 4)] == [True, False, False]
    np.testing.assert_allclose(curves["mirrored"], curves["single"], rtol=1e-3)


@pytest.mark.slow
def test_two_local_workers_resume_after_a_kill_and_only_the_chief_writes(cluster_data, tmp_path):
    # One cluster run, killed after its first backed-up epoch, then restarted whole (as a
    # cluster manager does); the restarted workers finish one model, written by the chief only.
    for name in ["tmp", "tmp-restarted"]:  # each run's temporary folders
        (tmp_path / name).mkdir()
    run_dir = tmp_path / "run"
    processes = start_workers(cluster_data, run_dir, 4, tmp_path / "tmp")
    try:
        deadline = time.monotonic() + 300
        while not backed_up(run_dir):
            assert all(process.poll() is None for process in processes), "a worker ended early"
            assert time.monotonic() < deadline, "no epoch was backed up"
            time.sleep(0.02)
        os.killpg(processes[1].pid, signal.SIGKILL)  # a worker dies mid-run
    finally:
        stop(processes)  # as a cluster manager does: the whole job is restarted
    assert not (run_dir / "report.html").exists()
    reports = finish(start_workers(cluster_data, run_dir, 4, tmp_path / "tmp-restarted"))
    assert all(report["epochs"] < 4 for report in reports)  # resumed, not started over
    assert pd.read_csv(run_dir / "log.csv")["epoch"].tolist() == [0, 1, 2, 3]
    assert not (run_dir / "backup").exists()
    assert sorted((report["task"], report["chief"]) for report in reports) == [
        ("worker-0", True), ("worker-1", False)]
    np.testing.assert_allclose(reports[0]["prediction"], reports[1]["prediction"], rtol=1e-5)
    saved = segment.load_model(run_dir / "model.keras")
    probe = np.linspace(0, 1, 2 * 32 * 32 * 3, dtype="float32").reshape(2, 32, 32, 3)
    np.testing.assert_allclose(saved.predict(probe, verbose=0).ravel()[::97],
                               reports[0]["prediction"], rtol=1e-5, atol=1e-6)
    # The worker's folder is gone (TensorFlow's autograph leaves the bytecode cache of the
    # modules it generated there, not ours).
    assert [path.name for path in (tmp_path / "tmp-restarted").iterdir()
            if path.name != "__pycache__"] == []
    # The chief's record (train_model under a cluster) reads back as the settings it ran.
    recorded = json.loads((run_dir / "config.json").read_text())
    assert segment.RunConfig.from_dict(recorded).train == segment.TrainConfig(epochs=4)


@pytest.mark.slow
def test_train_driver_with_mirrored_strategy(tmp_path):
    done = subprocess.run(
        [sys.executable, EAGER_DRIVER, str(REPO / "driver_train_save_evaluate.py"), "--run-dir",
         str(tmp_path / "run"), "--synthetic-dir", str(tmp_path / "synthetic"),
         "--num-synthetic", "21", "--size", "32", "--base-filters", "4", "--depth", "3",
         "--epochs", "1", "--batch-size", "4", "--distribute", "mirrored", "--cpu-devices", "2"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # 13 train pairs: a last batch of 1 would leave a replica an empty batch, which TensorFlow's
    # oneDNN convolution fails on; and TensorFlow's INFO lines stay out of the driver's output.
    assert "leaving out each epoch's last batch, 1 of the 13 pairs" in done.stderr
    assert "INFO tensorflow" not in done.stderr and "INFO:tensorflow" not in done.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["distribution"] == {"strategy": "MirroredStrategy", "replicas": 2}
    read = segment.RunConfig.from_dict(config)
    assert (read.data.image_size, read.model.depth, read.train.epochs) == ((32, 32), 3, 1)
    assert (tmp_path / "run" / "report.html").exists()


def test_batches_must_split_evenly_across_replicas():
    strategy = SimpleNamespace(num_replicas_in_sync=2)
    split = segment.Split(train=list(range(12)), val=list(range(5)), test=[1])
    with pytest.raises(ValueError, match="batch size 7 must be a multiple of the 2"):
        check_replica_batches(strategy, 7, split)
    with pytest.raises(ValueError, match="too small: validation"):
        check_replica_batches(strategy, 8, split)
    check_replica_batches(strategy, 4, split)


def test_a_last_batch_that_leaves_a_replica_without_images_is_refused(synthetic_pairs):
    strategy, size = SimpleNamespace(num_replicas_in_sync=2), {"image_size": (32, 32)}
    with pytest.raises(ValueError, match=re.escape(
            "the validation data's last batch of 1 would leave one of the 2 replicas without "
            "images: build it with create_generator(..., replicas=2), which leaves it out")):
        check_last_batches(strategy, training=segment.create_generator(
            synthetic_pairs[:12], batch_size=4, **size), validation=segment.create_generator(
            synthetic_pairs[:13], batch_size=4, **size))
    check_last_batches(strategy, training=segment.create_generator(  # 12 pairs: 4, 4, 4
        synthetic_pairs[:13], batch_size=4, replicas=2, **size), validation=None,
        other=tf.data.Dataset.range(3).batch(2))  # not create_generator's: not checked


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        segment.create_strategy("multiworker")
    with pytest.raises(ValueError, match="Received: kind='horovod'"):
        segment.create_strategy("horovod")


def test_model_must_be_built_under_the_strategy(synthetic_pairs, tmp_path):
    strategy = tf.distribute.MirroredStrategy(devices=["/cpu:0"])
    model = segment.create_model((32, 32, 3), base_filters=4, depth=3)  # outside its scope
    data = segment.create_generator(synthetic_pairs[:4], image_size=(32, 32), batch_size=2)
    with pytest.raises(ValueError, match="not built under this strategy"):
        segment.train_model(model, data, None, 1, tmp_path, strategy=strategy, verbose=0)


def test_chief_rule(monkeypatch):
    def strategy(task_type, index):
        return SimpleNamespace(cluster_resolver=SimpleNamespace(task_type=task_type,
                                                               task_id=index))

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a", "b"]}}))
    assert is_chief(strategy("worker", 0)) and not is_chief(strategy("worker", 1))
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c"], "worker": ["a"]}}))
    assert is_chief(strategy("chief", 0)) and not is_chief(strategy("worker", 0))
    assert is_chief(tf.distribute.get_strategy())
