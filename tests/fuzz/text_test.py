"""Fuzzing of text: the tokenizer eagerly, inside tf.data, and the served `encode_texts` signature.

Inputs: any Unicode (all planes, combining marks, bidi controls, BOM, U+FFFD), control characters and NUL,
invalid UTF-8 bytes, special-token strings, whitespace-only text, and strings of up to 100,000 characters (one
letter repeated — a single 100,000-letter "word" took hours of BPE before the fix — or a short random piece
repeated).

Property: the tokenizer returns token ids in the vocabulary, the same eagerly and in tf.data, never an end or
start token from the text itself, within the case timeout; `encode_texts` returns finite unit-norm embeddings.
"""

import numpy as np
import tensorflow as tf
from hypothesis import example
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import fuzz_support
from tests.fuzz.fuzz_support import case_timeout
from tests.fuzz.fuzz_support import fuzz_settings
from tests.fuzz.fuzz_support import nasty_text

texts = st.one_of(
    nasty_text(60),
    st.binary(max_size=60),  # invalid UTF-8: replaced by U+FFFD
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=30),
)
long_texts = fuzz_support.long_text(100_000)
HUGE_WORD = "a" * 100_000  # one 100,000-letter word: hours of BPE before the fix; ~7 s now (nightly only)


def nightly_example(**kwargs):
    """`@example(...)` in nightly mode only (for cases that cost seconds)."""
    return example(**kwargs) if fuzz_support.NIGHTLY else (lambda test: test)


def _tokenizer(tiny_clip):
    return tiny_clip.preprocessor.tokenizer


def _check_ids(tokenizer, ids):
    ids = np.asarray(ids)
    assert ids.ndim == 1 and ids.dtype.kind == "i"
    assert np.all((ids >= 0) & (ids < tokenizer.vocabulary_size()))
    assert tokenizer.start_token_id not in ids and tokenizer.end_token_id not in ids


# Eager BPE of unseen words runs its while-loop op by op (~0.5 s a case): few cases in the fast suite.
@fuzz_settings(fast=6, share=0.5)
@given(text=texts)
def test_tokenizer_eager_returns_vocabulary_ids(tiny_clip, text):
    tokenizer = _tokenizer(tiny_clip)
    with case_timeout("text"):
        ids = tokenizer(tf.constant(text))
    _check_ids(tokenizer, ids)
    fuzz_support.record("text", "eager")


@fuzz_settings(fast=0, share=0.02)
@given(text=long_texts)
@example(text="ab c " * 20_000)  # 100,000 characters of short words
@example(text="a" * 20_000)  # one 20,000-letter word: 90 s of BPE before the fix
@nightly_example(text=HUGE_WORD)
def test_tokenizer_handles_100k_character_text(tiny_clip, text):
    tokenizer = _tokenizer(tiny_clip)
    with case_timeout("text"):
        ids = tokenizer(tf.constant(text))
    _check_ids(tokenizer, ids)
    fuzz_support.record("text", "eager_long")


@fuzz_settings(fast=1, share=0.05)
@given(batch=st.lists(texts, min_size=1, max_size=4))
def test_tokenizer_in_tf_data_matches_eager(tiny_clip, batch):
    tokenizer = _tokenizer(tiny_clip)
    with case_timeout("text"):
        dataset = tf.data.Dataset.from_tensor_slices(tf.constant(batch, tf.string)).map(tokenizer)
        for text, ids in zip(batch, dataset):
            assert np.asarray(ids).tolist() == np.asarray(tokenizer(tf.constant(text))).tolist(), text
    fuzz_support.record("text", "tf_data")


@fuzz_settings(fast=30, share=0.5)
@given(batch=st.lists(st.one_of(texts, st.sampled_from(["", " ", "\x00" * 50])), min_size=1, max_size=4))
@example(batch=["b" * 5_000, "a photo of a cat"])
@nightly_example(batch=[HUGE_WORD])
def test_served_encode_texts_returns_embeddings(served_model, batch):
    with case_timeout("text"):
        embeddings = served_model.signatures["encode_texts"](texts=tf.constant(batch, tf.string))["embeddings"]
    embeddings = embeddings.numpy()
    assert embeddings.shape[0] == len(batch) and np.all(np.isfinite(embeddings))
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-3)
    fuzz_support.record("text", "served")
