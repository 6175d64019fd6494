"""Caption words that gather training examples into groups of in-batch hard negatives.

A contrastive batch drawn at random holds few pairs that differ in one attribute only: with eight colours, one
negative in eight shares the anchor's colour, so a model that sees colour alone already separates most pairs and
learns the rest slowly (docs/training_science.md). Grouping examples that share a caption word — the red ones, the
circles, the dogs — puts such negatives side by side: inside a group of red objects colour tells nothing, and only
what else the captions say (shape, count, place) separates them. The groups come from the captions alone, so any
captioned data set gets them with no labels and no code change.

`caption_word_ids` lists, for each example, the ids of its caption's grouping words: words (runs of letters,
lower-cased) found in at least `min_count` captions and at most `max_fraction` of them, which leaves out words too
rare to fill a group and words so common ("a", "photo", "of") that a group of them is a random batch.
`keyed_shuffle.grouped_order` turns them into each epoch's order.
"""

import collections
import re

import numpy as np

_WORD = re.compile(r"[^\W\d_]+")


def caption_words(text):
    """The distinct words of a caption (runs of letters, lower-cased), in order of first appearance."""
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))


def caption_word_ids(texts, min_count=2, max_fraction=0.5):
    """Each example's grouping words as a ragged array `(values, row_splits)`, and the vocabulary.

    Args:
        texts: list of str, one caption (or class name) per example.
        min_count: int >= 1, a word must be in at least this many captions.
        max_fraction: float in (0, 1], a word must be in at most this fraction of the captions.

    Returns:
        `(values, row_splits, vocabulary)`: int64 arrays (example i's word ids are
        `values[row_splits[i]:row_splits[i + 1]]`, ids into `vocabulary`, a list of str sorted by word).

    Example:
    >>> values, splits, vocabulary = caption_word_ids(
    ...     ["a red circle", "a red square", "a blue circle", "a blue square"], max_fraction=0.5)
    >>> vocabulary
    ['blue', 'circle', 'red', 'square']
    >>> [[vocabulary[v] for v in values[s:e]] for s, e in zip(splits[:-1], splits[1:])]
    [['red', 'circle'], ['red', 'square'], ['blue', 'circle'], ['blue', 'square']]
    """
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"`min_count` must be an int >= 1. Received: min_count={min_count!r}")
    if not 0.0 < max_fraction <= 1.0:
        raise ValueError(f"`max_fraction` must be in (0, 1]. Received: max_fraction={max_fraction!r}")
    words = [caption_words(text) for text in texts]
    counts = collections.Counter(word for example in words for word in example)
    most = max_fraction * len(texts)
    vocabulary = sorted(word for word, count in counts.items() if min_count <= count <= most)
    ids = {word: i for i, word in enumerate(vocabulary)}
    rows = [[ids[word] for word in example if word in ids] for example in words]
    values = np.array([i for row in rows for i in row], np.int64)
    row_splits = np.concatenate([[0], np.cumsum([len(row) for row in rows])]).astype(np.int64)
    return values, row_splits, vocabulary
