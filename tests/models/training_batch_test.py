"""check_batch_spec / FlorenceTask.check_training_batch: a data pipeline that does not fit the Task is named."""

import pytest
import tensorflow as tf

from florence_keras.models.florence_task import FlorenceTask
from florence_keras.models.training_batch import check_batch_spec

CLIP = FlorenceTask.training_batch_spec


def _spec(**overrides):
    spec = {"images": tf.TensorSpec([4, 16, 16, 3], tf.float32), "token_ids": tf.TensorSpec([4, 77], tf.int32),
            "labels": tf.TensorSpec([4], tf.int64)}
    spec.update(overrides)
    return {k: v for k, v in spec.items() if v is not None}


def test_a_fitting_batch_passes_and_extra_keys_are_allowed():
    check_batch_spec(_spec(positions=tf.TensorSpec([4], tf.int64)), CLIP, image_size=16)
    check_batch_spec(_spec(images=tf.TensorSpec([None, None, None, 3], tf.bfloat16)), CLIP, image_size=16)


@pytest.mark.parametrize("spec, message", [
    (_spec(token_ids=None), r"missing \['token_ids'\]"),
    (_spec(labels=tf.TensorSpec([4], tf.int32)), r"'labels' must be int64 of rank 1"),
    (_spec(images=tf.TensorSpec([4, 16, 16, 3], tf.uint8)), r"'images' must be float of rank 4"),
    (_spec(token_ids=tf.TensorSpec([4], tf.int32)), r"'token_ids' must be int32 of rank 2"),
    (_spec(images=tf.TensorSpec([4, 32, 32, 3], tf.float32)), r"16x16 images\. Received: images of 32x32"),
    ((tf.TensorSpec([4, 16, 16, 3], tf.float32),), r"dicts with keys"),
])
def test_a_misfit_is_named(spec, message):
    with pytest.raises(ValueError, match=message):
        check_batch_spec(spec, CLIP, image_size=16, task_name="FlorenceCLIP")


def test_a_task_checks_its_own_keys():
    class DepthLike(FlorenceTask):
        training_batch_spec = {"images": ("float", 4), "depth": ("float", 3)}

    task = DepthLike.__new__(DepthLike)  # the check reads only the class's spec
    depth_batch = {"images": tf.TensorSpec([2, 16, 16, 3], tf.float32), "depth": tf.TensorSpec([2, 16, 16], tf.float32)}
    task.check_training_batch(depth_batch, 16)
    with pytest.raises(ValueError, match=r"DepthLike trains on batches with keys \['depth', 'images'\]; missing"):
        task.check_training_batch(_spec(), 16)
