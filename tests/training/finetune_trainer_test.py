"""`FineTuneTrainer`: FlorenceImageClassifier Tasks on pretraining's loop, layer-decay optimizer, exact resume."""

import doctest
import importlib
import math
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import split_cpu_for_two_replicas  # noqa: E402

split_cpu_for_two_replicas()  # before TensorFlow initialises (else a subprocess runs the replica tests)

from florence_keras.data import labels as labels_lib
from florence_keras.training.classification_finetune import class_index_labels
from florence_keras.training.finetune_trainer import FineTuneTrainer
from florence_keras.models import FlorenceImageClassifier
from florence_keras.training.layerwise_lr_decay import LayerwiseDecayAdamW
from florence_keras.training.optimizer_factory import FINETUNE_ADAMW
from tests.test_case import with_two_logical_cpus

IMAGE_SIZE, BATCH, NUM_CLASSES = 32, 4, 3
CLASS_NAMES = ["circle", "square", "star"]


def _model_fn(head):
    def model_fn():
        from tests.model_fixtures import tiny_test_backbone

        return FlorenceImageClassifier(tiny_test_backbone(image_size=IMAGE_SIZE), CLASS_NAMES, head=head)

    return model_fn


def _make_dataset(request):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4 * BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    labels = np.arange(4 * BATCH, dtype=np.int64) % NUM_CLASSES
    images += labels[:, None, None, None].astype("float32")  # learnable: the class shifts the pixels
    tokens = np.zeros((4 * BATCH, 77), np.int32)
    return tf.data.Dataset.from_tensor_slices({"images": images, "token_ids": tokens, "labels": labels}).repeat(
    ).batch(request.batch_size, drop_remainder=True)


def _trainer(model_dir, total_steps, head="linear", strategy="default", deterministic=True):
    # end_learning_rate == peak: a constant learning rate, so runs of different total_steps share the schedule.
    return FineTuneTrainer(
        _model_fn(head), _make_dataset, layer_decay=0.7, model_dir=str(model_dir), total_steps=total_steps,
        global_batch_size=BATCH, optimizer=FINETUNE_ADAMW.replace(learning_rate=1e-3, end_learning_rate=1e-3,
                                                                   warmup_steps=0),
        checkpoint_every=2, image_size=IMAGE_SIZE, deterministic=deterministic, seed=3, verbose=0,
        strategy=strategy,
    )


