"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy) train like one process on the same batch.

Workers are subprocesses of this file (`python multi_worker_test.py MODEL_DIR OUT.npz`) with TF_CONFIG
set; ports are picked free at run time.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np

STEPS = 3


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _trainer(model_dir, strategy):
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from toy_dual_encoder import build_toy_dual_encoder
    from toy_dual_encoder import make_toy_dataset

    from florence_keras.training import AdamWConfig
    from florence_keras.training import UniCLTrainer

    return UniCLTrainer(
        lambda: build_toy_dual_encoder(dropout=0.0),
        make_toy_dataset(),
        model_dir=str(model_dir),
        total_steps=STEPS,
        global_batch_size=8,
        strategy=strategy,
        optimizer=AdamWConfig(learning_rate=1e-3, warmup_steps=1),
        image_size=16,
        chunk_size=2,
        checkpoint_every=2,
        log_every=1,
        seed=5,
        verbose=0,
    )


def _weights(trainer):
    """Trainable weights keyed by position (auto-numbered layer names differ between processes)."""
    import tensorflow as tf

    return {str(i): tf.convert_to_tensor(v).numpy() for i, v in enumerate(trainer.model.trainable_variables)}


def test_two_workers_match_single_process(tmp_path):
    start = time.perf_counter()
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "PYTHONPATH": os.getcwd(),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, __file__, str(tmp_path / "run"), str(tmp_path / f"worker{index}.npz")],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        )
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    elapsed = time.perf_counter() - start

    # Only the chief (worker 0) wrote checkpoints; the other worker's temporary directory is gone.
    run = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in run.glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-3.index"]
    assert not list(run.glob(".worker_*"))

    single = _trainer(tmp_path / "single", "default")
    single.fit()
    expected = _weights(single)
    worker0 = np.load(tmp_path / "worker0.npz")
    worker1 = np.load(tmp_path / "worker1.npz")
    paths = [v.path for v in single.model.trainable_variables]
    for name, value in expected.items():
        message = paths[int(name)]
        np.testing.assert_array_equal(worker0[name], worker1[name], err_msg=message)
        np.testing.assert_allclose(worker0[name], value, atol=1e-6, rtol=0, err_msg=message)
    max_error = max(float(np.max(np.abs(worker0[name] - value))) for name, value in expected.items())
    print(f"multi-worker run: {elapsed:.1f} s; max |worker - single process| = {max_error:.3g}")


if __name__ == "__main__":
    trainer = _trainer(sys.argv[1], "multi_worker")
    result = trainer.fit()
    assert result["step"] == STEPS, result
    np.savez(sys.argv[2], **_weights(trainer))
