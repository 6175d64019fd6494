"""FlorenceCLIPPreprocessor packs token ids exactly as keras-hub's StartEndPacker, eagerly and in tf.data."""

import numpy as np
import pytest
import tensorflow as tf
from keras_hub.layers import StartEndPacker

from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_tokenizer import FlorenceTokenizer

TEXTS = ["a red circle", "two cats", "x y z w v u t s r q p o", "q", "", "a b c d e f"]


@pytest.fixture(scope="module")
def tokenizer():
    return FlorenceTokenizer()


@pytest.mark.parametrize("sequence_length", [2, 3, 8, 77])
def test_packing_matches_start_end_packer(tokenizer, sequence_length):
    reference = StartEndPacker(start_value=tokenizer.start_token_id, end_value=tokenizer.end_token_id,
                               pad_value=tokenizer.end_token_id, sequence_length=sequence_length,
                               return_padding_mask=False)
    preprocessor = FlorenceCLIPPreprocessor(tokenizer, sequence_length=sequence_length)
    expected = np.asarray(reference(tokenizer(TEXTS)))
    np.testing.assert_array_equal(preprocessor.tokenize(TEXTS), expected)
    mapped = tf.data.Dataset.from_tensor_slices(TEXTS).batch(4).map(preprocessor.tokenize)
    np.testing.assert_array_equal(np.concatenate([batch.numpy() for batch in mapped]), expected)
    np.testing.assert_array_equal(preprocessor.tokenize(TEXTS[0]), expected[0])
    dense = tf.constant([[5, 6, 7, 8], [9, 10, 11, 12]])
    np.testing.assert_array_equal(preprocessor.packer(dense), np.asarray(reference(dense)))
    assert preprocessor.tokenize(TEXTS).dtype == tf.int32
