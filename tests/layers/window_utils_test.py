import numpy as np
import pytest

from florence_keras.layers import window_utils


def _reference_swin_mask(h, w, ws, shift):
    """Swin's official attention mask, written out for 2-D as in the paper's code."""
    img = np.zeros((1, h, w, 1))
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    win = img.reshape(1, h // ws, ws, w // ws, ws, 1).transpose(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws)
    mask = win[:, None, :] - win[:, :, None]
    return np.where(mask != 0, -100.0, 0.0)


@pytest.mark.parametrize("h,w,ws,shift", [(8, 8, 4, 2), (6, 9, 3, 1), (14, 14, 7, 3)])
def test_shift_mask_matches_swin_reference(h, w, ws, shift):
    mask = window_utils.shifted_window_mask((h, w), (ws, ws), (shift, shift))
    np.testing.assert_array_equal(mask, _reference_swin_mask(h, w, ws, shift))


def test_no_shift_no_mask():
    assert window_utils.shifted_window_mask((8, 8), (4, 4), (0, 0)) is None


def test_3d_mask_separates_regions():
    mask = window_utils.shifted_window_mask((4, 4, 4), (2, 2, 2), (1, 1, 1))
    assert mask.shape == (8, 8, 8)
    # The first window is entirely inside region 0: nothing masked.
    assert (mask[0] == 0).all()
    # The last window straddles the wrap-around on every axis: 8 distinct regions.
    assert (mask[-1] != 0).sum() == 8 * 7


def test_relative_position_index_2d_matches_swin_formula():
    ws = 3
    coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + ws - 1
    expected = rel[:, :, 0] * (2 * ws - 1) + rel[:, :, 1]
    np.testing.assert_array_equal(window_utils.relative_position_index((ws, ws)), expected)


def test_relative_position_index_3d_is_a_bijection_on_offsets():
    index = window_utils.relative_position_index((2, 3, 3))
    assert index.min() == 0 and index.max() == 3 * 5 * 5 - 1
    assert len(np.unique(index)) == 3 * 5 * 5


def test_sub_window_reads_full_table_rows():
    small = window_utils.relative_position_index((2, 2), table_window_size=(3, 3))
    # offset (0, 0) is the centre row of a 5x5 table
    assert small[0, 0] == 12 and small[1, 1] == 12


@pytest.mark.parametrize("spatial,window", [((4, 6), (2, 3)), ((2, 4, 4), (1, 2, 2))])
def test_partition_reverse_round_trip(spatial, window):
    x = np.random.default_rng(0).random((2,) + spatial + (5,)).astype("float32")
    windows = window_utils.window_partition(x, spatial, window)
    assert tuple(windows.shape) == (2 * int(np.prod(spatial) / np.prod(window)), int(np.prod(window)), 5)
    np.testing.assert_array_equal(window_utils.numpy_window_partition(x, window), windows)
    np.testing.assert_array_equal(window_utils.window_reverse(windows, spatial, window), x)


def test_effective_window_rule():
    assert window_utils.effective_window_and_shift((7, 9), (7, 7), (3, 3)) == ((7, 7), (0, 0))
    assert window_utils.effective_window_and_shift((3, 9), (7, 7), (3, 3)) == ((3, 3), (0, 0))
    assert window_utils.effective_window_and_shift((8, 8), (7, 7), (3, 3)) == ((7, 7), (3, 3))
    assert window_utils.effective_window_and_shift((2, 8, 8), (4, 7, 7), (2, 3, 3)) == (
        (2, 7, 7), (0, 3, 3))
