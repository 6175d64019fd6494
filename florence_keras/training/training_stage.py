"""`TrainingStage`: one phase of Florence's pretraining schedule, and `florence_stages`."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainingStage:
    """A phase of pretraining that starts at a given step and changes the data (SPEC §1).

    Florence trains in stages [paper]: with prompt-augmented short texts, then without them, then at a
    higher resolution. The trainer hands the current stage to `make_dataset` (inside a `DatasetRequest`),
    so the data pipeline decides what each field means for it.

    Args:
        name: a short name used in logs, e.g. "stage1".
        start_step: int >= 0, the global step at which the stage begins.
        image_size: int > 0, the square training resolution of the stage.
        prompt_augmented_texts: bool, whether the pipeline adds prompt-augmented short texts.

    Example:

    >>> TrainingStage("stage1", start_step=0, image_size=224, prompt_augmented_texts=True).image_size
    224
    """

    name: str
    start_step: int
    image_size: int
    prompt_augmented_texts: bool

    def __post_init__(self):
        if not isinstance(self.start_step, int) or self.start_step < 0:
            raise ValueError(
                f"`start_step` must be an int >= 0. Received: start_step={self.start_step!r}"
            )
        if not isinstance(self.image_size, int) or self.image_size <= 0:
            raise ValueError(
                f"`image_size` must be a positive int. Received: image_size={self.image_size!r}"
            )
        if not isinstance(self.prompt_augmented_texts, bool):
            raise ValueError(
                "`prompt_augmented_texts` must be a bool. "
                f"Received: prompt_augmented_texts={self.prompt_augmented_texts!r}"
            )


def florence_stages(
    total_steps,
    image_size=224,
    prompt_augmented_texts=True,
    augmented_texts_off_step=None,
    high_resolution_step=None,
    high_resolution_image_size=384,
):
    """Builds Florence's stage list from flag-like arguments.

    Florence [paper]: 1M steps with prompt-augmented short texts, 180K without, then 80K at 384×384 —
    e.g. `florence_stages(1_260_000, augmented_texts_off_step=1_000_000,
    high_resolution_step=1_180_000)`.

    Args:
        total_steps: int > 0, total training steps.
        image_size: int, resolution before `high_resolution_step`. Defaults to 224.
        prompt_augmented_texts: bool, whether augmented texts are on at step 0. Defaults to True.
        augmented_texts_off_step: int or None; from this step on augmented texts are off.
        high_resolution_step: int or None; from this step on images are `high_resolution_image_size`.
        high_resolution_image_size: int. Defaults to 384.

    Returns:
        A list of `TrainingStage`, sorted by `start_step`, the first starting at 0.

    Example:

    >>> [(s.start_step, s.image_size, s.prompt_augmented_texts)
    ...  for s in florence_stages(100, augmented_texts_off_step=60, high_resolution_step=90)]
    [(0, 224, True), (60, 224, False), (90, 384, False)]
    """
    if not isinstance(total_steps, int) or total_steps <= 0:
        raise ValueError(f"`total_steps` must be a positive int. Received: total_steps={total_steps!r}")
    for name, value in (
        ("augmented_texts_off_step", augmented_texts_off_step),
        ("high_resolution_step", high_resolution_step),
    ):
        if value is not None and (not isinstance(value, int) or not 0 < value < total_steps):
            raise ValueError(
                f"`{name}` must be None or an int in (0, total_steps={total_steps}). "
                f"Received: {name}={value!r}"
            )
    boundaries = sorted(
        {0} | {s for s in (augmented_texts_off_step, high_resolution_step) if s is not None}
    )
    stages = []
    for index, start in enumerate(boundaries):
        augmented = prompt_augmented_texts and (
            augmented_texts_off_step is None or start < augmented_texts_off_step
        )
        high_res = high_resolution_step is not None and start >= high_resolution_step
        stages.append(
            TrainingStage(
                name=f"stage{index + 1}",
                start_step=start,
                image_size=high_resolution_image_size if high_res else image_size,
                prompt_augmented_texts=augmented,
            )
        )
    return stages
