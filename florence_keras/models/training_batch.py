"""What a Task's training batches must look like: the checks a Task's `check_training_batch` is built from.

The toolkit's trainer (`UniCLTrainer`) asks the Task to check the `element_spec` of the batches its data pipeline
makes before training starts, so a pipeline that does not fit the Task fails with a message naming the key,
instead of deep inside the first traced step. Each Task lists its keys in `training_batch_spec`:

    {"images": ("float", 4), "token_ids": ("int32", 2), "labels": ("int64", 1)}

A dtype of "float" accepts any floating dtype. Keys the spec does not name are passed on to the Task unchecked.
"""

import tensorflow as tf


def _describe(spec):
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in sorted(spec.items())) + "}"
    return str(spec)


def check_batch_spec(element_spec, required, image_size=None, task_name="This Task"):
    """Raises a ValueError naming the problem unless `element_spec` has every key of `required`.

    Args:
        element_spec: a `tf.data.Dataset.element_spec`.
        required: dict `key -> (dtype, rank)`; dtype `"float"` accepts any floating dtype, else a dtype name.
        image_size: int or None; when given, a rank-4 (or rank-5: video) `"images"` must be
            `image_size × image_size` where its spatial dimensions are static.
        task_name: the Task's name for the message.
    """
    if not isinstance(element_spec, dict):
        raise ValueError(f"{task_name} trains on batches that are dicts with keys {sorted(required)}. "
                         f"Received: element_spec={_describe(element_spec)}")
    missing = sorted(set(required) - set(element_spec))
    if missing:
        raise ValueError(f"{task_name} trains on batches with keys {sorted(required)}; missing {missing}. "
                         f"Received: element_spec={_describe(element_spec)}")
    for key, (dtype, rank) in required.items():
        spec = element_spec[key]
        if not isinstance(spec, tf.TensorSpec):
            raise ValueError(f"Batch key {key!r} must be a dense tensor. Received: {spec}")
        dtype_ok = spec.dtype.is_floating if dtype == "float" else spec.dtype == tf.as_dtype(dtype)
        if not dtype_ok or spec.shape.rank != rank:
            raise ValueError(f"Batch key {key!r} must be {dtype} of rank {rank} (batch first). Received: {spec}")
    if image_size is not None and "images" in required:
        spec = element_spec["images"]
        size = spec.shape[-3:-1].as_list()
        if None not in size and size != [image_size, image_size]:
            raise ValueError(f"Training asks for {image_size}x{image_size} images. "
                             f"Received: images of {size[0]}x{size[1]}")
