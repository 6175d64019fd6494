"""token_packing: CLIP packing against keras-hub's StartEndPacker and hand-worked cases; the tokenizer path."""

import numpy as np
import pytest
import tensorflow as tf
from keras_hub.layers import StartEndPacker

from florence_keras.models import token_packing
from tests.model_fixtures import tiny_clip


@pytest.mark.parametrize("length", [2, 3, 5, 9])
def test_packing_equals_keras_hubs_start_end_packer(length):
    rows = [[5, 6, 7, 8, 9, 10], [11], [], [12, 13]]
    ragged = tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)
    expected = StartEndPacker(sequence_length=length, start_value=1, end_value=2, pad_value=2)(ragged)
    packed = token_packing.pack_token_ids(ragged, 1, 2, length)
    assert packed.dtype == tf.int32 and packed.shape == (4, length)
    np.testing.assert_array_equal(packed.numpy(), np.asarray(expected))
    # A dense (B, T) input gives the same for rows of full length.
    dense = tf.constant([[5, 6, 7, 8, 9, 10]])
    np.testing.assert_array_equal(token_packing.pack_token_ids(dense, 1, 2, length).numpy(), packed.numpy()[:1])


def test_hand_worked_case_and_bad_length():
    packed = token_packing.pack_token_ids(tf.ragged.constant([[5, 6, 7], [8]]), 1, 2, 4).numpy()
    assert packed.tolist() == [[1, 5, 6, 2], [1, 8, 2, 2]]
    with pytest.raises(ValueError, match="sequence_length"):
        token_packing.pack_token_ids(tf.ragged.constant([[5]]), 1, 2, 1)


def test_tokenize_and_pack_matches_the_preprocessor_and_takes_one_string():
    clip = tiny_clip(32)
    tokenizer, preprocessor = clip.preprocessor.tokenizer, clip.preprocessor
    texts = ["a red circle", "two objects on the left of a very large blue square"]
    ids = token_packing.tokenize_and_pack(tokenizer, texts, preprocessor.sequence_length)
    np.testing.assert_array_equal(ids.numpy(), preprocessor.tokenize(texts).numpy())
    short = token_packing.tokenize_and_pack(tokenizer, texts, 6).numpy()
    np.testing.assert_array_equal(short, preprocessor.tokenize(texts).numpy()[:, :6] * [1, 1, 1, 1, 1, 0]
                                  + [0, 0, 0, 0, 0, tokenizer.end_token_id])  # cut so the end token fits
    one = token_packing.tokenize_and_pack(tokenizer, "a red circle", 6).numpy()
    np.testing.assert_array_equal(one, short[0])
    graph = tf.function(lambda t: token_packing.tokenize_and_pack(tokenizer, t, 6))
    np.testing.assert_array_equal(graph(tf.constant(texts)).numpy(), short)
    with pytest.raises(ValueError, match="`questions` must be strings"):
        token_packing.tokenize_and_pack(tokenizer, [1, 2], 6, "questions")


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(token_packing, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0


def test_fitting_sequence_length_holds_the_longest_text_whole():
    clip = tiny_clip(32)
    tokenizer = clip.preprocessor.tokenizer
    texts = ["a red circle", "two objects on the left of a very large blue square", "a star"]
    longest = max(len(tokenizer(t)) for t in texts)  # eager: a list of ids per text
    length = token_packing.fitting_sequence_length(tokenizer, texts, 77)
    assert length % 8 == 0 and longest + 2 <= length < longest + 2 + 8
    # At that length every text packs whole: its end token is where the unpacked text ends.
    ids = token_packing.tokenize_and_pack(tokenizer, texts, length).numpy()
    for row, text in zip(ids, texts):
        assert row[len(tokenizer(text)) + 1] == tokenizer.end_token_id
        assert list(row[1:len(tokenizer(text)) + 1]) == list(tokenizer(text))
    # Capped at the context; other multiples; batches of texts give the same as one batch.
    assert token_packing.fitting_sequence_length(tokenizer, texts, 9) == 9
    assert token_packing.fitting_sequence_length(tokenizer, texts, 77, multiple=1) == longest + 2
    assert token_packing.fitting_sequence_length(tokenizer, texts, 77, batch_size=1) == length
    with pytest.raises(ValueError, match="texts"):
        token_packing.fitting_sequence_length(tokenizer, [], 77)
    with pytest.raises(ValueError, match="max_length"):
        token_packing.fitting_sequence_length(tokenizer, texts, 1)


def test_count_cut_counts_exactly_the_texts_packing_shortens():
    clip = tiny_clip(32)
    tokenizer = clip.preprocessor.tokenizer
    texts = ["a red circle", "two objects on the left of a very large blue square", "a star", ""]
    lengths = [len(tokenizer(t)) for t in texts]  # eager: a list of ids per text
    assert token_packing.token_lengths(tokenizer, texts).tolist() == lengths
    assert token_packing.token_lengths(tokenizer, texts, batch_size=1).tolist() == lengths
    for length in range(2, max(lengths) + 4):
        # Independently: a text is cut when its packed row does not end with its own last token + end token.
        ids = token_packing.tokenize_and_pack(tokenizer, texts, length).numpy()
        cut = sum(list(row[1:n + 1]) != list(tokenizer(t)) for row, t, n in zip(ids, texts, lengths))
        assert token_packing.count_cut(tokenizer, texts, length) == cut
    assert token_packing.count_cut(tokenizer, texts, max(lengths) + 2) == 0
    assert token_packing.count_cut(tokenizer, [], 8) == 0
    with pytest.raises(ValueError, match="sequence_length"):
        token_packing.count_cut(tokenizer, texts, 1)
