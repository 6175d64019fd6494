"""`DatasetRequest`: what the trainer asks of a data pipeline."""

import dataclasses

from florence_keras.training.training_stage import TrainingStage


@dataclasses.dataclass(frozen=True)
class DatasetRequest:
    """The argument of the trainer's `make_dataset(request) -> tf.data.Dataset` callable.

    Contract: the returned dataset yields **per-replica** batches, dicts of tensors with the batch first and
    static inner shapes, with the keys the Task names in `training_batch_spec` (checked by its
    `check_training_batch` before the first step). For UniCL (`FlorenceCLIP`):
    `{"images": float32 [batch_size, H, W, 3] normalised, "token_ids": int32 [batch_size, 77],
    "labels": int64 [batch_size]}`; for depth `{"images", "depth"}`. `H = W = stage.image_size`. `"labels"`
    goes to `replica_loss` as its second argument (None without it), the other keys as `x`; built for this
    input pipeline only
    (shard files or examples by `input_pipeline_id` of `num_input_pipelines`), endless
    (the trainer decides when to stop), batched with `drop_remainder=True`.

    Resuming, two ways:

    * Positioned (what `make_image_text_input_fn` does; no consumed record is read again): the batches also
      carry `"positions": int64 [batch_size]`, each example's position in this pipeline's stream of the
      stage (increasing along the stream, opaque to the trainer). The trainer checkpoints, per pipeline, one
      past the largest position consumed, and on resume asks for the stream from there: the dataset must
      start at `start_position` (the element at position `start_position` or, if there is none, the next
      one). The trainer checks this on the first step (a first batch entirely before `start_position` is an
      error).
    * Otherwise (no `positions`, e.g. an in-memory dataset): the trainer rebuilds the dataset from the start
      and skips the batches this pipeline already delivered in the stage (`Dataset.skip`, which reads them).

    For an exact resume (`deterministic=True`) the stream must be a deterministic function of the request
    (and, positioned, of the position): seeded orders and stateless random augmentations derived from
    `seed`, and `tf.data.Options().deterministic = True`.

    Args:
        stage: the current `TrainingStage` (image size, prompt-augmented texts on/off).
        batch_size: int, the per-replica batch size.
        global_batch_size: int, batch_size × number of replicas.
        num_input_pipelines: int, number of input pipelines (one per worker process).
        input_pipeline_id: int, this pipeline's index in [0, num_input_pipelines).
        seed: int, the run's data seed.
        deterministic: bool, whether the run asks for a reproducible stream.
        start_position: int >= 0, where a positioned stream starts (0: the stage's beginning). Defaults to 0.

    Example:

    >>> stage = TrainingStage("stage1", 0, 224, True)
    >>> DatasetRequest(stage, 8, 16, 2, 1, seed=0, deterministic=True).input_pipeline_id
    1
    >>> DatasetRequest(stage, 8, 16, 2, 1, start_position=4096).start_position
    4096
    """

    stage: TrainingStage
    batch_size: int
    global_batch_size: int
    num_input_pipelines: int
    input_pipeline_id: int
    seed: int = 0
    deterministic: bool = False
    start_position: int = 0

    def __post_init__(self):
        if not isinstance(self.stage, TrainingStage):
            raise ValueError(
                f"`stage` must be a TrainingStage. Received: stage={self.stage!r}"
            )
        for name in ("batch_size", "global_batch_size", "num_input_pipelines"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        if (not isinstance(self.start_position, int) or isinstance(self.start_position, bool)
                or self.start_position < 0):
            raise ValueError(f"`start_position` must be an int >= 0. Received: start_position={self.start_position!r}")
        if not 0 <= self.input_pipeline_id < self.num_input_pipelines:
            raise ValueError(
                "`input_pipeline_id` must be in [0, num_input_pipelines). "
                f"Received: input_pipeline_id={self.input_pipeline_id}, "
                f"num_input_pipelines={self.num_input_pipelines}"
            )
