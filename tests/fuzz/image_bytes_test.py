"""Fuzzing of encoded image bytes: the checked decoder (eager), the guarded tf.data decode, the served graph.

Inputs: arbitrary bytes; valid PNG (gray, RGB, RGBA, 16-bit), JPEG (baseline, progressive), GIF, BMP and WebP
images, mutated (bit flips, truncation, insertions, 2/4/8-byte fields forged to huge or zero values — which hits
the header size fields); magic numbers followed by junk; a PNG whose header declares 50,000 x 50,000 pixels.

Properties:
* `decode_image_checked` returns an RGB image and a reason, or raises `InvalidArgumentError` (data only the
  decoder finds corrupt); a decoded image never exceeds `max_pixels` and has the header's size.
* In tf.data (`guarded_decode.decode_pointers`) every input is either yielded or counted with a documented reason.
* The served `encode_image_bytes` returns finite unit-norm embeddings or fails the request with
  `InvalidArgumentError`, and the server keeps serving.
"""

import numpy as np
import tensorflow as tf
from hypothesis import example
from hypothesis import given
from hypothesis import strategies as st

from florence_keras.data import guarded_decode
from florence_keras.data import image_decoding
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.data.tfrecord_example import make_image_text_example
from tests.fuzz import fuzz_support
from tests.fuzz.fuzz_support import case_timeout
from tests.fuzz.fuzz_support import fuzz_settings
from tests.fuzz.fuzz_support import image_like_bytes
from tests.fuzz.fuzz_support import png_with_size

MAX_PIXELS = 4096  # small, so that mutated headers land on both sides of the limit
BOMB = png_with_size(50_000, 50_000)


@fuzz_settings(fast=120)
@given(data=image_like_bytes())
@example(data=BOMB)
@example(data=b"")
def test_decode_image_checked_returns_or_raises_invalid_argument(data):
    with case_timeout("image_bytes"):
        try:
            image, reason = image_decoding.decode_image_checked(tf.constant(data), max_pixels=MAX_PIXELS)
        except tf.errors.InvalidArgumentError:
            fuzz_support.record("image_bytes", "error:InvalidArgumentError")
            return
        except UnicodeDecodeError:  # eager only: the decoder's message quotes invalid UTF-8 (see tfrecord_test)
            fuzz_support.record("image_bytes", "error:UnicodeDecodeError(eager)")
            return
        fmt, height, width = (int(v) for v in image_decoding.image_header(tf.constant(data)))
    reason = int(reason)
    assert reason in image_decoding.REASON_NAMES
    if reason == image_decoding.OK:
        assert image.shape[-1] == 3 and image.shape[0] * image.shape[1] <= MAX_PIXELS
        assert (image.shape[0], image.shape[1]) == (height, width), (image.shape, height, width, fmt)
        fuzz_support.record("image_bytes", "data")
    else:
        assert image.shape == (0, 0, 3)
        fuzz_support.record("image_bytes", f"skip:{image_decoding.REASON_NAMES[reason]}")


@fuzz_settings(fast=3, share=0.1)
@given(batch=st.lists(image_like_bytes(), min_size=1, max_size=8))
def test_guarded_decode_in_tf_data_yields_or_counts_every_image(batch):
    counter = SkipCounter(max_examples=0)
    records = [make_image_text_example(data, caption="c") for data in batch]
    pointers = guarded_decode.make_pointers(sources=[str(i) for i in range(len(batch))], paths=[""] * len(batch),
                                            records=np.array(records, dtype=object))
    dataset = guarded_decode.decode_pointers(tf.data.Dataset.from_tensor_slices(pointers),
                                             guarded_decode.PARSE_EXAMPLE, counter, max_pixels=MAX_PIXELS,
                                             group_size=3, num_parallel_calls=1)
    with case_timeout("image_bytes"):
        kept = [element for element in dataset]
    assert len(kept) + counter.count == len(batch)
    assert set(counter.reasons) <= fuzz_support.DOCUMENTED_SKIP_REASONS, counter.reasons
    for element in kept:
        assert element["images"].shape[-1] == 3
        assert element["images"].shape[0] * element["images"].shape[1] <= MAX_PIXELS
    fuzz_support.record("image_bytes", "pipeline_cases")
    for reason in counter.reasons:
        fuzz_support.record("image_bytes", f"pipeline_skip:{reason}")


@fuzz_settings(fast=40, share=0.5)
@given(batch=st.lists(image_like_bytes(), min_size=1, max_size=3))
@example(batch=[BOMB])
def test_served_encode_image_bytes_returns_embeddings_or_invalid_argument(served_model, batch):
    serve = served_model.signatures["encode_image_bytes"]
    with case_timeout("image_bytes"):
        try:
            embeddings = serve(image_bytes=tf.constant(batch, tf.string))["embeddings"].numpy()
        except tf.errors.InvalidArgumentError:
            fuzz_support.record("image_bytes", "served:InvalidArgumentError")
            embeddings = None
        except UnicodeDecodeError:  # the decoder's message quoted invalid UTF-8 (see tfrecord_test)
            fuzz_support.record("image_bytes", "served:UnicodeDecodeError(eager)")
            embeddings = None
        if embeddings is not None:
            assert embeddings.shape[0] == len(batch) and np.all(np.isfinite(embeddings))
            np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-3)
            fuzz_support.record("image_bytes", "served:data")
        # The server keeps serving after any request.
        good = serve(image_bytes=tf.constant([fuzz_support.image_samples()[0]]))["embeddings"]
    assert np.all(np.isfinite(good.numpy()))