def test_linear_head_trains_and_resumes_exactly(tmp_path):
    straight = _trainer(tmp_path / "straight", 4)
    assert isinstance(straight.optimizer, LayerwiseDecayAdamW)
    # Text tower, projections and logit scale are frozen; the head is at the full learning rate.
    paths = [v.path for v in straight.model.trainable_variables]
    assert not any(p.startswith(("image_projection", "text_projection", "logit_scale", "block_")) for p in paths)
    assert straight.lr_multipliers[paths.index("linear_head/kernel")] == 1.0
    assert min(straight.lr_multipliers) == pytest.approx(0.7**4)  # the stem of CoSwin depths (1, 2)
    # Fine-tuning's AdamW constants (FINETUNE_ADAMW), not pretraining's.
    assert (straight.optimizer.beta_2, straight.optimizer.epsilon) == (0.999, 1e-8)
    start_kernel = straight.model.head.kernel.numpy().copy()
    result = straight.fit()
    assert result["step"] == 4 and math.isfinite(result["loss"])
    assert result["loss"] < math.log(NUM_CLASSES)  # the zero-initialised head starts at log C
    assert not np.array_equal(straight.model.head.kernel.numpy(), start_kernel)

    first_half = _trainer(tmp_path / "resumed", 2).fit()
    assert first_half["step"] == 2
    resumed = _trainer(tmp_path / "resumed", 4)
    assert resumed.fit()["step"] == 4
    for a, b in zip(straight.model.variables, resumed.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def _mirrored_error(directory):
    """Max |difference| of the weights after 2 linear-head steps on 2 mirrored replicas vs one device."""
    one = _trainer(os.path.join(directory, "one"), 2, deterministic=False)
    one.fit()
    two = _trainer(os.path.join(directory, "two"), 2, strategy="mirrored", deterministic=False)
    assert two.strategy.num_replicas_in_sync == 2
    # The multipliers are found for the replicas' variables too (a miss would silently give 1.0).
    stem = [v for v in two.model.trainable_variables if v.path == "stem/conv/kernel"][0]
    assert two.optimizer.learning_rate_multiplier(stem.value.values[1]) == pytest.approx(0.7**4)
    two.fit()
    return max(float(np.max(np.abs(a.numpy() - b.numpy())))
               for a, b in zip(one.model.trainable_variables, two.model.trainable_variables))


def test_two_replicas_equal_one_device(tmp_path):
    # Cross-entropy share per replica (sum / global batch) + the optimizer's all-reduce = the one-device step,
    # and LayerwiseDecayAdamW's per-variable multipliers hold under MirroredStrategy.
    (error,) = with_two_logical_cpus(_mirrored_error, __file__, str(tmp_path))
    assert error < 1e-5, error


def _unicl_dataset(request):
    """Image-prompt batches as the fine-tuning pipeline makes them: one class-name prompt per image."""
    dataset = _make_dataset(request)
    return dataset.map(lambda b: dict(b, token_ids=tf.one_hot(b["labels"], 77, on_value=400 + 7,
                                                              off_value=49407, dtype=tf.int32)))


def test_unicl_head_trains_on_the_task_loss_with_and_without_the_gradient_cache(tmp_path):
    losses = {}
    for chunk_size in (None, 2):
        trainer = FineTuneTrainer(
            _model_fn("unicl"), _unicl_dataset, layer_decay=0.5, model_dir=str(tmp_path / f"chunk_{chunk_size}"),
            total_steps=2, global_batch_size=BATCH, image_size=IMAGE_SIZE, verbose=0, chunk_size=chunk_size,
            optimizer=FINETUNE_ADAMW.replace(warmup_steps=0), seed=3,
        )
        paths = [v.path for v in trainer.model.trainable_variables]
        assert "text_projection/kernel" in paths  # the UniCL head trains the text tower on the prompts
        assert trainer.lr_multipliers[paths.index("text_projection/kernel")] == 1.0
        losses[chunk_size] = trainer.fit()["loss"]
    # The gradient cache splits the same Task loss: the same steps.
    assert losses[None] == pytest.approx(losses[2], rel=1e-4), losses


def test_bad_arguments():
    with pytest.raises(ValueError, match="optimizer_fn"):
        FineTuneTrainer(_model_fn("unicl"), _make_dataset, optimizer_fn=lambda *a, **k: None, model_dir="/tmp/x",
                        total_steps=1, global_batch_size=BATCH)
    with pytest.raises(ValueError, match="gradient cache does not apply"):
        FineTuneTrainer(_model_fn("linear"), _make_dataset, chunk_size=2, model_dir="/tmp/x", total_steps=1,
                        global_batch_size=BATCH, optimizer=FINETUNE_ADAMW.replace(warmup_steps=0))


def test_class_index_labels_eager_and_in_tf_data():
    names = ["circle", "square", "star"]
    hashes = labels_lib.class_label(["star", "circle", "square", "star"])
    np.testing.assert_array_equal(class_index_labels(hashes, names).numpy(), [2, 0, 1, 2])
    dataset = tf.data.Dataset.from_tensor_slices(hashes).batch(2).map(lambda h: class_index_labels(h, names))
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in dataset]), [2, 0, 1, 2])


@pytest.mark.parametrize("name", ["florence_keras.training.layerwise_lr_decay",
                                  "florence_keras.training.optimizer_factory",
                                  "florence_keras.models.adamw_config",
                                  "florence_keras.models.class_embedding_head",
                                  "florence_keras.models.prompt_ensemble"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


if __name__ == "__main__":
    print(_mirrored_error(sys.argv[1]))
