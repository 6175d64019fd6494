import numpy as np
import pytest

from florence_keras.models.video_coswin_backbone import VideoCoSwinBackbone


def _tiny(**kwargs):
    args = dict(embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=[(2, 2, 2), (2, 3, 3)],
                video_shape=(5, 30, 26, 3), drop_path_rate=0.1)
    args.update(kwargs)
    return VideoCoSwinBackbone(**args)


def _clips(batch, frames, height, width, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, height, width, 3)).astype("float32")


def test_outputs_pyramid_and_pooling():
    backbone = _tiny()
    out = backbone(_clips(2, 5, 30, 26))
    # stem (3,7,7)/(2,4,4): ceil(5/2)=3, ceil(30/4)=8, ceil(26/4)=7; then (3,3,3)/(1,2,2): 3, 4, 4
    assert tuple(out["feature_map"].shape) == (2, 3, 4, 4, 16)
    shapes = {k: tuple(v.shape) for k, v in backbone.pyramid_outputs.items()}
    assert shapes == {"P2": (None, 3, 8, 7, 8), "P3": (None, 3, 4, 4, 16)}
    np.testing.assert_allclose(out["pooled_output"], out["feature_map"].numpy().mean(axis=(1, 2, 3)),
                               atol=1e-6)
    # relative position tables over (2Wt-1)(2Wh-1)(2Ww-1) offsets, one window per stage
    assert backbone.stages[0][0].attention.relative_position_bias_table.shape == (3 * 3 * 3, 1)
    assert backbone.stages[1][1].attention.relative_position_bias_table.shape == (3 * 5 * 5, 2)
    assert backbone.stages[1][1].shift_size == (1, 1, 1)


def test_config_round_trip_and_any_clip_size():
    backbone = _tiny()
    clone = VideoCoSwinBackbone.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    other = _tiny(video_shape=(11, 41, 37, 3))  # same weights at another frame count and size
    other.set_weights(backbone.get_weights())
    clips = _clips(1, 11, 41, 37, seed=1)
    np.testing.assert_allclose(other(clips)["pooled_output"],
                               backbone.forward_features(clips)["pooled_output"], atol=1e-5)


def test_linear_embedding_is_video_swin_layout():
    backbone = _tiny(patch_embedding="linear", patch_size=(2, 4, 4))
    assert backbone.stem.conv.kernel.shape == (2, 4, 4, 3, 8)
    assert type(backbone.downsamplers[0]).__name__ == "PatchMerging"
    assert tuple(backbone(_clips(1, 5, 30, 26))["feature_map"].shape) == (1, 3, 4, 4, 16)


@pytest.mark.parametrize("bad", [dict(patch_embedding="cube"), dict(window_size=[(2, 2, 2)]),
                                 dict(video_shape=(8, 32, 3)), dict(temporal_kernel=(3, 0))])
def test_bad_arguments_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        _tiny(**bad)
