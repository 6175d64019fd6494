"""fusion_tokens: image tokens and the text mask against NumPy; the stage check."""

import numpy as np
import pytest

from florence_keras.models import fusion_tokens


def test_image_tokens_are_the_mean_then_the_cells_in_row_major_order():
    rng = np.random.default_rng(0)
    feature_map = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    tokens = np.asarray(fusion_tokens.image_tokens({"feature_map": feature_map}))
    cells = feature_map.reshape(2, 12, 5)
    np.testing.assert_allclose(tokens[:, 0], feature_map.mean(axis=(1, 2)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(tokens[:, 1:], cells)


def test_image_tokens_of_an_earlier_stage_go_through_its_norm():
    stage = np.arange(2 * 2 * 2 * 3, dtype="float32").reshape(2, 2, 2, 3)
    seen = []

    def norm(x):
        seen.append(np.asarray(x))
        return x * 2.0

    tokens = np.asarray(fusion_tokens.image_tokens({"feature_map": None, "pyramid": {"P3": stage}}, 1, norm))
    np.testing.assert_array_equal(seen[0], stage)
    np.testing.assert_allclose(tokens[:, 1:], 2 * stage.reshape(2, 4, 3))
    np.testing.assert_allclose(tokens[:, 0], 2 * stage.mean(axis=(1, 2)))


def test_text_mask_keeps_up_to_the_first_end_token():
    ids = np.array([[9, 5, 2, 2, 2], [9, 2, 5, 2, 2], [9, 5, 6, 7, 8]])
    expected = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])  # by hand: no end token, all kept
    np.testing.assert_array_equal(np.asarray(fusion_tokens.text_mask(ids, 2)), expected)


def test_stage_check():
    fusion_tokens.check_image_token_stage(None, 4)
    fusion_tokens.check_image_token_stage(3, 4)
    for bad in (4, -1, 1.0, True):
        with pytest.raises(ValueError, match=r"image_token_stage.*0\.\.3"):
            fusion_tokens.check_image_token_stage(bad, 4)


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(fusion_tokens, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 2 and result.failed == 0


def test_text_tokens_put_the_first_end_token_state_first():
    rng = np.random.default_rng(1)
    states = rng.normal(size=(3, 5, 4)).astype("float32")
    ids = np.array([[9, 5, 2, 2, 2], [9, 2, 5, 2, 2], [9, 5, 6, 7, 8]])  # end token 2; row 3 has none
    tokens = np.asarray(fusion_tokens.text_tokens(states, fusion_tokens.text_mask(ids, 2)))
    for row, end in enumerate([2, 1, 4]):  # by hand: the first end token, else the last position
        np.testing.assert_array_equal(tokens[row, 0], states[row, end])
        np.testing.assert_array_equal(tokens[row, 1:], states[row, 1:])


def test_multi_scale_map_concatenates_each_maps_cells_in_row_major_order():
    rng = np.random.default_rng(2)
    small = rng.normal(size=(2, 1, 2, 3)).astype("float32")
    large = rng.normal(size=(2, 2, 4, 3)).astype("float32")
    got = np.asarray(fusion_tokens.multi_scale_map([small, large]))
    np.testing.assert_array_equal(got, np.concatenate([small.reshape(2, 2, 3), large.reshape(2, 8, 3)], axis=1))
    tokens = np.asarray(fusion_tokens.grid_tokens(got))  # cells (B, N, C) give the mean first, then the cells
    np.testing.assert_allclose(tokens[:, 0], got.mean(axis=1), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(tokens[:, 1:], got)
    np.testing.assert_array_equal(np.asarray(fusion_tokens.grid_cells(got)), got)


def test_image_scales_check():
    assert fusion_tokens.check_image_scales([1, 2]) == (1, 2)
    assert fusion_tokens.check_image_scales((2,)) == (2,)
    for bad in ((), [1, 1], [0], [1.5], [True], 2, "12", None):
        with pytest.raises(ValueError, match="image_scales"):
            fusion_tokens.check_image_scales(bad)


def test_fold_cells_is_space_to_depth_in_row_major_order():
    rng = np.random.default_rng(3)
    grid = rng.normal(size=(2, 4, 6, 3)).astype("float32")
    folded = np.asarray(fusion_tokens.fold_cells(grid))
    assert folded.shape == (2, 2, 3, 12)
    for i in range(2):
        for j in range(3):
            block = grid[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2]  # (2, 2, 2, 3): rows, then columns
            np.testing.assert_array_equal(folded[:, i, j], block.reshape(2, 12))


def test_image_map_with_detail_appends_the_folded_stage_before():
    rng = np.random.default_rng(4)
    pyramid = {f"P{k}": rng.normal(size=(1, 2 ** (7 - k), 2 ** (7 - k), 2 ** k)).astype("float32")
               for k in range(2, 6)}
    features = {"feature_map": pyramid["P5"] + 1.0, "pyramid": pyramid}
    last = np.asarray(fusion_tokens.image_map(features, None, image_detail=True))
    np.testing.assert_array_equal(last[..., :32], features["feature_map"])
    np.testing.assert_array_equal(last[..., 32:], np.asarray(fusion_tokens.fold_cells(pyramid["P4"])))
    stage1 = np.asarray(fusion_tokens.image_map(features, 1, image_detail=True))  # P3 with P2 folded
    np.testing.assert_array_equal(stage1[..., :8], pyramid["P3"])
    np.testing.assert_array_equal(stage1[..., 8:], np.asarray(fusion_tokens.fold_cells(pyramid["P2"])))
    assert np.asarray(fusion_tokens.image_map(features, None)).shape == features["feature_map"].shape
    with pytest.raises(ValueError, match="image_detail"):
        fusion_tokens.image_map(features, 0, image_detail=True)
