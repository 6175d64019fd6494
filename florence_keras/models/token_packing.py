"""CLIP-style token packing shared by the preprocessor and the fusion Tasks: start token, body, end token, padding.

`FlorenceCLIPPreprocessor` packs to its `sequence_length`; `FlorenceVQA` (questions) and `FlorenceFusionPretrainer`
(texts) pack to their own, shorter lengths with the same tokenizer. This module imports no Task, so any of them can
import it at module level.
"""

import numpy as np
import tensorflow as tf


def pack_token_ids(tokens, start_token_id, end_token_id, sequence_length):
    """Packs token ids `(B, None)` (ragged or dense) into int32 `(B, sequence_length)`.

    `start`, the first `sequence_length - 2` tokens, `end`, then `end` padding — what keras-hub's
    `StartEndPacker(start, end, pad_value=end)` gives (CLIP's packing: the text encoder pools at the first end
    token). Written with dense ops: the packer's ragged concatenation transposes integer row lengths, which
    TensorFlow's oneDNN graph pass logs an ERROR line about on CPUs without AVX-512.

    Example:
    >>> pack_token_ids(tf.ragged.constant([[5, 6, 7], [8]]), 1, 2, 4).numpy().tolist()
    [[1, 5, 6, 2], [1, 8, 2, 2]]
    """
    if sequence_length < 2:
        raise ValueError(f"`sequence_length` must be at least 2. Received: sequence_length={sequence_length}")
    body_length = sequence_length - 2
    if isinstance(tokens, tf.RaggedTensor):
        body = tokens.to_tensor(default_value=end_token_id, shape=[None, body_length])
    else:
        tokens = tf.convert_to_tensor(tokens)[:, :body_length]
        body = tf.pad(tokens, [[0, 0], [0, body_length - tf.shape(tokens)[1]]], constant_values=end_token_id)
    body = tf.cast(body, tf.int32)
    column = tf.ones([tf.shape(body)[0], 1], tf.int32)
    return tf.concat([column * start_token_id, body, column * end_token_id], axis=1)


def tokenize_and_pack(tokenizer, texts, sequence_length, name="texts"):
    """Strings `(B,)` (or one string) -> int32 `(B, sequence_length)` (or `(sequence_length,)`): the BPE tokens
    of `tokenizer` (a `FlorenceTokenizer`: lower-cased, CLIP's BPE), packed by `pack_token_ids` with its start and
    end ids. TensorFlow ops (tf.data, serving); also eagerly, where keras-hub tokenizers return Python lists.

    Args:
        tokenizer: the tokenizer (its `start_token_id`, `end_token_id`).
        texts: a string, a list of strings or a string tensor.
        sequence_length: int >= 2, ids per text (start and end included).
        name: how the error message names `texts`.
    """
    texts = tf.convert_to_tensor(texts)
    if texts.dtype != tf.string:
        raise ValueError(f"`{name}` must be strings. Received dtype: {texts.dtype}")
    single = texts.shape.rank == 0
    texts = texts[None] if single else texts
    tokens = tokenizer(texts)
    if isinstance(tokens, (list, tuple)):  # eager keras-hub tokenizers return Python lists
        tokens = tf.ragged.constant(tokens, dtype=tf.int32, ragged_rank=1) if len(tokens) else \
            tf.zeros([0, 0], tf.int32)
    ids = pack_token_ids(tokens, tokenizer.start_token_id, tokenizer.end_token_id, sequence_length)
    return ids[0] if single else ids


def token_lengths(tokenizer, texts, batch_size=4096):
    """int64 `(len(texts),)`: the BPE tokens of each text, start and end tokens not counted.

    A text is packed whole at `sequence_length` when its length is at most `sequence_length - 2`: what
    `fitting_sequence_length` chooses from and what `count_cut` counts.

    Example:
    >>> token_lengths(lambda t: [[7] * len(s.split()) for s in t.numpy()], ["a b c", "d"]).tolist()
    [3, 1]
    """
    lengths = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(tf.constant(texts[start:start + batch_size]))
        if isinstance(tokens, tf.RaggedTensor):
            lengths.extend(tokens.row_lengths().numpy().tolist())
        else:  # eager keras-hub tokenizers return Python lists
            lengths.extend(len(row) for row in tokens)
    return np.asarray(lengths, dtype=np.int64)


def count_cut(tokenizer, texts, sequence_length, batch_size=4096):
    """How many of `texts` lose tokens when packed to `sequence_length` (start and end tokens included).

    Packing cuts a longer text silently (its end token kept); a recipe reports this count instead, e.g. held-out
    questions longer than the longest training question the preset was packed for.

    Example:
    >>> count_cut(lambda t: [[7] * len(s.split()) for s in t.numpy()], ["a b c", "d"], 4)
    1
    """
    if not isinstance(sequence_length, int) or sequence_length < 2:
        raise ValueError(f"`sequence_length` must be an int >= 2. Received: sequence_length={sequence_length!r}")
    if not texts:
        return 0
    return int((token_lengths(tokenizer, texts, batch_size) > sequence_length - 2).sum())


def fitting_sequence_length(tokenizer, texts, max_length, multiple=8, batch_size=4096):
    """The shortest packed length that holds every text whole, rounded up to a multiple of `multiple`, at most
    `max_length` (the text encoder's context).

    What a recipe packs its questions to when the user gives no length: padded positions are masked but still
    computed, so packing short questions to a long default wastes the step (the built-in questions need 15 of the
    old default's 24 tokens; one VQA fusion step measured 1.31× faster at 12 tokens than at 24). Rounding up leaves
    room for a held-out question a little longer than the longest training one; a longer one is cut (its end token
    kept), as at any fixed length.

    Args:
        tokenizer: the tokenizer (a `FlorenceTokenizer`).
        texts: a list of strings (non-empty).
        max_length: int >= 2, the cap.
        multiple: int >= 1. Defaults to 8.
        batch_size: texts tokenized at a time. Defaults to 4096.

    Returns:
        int in `[2, max_length]`: BPE tokens of the longest text + the start and end tokens, rounded up.

    Example:
    >>> fitting_sequence_length(lambda t: [[7] * len(s.split()) for s in t.numpy()], ["a b c", "d"], 77)
    8
    """
    if not texts:
        raise ValueError("`texts` must be a non-empty list of strings.")
    if not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"`max_length` must be an int >= 2. Received: max_length={max_length!r}")
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"`multiple` must be an int >= 1. Received: multiple={multiple!r}")
    longest = int(max(token_lengths(tokenizer, texts, batch_size), default=0))
    rounded = -(-(longest + 2) // multiple) * multiple
    return min(rounded, max_length)
