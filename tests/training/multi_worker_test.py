"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy) train florence_mini like one process.

florence_mini reads TFRecord shards through the real input pipeline (`florence_mini_run.py`): each worker is one
input pipeline and reads its own shards. The one-process run sees the same global batches: its input function
concatenates, per step, the batches of the two pipelines (built with the same `DatasetRequest`s the workers get).
DropPath is on (florence_mini_run.DROP_PATH_RATE): each worker draws the masks of the global batch and keeps its own
rows (`example_window`), so the two runs drop the same branches of the same examples.

The three runs are subprocesses of this file (`python multi_worker_test.py DATA MODEL_DIR OUT.npz`, with TF_CONFIG
set for a worker); ports are picked free at run time.
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
GLOBAL_BATCH = 8
WORKERS = 2
# float32 sums in another order (the all-gathered loss, the gradient all-reduce) through three AdamW steps.
TOLERANCE = 5e-5  # measured 1.2e-5; one step's update is ~1e-3


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, log, tf_config=None):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    log = open(log, "w+", encoding="utf-8")
    process = subprocess.Popen([sys.executable, __file__, *map(str, args)], env=env, stdout=subprocess.PIPE,
                               stderr=log, text=True)
    process.log = log
    return process


def _stderr(process):
    process.log.seek(0)
    return process.log.read()[-5000:]


def test_two_workers_match_single_process(tmp_path):
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from florence_mini_run import max_abs_diff
    from florence_mini_run import write_data

    import tensorflow as tf

    start = time.perf_counter()
    data = write_data(tmp_path / "data", "tfrecord")
    assert len(data) == 4  # shards: two per worker
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(WORKERS)]}
    processes = [
        _launch([",".join(data), tmp_path / "run", tmp_path / f"worker{index}.npz"], tmp_path / f"worker{index}.log",
                {"cluster": cluster, "task": {"type": "worker", "index": index}})
        for index in range(WORKERS)
    ]
    processes.append(_launch([",".join(data), tmp_path / "single", tmp_path / "single.npz"], tmp_path / "single.log"))
    try:
        for process in processes:
            process.communicate(timeout=900)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process in processes:
        assert process.returncode == 0, _stderr(process)

    # Only the chief (worker 0) wrote checkpoints; the other worker's temporary directory is gone. The checkpoint
    # holds each worker's input position: stage 1 (from step 0), 3 steps x 4 examples read by each pipeline.
    run = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in run.glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-3.index"]
    assert not list(run.glob(".worker_*"))
    position = tf.train.load_checkpoint(str(run / "ckpt-3")).get_tensor("data_position/.ATTRIBUTES/VARIABLE_VALUE")
    assert position.tolist() == [0, STEPS * GLOBAL_BATCH // WORKERS, STEPS * GLOBAL_BATCH // WORKERS]

    workers = [dict(np.load(tmp_path / f"worker{index}.npz")) for index in range(WORKERS)]
    single = dict(np.load(tmp_path / "single.npz"))
    assert max_abs_diff(workers[0], workers[1]) == 0.0
    error = max_abs_diff(single, workers[0])
    assert error <= TOLERANCE, error
    print(f"florence_mini multi-worker test: {time.perf_counter() - start:.1f} s; "
          f"max |2 workers - 1 process| = {error:.3g}")


def main(argv):
    data, model_dir, out = argv[0].split(","), argv[1], argv[2]
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from florence_keras.training import make_strategy

    multi_worker = "TF_CONFIG" in os.environ
    # MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs.
    strategy = make_strategy("multi_worker" if multi_worker else "default")

    import tensorflow as tf
    from florence_mini_run import make_input_fn
    from florence_mini_run import make_trainer
    from florence_mini_run import weights

    from florence_keras.training import DatasetRequest

    input_fn = make_input_fn(data, "tfrecord")

    def both_pipelines(request):
        """One pipeline whose batch of each step is the global batch of the two workers' pipelines, in order."""
        parts = [input_fn(DatasetRequest(request.stage, GLOBAL_BATCH // WORKERS, GLOBAL_BATCH, WORKERS, index,
                                         seed=request.seed, deterministic=request.deterministic))
                 for index in range(WORKERS)]
        return tf.data.Dataset.zip(tuple(parts)).map(
            lambda *batches: {key: tf.concat([b[key] for b in batches], 0) for key in batches[0]})

    trainer = make_trainer(model_dir, input_fn if multi_worker else both_pipelines,
                           strategy=strategy, total_steps=STEPS, global_batch_size=GLOBAL_BATCH, chunk_size=2,
                           deterministic=True)
    result = trainer.fit()
    assert result["step"] == STEPS, result
    np.savez(out, **weights(trainer.model))


if __name__ == "__main__":
    main(sys.argv[1:])
