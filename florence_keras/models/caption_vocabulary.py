"""CaptionVocabulary: the word vocabulary of a `FlorenceCaptioner`, built from its training captions.

Captions are lower-cased and split into words (`[a-z0-9]+`, apostrophes kept inside a word) and punctuation marks
(one token each). The vocabulary is the special tokens `<pad>` (id 0), `<unk>`, `<start>`, `<end>` followed by the
words seen at least `min_count` times, most frequent first (ties alphabetical), at most `max_size` in all. Decoding
joins words with single spaces and attaches `, . : ; ! ?` to the word before them — the same rule the `caption`
serving signature runs in the graph (`decode_ids_tf`), so Keras and served captions are the same strings.

Why a word vocabulary and not the preset's CLIP BPE tokenizer: the decoder's output softmax is over the vocabulary,
and CLIP's 49,408 BPE tokens would make it (and its gradient) the largest part of a small CPU captioner, while
captions of one dataset use a few hundred (built-in scenes: ~40) to ~10,000 (COCO, min_count 5) words. The
vocabulary is saved in the Task's config, so a preset carries it.
"""

import collections
import re

import numpy as np

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"
SPECIAL_TOKENS = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
# Words (letters/digits, an inner apostrophe kept) or one punctuation mark.
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[^\sa-z0-9]")
# Punctuation written without a space before it when decoding (a regex the graph's `regex_replace` also runs).
ATTACHED_PUNCTUATION = r" ([,.:;!?])"


def split_caption(text):
    """Lower-cased word and punctuation tokens of a caption.

    >>> split_caption("Three objects: a Red circle, above.")
    ['three', 'objects', ':', 'a', 'red', 'circle', ',', 'above', '.']
    """
    return _TOKEN.findall(str(text).lower())


def build_vocabulary(captions, max_size=10000, min_count=1):
    """The vocabulary list (special tokens first) of `captions`.

    Args:
        captions: iterable of str.
        max_size: int >= 5, the largest vocabulary (special tokens included).
        min_count: int >= 1, a word seen fewer times is `<unk>`.

    Returns:
        list of str.
    """
    if max_size < len(SPECIAL_TOKENS) + 1 or min_count < 1:
        raise ValueError(f"`max_size` must be >= 5 and `min_count` >= 1. Received: max_size={max_size}, "
                         f"min_count={min_count}")
    counts = collections.Counter(token for caption in captions for token in split_caption(caption))
    words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
                   key=lambda w: (-counts[w], w))
    return list(SPECIAL_TOKENS) + words[:max_size - len(SPECIAL_TOKENS)]


class CaptionVocabulary:
    """Encodes captions to fixed-length id rows and decodes ids back to captions.

    Args:
        tokens: list of str, the vocabulary (`SPECIAL_TOKENS` first, as `build_vocabulary` returns).

    Example:
    >>> vocab = CaptionVocabulary(build_vocabulary(["a red circle", "a blue star"]))
    >>> vocab.encode(["a red star"], max_length=6).tolist()
    [[2, 4, 7, 8, 3, 0]]
    >>> vocab.decode([[2, 4, 7, 8, 3, 0]])
    ['a red star']
    """

    def __init__(self, tokens):
        tokens = [str(t) for t in tokens]
        if tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"A caption vocabulary starts with {list(SPECIAL_TOKENS)}. Received: {tokens[:4]}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("The caption vocabulary has duplicate tokens.")
        self.tokens = tokens
        self.index = {token: i for i, token in enumerate(tokens)}

    def __len__(self):
        return len(self.tokens)

    def encode(self, captions, max_length):
        """int32 `(N, max_length)`: `<start>`, the words (`<unk>` if unknown), `<end>`, then `<pad>`.

        A caption longer than `max_length - 2` words is cut (its `<end>` kept last).
        """
        if max_length < 3:
            raise ValueError(f"`max_length` must be >= 3. Received: {max_length}")
        rows = np.full((len(captions), max_length), PAD_ID, np.int32)
        for row, caption in enumerate(captions):
            ids = [self.index.get(token, UNK_ID) for token in split_caption(caption)][:max_length - 2]
            rows[row, :len(ids) + 2] = [START_ID] + ids + [END_ID]
        return rows

    def decode(self, ids):
        """Captions of id rows: the tokens after a leading `<start>` up to the first `<end>` (or `<pad>`)."""
        captions = []
        for row in np.asarray(ids).reshape(len(ids), -1):
            words = []
            for i in row[1:] if len(row) and row[0] == START_ID else row:
                if i in (END_ID, PAD_ID):
                    break
                words.append(self.tokens[int(i)] if 0 <= i < len(self.tokens) else UNK)
            captions.append(re.sub(ATTACHED_PUNCTUATION, r"\1", " ".join(words)))
        return captions

    def decode_ids_tf(self, ids):
        """The graph twin of `decode` (TensorFlow ops only, for serving): int `(B, L)` -> string `(B,)`.

        `ids` start with `<start>` (as generation returns them).
        """
        import tensorflow as tf

        ids = tf.cast(ids[:, 1:], tf.int32)
        stop = tf.logical_or(tf.equal(ids, END_ID), tf.equal(ids, PAD_ID))
        keep = tf.equal(tf.cumsum(tf.cast(stop, tf.int32), axis=1), 0)
        words = tf.gather(tf.constant(self.tokens), tf.clip_by_value(ids, 0, len(self.tokens) - 1))
        ragged = tf.ragged.boolean_mask(words, keep)
        joined = tf.strings.reduce_join(ragged, axis=1, separator=" ")
        return tf.strings.regex_replace(joined, ATTACHED_PUNCTUATION, r"\1")
