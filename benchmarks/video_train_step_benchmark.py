"""Clips/s of one FlorenceVideoClassifier training step at 8 x 112 x 112 (issue #15).

    nice -n 5 python benchmarks/video_train_step_benchmark.py [--preset florence_mini_builtin] [--batch 8]
        [--frames 8] [--size 112] [--steps 10] [--output result.json]

The image encoder of --preset is inflated (temporal kernel 3, stem stride 2, windows (2, W, W)); a step is the
Task's `replica_loss` (label-smoothed cross-entropy on uint8 clips, normalisation included) and AdamW on every
weight, in one `tf.function`. The first two steps (tracing) are not timed; the median step's wall and process CPU
time are reported with clips/s and the CPU model (on a shared machine, CPU time is the steadier figure).
"""

import argparse
import json
import platform
import statistics
import time


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(preset="florence_mini_builtin", batch=8, frames=8, size=112, steps=10):
    import numpy as np
    import tensorflow as tf

    from florence_keras.models.florence_video_classifier import FlorenceVideoClassifier

    task = FlorenceVideoClassifier.from_image_preset(preset, class_names=["a", "b", "c", "d"], num_frames=frames,
                                                     image_size=size)
    import keras

    optimizer = keras.optimizers.AdamW(1e-4)
    rng = np.random.default_rng(0)
    videos = tf.constant(rng.integers(0, 256, (batch, frames, size, size, 3)).astype(np.uint8))
    labels = tf.constant(rng.integers(0, 4, batch).astype(np.int64))
    variables = task.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = task.replica_loss({"videos": videos}, labels, training=True)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        return loss

    for _ in range(2):
        step().numpy()
    walls, cpus = [], []
    for _ in range(steps):
        wall, cpu = time.perf_counter(), time.process_time()
        step().numpy()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"preset": preset, "batch": batch, "frames": frames, "size": size, "steps_timed": steps,
            "median_step_wall_s": wall, "median_step_cpu_s": cpu, "clips_per_s_wall": batch / wall,
            "clips_per_cpu_s": batch / cpu, "cpu_model": cpu_model(),
            "threads": tf.config.threading.get_intra_op_parallelism_threads()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="florence_mini_builtin")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    result = run(args.preset, args.batch, args.frames, args.size, args.steps)
    print(json.dumps(result, indent=1))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
