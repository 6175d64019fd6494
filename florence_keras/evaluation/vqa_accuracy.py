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
import re

# The official evaluator's tables (vqaEval.py), verbatim in content.
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
               "!")
# The official pattern is "(?!<=\d)(\.)(?!\d)": its "(?!<=\d)" is a look-ahead that never fails before a period,
# so the rule is "a period not followed by a digit".
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_MAX_PERIODS_REMOVED = re.UNICODE  # = 32: the official code passes re.UNICODE as re.sub's `count`
DECIMALS = 2


def process_punctuation(text):
    """The official punctuation rule (see the module docstring)."""
    out = text
    strip = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for mark in PUNCTUATION:
        if strip or mark + " " in text or " " + mark in text:  # tested on the original text, as upstream
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_MAX_PERIODS_REMOVED)


def process_digit_article(text):
    """Lower-case; number words -> digits; articles dropped; contractions restored; single spaces."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in ARTICLES]
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(answer):
    """A predicted answer as the official evaluator normalises it before comparing."""
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(answer))


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
