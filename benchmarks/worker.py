"""Long-lived benchmark worker processes that take turns (interleaved A/B rounds).

The driver (`run_all.py`) starts one TensorFlow worker and two torch workers (the reference as
configured by default, and tuned: `settings_for`) with `multiprocessing`'s spawn context, so each
is a fresh interpreter that imports only its own framework, with its thread counts set before the
import. The ready message carries the worker's settings and framework build
(`machine_info.framework_build`). Messages are dicts over a `Pipe`:

* `{"op": "setup", "key": k, "kind": name, "spec": {...}}` builds case `k` (model, inputs,
  compiled function), runs it twice to warm up and once more to time it; answers
  `{"single_s": seconds, "info": {...}}`.
* `{"op": "run", "key": k, "iters": n}` runs case `k` n times, answers `{"times": [...]}`
  (a case whose `step()` returns a float has timed itself; that float is used).
* `{"op": "drop", "key": k}` frees case `k`.
* `{"op": "close"}` ends the worker.

Any exception is answered as `{"error": traceback}`; the driver records it and goes on.
Only one worker computes at a time: the others block on their pipes, so they never compete for
the cores.
"""

import os
import sys
import time
import traceback


# The reference (torch + transformers) runs in two configurations, each in its own worker:
# * "torch_default": as a user gets it. Only the thread count is set, to the same number as TensorFlow's (the
#   compared resource); no environment variable, torch's default inter-op pool.
# * "torch" (tuned): idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE) and one inter-op thread. On a shared,
#   oversubscribed machine torch's default spin-waiting made Swin-T's forward 2x slower (tiny models 4x), but on a
#   quiet machine spinning can be the faster choice.
# Speed-ups are taken against the faster of the two in each round (plan.with_reference_configs).
REFERENCE_SIDES = ("torch", "torch_default")


def settings_for(side, threads):
    """What a worker of `side` sets before importing its framework (pure: nothing is applied here).

    Args:
        side: "tf", "torch" (tuned reference) or "torch_default" (reference as configured by default).
        threads: intra-op threads (0: the framework's default, for --gpu).

    Returns:
        dict: `env` (environment variables to set, unless already set by the user), `num_threads` (None: leave
        it), `num_interop_threads` (None: leave it), and for TensorFlow `tf_threads`.
    """
    if side not in ("tf",) + REFERENCE_SIDES:
        raise ValueError(f"Unknown worker side {side!r}. Known: {('tf',) + REFERENCE_SIDES}")
    count = threads if threads > 0 else None
    if side == "torch_default":
        return {"env": {}, "num_threads": count, "num_interop_threads": None}
    env = {}
    if count:
        env.update({name: str(count) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    if side == "torch":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        return {"env": env, "num_threads": count, "num_interop_threads": 1}
    # TensorFlow: its own thread pools (oneDNN runs on them, not on OpenMP); 3 also hides the "failed call to
    # cuInit" line of CPU-only machines.
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return {"env": env, "tf_threads": count}


def _configure_threads(side, threads):
    """Applies `settings_for(side, threads)` in this (fresh) worker process."""
    settings = settings_for(side, threads)
    for name, value in settings["env"].items():
        os.environ.setdefault(name, value)
    if side in REFERENCE_SIDES:
        import torch

        if settings["num_threads"]:
            torch.set_num_threads(settings["num_threads"])
        if settings["num_interop_threads"]:
            torch.set_num_interop_threads(settings["num_interop_threads"])
    else:
        import tensorflow as tf

        if settings["tf_threads"]:
            tf.config.threading.set_intra_op_parallelism_threads(settings["tf_threads"])
            tf.config.threading.set_inter_op_parallelism_threads(settings["tf_threads"])
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)


def _factories(side):
    if side in REFERENCE_SIDES:
        from benchmarks import torch_cases

        return torch_cases.CASES
    from benchmarks import tf_cases

    return tf_cases.CASES


def serve(conn, side, threads, source_root=None):
    """Worker main loop (the target of a spawned process).

    Args:
        conn: the child end of a `multiprocessing.Pipe`.
        side: `"tf"`, `"torch"` (tuned reference) or `"torch_default"` (reference as configured by default).
        threads: int, intra-op threads (the same on every side).
        source_root: optional directory holding another `florence_keras` tree, imported instead
            of the installed one (`compare_trees.py`: before/after a change, side by side).
    """
    try:
        if source_root is not None:
            sys.path.insert(0, source_root)
        _configure_threads(side, threads)
        factories = _factories(side)
        from benchmarks import machine_info

        conn.send({"ready": True, "pid": os.getpid(), "side": side,
                   "settings": settings_for(side, threads), "build": machine_info.framework_build(side)})
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
