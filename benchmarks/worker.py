"""Long-lived benchmark worker processes that take turns (interleaved A/B rounds).

The driver (`run_all.py`) starts one TensorFlow worker and one torch worker with
`multiprocessing`'s spawn context, so each is a fresh interpreter that imports only its own
framework, with its thread counts set before the import. Messages are dicts over a `Pipe`:

* `{"op": "setup", "key": k, "kind": name, "spec": {...}}` builds case `k` (model, inputs,
  compiled function), runs it twice to warm up and once more to time it; answers
  `{"single_s": seconds, "info": {...}}`.
* `{"op": "run", "key": k, "iters": n}` runs case `k` n times, answers `{"times": [...]}`
  (a case whose `step()` returns a float has timed itself; that float is used).
* `{"op": "drop", "key": k}` frees case `k`.
* `{"op": "close"}` ends the worker.

Any exception is answered as `{"error": traceback}`; the driver records it and goes on.
Only one worker computes at a time: the other blocks on its pipe, so the two never compete for
the cores.
"""

import os
import sys
import time
import traceback


def _configure_threads(side, threads):
    """Same intra-op thread count on both sides (0: the framework's default, for --gpu)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if threads > 0:
            os.environ[name] = str(threads)
    # Idle OpenMP threads sleep instead of spinning. On a shared, oversubscribed machine torch's
    # default spin-waiting made Swin-T's forward 2x slower (and tiny models 4x): an artefact of
    # the neighbours, not of the library. TensorFlow's thread pool does not spin-wait long.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # 3: also hides the "failed call to cuInit" line of CPU-only machines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if side == "torch":
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    else:
        import tensorflow as tf

        if threads > 0:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)


def _factories(side):
    if side == "torch":
        from benchmarks import torch_cases

        return torch_cases.CASES
    from benchmarks import tf_cases

    return tf_cases.CASES


def serve(conn, side, threads, source_root=None):
    """Worker main loop (the target of a spawned process).

    Args:
        conn: the child end of a `multiprocessing.Pipe`.
        side: `"tf"` or `"torch"`.
        threads: int, intra-op threads (the same on both sides).
        source_root: optional directory holding another `florence_keras` tree, imported instead
            of the installed one (`compare_trees.py`: before/after a change, side by side).
    """
    try:
        if source_root is not None:
            sys.path.insert(0, source_root)
        _configure_threads(side, threads)
        factories = _factories(side)
        conn.send({"ready": True, "pid": os.getpid()})
    except Exception:  # report start-up failures to the driver instead of dying silently
        conn.send({"error": traceback.format_exc()})
        return
    cases = {}
    while True:
        message = conn.recv()
        op = message.get("op")
        try:
            if op == "close":
                conn.send({"closed": True})
                return
            if op == "setup":
                kind = message["kind"]
                if kind not in factories:
                    raise ValueError(f"Unknown {side} case kind {kind!r}. Known: {sorted(factories)}")
                start = time.perf_counter()
                case = factories[kind](message["spec"], cases)
                setup_s = time.perf_counter() - start
                cases[message["key"]] = case
                for _ in range(2):
                    case.step()
                start = time.perf_counter()
                case.step()
                single = time.perf_counter() - start
                info = dict(case.info())
                info["setup_s"] = setup_s
                if source_root is not None:
                    import florence_keras

                    info["florence_keras_file"] = florence_keras.__file__
                conn.send({"single_s": single, "info": info})
            elif op == "run":
                case = cases[message["key"]]
                times = []
                for _ in range(int(message["iters"])):
                    start = time.perf_counter()
                    measured = case.step()
                    elapsed = time.perf_counter() - start
                    # A case may time its own steady-state part (the input pipeline does).
                    times.append(measured if isinstance(measured, float) else elapsed)
                conn.send({"times": times})
            elif op == "drop":
                cases.pop(message["key"], None)
                conn.send({"dropped": True})
            else:
                raise ValueError(f"Unknown op {op!r}")
        except Exception:  # a failing case must not take the other cases down
            conn.send({"error": traceback.format_exc()})
