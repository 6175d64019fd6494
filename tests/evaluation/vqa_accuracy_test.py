"""The official VQA accuracy on hand-worked cases: every expected number below is worked out by hand from the
official evaluator's rules (see florence_keras/evaluation/vqa_accuracy.py), not computed by the code under test."""

import pytest

from florence_keras.evaluation.vqa_accuracy import normalize_answer
from florence_keras.evaluation.vqa_accuracy import process_digit_article
from florence_keras.evaluation.vqa_accuracy import process_punctuation
from florence_keras.evaluation.vqa_accuracy import question_accuracy
from florence_keras.evaluation.vqa_accuracy import vqa_accuracy


@pytest.mark.parametrize("text, expected", [
    ("yes!", "yes "),                    # no space beside '!': it becomes a space
    ("hot-dog", "hot dog"),
    ("hot - dog", "hot  dog"),           # '-' beside a space: deleted
    ("well-known - yes", "wellknown  yes"),  # one '-' beside a space deletes every '-'
    ("red, blue", "red blue"),           # ', ' occurs: the comma is deleted
    ("red,blue", "red blue"),            # no space beside it, no digits: a space
    ("1,000", "1000"),                   # comma between digits: deleted
    ("10,000 (approx)", "10000 approx"),  # comma between digits: every mark is deleted
    ("(approx)", " approx "),            # no space beside either bracket: both become spaces
    ("big (approx)", "big approx "),     # ' (' occurs: '(' deleted; ')' has no space beside it: a space
    ("3.5", "3.5"),                      # a period followed by a digit stays
    ("3.5.", "3.5"),                     # the final period goes
    ("e.g.", "eg"),
    ("x" + "." * 40, "x" + "." * 8),     # at most 32 periods are removed (re.UNICODE passed as count)
    ("it's 5:30", "it's 5:30"),          # apostrophe and colon are kept
])
def test_process_punctuation(text, expected):
    assert process_punctuation(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Two", "2"),
    ("none", "0"),
    ("Zero dogs", "0 dogs"),
    ("ten", "10"),
    ("eleven", "eleven"),                # only zero..ten (and none)
    ("The Dog", "dog"),
    ("an apple  a day", "apple day"),
    ("dont know", "don't know"),
    ("whats that", "what's that"),
    ("Im here", "im here"),              # the table's capitalised keys never match after lower-casing
    ("a", ""),
])
def test_process_digit_article(text, expected):
    assert process_digit_article(text) == expected


@pytest.mark.parametrize("answer, expected", [
    ("\tYes.\n", "yes"),
    ("Two!", "2"),
    ("the hot-dog", "hot dog"),
    ("1,000", "1000"),
    ("3.5", "3.5"),
])
def test_normalize_answer(answer, expected):
    assert normalize_answer(answer) == expected


def test_leave_one_out_counts():
    # k of the 10 answers match: the k subsets without one of them see k-1 matches, the 10-k others see k.
    others = ["blue"] * 10
    # k=1: 1 subset with 0 -> 0, 9 subsets with 1 -> 1/3: 9/3/10 = 0.3
    assert question_accuracy("red", ["red"] + others[:9]) == pytest.approx(0.3)
    # k=2: 2 x 1/3 + 8 x 2/3 = 18/3 = 6 -> 0.6
    assert question_accuracy("red", ["red"] * 2 + others[:8]) == pytest.approx(0.6)
    # k=3: 3 x 2/3 + 7 x 1 = 9 -> 0.9
    assert question_accuracy("red", ["red"] * 3 + others[:7]) == pytest.approx(0.9)
    # k=4: 4 x 1 + 6 x 1 -> 1.0
    assert question_accuracy("red", ["red"] * 4 + others[:6]) == pytest.approx(1.0)
    assert question_accuracy("red", others) == 0.0


def test_prediction_normalised_against_answers():
    assert question_accuracy("Two", ["2"] * 4 + ["3"] * 6) == pytest.approx(1.0)
    assert question_accuracy("none", ["0"] * 3 + ["1"] * 7) == pytest.approx(0.9)
    assert question_accuracy("the dog", ["dog"] * 2 + ["cat"] * 8) == pytest.approx(0.6)
    assert question_accuracy("dont know", ["don't know"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    assert question_accuracy("YES.", ["yes"] * 10) == pytest.approx(1.0)


def test_human_answers_punctuation_only_when_they_differ():
    # Different answers: the human answers get the punctuation rule, so "hot-dog" -> "hot dog" matches 3 of them.
    assert question_accuracy("hot dog", ["hot-dog"] * 3 + ["pizza"] * 7) == pytest.approx(0.9)
    # Identical answers are left as they are: the normalised prediction "hot dog" never equals "hot-dog".
    assert question_accuracy("hot-dog", ["hot-dog"] * 10) == 0.0
    # ... nor are they lower-cased (the digit/article step is never applied to them).
    assert question_accuracy("yes", ["Yes"] * 10) == 0.0
    # Differing answers are not lower-cased either: only the 2 "yes" count -> 0.6.
    assert question_accuracy("Yes", ["Yes"] * 5 + ["yes"] * 2 + ["no"] * 3) == pytest.approx(0.6)


def test_dict_answers_as_in_annotation_files():
    answers = [{"answer": "red", "answer_confidence": "yes", "answer_id": k + 1} for k in range(2)]
    answers += [{"answer": "blue", "answer_confidence": "yes", "answer_id": k + 3} for k in range(8)]
    assert question_accuracy("red", answers) == pytest.approx(0.6)


def test_aggregation_per_type_as_percentages():
    annotations = {"annotations": [
        {"question_id": 1, "question_type": "is there a", "answer_type": "yes/no", "answers": ["yes"] * 10},
        {"question_id": 2, "question_type": "is the", "answer_type": "yes/no", "answers": ["no"] * 10},
        {"question_id": 3, "question_type": "how many", "answer_type": "number",
         "answers": ["2"] * 2 + ["3"] * 8},
        {"question_id": 4, "question_type": "how many", "answer_type": "number", "answers": ["4"] * 10},
    ]}
    results = [{"question_id": 1, "answer": "yes"}, {"question_id": 2, "answer": "yes"},
               {"question_id": 3, "answer": "two"}]  # question 4 has no prediction: not scored
    scores = vqa_accuracy(results, annotations)
    # (1 + 0 + 0.6) / 3 = 0.53333 -> 53.33
    assert scores["overall"] == 53.33
    assert scores["perAnswerType"] == {"yes/no": 50.0, "number": 60.0}
    assert scores["perQuestionType"] == {"is there a": 100.0, "is the": 0.0, "how many": 60.0}
    assert scores["num_questions"] == 3
    assert scores["perQuestion"][3] == pytest.approx(0.6)
    # A dict of predictions is the same thing.
    assert vqa_accuracy({1: "yes", 2: "yes", 3: "two"}, annotations["annotations"])["overall"] == 53.33


def test_unknown_question_is_an_error():
    with pytest.raises(ValueError, match="question_id 9"):
        vqa_accuracy([{"question_id": 9, "answer": "yes"}], [{"question_id": 1, "answers": ["yes"]}])
