"""Image-depth pairs: PNG (mm) and .npy (m) depth, bad records skipped and counted, identical augmentation."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data.depth_augmentation import augment_depth_pair
from florence_keras.data.depth_augmentation import depth_dataset
from florence_keras.data.depth_pairs import load_depth_pairs
from florence_keras.data.depth_pairs import read_depth_pairs
from florence_keras.data.skip_counter import SkipCounter


def _write_pairs(root, size=16):
    rng = np.random.default_rng(0)
    rows = []

    def image(name, shape=(size, size, 3)):
        cv2.imwrite(str(root / name), rng.integers(0, 256, shape).astype(np.uint8))
        return name

    depth_mm = rng.integers(500, 9000, (size, size)).astype(np.uint16)
    depth_mm[0, :4] = 0
    cv2.imwrite(str(root / "good.png"), depth_mm)
    rows.append((image("a.png"), "good.png"))
    np.save(root / "good.npy", depth_mm.astype(np.float32) / 1000.0)
    rows.append((image("b.png"), "good.npy"))
    rows.append(("missing.png", "good.png"))                              # missing image
    (root / "trunc.png").write_bytes((root / "a.png").read_bytes()[:40])
    rows.append(("trunc.png", "good.png"))                                # truncated image
    cv2.imwrite(str(root / "eight_bit.png"), (depth_mm // 100).astype(np.uint8))
    rows.append((image("c.png"), "eight_bit.png"))                         # 8-bit depth: refused
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    rows.append((image("d.png"), "objects.npy"))                           # pickled .npy: refused
    rows.append((image("e.png", (size, size + 2, 3)), "good.png"))         # size mismatch
    cv2.imwrite(str(root / "zeros.png"), np.zeros((size, size), np.uint16))
    rows.append((image("f.png"), "zeros.png"))                             # no valid depth
    (root / "pairs.csv").write_text("image,depth\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return root / "pairs.csv", depth_mm


def test_load_pairs_skips_and_counts(tmp_path):
    csv_path, depth_mm = _write_pairs(tmp_path)
    counter = SkipCounter()
    data = load_depth_pairs(str(csv_path), image_size=16, skip_counter=counter)
    assert data["images"].shape == (2, 16, 16, 3) and data["depth"].shape == (2, 16, 16)
    expected = depth_mm.astype(np.float32) / 1000.0
    np.testing.assert_allclose(data["depth"][0], expected, rtol=1e-6)   # PNG in millimetres
    np.testing.assert_allclose(data["depth"][1], expected, rtol=1e-6)   # .npy in metres
    assert data["depth"][0, 0, :4].tolist() == [0.0] * 4
    assert counter.count == 6
    assert dict(counter.reasons) == {"missing": 1, "truncated": 1, "bad_depth": 2, "size_mismatch": 1,
                                     "no_valid_depth": 1}
    resized = load_depth_pairs(str(csv_path), image_size=8)
    # Nearest-neighbour depth: every value is one of the originals (no blending with the invalid 0).
    assert set(np.unique(resized["depth"][0])) <= set(np.unique(expected))


def test_filepath_header_and_no_good_pair(tmp_path):
    (tmp_path / "x.csv").write_text("filepath,depth\nnope.png,nope.png\n")
    assert read_depth_pairs(str(tmp_path / "x.csv"))[0] == [str(tmp_path / "nope.png")]
    with pytest.raises(ValueError, match="No readable"):
        load_depth_pairs(str(tmp_path / "x.csv"), image_size=8)


def test_augmentation_moves_image_and_depth_together():
    # The depth map is the image's first channel: any geometric change must keep them equal.
    size = 16
    base = np.arange(size * size, dtype=np.float32).reshape(size, size) % 251 + 1
    image = np.repeat(base[..., None], 3, axis=-1)
    for i in range(8):
        out_image, out_depth = augment_depth_pair(tf.constant(image), tf.constant(base), tf.constant([3, i]),
                                                  max_shift=0.25)
        out_image, out_depth = out_image.numpy(), out_depth.numpy()
        valid = out_depth > 0
        np.testing.assert_array_equal(out_image[..., 0][valid], out_depth[valid])
        assert out_image.shape == (size, size, 3) and valid.mean() >= 0.5


def test_without_vertical_shift_every_row_stays_in_place():
    # A fixed camera's depth follows the row: with max_vertical_shift=0 each pixel keeps its row (it may move
    # sideways or be mirrored), and the shifts do happen.
    size = 16
    base = np.arange(size * size, dtype=np.float32).reshape(size, size) + 1  # every value names its pixel
    image = np.repeat((base[..., None] % 251), 3, axis=-1).astype(np.uint8)
    moved = 0
    for i in range(12):
        _, out_depth = augment_depth_pair(tf.constant(image), tf.constant(base), tf.constant([5, i]),
                                          max_shift=0.25, max_vertical_shift=0.0)
        out_depth = out_depth.numpy()
        rows = np.nonzero(out_depth > 0)[0]
        np.testing.assert_array_equal((out_depth[out_depth > 0] - 1) // size, rows)
        moved += not np.array_equal(out_depth, base)
    assert moved >= 6
    with pytest.raises(ValueError, match="max_vertical_shift"):
        augment_depth_pair(tf.constant(image), tf.constant(base), tf.constant([5, 0]), max_vertical_shift=0.5)


def test_depth_dataset_is_seeded_and_ordered_without_repeat():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    depth = rng.uniform(1, 5, (5, 8, 8)).astype(np.float32)
    def make():
        return depth_dataset(images, depth, 2, lambda x: tf.cast(x, tf.float32) / 255.0, seed=4)

    dataset = make()
    first = [batch for batch in dataset.take(3)]
    second = [batch for batch in make().take(3)]  # the same seed: the same stream
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["depth"].numpy(), b["depth"].numpy())
    assert first[0]["images"].shape == (2, 8, 8, 3) and set(first[0]) == {"images", "depth"}
    assert dataset.element_spec["images"].shape.as_list() == [2, 8, 8, 3]
    ordered = list(depth_dataset(images, depth, 2, lambda x: tf.cast(x, tf.float32), repeat=False,
                                 drop_remainder=False))
    np.testing.assert_array_equal(np.concatenate([b["depth"].numpy() for b in ordered]), depth)


def test_augmentation_eager_equals_tf_data():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)
    depth = rng.uniform(1, 5, (12, 12)).astype(np.float32)
    eager = augment_depth_pair(tf.constant(image), tf.constant(depth), tf.constant([7, 1]))
    traced = next(iter(tf.data.Dataset.from_tensors((image, depth)).map(
        lambda i, d: augment_depth_pair(i, d, tf.constant([7, 1])))))
    for a, b in zip(eager, traced):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_native_size_needs_equal_sizes(tmp_path):
    csv_path, _ = _write_pairs(tmp_path, size=12)
    data = load_depth_pairs(str(csv_path), image_size=None)
    assert data["images"].shape == (2, 12, 12, 3)
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((14, 14, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "big_depth.png"), np.full((14, 14), 1000, np.uint16))
    with open(csv_path, "a", encoding="utf-8") as f:
        f.write("big.png,big_depth.png\n")
    with pytest.raises(ValueError, match="image_size"):
        load_depth_pairs(str(csv_path), image_size=None)
