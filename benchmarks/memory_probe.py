"""Peak resident memory of one UniCL training step, with or without the gradient cache.

Run as a subprocess (one per measurement: peak RSS is per process):

    python -m benchmarks.memory_probe '{"batch": 1024, "chunk": 64, "config": {...}}'

It builds the dual encoder, runs one training step (gradients + AdamW update) on a batch of
`batch` random (image, text) pairs — through `GradientCache(model, chunk)` when `chunk` is set,
else `full_batch_gradients` — and prints one JSON line prefixed with `MEMORY_PROBE ` holding the
peak RSS (`ru_maxrss`) after the model is built and after the step, and the step's wall time.
"""

import json
import os
import resource
import sys
import time


def _rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def probe(spec):
    """Runs the measurement described by `spec`; returns the result dict."""
    threads = int(spec.get("threads", 2))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras
    import numpy as np

    from benchmarks.inputs import text_inputs
    from florence_keras.models import presets
    from florence_keras.training.gradient_cache import GradientCache
    from florence_keras.training.gradient_cache import full_batch_gradients
    from florence_keras.models.florence_clip import FlorenceCLIP
    from florence_keras.training.optimizer_factory import AdamWConfig
    from florence_keras.training.optimizer_factory import make_optimizer

    from benchmarks.tf_cases import resolve_config

    batch, chunk, config = spec["batch"], spec.get("chunk"), resolve_config(spec["config"])
    if chunk is not None and batch % chunk:
        raise ValueError(f"`batch` must be a multiple of `chunk`. Received: batch={batch}, chunk={chunk}")
    keras.utils.set_random_seed(0)
    model = presets.build_backbone(config)
    optimizer = make_optimizer(model.trainable_variables, AdamWConfig(learning_rate=1e-4), total_steps=10)
    task = FlorenceCLIP(model)  # the Task owns the UniCL loss the trainer drives
    variables = model.trainable_variables
    size = config["image_encoder"]["image_shape"][0]
    text = config["text_encoder"]
    # float32 straight from the generator: a float64 draw would add a transient 2x the image batch
    # to the peak, which is an artefact of the probe, not of training.
    rng = np.random.default_rng(0)
    data = {
        "images": tf.constant(rng.standard_normal((batch, size, size, 3), dtype=np.float32)),
        "token_ids": tf.constant(text_inputs(batch, text.get("max_sequence_length", 77),
                                             text.get("vocabulary_size", 49408) - 1)),
        "labels": tf.range(batch, dtype=tf.int64),
    }
    rss_built = _rss_mib()
    compute = GradientCache(task, chunk) if chunk else (lambda b: full_batch_gradients(task, b))

    @tf.function
    def step(batch_data):
        loss, grads = compute(batch_data)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(grads, variables)]
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    start = time.perf_counter()
    loss = float(step(data))
    seconds = time.perf_counter() - start
    return {"batch": batch, "chunk": chunk, "loss": loss, "rss_built_mib": rss_built,
            "peak_rss_mib": _rss_mib(), "step_s_including_trace": seconds,
            "input_mib": (data["images"].numpy().nbytes + data["token_ids"].numpy().nbytes) / 2**20}


def main(argv):
    if len(argv) != 2:
        raise SystemExit("usage: python -m benchmarks.memory_probe '<json spec>'")
    result = probe(json.loads(argv[1]))
    print("MEMORY_PROBE " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
