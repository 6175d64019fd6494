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
