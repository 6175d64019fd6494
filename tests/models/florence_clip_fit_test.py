"""FlorenceCLIP owns its loss: Keras `fit` trains it with UniCL on one device and on 2 mirrored replicas."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import split_cpu_for_two_replicas  # noqa: E402

split_cpu_for_two_replicas()  # before TensorFlow initialises (else a subprocess runs the replica tests)

import keras  # noqa: E402

from florence_keras.training import make_strategy  # noqa: E402
from tests.test_case import with_two_logical_cpus  # noqa: E402

TEXTS = ("a red circle", "a blue square", "a green star", "a gray ring")
BATCH, STEPS, LEARNING_RATE = 8, 6, 0.5


def _clip(seed=0):
    from tests.model_fixtures import tiny_clip

    keras.utils.set_random_seed(seed)
    return tiny_clip()


def _dataset(clip, raw=False):
    """16 (image, text) pairs of 4 texts; label = the text's id, so equal texts are positives."""
    rng = np.random.default_rng(0)
    labels = np.arange(16) % len(TEXTS)
    images = rng.integers(0, 256, (16, 40, 40, 3)).astype("float32")
    # Each text's images share a colour cast, so there is something to learn.
    images[..., 0] += 60.0 * (labels[:, None, None] == 0)
    images = np.clip(images, 0, 255)
    texts = np.array([TEXTS[i] for i in labels])
    if raw:
        x = {"images": images, "texts": texts}
    else:
        x = {"images": np.asarray(clip.preprocessor.image_converter(images)),
             "token_ids": np.asarray(clip.preprocessor.tokenize(texts))}
    return tf.data.Dataset.from_tensor_slices((x, labels.astype("int64"))).batch(BATCH, drop_remainder=True)


def _numpy_unicl(u, v, y, s):
    """UniCL (SPEC §1) in float64 numpy: per-anchor mean over positives of -log softmax, both directions."""
    logits = s * u.astype("float64") @ v.astype("float64").T
    positives = (y[:, None] == y[None, :]).astype("float64")

    def direction(z):
        log_p = z - z.max(1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
        return np.mean(-(positives * log_p).sum(1) / positives.sum(1))

    return direction(logits) + direction(logits.T)


def test_compute_loss_is_unicl_of_the_outputs():
    clip = _clip()
    x, y = next(iter(_dataset(clip)))
    outputs = clip(x)
    expected = _numpy_unicl(np.asarray(outputs["image_embeddings"]), np.asarray(outputs["text_embeddings"]),
                            y.numpy(), float(outputs["logit_scale"]))
    np.testing.assert_allclose(float(clip.compute_loss(x, y, outputs)), expected, rtol=1e-5)
    # The training system's entry points give the same number.
    np.testing.assert_allclose(float(clip.replica_loss(x, y, training=False)), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        clip.compute_loss(x, None, outputs)


class _FirstStepWeights(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if not hasattr(self, "weights_after_first_step"):
            self.weights_after_first_step = [np.asarray(w) for w in self.model.backbone.trainable_weights]


def _fit_losses(strategy_name, steps=STEPS, raw=False):
    """`clip.compile(optimizer=SGD)` + `clip.fit`: per-step losses, initial weights and the weights after
    step 1, on one device or 2 mirrored replicas."""
    # make_strategy gives each MirroredStrategy its own collective keys (another test's strategy in this process
    # must not collide with this one's).
    strategy = make_strategy(strategy_name)
    with strategy.scope():
        clip = _clip()
        # Plain SGD: its step is proportional to the gradient, so equal steps mean equal gradients (Adam's
        # first step is ~lr·sign(g), blind to gradient errors).
        clip.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
    assert strategy.num_replicas_in_sync == (2 if strategy_name == "mirrored" else 1)
    initial = [np.asarray(w) for w in clip.backbone.trainable_weights]
    first_step = _FirstStepWeights()
    history = clip.fit(_dataset(clip, raw=raw).repeat(), epochs=steps, steps_per_epoch=1, verbose=0,
                       callbacks=[first_step])
    return history.history["loss"], initial, first_step.weights_after_first_step


def _fit_figures():
    """First and last loss on 1 device and on 2 replicas, the largest loss difference between the two runs,
    and the largest difference of their first updates relative to the largest update."""
    single, initial, after_single = _fit_losses("default")
    mirrored, initial_2, after_mirrored = _fit_losses("mirrored")
    assert all(np.array_equal(a, b) for a, b in zip(initial, initial_2))
    largest_update = max(float(np.max(np.abs(a - w))) for a, w in zip(after_single, initial))
    update_error = max(float(np.max(np.abs(a - b))) for a, b in zip(after_single, after_mirrored))
    loss_error = max(abs(a - b) for a, b in zip(single, mirrored))
    return single[0], single[-1], mirrored[0], mirrored[-1], loss_error, update_error / largest_update


def test_fit_decreases_unicl_loss_on_one_device_and_two_replicas():
    first, last, first_2, last_2, loss_error, relative_update_error = with_two_logical_cpus(_fit_figures, __file__)
    print(f"clip.fit UniCL loss: 1 device {first:.4f} -> {last:.4f}; 2 replicas {first_2:.4f} -> {last_2:.4f}; "
          f"largest loss difference {loss_error:.2e}; first update difference {relative_update_error:.2e} of the "
          "largest update")
    assert last < 0.8 * first, (first, last)
    assert last_2 < 0.8 * first_2, (first_2, last_2)
    # The replicas gather the global batch (UniCLLoss(cross_replica=True)): the same losses and the same step.
    assert loss_error < 1e-5, loss_error
    assert relative_update_error < 1e-5, relative_update_error


def test_fit_on_raw_images_and_texts():
    """`fit` preprocesses raw `{"images", "texts"}` with the preset's preprocessor."""
    losses, _, _ = _fit_losses("default", steps=1, raw=True)
    clip = _clip()
    x, y = next(iter(_dataset(clip)))
    np.testing.assert_allclose(losses[0], float(clip.replica_loss(x, y, training=True)), rtol=1e-5)


if __name__ == "__main__":
    print(*_fit_figures())
