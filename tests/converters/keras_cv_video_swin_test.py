"""keras-cv 0.9's VideoSwinBackbone (random weights) converted into ours: same outputs to 1e-5."""

import numpy as np
import pytest

from florence_keras.converters.keras_cv_video_swin import convert_bias_table
from florence_keras.converters.keras_cv_video_swin import video_coswin_from_keras_cv

keras_cv = pytest.importorskip("keras_cv")


@pytest.mark.parametrize(
    "shape, window, depths",
    [
        ((5, 32, 32, 3), (2, 3, 3), [2, 2]),  # 5 frames -> 3 steps: padded to the window along time
        ((7, 32, 32, 3), (4, 4, 4), [2, 2]),  # 4 steps = the window: time shift off
        ((3, 64, 64, 3), (2, 7, 7), [1, 2, 2]),  # 7x7 windows pad 16 -> 21, later shrink to 4x4
        ((9, 32, 32, 3), (8, 2, 2), [1, 2]),  # 5 steps < 8: the window shrinks along time
    ],
)
def test_keras_cv_video_swin_parity(shape, window, depths):
    rng = np.random.default_rng(0)
    theirs = keras_cv.models.VideoSwinBackbone(
        input_shape=shape, embed_dim=8, depths=depths, num_heads=[1, 2, 4][: len(depths)],
        window_size=list(window), patch_size=[2, 4, 4])
    for weight in theirs.weights:  # keras-cv's bias tables start at zero: randomise everything
        weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    ours = video_coswin_from_keras_cv(theirs)
    clips = rng.normal(0, 1, (2,) + shape).astype("float32")
    expected = np.asarray(theirs(clips))
    np.testing.assert_allclose(np.asarray(ours(clips)["feature_map"]), expected, atol=1e-5)


def test_bias_table_of_a_shrunk_window_lands_at_its_offsets():
    table = np.arange(3 * 3 * 3, dtype="float32")[:, None]  # keras-cv's (2, 2, 2) table
    ours = convert_bias_table(table, (2, 2, 2), (3, 2, 2))  # our (3, 2, 2) table: 5*3*3 rows
    assert ours.shape == (45, 1)
    # offset (dt, dh, dw) = (0, 0, 0): keras-cv row 13 (1*9 + 1*3 + 1), our row 2*9 + 1*3 + 1 = 22
    assert ours[22, 0] == 13
    assert ours[0, 0] == 0 and ours[44, 0] == 0  # offsets |dt| = 2 never occur in a 2-frame window


def test_non_square_keras_cv_index_is_refused():
    with pytest.raises(ValueError, match="non-square"):
        convert_bias_table(np.zeros((3 * 3 * 5, 1), "float32"), (2, 2, 3), (2, 2, 3))
