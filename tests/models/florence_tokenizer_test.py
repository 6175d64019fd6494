"""The tokenizer gives transformers' CLIP ids eagerly, in tf.data and in a SavedModel."""

import json

import numpy as np
import pytest

from tests.test_extras import require
import tensorflow as tf

from florence_keras.models.clip_vocabulary import clip_vocabulary_and_merges
from florence_keras.models.florence_tokenizer import FlorenceTokenizer

transformers = require("transformers")

TEXTS = [
    "A Red CIRCLE", "a photo of 2024 cats!!", "Ünïcödé ÉCOLE naïve café",
    "  multiple   spaces\tand\nnewlines ", "", "don't you'll I'M", "日本語のテキスト",
    "emoji 🙂 test", "ΑΒΓ Σίσυφος", "tabs\t\t&amp; html <b>bold</b>", "x" * 300,
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    vocab, merges = clip_vocabulary_and_merges()
    d = tmp_path_factory.mktemp("clip_vocab")
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return transformers.CLIPTokenizer.from_pretrained(str(d))


@pytest.fixture(scope="module")
def tokenizer():
    return FlorenceTokenizer()


def _expected(reference, text):
    return reference(text, add_special_tokens=False)["input_ids"]


def test_vocabulary_is_clip(tokenizer):
    assert tokenizer.vocabulary_size() == 49408
    assert tokenizer.start_token_id == 49406 and tokenizer.end_token_id == 49407


def test_eager_matches_transformers(tokenizer, reference):
    for text in TEXTS:
        assert [int(i) for i in tokenizer(text)] == _expected(reference, text), text


def test_tf_data_matches_transformers(tokenizer, reference):
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).map(tokenizer)
    for text, ids in zip(TEXTS, ds):
        assert [int(i) for i in ids] == _expected(reference, text), text


def test_saved_model_matches_transformers(tokenizer, reference, tmp_path):
    module = tf.Module()
    module.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(texts):
        return tokenizer(texts).to_tensor(default_value=-1)

    module.tokenize = tokenize
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    out = loaded.tokenize(tf.constant(TEXTS)).numpy()
    for text, row in zip(TEXTS, out):
        assert [int(i) for i in row if i >= 0] == _expected(reference, text), text


def test_special_token_text_cannot_inject_end_token(tokenizer):
    ids = [int(i) for i in tokenizer("a <|endoftext|> b")]
    assert 49407 not in ids and 49406 not in ids


def test_eager_merge_needs_no_autograph(reference, monkeypatch):
    """The quickstart notebook once failed when AutoGraph could not rewrite keras-hub's merge step."""
    import functools

    from keras_hub.src.tokenizers import byte_pair_tokenizer

    monkeypatch.setattr(byte_pair_tokenizer.tf, "function", functools.partial(tf.function, autograph=False))
    words = tf.strings.split(tf.constant(["c a t </w>", "d o g s </w>"]), sep=" ")
    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError):
        byte_pair_tokenizer.BytePairTokenizer._bpe_merge_tf(FlorenceTokenizer(), words)
    fresh = FlorenceTokenizer()  # empty cache: every word goes through the merge loop
    for text in TEXTS:
        assert [int(i) for i in fresh(text)] == _expected(reference, text), text
