"""The official VQA accuracy (VQA v2's `vqaEval.py`, GT-Vision-Lab/VQA), ported to behave the same.

Per question, with the 10 human answers `g_1 … g_10` and the prediction `p`:

    accuracy = mean over i of min(1, #{j != i : g_j == p} / 3)

(each of the 10 leave-one-out subsets of 9 answers scores `min(1, matches / 3)`), reported as percentages rounded to
2 decimals: `overall`, `perQuestionType` and `perAnswerType` (means over the questions of each type).

Answer normalisation, exactly as the official evaluator does it (including its quirks, which change scores):

* The prediction: newlines and tabs become spaces, the ends are stripped, then `process_punctuation` and
  `process_digit_article`.
* The human answers are normalised with `process_punctuation` only, and only when they are not all identical
  (the official code's `if len(set(gtAnswers)) > 1`); they are never lower-cased or stripped.
* `process_punctuation`: each of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` is deleted when it stands next to a
  space anywhere in the text (`"p "` or `" p"` occurs) or when the text has a comma between two digits
  (`"1,000"`); otherwise it becomes a space. Then every period not followed by a digit is deleted (`"3.5"` keeps
  its period), at most 32 of them (the official code passes `re.UNICODE` = 32 as `re.sub`'s `count`). The
  apostrophe and the colon are kept.
* `process_digit_article`: lower-case, split on whitespace, number words `none`/`zero` … `ten` become digits
  (`none` -> `0`), the articles `a`, `an`, `the` are dropped, then contractions written without their apostrophe
  are restored (`dont` -> `don't`, `whats` -> `what's`), and the words are joined by single spaces.

`normalize_answer` is the prediction's normalisation; use it to build answer vocabularies so that the model's
answers are already in the evaluator's form.
"""

import collections

from florence_keras.data.vqa_answer_normalization import ARTICLES  # noqa: F401  (re-exported)
from florence_keras.data.vqa_answer_normalization import CONTRACTIONS  # noqa: F401
from florence_keras.data.vqa_answer_normalization import NUMBER_WORDS  # noqa: F401
from florence_keras.data.vqa_answer_normalization import PUNCTUATION  # noqa: F401
from florence_keras.data.vqa_answer_normalization import normalize_answer
from florence_keras.data.vqa_answer_normalization import process_digit_article  # noqa: F401
from florence_keras.data.vqa_answer_normalization import process_punctuation

DECIMALS = 2


def question_accuracy(prediction, human_answers):
    """The official accuracy of one prediction against its human answers (usually 10), in [0, 1].

    Args:
        prediction: str, the model's answer (normalised here with `normalize_answer`).
        human_answers: list of str, or of dicts with an `"answer"` (the annotation file's `answers`). Dicts are
            left out of their own subset by equality, as upstream does (two identical dicts leave together).
    """
    if not human_answers:
        raise ValueError("A question needs at least one human answer.")
    entries = [dict(a) if isinstance(a, dict) else {"answer": a, "answer_id": k} for k, a in enumerate(human_answers)]
    for entry in entries:
        if not isinstance(entry.get("answer"), str):
            raise ValueError(f"Each human answer must be a string. Received: {entry!r}")
    predicted = normalize_answer(prediction)
    if len({entry["answer"] for entry in entries}) > 1:
        for entry in entries:
            entry["answer"] = process_punctuation(entry["answer"])
    scores = []
    for held_out in entries:
        matches = sum(1 for other in entries if other != held_out and other["answer"] == predicted)
        scores.append(min(1.0, matches / 3.0))
    return sum(scores) / len(scores)


def vqa_accuracy(predictions, annotations, decimals=DECIMALS):
    """The official VQA evaluation of a results list against VQA v2 annotations.

    Args:
        predictions: the results file's content, `[{"question_id": int, "answer": str}, ...]`, or a dict
            `question_id -> answer`.
        annotations: the annotation file's `annotations` list (`question_id`, `answers`, `question_type`,
            `answer_type`), or the whole annotation file's dict.
        decimals: rounding of the percentages (the official 2).

    Returns:
        dict with `overall`, `perQuestionType`, `perAnswerType` (percentages, rounded as upstream),
        `perQuestion` (question_id -> unrounded accuracy in [0, 1]) and `num_questions`. Every predicted
        question is scored (as upstream, which scores the results' questions); a prediction for a question
        without an annotation is an error, a question without a prediction is not scored.
    """
    if isinstance(annotations, dict):
        annotations = annotations.get("annotations", annotations)
    by_id = {int(a["question_id"]): a for a in annotations}
    if isinstance(predictions, dict):
        predictions = [{"question_id": k, "answer": v} for k, v in predictions.items()]
    overall, per_question_type, per_answer_type, per_question = [], collections.defaultdict(list), \
        collections.defaultdict(list), {}
    for result in predictions:
        question_id = int(result["question_id"])
        if question_id not in by_id:
            raise ValueError(f"The results hold question_id {question_id}, which the annotations do not have.")
        annotation = by_id[question_id]
        accuracy = question_accuracy(str(result["answer"]), annotation["answers"])
        overall.append(accuracy)
        per_question_type[annotation.get("question_type", "unknown")].append(accuracy)
        per_answer_type[annotation.get("answer_type", "unknown")].append(accuracy)
        per_question[question_id] = accuracy

    def percent(values):
        return round(100 * float(sum(values)) / len(values), decimals) if values else 0.0

    return {
        "overall": percent(overall),
        "perQuestionType": {name: percent(values) for name, values in per_question_type.items()},
        "perAnswerType": {name: percent(values) for name, values in per_answer_type.items()},
        "perQuestion": per_question,
        "num_questions": len(overall),
    }
