"""score_captions: pycocoevalcap's scores on hand-worked cases; the no-Java path says so and skips METEOR."""

import logging

import pytest

from florence_keras.evaluation import caption_metrics
from florence_keras.evaluation.caption_metrics import score_captions
from florence_keras.evaluation.caption_metrics import simple_ptb_tokenize

needs_java = pytest.mark.skipif(not caption_metrics.java_available(), reason="METEOR / PTBTokenizer need Java")


@needs_java
def test_hand_worked_bleu_rouge_and_perfect_meteor():
    references = {1: ["a red circle on the left"], 2: ["two blue stars"]}
    # Image 1: one word wrong. Clipped n-gram precisions over both images (corpus BLEU): 1-grams 8/9, 2-grams 6/7,
    # 3-grams 4/5, 4-grams 2/3; hypothesis and reference lengths equal, so no brevity penalty.
    candidates = {1: "A red circle on the right.", 2: "two blue stars"}
    scores = score_captions(references, candidates)
    expected_bleu4 = (8 / 9 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25
    assert scores["BLEU-4"] == pytest.approx(expected_bleu4, abs=1e-6)
    # ROUGE-L (beta 1.2): image 1 LCS 5 of 6 words both ways -> 5/6; image 2 -> 1; mean.
    assert scores["ROUGE-L"] == pytest.approx((5 / 6 + 1) / 2, abs=1e-6)
    assert scores["java"] and scores["tokenizer"] == "PTBTokenizer" and scores["num_images"] == 2
    perfect = score_captions(references, {1: "a red circle on the left", 2: "two blue stars"})
    assert perfect["METEOR"] == pytest.approx(1.0, abs=1e-3)
    assert perfect["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["per_image"][1]["BLEU-4"] > scores["per_image"][1]["BLEU-4"]
    assert perfect["CIDEr"] > scores["CIDEr"] > 0


def test_without_java_meteor_is_skipped_with_a_clear_message(caplog):
    references = {"a": ["a red circle, on the left."], "b": ["two blue stars"]}
    candidates = {"a": "a red circle on the right", "b": "two blue stars"}
    with caplog.at_level(logging.WARNING):
        scores = score_captions(references, candidates, use_java=False)
    assert scores["METEOR"] is None and not scores["java"] and scores["tokenizer"] == "simple_ptb_tokenize"
    assert "Java was not found" in caplog.text and "METEOR is skipped" in caplog.text
    assert scores["BLEU-4"] == pytest.approx((8 / 9 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25, abs=1e-6)


def test_simple_tokenizer_and_checks(monkeypatch):
    assert simple_ptb_tokenize({1: [{"caption": "Three objects: a Red circle, above (it)."}]}) == {
        1: ["three objects a red circle above it"]}
    monkeypatch.setattr(caption_metrics.shutil, "which", lambda name: None)
    assert not caption_metrics.java_available()
    with pytest.raises(ValueError, match="same image ids"):
        score_captions({1: ["a"]}, {2: "a"})
    with pytest.raises(ValueError, match="no reference"):
        score_captions({1: []}, {1: "a"})
