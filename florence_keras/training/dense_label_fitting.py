"""`fit_dense_label_decoder`: fits a Task's `DenseLabelDecoder` on per-pixel labels over its frozen encoder;
`save_fitted_decoder` / `read_fitted_decoder` keep the result with the settings it was fitted with."""

import json
import math
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf

from florence_keras.training.warmup_cosine_decay import WarmupCosineDecay


def fit_dense_label_decoder(task, images, label_maps, steps, batch_size=32, learning_rate=2e-3, warmup_steps=200,
                            weight_decay=1e-4, class_weights=None, seed=0, verbose=1):
    """Trains `task.dense_label_decoder` alone, on the frozen image encoder's feature pyramid, then freezes it.

    The pyramid of every image is computed once (the encoder does not change) and held in memory (at 64 px with the
    mini preset ~15,000 floats an image: 12,000 images take ~0.7 GB, twice that while the dataset is made); each
    step runs only the decoder.
    The loss is the class-weighted cross-entropy of the per-pixel logits, `Σ w[y]·CE / Σ w[y]` over the batch's
    pixels (`class_weights`, e.g. a small weight on a background class that covers most pixels). AdamW with a
    linear warm-up and cosine decay to 0 (a warm-up longer than a quarter of the run is shortened to that).

    Args:
        task: a Task with `dense_label_decoder`, `image_inputs` (raw images -> normalised) and
            `backbone.image_encoder.forward_features` (a `FlorenceVQA` with `dense_label_classes > 0`).
        images: raw images `(N, S, S, 3)` in `[0, 255]`, S the Task's `image_size`.
        label_maps: int `(N, S, S)`, each pixel's class in `[0, dense_label_classes)`.
        steps: int > 0, optimizer steps.
        batch_size: int > 0, images per step.
        learning_rate, warmup_steps, weight_decay: the optimizer's schedule.
        class_weights: None (all 1) or one float > 0 per class.
        seed: int, the data order.
        verbose: 0 or 1 (a progress bar).

    Returns:
        dict: `loss` (the mean of the last tenth of the steps' losses), `pixel_accuracy` (of the training pixels
        whose class weight is the largest: the labels that matter, not the background), `steps`.
    """
    decoder = task.dense_label_decoder
    classes = decoder.num_classes
    images = np.asarray(images)
    label_maps = np.asarray(label_maps)
    if images.ndim != 4 or label_maps.shape != images.shape[:3]:
        raise ValueError(f"`images` must be (N, S, S, 3) and `label_maps` (N, S, S). Received shapes "
                         f"{images.shape} and {label_maps.shape}")
    if not len(images):
        raise ValueError("`images` is empty: nothing to fit the dense label decoder on.")
    if label_maps.min() < 0 or label_maps.max() >= classes:
        raise ValueError(f"`label_maps` must hold classes in [0, {classes}). Received values in "
                         f"[{label_maps.min()}, {label_maps.max()}]")
    if not isinstance(steps, int) or steps < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`steps` and `batch_size` must be positive ints. Received: {steps!r}, {batch_size!r}")
    weights = np.ones(classes, "float32") if class_weights is None else np.asarray(class_weights, "float32")
    if weights.shape != (classes,) or not (weights > 0).all():
        raise ValueError(f"`class_weights` must be {classes} floats > 0. Received: {class_weights!r}")

    encoder = task.backbone.image_encoder
    pyramid_of = tf.function(lambda x: encoder.forward_features(task.image_inputs(x), training=False)["pyramid"])
    chunks = [pyramid_of(tf.constant(images[start:start + 256])) for start in range(0, len(images), 256)]
    levels = tuple(np.concatenate([np.asarray(chunk[f"P{index + 2}"]) for chunk in chunks])
                   for index in range(len(chunks[0])))
    size = tuple(images.shape[1:3])

    dataset = tf.data.Dataset.from_tensor_slices((levels, label_maps.astype("int32")))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=len(images) >= batch_size).prefetch(2)

    decoder.trainable = True
    warmup = min(warmup_steps, steps // 4)
    optimizer = keras.optimizers.AdamW(WarmupCosineDecay(learning_rate, steps, warmup_steps=warmup),
                                       weight_decay=weight_decay)
    variables = decoder.trainable_variables
    optimizer.build(variables)
    weight_table = tf.constant(weights)
    important = float(weights.max())

    @tf.function
    def train_step(batch_levels, labels):
        shape = tf.zeros((tf.shape(labels)[0], *size, 1))  # the decoder reads only the output size
        with tf.GradientTape() as tape:
            logits = decoder([shape, *batch_levels], training=True)
            cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            pixel_weights = tf.gather(weight_table, labels)
            loss = tf.reduce_sum(cross_entropy * pixel_weights) / tf.reduce_sum(pixel_weights)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        counted = tf.equal(pixel_weights, important)
        correct = tf.logical_and(counted, tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels))
        return loss, tf.reduce_sum(tf.cast(correct, tf.float32)), tf.reduce_sum(tf.cast(counted, tf.float32))

    progress = keras.utils.Progbar(steps, stateful_metrics=["loss"], verbose=verbose)
    losses, correct, counted = [], 0.0, 0.0
    tail = max(1, math.ceil(steps / 10))
    for step, (batch_levels, labels) in enumerate(dataset.take(steps)):
        loss, right, total = train_step(batch_levels, labels)
        losses.append(float(loss))
        if step >= steps - tail:
            correct, counted = correct + float(right), counted + float(total)
        progress.update(step + 1, [("loss", losses[-1])])
    decoder.trainable = False
    return {"loss": float(np.mean(losses[-tail:])), "pixel_accuracy": correct / counted if counted else float("nan"),
            "steps": steps}


def save_fitted_decoder(path, decoder, settings):
    """Writes `decoder`'s weights and the `settings` it was fitted with (a JSON dict) to the `.npz` file `path`.

    The file appears complete or not at all (written under a per-process name, then renamed), so a run killed while
    writing leaves nothing that `read_fitted_decoder` would take.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"  # (one name per process: workers sharing a directory never interleave)
    weights = {f"arr_{i}": weight for i, weight in enumerate(decoder.get_weights())}
    with open(partial, "wb") as f:
        np.savez(f, settings=np.array(json.dumps(settings, sort_keys=True)), **weights)
    os.replace(partial, path)


def read_fitted_decoder(path, settings):
    """Reads a decoder written by `save_fitted_decoder`, if it was fitted with these `settings`.

    Returns:
        `(weights, None)` for `decoder.set_weights(weights)`, or `(None, why_not)`: no file, a file that cannot be
        read, a file without settings (written before they were recorded), or settings that differ (each named with
        both values).
    """
    if not os.path.exists(path):
        return None, "no fitted decoder yet"
    try:
        stored = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        return None, f"the file cannot be read ({type(error).__name__}: {error})"
    with stored:
        if "settings" not in stored.files:
            return None, "the file does not record the settings it was fitted with"
        fitted_with = json.loads(str(stored["settings"]))
        wanted = json.loads(json.dumps(settings))  # (compared as JSON: tuples and lists alike)
        changed = [f"{name} {fitted_with.get(name)!r} -> {wanted.get(name)!r}"
                   for name in sorted(set(fitted_with) | set(wanted)) if fitted_with.get(name) != wanted.get(name)]
        if changed:
            return None, "fitted with other settings: " + ", ".join(changed)
        return [stored[f"arr_{i}"] for i in range(len(stored.files) - 1)], None
