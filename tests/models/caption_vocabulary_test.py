"""CaptionVocabulary: hand-worked encoding / decoding; the graph decoder equals the Python one."""

import numpy as np
import pytest

from florence_keras.models.caption_vocabulary import CaptionVocabulary
from florence_keras.models.caption_vocabulary import build_vocabulary
from florence_keras.models.caption_vocabulary import split_caption


def test_split_and_build():
    assert split_caption("Two objects: a RED circle, isn't it?") == [
        "two", "objects", ":", "a", "red", "circle", ",", "isn't", "it", "?"]
    vocab = build_vocabulary(["a red circle", "a blue circle", "a red star"], min_count=2)
    # a (3), circle (2), red (2): most frequent first, ties alphabetical; blue / star (1) dropped.
    assert vocab == ["<pad>", "<unk>", "<start>", "<end>", "a", "circle", "red"]
    assert build_vocabulary(["a b c d"], max_size=6) == ["<pad>", "<unk>", "<start>", "<end>", "a", "b"]
    with pytest.raises(ValueError):
        build_vocabulary(["a"], max_size=4)


def test_encode_decode_hand_cases():
    vocab = CaptionVocabulary(["<pad>", "<unk>", "<start>", "<end>", "a", "red", "circle", ",", "on", ":"])
    ids = vocab.encode(["A red star, on", "a a a a a a a a"], max_length=7)
    np.testing.assert_array_equal(ids, [[2, 4, 5, 1, 7, 8, 3], [2, 4, 4, 4, 4, 4, 3]])
    assert vocab.decode(ids) == ["a red <unk>, on", "a a a a a"]
    assert vocab.decode([[2, 4, 6, 3, 5, 5]]) == ["a circle"]  # stops at <end>
    with pytest.raises(ValueError):
        CaptionVocabulary(["a", "<pad>"])


def test_graph_decoder_equals_python_decoder():
    vocab = CaptionVocabulary(["<pad>", "<unk>", "<start>", "<end>", "a", "red", "circle", ",", "on", ":"])
    ids = np.array([[2, 4, 5, 7, 8, 3, 0], [2, 9, 4, 6, 6, 6, 6], [2, 3, 4, 4, 0, 0, 0], [2, 0, 5, 3, 0, 0, 0]])
    assert [s.decode() for s in vocab.decode_ids_tf(ids).numpy()] == vocab.decode(ids) == [
        "a red, on", ": a circle circle circle circle", "", ""]
