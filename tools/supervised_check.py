r"""Supervised check of an image encoder on the built-in scenes: can it see shapes at all?

Before tuning contrastive pretraining, check that the architecture can learn the task with labels: the image
encoder of an architecture preset (random init) + a linear head, trained with cross-entropy on the shape of
single-object built-in scenes (training split), scored on the in-distribution test split (seen shape-colour
combinations, images never seen in training). If this does not reach ~0.98 in a few minutes, no pretraining
recipe will make that encoder see shapes; fix the architecture first (docs/training_science.md).

    python tools/supervised_check.py                      # florence_mini at 64 px, 2200 steps: ~0.99 in ~570 CPU s
    python tools/supervised_check.py --override='{"depths": [1, 1, 2, 1]}' --steps=800

Prints (and with --report writes as JSON) test accuracy, per-class accuracy, wall time and process CPU time
(user + system, all threads) so timings can be re-judged on another machine.
"""

import argparse
import collections
import json
import resource
import sys
import time


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_arrays(num_scenes, split, image_size, seed, target="shape", with_sizes=False):
    """uint8 images `[N, S, S, 3]` and int labels of single-object built-in scenes (+ size words)."""
    import numpy as np

    from florence_keras.data.scene_generator import SceneGenerator

    generator = SceneGenerator(image_size=image_size, seed=seed, max_objects=1)
    names = generator.shapes if target == "shape" else generator.colours
    images = np.zeros((num_scenes, image_size, image_size, 3), np.uint8)
    labels = np.zeros((num_scenes,), np.int32)
    sizes = []
    for index in range(num_scenes):
        scene = generator.scene(index, split)
        images[index] = scene.image
        labels[index] = names.index(getattr(scene.primary, target))
        sizes.append(scene.primary.size)
    if with_sizes:
        return images, labels, list(names), np.array(sizes)
    return images, labels, list(names)


