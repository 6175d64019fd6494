"""vqa_feature_dataset: each batch row carries its own image's and question's cached features."""

import numpy as np
import pytest

from florence_keras.data.vqa_feature_dataset import vqa_feature_dataset


def test_rows_gather_their_image_and_question():
    image_maps = np.arange(3, dtype="float32").reshape(3, 1, 1, 1) * np.ones((1, 2, 2, 4), "float32")
    text = np.arange(2, dtype="float32").reshape(2, 1, 1) * np.ones((1, 5, 3), "float32") + 10
    masks = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    image_index, question_index = np.array([0, 1, 2, 2, 1, 0]), np.array([0, 1, 0, 1, 1, 0])
    scores = np.eye(6, dtype="float32")
    batch = next(iter(vqa_feature_dataset(image_maps, image_index, text, masks, question_index, scores, 6, seed=1)))
    rows = batch["labels"].numpy()
    assert rows.tolist() != list(range(6))  # shuffled
    np.testing.assert_array_equal(batch["image_map"].numpy()[:, 0, 0, 0], image_index[rows])
    np.testing.assert_array_equal(batch["text_tokens"].numpy()[:, 0, 0], 10 + question_index[rows])
    np.testing.assert_array_equal(batch["text_mask"].numpy(), masks[question_index[rows]])
    np.testing.assert_array_equal(batch["answer_scores"].numpy(), scores[rows])


def test_bad_indices_are_refused():
    args = dict(text_tokens=np.zeros((1, 2, 3)), text_masks=np.ones((1, 2)), answer_scores=np.zeros((2, 4)),
                batch_size=2)
    with pytest.raises(ValueError, match="image_index"):
        vqa_feature_dataset(np.zeros((1, 1, 1, 2)), [0, 1], question_index=[0, 0], **args)
    with pytest.raises(ValueError, match="question_index"):
        vqa_feature_dataset(np.zeros((2, 1, 1, 2)), [0, 1], question_index=[0, 3], **args)
    with pytest.raises(ValueError, match="empty"):
        vqa_feature_dataset(np.zeros((2, 1, 1, 2)), [], np.zeros((1, 2, 3)), np.ones((1, 2)), [], np.zeros((0, 4)), 2)


def test_extra_arrays_follow_their_questions():
    """Per-question extras (the attention targets) are batched with their own rows, in both streams."""
    from florence_keras.data.vqa_dataset import vqa_dataset
    image_index, question_index = np.array([0, 1, 1, 0, 1]), np.array([0, 0, 1, 1, 0])
    extras = {"grounding_positions": np.arange(10, dtype="int32").reshape(5, 2),
              "grounding_targets": np.arange(5, dtype="float32")[:, None, None] * np.ones((1, 2, 3), "float32")}
    scores = np.eye(5, dtype="float32")
    cached = next(iter(vqa_feature_dataset(np.zeros((2, 1, 1, 2)), image_index, np.zeros((2, 3, 4)),
                                           np.ones((2, 3)), question_index, scores, 5, seed=2, extras=extras)))
    raw = next(iter(vqa_dataset(np.zeros((2, 4, 4, 3), "uint8"), image_index, np.zeros((5, 3), "int32"), scores,
                                5, lambda x: x, seed=2, extras=extras)))
    for batch in (cached, raw):
        rows = batch["labels"].numpy()
        for key, value in extras.items():
            np.testing.assert_array_equal(batch[key].numpy(), value[rows])
    with pytest.raises(ValueError, match="rows"):
        vqa_feature_dataset(np.zeros((2, 1, 1, 2)), image_index, np.zeros((2, 3, 4)), np.ones((2, 3)),
                            question_index, scores, 5, extras={"grounding_positions": np.zeros((4, 2))})
    with pytest.raises(ValueError, match="use already"):
        vqa_dataset(np.zeros((2, 4, 4, 3), "uint8"), image_index, np.zeros((5, 3), "int32"), scores, 5,
                    lambda x: x, extras={"labels": np.zeros(5)})
