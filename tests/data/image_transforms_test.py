import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data import image_transforms

RNG = np.random.default_rng(1)


def test_center_crop_without_resize_is_the_middle_slice():
    image = RNG.integers(0, 256, (32, 50, 3), dtype=np.uint8)
    out = image_transforms.resize_center_crop(image, 32).numpy()
    np.testing.assert_array_equal(out, image[:, 9:41])  # left = (50 - 32) // 2
    tall = RNG.integers(0, 256, (45, 20, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_transforms.resize_center_crop(tall, 20).numpy(), tall[12:32])


def test_center_crop_after_resize_keeps_the_middle_region():
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, :10] = (255, 0, 0)
    image[:, 10:70] = (0, 255, 0)
    image[:, 70:] = (0, 0, 255)
    out = image_transforms.resize_center_crop(image, 20).numpy()  # 40x80 -> 20x40, crop columns 10..30 (green)
    assert out.shape == (20, 20, 3)
    np.testing.assert_array_equal(out, np.broadcast_to(np.array([0, 255, 0], np.uint8), (20, 20, 3)))


def test_resize_shorter_side_never_upscales():
    image = np.full((100, 60, 3), 9, np.uint8)
    resized, changed = image_transforms.resize_shorter_side(image, 30)
    assert resized.shape == (50, 30, 3) and bool(changed)
    np.testing.assert_array_equal(resized.numpy(), 9)
    same, changed = image_transforms.resize_shorter_side(image, 60)
    assert same.shape == (100, 60, 3) and not bool(changed)


def test_random_resized_crop_is_seeded_and_can_be_the_identity():
    image = RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    whole = image_transforms.random_resized_crop(image, 40, [1, 2], scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_array_equal(whole.numpy(), image)
    crops = [image_transforms.random_resized_crop(image, 24, [seed, 0], scale=(0.2, 0.5)).numpy()
             for seed in (0, 0, 1)]
    assert crops[0].shape == (24, 24, 3)
    np.testing.assert_array_equal(crops[0], crops[1])
    assert not np.array_equal(crops[0], crops[2])
    piped = next(iter(tf.data.Dataset.from_tensors(image).map(
        lambda im: image_transforms.random_resized_crop(im, 24, tf.constant([0, 0]), scale=(0.2, 0.5)))))
    np.testing.assert_array_equal(piped.numpy(), crops[0])
    with pytest.raises(ValueError, match="scale"):
        image_transforms.random_resized_crop(image, 24, [0, 0], scale=(0.5, 0.2))


def test_flip_mirrors_the_image_and_swaps_left_and_right_in_its_text():
    image = RNG.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    flips = 0
    for seed in range(200):
        out, text = image_transforms.random_flip(image, tf.constant("a star on the left"), [seed, 3])
        flipped = not np.array_equal(out.numpy(), image)
        if flipped:
            np.testing.assert_array_equal(out.numpy(), image[:, ::-1])
        assert text.numpy() == (b"a star on the right" if flipped else b"a star on the left")
        flips += flipped
    assert 70 < flips < 130


def test_swap_left_right_only_touches_whole_words():
    texts = ["a circle to the left of a star", "Right, then left", "leftover bright wright", "left right left"]
    expected = [b"a circle to the right of a star", b"Left, then right", b"leftover bright wright",
                b"right left right"]
    assert list(image_transforms.swap_left_right(texts).numpy()) == expected


def test_antialiasing_can_be_switched_off():
    image = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    smooth = image_transforms.resize_center_crop(image, 16).numpy()
    sharp = image_transforms.resize_center_crop(image, 16, antialias=False).numpy()
    assert smooth.shape == sharp.shape == (16, 16, 3)
    assert smooth.std() < sharp.std()  # the filter averages the noise away


def test_remove_colour_words_keeps_the_caption_true_of_a_greyscale_image():
    texts = ["a photo of an orange circle", "two objects: a red star and a Blue ring", "a red object",
             "a black cat", "I like red"]
    assert image_transforms.remove_colour_words(texts).numpy().tolist() == [
        b"a photo of a circle", b"two objects: a star and a ring", b"an object", b"a black cat", b"I like red"]
    assert image_transforms.remove_colour_words("a red cat", words=()).numpy() == b"a red cat"


def test_random_greyscale_changes_pixels_and_text_together():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    applied_count = 0
    for seed in range(40):
        out, text, applied = image_transforms.random_greyscale(image, "a red circle", [seed, 3], 0.5)
        out = out.numpy()
        if bool(applied):
            applied_count += 1
            luma = np.round(image.astype(np.float64) @ [0.2989, 0.587, 0.114])
            for channel in range(3):
                np.testing.assert_allclose(out[..., channel], luma, atol=1)
            assert text.numpy() == b"a circle"
        else:
            np.testing.assert_array_equal(out, image)
            assert text.numpy() == b"a red circle"
    assert 10 <= applied_count <= 30
    never = image_transforms.random_greyscale(image, "a red circle", [1, 2], 0.0)
    assert not bool(never[2])
    in_pipeline = next(iter(tf.data.Dataset.from_tensors((image, "a red circle")).map(
        lambda im, t: image_transforms.random_greyscale(im, t, tf.constant([7, 3]), 0.5))))
    eager = image_transforms.random_greyscale(image, "a red circle", [7, 3], 0.5)
    np.testing.assert_array_equal(in_pipeline[0].numpy(), eager[0].numpy())
    with pytest.raises(ValueError, match="probability"):
        image_transforms.random_greyscale(image, "x", [1, 2], 1.5)
