"""`DatasetRequest`: what the trainer asks of a data pipeline."""

import dataclasses

from florence_keras.training.training_stage import TrainingStage


@dataclasses.dataclass(frozen=True)
class DatasetRequest:
    """The argument of the trainer's `make_dataset(request) -> tf.data.Dataset` callable.

    Contract (HELPER_CONTEXT.md data contract): the returned dataset yields **per-replica** batches
    `{"images": float32 [batch_size, H, W, 3] normalised, "token_ids": int32 [batch_size, 77],
    "labels": int64 [batch_size]}` with `H = W = stage.image_size`, built for this input pipeline only
    (shard files or examples by `input_pipeline_id` of `num_input_pipelines`), repeated indefinitely
    (the trainer decides when to stop), batched with `drop_remainder=True`.

    Resuming: the trainer rebuilds the dataset and skips the batches this pipeline already delivered in
    the current stage (`Dataset.skip`). For an exact resume (`deterministic=True`) the stream must be a
    deterministic function of the request: seeded shuffles and stateless random augmentations derived from
    `seed`, and `tf.data.Options().deterministic = True`.

    Args:
        stage: the current `TrainingStage` (image size, prompt-augmented texts on/off).
        batch_size: int, the per-replica batch size.
        global_batch_size: int, batch_size × number of replicas.
        num_input_pipelines: int, number of input pipelines (one per worker process).
        input_pipeline_id: int, this pipeline's index in [0, num_input_pipelines).
        seed: int, the run's data seed.
        deterministic: bool, whether the run asks for a reproducible stream.

    Example:

    >>> stage = TrainingStage("stage1", 0, 224, True)
    >>> DatasetRequest(stage, 8, 16, 2, 1, seed=0, deterministic=True).input_pipeline_id
    1
    """

    stage: TrainingStage
    batch_size: int
    global_batch_size: int
    num_input_pipelines: int
    input_pipeline_id: int
    seed: int = 0
    deterministic: bool = False

    def __post_init__(self):
        if not isinstance(self.stage, TrainingStage):
            raise ValueError(
                f"`stage` must be a TrainingStage. Received: stage={self.stage!r}"
            )
        for name in ("batch_size", "global_batch_size", "num_input_pipelines"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        if not 0 <= self.input_pipeline_id < self.num_input_pipelines:
            raise ValueError(
                "`input_pipeline_id` must be in [0, num_input_pipelines). "
                f"Received: input_pipeline_id={self.input_pipeline_id}, "
                f"num_input_pipelines={self.num_input_pipelines}"
            )
