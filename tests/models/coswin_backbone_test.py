import numpy as np
import pytest

from florence_keras.models.coswin_backbone import CoSwinBackbone
from tests.test_case import random_images


def _tiny(**kwargs):
    args = dict(embed_dim=8, depths=[1, 2], num_heads=[1, 2], window_size=2,
                image_shape=(30, 26, 3), drop_path_rate=0.1)
    args.update(kwargs)
    return CoSwinBackbone(**args)


def test_outputs_and_pyramid_shapes():
    backbone = _tiny()
    out = backbone(random_images(2, 30, 26))
    # conv stem 7x7/4 -> ceil(30/4)=8, ceil(26/4)=7; then 3x3/2 -> 4, 4
    assert tuple(out["feature_map"].shape) == (2, 4, 4, 16)
    assert tuple(out["pooled_output"].shape) == (2, 16)
    shapes = {k: tuple(v.shape) for k, v in backbone.pyramid_outputs.items()}
    assert shapes == {"P2": (None, 8, 7, 8), "P3": (None, 4, 4, 16)}
    np.testing.assert_allclose(
        out["pooled_output"], out["feature_map"].numpy().mean(axis=(1, 2)), atol=1e-6
    )


def test_config_round_trip_and_weights_independent_of_size():
    backbone = _tiny()
    clone = CoSwinBackbone.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    bigger = _tiny(image_shape=(45, 61, 3))
    bigger.set_weights(backbone.get_weights())  # same weight shapes at another size
    assert bigger.count_params() == backbone.count_params()


def test_stage_smaller_than_window_runs():
    # 20x20 -> 5x5 -> 3x3 with window 4: the last stage shrinks its window (Swin's rule).
    backbone = _tiny(window_size=4, image_shape=(20, 20, 3))
    out = backbone(random_images(1, 20, 20))
    assert np.isfinite(out["pooled_output"].numpy()).all()


def test_drop_path_only_in_training():
    backbone = _tiny(drop_path_rate=0.5)
    x = random_images(4, 30, 26)
    np.testing.assert_array_equal(backbone(x)["pooled_output"], backbone(x)["pooled_output"])
    assert not np.allclose(backbone(x, training=True)["pooled_output"], backbone(x)["pooled_output"])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"patch_embedding": "overlap"}, "patch_embedding"),
        ({"depths": [1], "num_heads": [1, 2]}, "depths"),
        ({"image_shape": (None, 30, 3)}, "image_shape"),
        ({"num_heads": [3, 2]}, "divisible"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**kwargs)


def test_wrong_input_rank_or_channels():
    backbone = _tiny()
    with pytest.raises(ValueError):
        backbone(np.zeros((2, 30, 26), "float32"))
    with pytest.raises(ValueError):
        backbone(np.zeros((2, 30, 26, 4), "float32"))


def test_other_resolution_uses_same_layers():
    # Florence's 384-pixel stage: a model built at one size embeds another size with
    # the same weights, exactly as a model built at that size would.
    from florence_keras.models import presets
    from tests.model_fixtures import tiny_test_backbone
    from tests.model_fixtures import tiny_test_config

    small = tiny_test_backbone(32)
    large = presets.build_backbone(tiny_test_config(48))
    large.set_weights(small.get_weights())
    x = random_images(2, 48, 48)
    np.testing.assert_allclose(small.embed_images(x), large.embed_images(x), atol=1e-6)
    features = small.image_encoder.forward_features(x)
    assert tuple(features["pyramid"]["P2"].shape) == (2, 12, 12, 16)
