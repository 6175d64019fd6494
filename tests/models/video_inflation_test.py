"""Inflation: a clip of identical frames gives the 2-D model's pooled feature where the architecture is exact."""

import numpy as np
import pytest

from florence_keras.models.coswin_backbone import CoSwinBackbone
from florence_keras.models.video_coswin_backbone import VideoCoSwinBackbone
from florence_keras.models.video_inflation import inflate_bias_table
from florence_keras.models.video_inflation import inflate_kernel


def _coswin(patch_embedding="conv", seed=0):
    # depths 2: every stage has a shifted block; 4 stages at 64 px end with maps 4x4 = the window and 2x2 < it.
    backbone = CoSwinBackbone(embed_dim=8, depths=[1, 2, 2, 1], num_heads=[1, 2, 2, 4], window_size=4,
                              patch_embedding=patch_embedding, image_shape=(64, 64, 3), drop_path_rate=0.0)
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:  # random everything (bias tables included)
        weight.assign(rng.normal(0, 0.2, weight.shape).astype("float32"))
    return backbone


def _static_clip_error(image_backbone, frames=8, **kwargs):
    video = VideoCoSwinBackbone.from_image_backbone(image_backbone, num_frames=frames, **kwargs)
    images = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype("float32")
    encoder = getattr(getattr(image_backbone, "backbone", None), "image_encoder", image_backbone)
    expected = np.asarray(encoder(images)["pooled_output"])
    clips = np.repeat(images[:, None], frames, axis=1)
    return np.abs(np.asarray(video(clips)["pooled_output"]) - expected).max()


@pytest.mark.parametrize("kwargs", [dict(inflation="center"),  # (3,7,7) stem, centred: exact with padding
                                    dict(temporal_kernel=(2, 1)),  # kernel = stride: no time padding
                                    dict(window=(4, 4, 4), inflation="center")])  # 4 steps = one window
def test_identical_frames_give_the_image_feature(kwargs):
    assert _static_clip_error(_coswin(), **kwargs) <= 1e-5


def test_linear_swin_inflates_exactly():
    assert _static_clip_error(_coswin("linear")) <= 1e-5


def test_mean_inflation_with_overlapping_time_kernels_differs_at_the_ends():
    # The (3, k, k) kernels' zero time padding sees 2 of 3 real frames at the first and last step.
    assert _static_clip_error(_coswin(), inflation="mean") > 1e-3


def test_kernel_and_table_rules():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 2, 4))
    mean = inflate_kernel(kernel, 3)
    np.testing.assert_allclose(mean.sum(0), kernel)
    np.testing.assert_allclose(mean[1], kernel / 3)
    center = inflate_kernel(kernel, 3, "center")
    np.testing.assert_array_equal(center[1], kernel)
    assert not center[0].any() and not center[2].any()
    table = np.arange(9 * 2, dtype="float32").reshape(9, 2)  # a (2, 2) window, 2 heads
    inflated = inflate_bias_table(table, (2, 2), (3, 2, 2))
    assert inflated.shape == (5 * 9, 2)
    for dt in range(5):  # every temporal offset starts with the 2-D bias
        np.testing.assert_array_equal(inflated[dt * 9:(dt + 1) * 9], table)
    assert inflate_bias_table(table, (2, 2), (2, 3, 3)).shape == (3 * 25, 2)  # resized bicubically


def test_inflates_a_florence_clip_preset():
    from florence_keras.models.florence_clip import FlorenceCLIP

    clip = FlorenceCLIP.from_preset("florence_mini_builtin")
    assert _static_clip_error(clip, inflation="center") <= 1e-5
