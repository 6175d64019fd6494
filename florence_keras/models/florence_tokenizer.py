"""CLIP's BPE tokenizer, identical in eager code, tf.data and exported graphs."""

import keras
import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.tokenizers import CLIPTokenizer

from florence_keras.models.clip_vocabulary import clip_vocabulary_and_merges
from florence_keras.models.keras_hub_internals import preprocessing_function

# CLIP's pre-tokenisation: contractions, letter runs, single digits, other
# non-space runs. CLIP also matches its special-token strings here; we do not,
# so text that *contains* "<|endoftext|>" cannot inject an end token (which
# would move the pooling position) — it is tokenised as ordinary characters.
CLIP_SPLIT_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
# [ours] Words are cut into pieces of at most MAX_WORD_CHARS characters before
# BPE: BPE time grows with the square of a word's length (one 20,000-letter
# word took 90 s; 100,000 letters would hang a server for hours). With pieces
# of 512 a 100,000-character text costs seconds, and every word up to 512
# characters (any real word; the longest CLIP token has 32) is tokenised
# exactly as CLIP does. (A bounded repetition in the split pattern instead
# blows up RE2's DFA on Unicode classes.)
MAX_WORD_CHARS = 512


def _chop_long_words(words):
    """Cuts every word longer than `MAX_WORD_CHARS` characters into pieces of that many characters.

    Args:
        words: `tf.RaggedTensor` of non-empty valid UTF-8 strings, `[batch, None]`.

    Returns:
        `tf.RaggedTensor` `[batch, None]`; unchanged when no word is too long.
    """
    flat = words.flat_values
    lengths = tf.strings.length(flat, unit="UTF8_CHAR")

    def chop():
        chars = tf.strings.unicode_split(flat, "UTF-8")
        piece_counts = (lengths + MAX_WORD_CHARS - 1) // MAX_WORD_CHARS
        piece_splits = tf.concat([[0], tf.cumsum(piece_counts)], axis=0)
        positions = tf.ragged.range(tf.cast(chars.row_lengths(), tf.int32))
        segments = (positions // MAX_WORD_CHARS + tf.expand_dims(piece_splits[:-1], 1)).flat_values
        pieces = tf.strings.unsorted_segment_join(chars.flat_values, segments, piece_splits[-1])
        return pieces, tf.gather(tf.cast(piece_splits, words.row_splits.dtype), words.row_splits)

    pieces, row_splits = tf.cond(
        tf.reduce_any(lengths > MAX_WORD_CHARS), chop, lambda: (flat, words.row_splits)
    )
    return tf.RaggedTensor.from_row_splits(pieces, row_splits, validate=False)


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceTokenizer(CLIPTokenizer):
    """CLIP's byte-level BPE tokenizer (49,408 tokens), one code path everywhere.

    keras-hub's `CLIPTokenizer` runs the `tokenizers` library eagerly but a
    TensorFlow path inside `tf.data` / `tf.function` that neither lowercases
    nor splits digits like CLIP, so training, eager inference and a SavedModel
    would disagree. This subclass always runs one TensorFlow path that does
    what CLIP does: replace invalid UTF-8 with U+FFFD, NFC-normalise, collapse
    whitespace, lowercase (Unicode-aware), split with CLIP's pattern, then BPE
    with `</w>` word ends (keras-hub's cached merge loop).

    Args:
        vocabulary: dict token -> id or a JSON path. Defaults to the CLIP
            vocabulary shipped with the package.
        merges: list of merge rules or a path. Defaults to CLIP's.
        **kwargs: passed to `keras_hub.tokenizers.CLIPTokenizer`.

    Example:
    >>> tokenizer = FlorenceTokenizer()
    >>> [int(i) for i in tokenizer("A Red CIRCLE")]
    [320, 736, 7117]
    """

    def __init__(self, vocabulary=None, merges=None, **kwargs):
        if vocabulary is None and merges is None and not kwargs.pop("_empty", False):
            vocabulary, merges = clip_vocabulary_and_merges()
            vocabulary = dict(vocabulary)
        super().__init__(vocabulary=vocabulary, merges=merges, **kwargs)

    @classmethod
    def from_config(cls, config):
        # A preset stores the vocabulary as assets; do not build the default one first.
        config = dict(config)
        if config.get("vocabulary") is None and config.get("merges") is None:
            config["_empty"] = True
        return super().from_config(config)

    def _bpe_merge_tf(self, inputs):
        """keras-hub's BPE merge loop over unseen words; eagerly without AutoGraph.

        keras-hub runs each merge step as a `tf.function` whose Python `if` on a tensor only works once AutoGraph
        has rewritten it. AutoGraph reads the step's source and writes the rewrite to a temporary file; when that
        fails (a full temporary directory is enough) the step runs as written and raises
        `OperatorNotAllowedInGraphError`, which made the quickstart notebook fail now and then. Eager callers
        (`encode_texts`, notebooks) now run the steps eagerly, where the `if` is plain Python; inside a graph
        (tf.data, a SavedModel) keras-hub's loop is kept.
        """
        if not tf.executing_eagerly():
            return super()._bpe_merge_tf(inputs)
        words, mask = inputs, tf.fill((tf.shape(inputs)[0],), True)
        while bool(tf.reduce_any(mask)):
            words, mask = self._bpe_merge_one_step_tf(words, mask)
        return words

    def tokenize(self, inputs):
        self._check_vocabulary()
        return self._tokenize_clip(inputs)

    @preprocessing_function
    def _tokenize_clip(self, inputs):
        self._maybe_initialized_tf()
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype != tf.string:
            raise ValueError(f"Expected string inputs. Received dtype: {inputs.dtype}")
        unbatched = inputs.shape.rank == 0
        if unbatched:
            inputs = tf.expand_dims(inputs, 0)
        if inputs.shape.rank != 1:
            raise ValueError(
                "`tokenize()` takes a string or a 1-D batch of strings. "
                f"Received shape: {inputs.shape}"
            )
        text = tf.strings.unicode_transcode(
            inputs, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        text = tf_text.normalize_utf8(text, "NFC")
        text = tf.strings.regex_replace(text, r"\s+", " ")
        text = tf.strings.lower(tf.strings.strip(text), encoding="utf-8")
        words = tf_text.regex_split(text, CLIP_SPLIT_PATTERN, CLIP_SPLIT_PATTERN)
        words = tf.strings.strip(words)
        words = tf.ragged.boolean_mask(words, words != "")
        words = _chop_long_words(words)
        flat = words.flat_values
        cached = self.cache.lookup(flat)
        unseen = tf.math.reduce_any(cached == "")

        def merge_unseen():
            self._bpe_merge_and_update_cache_tf(tf.boolean_mask(flat, cached == ""))
            return self.cache.lookup(flat)

        merged = tf.cond(unseen, merge_unseen, lambda: cached)
        pieces = tf.strings.split(merged, sep=" ")
        ids = self.token_to_id_map.lookup(pieces)
        ids = tf.RaggedTensor.from_row_splits(
            ids.flat_values, tf.gather(ids.row_splits, words.row_splits)
        )
        ids = tf.cast(ids, self.compute_dtype)
        if unbatched:
            ids = ids[0]
        return ids
