"""VQA answer vocabularies and soft targets (METER / ViLT / BUTD convention), on official-normalised answers.

* `build_answer_vocabulary`: the `size` most frequent answers over every human answer of the records, after the
  official evaluator's `normalize_answer` (ties: alphabetical), so the model only ever predicts answers in the
  evaluator's form.
* `soft_scores`: per question, each vocabulary answer that `k` of its human answers give (after normalisation)
  gets the score 0.3 / 0.6 / 0.9 / 1.0 for k = 1 / 2 / 3 / >= 4 — the official accuracy of that answer rounded
  (k/3 averaged over leave-one-out subsets gives 0.3, 0.6, 0.9, 1.0 for 10 answers). Answers outside the vocabulary
  get no score; a question whose answers are all outside it has an all-zero target (kept: it still teaches "none
  of these").
"""

import collections

import numpy as np

from florence_keras.data.vqa_answer_normalization import normalize_answer
from florence_keras.models.florence_vqa import ANSWER_TYPES

SCORE_FOR_COUNT = (0.0, 0.3, 0.6, 0.9, 1.0)


def answer_score(count):
    """The soft score of an answer given by `count` humans: 0, 0.3, 0.6, 0.9, then 1.0 for 4 or more."""
    return SCORE_FOR_COUNT[min(int(count), 4)]


def build_answer_vocabulary(answer_lists, size):
    """The `size` most frequent normalised answers.

    Args:
        answer_lists: iterable of lists of human answers (strings) — one list per question.
        size: int >= 1, the most answers to keep.

    Returns:
        list of str, most frequent first (ties alphabetical); shorter than `size` when fewer answers exist.
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"`size` must be a positive int. Received: size={size!r}")
    counts = collections.Counter()
    for answers in answer_lists:
        counts.update(normalize_answer(answer) for answer in answers)
    counts.pop("", None)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [answer for answer, _ in ranked[:size]]


def soft_scores(answer_lists, vocabulary):
    """float32 `(N, len(vocabulary))` soft targets of `N` questions' human answers (see the module docstring)."""
    index = {answer: i for i, answer in enumerate(vocabulary)}
    answer_lists = list(answer_lists)
    scores = np.zeros((len(answer_lists), len(vocabulary)), np.float32)
    for row, answers in enumerate(answer_lists):
        counts = collections.Counter(normalize_answer(answer) for answer in answers)
        for answer, count in counts.items():
            if answer in index:
                scores[row, index[answer]] = answer_score(count)
    return scores


def vocabulary_answer_types(answer_lists, question_answer_types, vocabulary):
    """Each vocabulary answer's VQA answer type: the `answer_type` of the questions its human answers occur in,
    by majority (ties: the `ANSWER_TYPES` order; an answer never seen, or only with unknown types: `"other"`).

    Args:
        answer_lists: iterable of lists of human answers, one list per question.
        question_answer_types: iterable of the questions' `answer_type` strings (None or others count for nothing).
        vocabulary: list of normalised answers (`build_answer_vocabulary`).

    Returns:
        list of str, one of `ANSWER_TYPES` per vocabulary answer.

    Example:
    >>> vocabulary_answer_types([["yes", "Yes"], ["2", "two"], ["red"]], ["yes/no", "number", "other"],
    ...                         ["yes", "2", "red", "blue"])
    ['yes/no', 'number', 'other', 'other']
    """
    index = {answer: i for i, answer in enumerate(vocabulary)}
    votes = np.zeros((len(vocabulary), len(ANSWER_TYPES)), np.int64)
    for answers, answer_type in zip(answer_lists, question_answer_types):
        if answer_type not in ANSWER_TYPES:
            continue
        for answer in answers:
            row = index.get(normalize_answer(answer))
            if row is not None:
                votes[row, ANSWER_TYPES.index(answer_type)] += 1
    return [ANSWER_TYPES[int(np.argmax(row))] if row.any() else "other" for row in votes]
