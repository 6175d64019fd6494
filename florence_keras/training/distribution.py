"""Distribution strategies by name, and who is the chief.

One training code path runs under all three (ENV.md: Keras 3 `model.fit` is broken under
MultiWorkerMirroredStrategy, so florence_keras trains with a custom loop everywhere):

* `"default"`: the default strategy (one device, or whatever TensorFlow places ops on).
* `"mirrored"`: `tf.distribute.MirroredStrategy` over this host's GPUs; without GPUs, over its logical
  CPU devices when there are several (tests split the CPU with `tf.config.set_logical_device_configuration`),
  else the CPU.
* `"multi_worker"`: `tf.distribute.MultiWorkerMirroredStrategy` configured by the `TF_CONFIG` environment
  variable. Create it at program start, before any other TensorFlow op.
"""

import itertools
import json
import os

import tensorflow as tf

STRATEGY_NAMES = ("default", "mirrored", "multi_worker")

_mirrored_strategies_created = itertools.count()


def _mirrored_strategy(devices):
    """A MirroredStrategy with collective keys of its own.

    TensorFlow starts every MirroredStrategy's collective group and instance keys at the same values
    (class attribute `_collective_key_base = 0`). A second strategy over the same devices in one process
    (a second trainer in a notebook, or a test suite) then hits the collective instances cached for the
    first and fails with "Shape mismatch in the collective instance ...". Each strategy made here gets a
    disjoint key range; the first keeps TensorFlow's default.
    """
    cls = tf.distribute.MirroredStrategy
    previous = cls._collective_key_base
    cls._collective_key_base = 100_000 * next(_mirrored_strategies_created)
    try:
        return cls(devices)
    finally:
        cls._collective_key_base = previous


def make_strategy(strategy="default"):
    """Returns a `tf.distribute.Strategy` from a name (or passes a strategy object through).

    Args:
        strategy: "default", "mirrored", "multi_worker", or a `tf.distribute.Strategy`.

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    >>> make_strategy("default").num_replicas_in_sync
    1
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy == "default":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return _mirrored_strategy([d.name for d in gpus])
        return _mirrored_strategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if strategy == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy='multi_worker' needs the TF_CONFIG environment variable "
                "(cluster and task). Received: TF_CONFIG unset"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(
        f"`strategy` must be one of {STRATEGY_NAMES} or a tf.distribute.Strategy. "
        f"Received: strategy={strategy!r}"
    )


def task_info(strategy):
    """Returns `(task_type, task_id)` of this process, `(None, 0)` outside a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and resolver.task_type is not None:
        return resolver.task_type, int(resolver.task_id or 0)
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and "task" in config:
        return config["task"].get("type"), int(config["task"].get("index", 0))
    return None, 0


def is_chief(strategy):
    """True for the process that writes checkpoints, summaries and logs.

    That is every single-process run, the `"chief"` task, or worker 0 of a cluster without a chief.
    """
    task_type, task_id = task_info(strategy)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return task_type == "worker" and task_id == 0 and "chief" not in cluster
