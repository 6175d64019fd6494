"""`SceneGenerator(clip_distractor_speed=...)`: the other objects of a clip slow down, the labelled one does not."""

import numpy as np
import pytest

from florence_keras.data.scene_generator import SceneGenerator


def _multi_object_index(generator):
    return next(i for i in range(50) if len(generator.clip(i, 3).scene.objects) >= 2)


def test_distractor_speed_scales_the_other_objects_and_keeps_the_primary():
    today, slow, still = (SceneGenerator(image_size=64, seed=0, clip_distractor_speed=s) for s in (1.0, 0.25, 0.0))
    index = _multi_object_index(today)
    base, scaled, frozen = (g.clip(index, 6) for g in (today, slow, still))
    np.testing.assert_array_equal(base.velocities[0], scaled.velocities[0])  # the labelled motion is unchanged
    assert base.label == scaled.label == frozen.label and base.caption == scaled.caption
    np.testing.assert_allclose(scaled.velocities[1:], 0.25 * base.velocities[1:], rtol=1e-6)
    assert np.all(frozen.velocities[1:] == 0.0)
    boxes = np.stack([b[1:] for b in frozen.boxes])  # the other objects stay where they are
    np.testing.assert_allclose(boxes, boxes[:1].repeat(len(boxes), 0))
    np.testing.assert_array_equal(base.frames[0], scaled.frames[0])  # same start scene


def test_default_distractor_speed_is_todays_clip():
    generator = SceneGenerator(image_size=48, seed=3)
    explicit = SceneGenerator(image_size=48, seed=3, clip_distractor_speed=1.0)
    np.testing.assert_array_equal(generator.clip(2, 4).frames, explicit.clip(2, 4).frames)


def test_negative_distractor_speed_is_refused():
    with pytest.raises(ValueError, match="clip_distractor_speed"):
        SceneGenerator(clip_distractor_speed=-1.0)