def supervised_check(preset="florence_mini", image_size=64, steps=2200, batch_size=64, learning_rate=5e-4,
                     num_train=32000, num_test=1000, seed=0, target="shape", override=None, flip=True,
                     warmup_fraction=0.1, weight_decay=0.05, beta_2=0.999, clip_norm=None, verbose=True):
    """Trains `preset`'s image encoder + a linear head on one label of the built-in scenes and scores it.

    Args:
        preset: architecture preset name (its `image_encoder` config is used, random init).
        image_size: image side.
        steps: optimizer steps (AdamW, linear warm-up then cosine decay to 0).
        batch_size: images per step.
        learning_rate: peak learning rate.
        num_train: single-object training scenes (split "train").
        num_test: single-object test scenes (split "test": seen combinations, unseen images).
        seed: dataset, weight and order seed.
        target: "shape" or "colour" (of the object).
        override: dict merged into the image encoder's config (e.g. `{"depths": [2, 2, 2, 1]}`).
        flip: random horizontal flips in training (every shape's class is flip-invariant).
        warmup_fraction: fraction of the steps spent in linear warm-up.
        weight_decay, beta_2: AdamW's.
        clip_norm: clip the global gradient norm (None: no clipping).
        verbose: print progress.

    Returns:
        dict: `accuracy`, `per_class_accuracy`, `per_size_accuracy` (small / medium / large objects),
        `confusion` (rows: true class, columns: predicted), `small_object_errors` ("true->predicted": count),
        `train_accuracy_last_100`, `wall_seconds`, `cpu_seconds`
        (process user + system), `data_seconds`, `steps`, the encoder config and parameter count.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from florence_keras.models.coswin_backbone import CoSwinBackbone
    from florence_keras.models.florence_image_converter import IMAGENET_MEAN
    from florence_keras.models.florence_image_converter import IMAGENET_STD
    from florence_keras.models.presets import architecture_config

    if target not in ("shape", "colour"):
        raise ValueError(f"`target` must be 'shape' or 'colour'. Received: target={target!r}")
    start_wall, start_cpu = time.time(), _cpu_seconds()
    train_images, train_labels, names = make_arrays(num_train, "train", image_size, seed, target)
    test_images, test_labels, _, test_sizes = make_arrays(num_test, "test", image_size, seed, target, with_sizes=True)
    data_seconds = time.time() - start_wall
    keras.utils.set_random_seed(seed)
    config = architecture_config(preset, image_size)["image_encoder"]
    config.update(override or {})
    encoder = CoSwinBackbone(**config)
    head = keras.layers.Dense(len(names), name="head")
    head.build((None, encoder.output_dim))
    variables = encoder.trainable_variables + head.trainable_variables
    warmup = max(1, int(round(steps * warmup_fraction)))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps - warmup, alpha=0.0, warmup_target=learning_rate, warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=weight_decay, beta_2=beta_2,
                                       global_clipnorm=clip_norm)
    optimizer.build(variables)
    mean = tf.constant(np.array(IMAGENET_MEAN, np.float32) * 255.0)
    std = tf.constant(np.array(IMAGENET_STD, np.float32) * 255.0)

    def normalise(images):
        return (tf.cast(images, tf.float32) - mean) / std

    @tf.function
    def train_step(images, labels):
        images = normalise(images)
        if flip:
            flips = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
            images = tf.where(flips, tf.reverse(images, axis=[2]), images)
        with tf.GradientTape() as tape:
            logits = head(encoder(images, training=True)["pooled_output"])
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, tf.reduce_mean(tf.cast(tf.argmax(logits, -1, output_type=tf.int32) == labels, tf.float32))

    @tf.function
    def predict(images):
        return tf.argmax(head(encoder(normalise(images), training=False)["pooled_output"]), -1,
                         output_type=tf.int32)

    rng = np.random.default_rng(seed)
    order = rng.permutation(num_train)
    position, recent = 0, []
    for step in range(steps):
        if position + batch_size > num_train:
            order, position = rng.permutation(num_train), 0
        batch = order[position:position + batch_size]
        position += batch_size
        loss, accuracy = train_step(train_images[batch], train_labels[batch])
        recent = (recent + [float(accuracy)])[-100:]
        if verbose and (step + 1) % 100 == 0:
            print(f"step {step + 1}/{steps} loss {float(loss):.4f} train acc (last 100) {np.mean(recent):.3f} "
                  f"wall {time.time() - start_wall:.0f}s", flush=True)
    predictions = np.concatenate([
        predict(test_images[i:i + 256]).numpy() for i in range(0, num_test, 256)
    ])
    correct = predictions == test_labels
    per_class = {name: float(correct[test_labels == k].mean()) for k, name in enumerate(names)
                 if np.any(test_labels == k)}
    per_size = {size: float(correct[test_sizes == size].mean()) for size in ("small", "medium", "large")
                if np.any(test_sizes == size)}
    confusion = np.zeros((len(names), len(names)), np.int64)
    np.add.at(confusion, (test_labels, predictions), 1)
    small_errors = {
        f"{names[t]}->{names[p]}": int(n)
        for (t, p), n in collections.Counter(zip(test_labels[(test_sizes == "small") & ~correct],
                                                 predictions[(test_sizes == "small") & ~correct])).items()
    }
    return {
        "preset": preset, "image_size": image_size, "target": target, "encoder_config": config,
        "encoder_parameters": int(encoder.count_params()), "steps": steps, "batch_size": batch_size,
        "learning_rate": learning_rate, "warmup_fraction": warmup_fraction, "weight_decay": weight_decay,
        "beta_2": beta_2, "clip_norm": clip_norm, "num_train": num_train, "num_test": num_test, "seed": seed,
        "accuracy": float(correct.mean()), "chance": 1.0 / len(names), "per_class_accuracy": per_class,
        "per_size_accuracy": per_size, "confusion": confusion.tolist(), "small_object_errors": small_errors,
        "train_accuracy_last_100": float(np.mean(recent)), "data_seconds": round(data_seconds, 1),
        "wall_seconds": round(time.time() - start_wall, 1), "cpu_seconds": round(_cpu_seconds() - start_cpu, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="florence_mini")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2200)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--num_train", type=int, default=32000)
    parser.add_argument("--num_test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", choices=("shape", "colour"), default="shape")
    parser.add_argument("--override", default=None, help="JSON dict merged into the image encoder config.")
    parser.add_argument("--no_flip", action="store_true")
    parser.add_argument("--warmup_fraction", type=float, default=0.1)
    parser.add_argument("--weight_decay", type=float, default=0.05)
    parser.add_argument("--beta_2", type=float, default=0.999)
    parser.add_argument("--clip_norm", type=float, default=None)
    parser.add_argument("--report", default=None, help="Write the result as JSON here.")
    args = parser.parse_args(argv)
    result = supervised_check(
        preset=args.preset, image_size=args.image_size, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, num_train=args.num_train, num_test=args.num_test, seed=args.seed,
        target=args.target, override=json.loads(args.override) if args.override else None, flip=not args.no_flip,
        warmup_fraction=args.warmup_fraction, weight_decay=args.weight_decay, beta_2=args.beta_2,
        clip_norm=args.clip_norm,
    )
    print(json.dumps(result, indent=1))
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
