"""cache_vqa_features: the cached encoder outputs are `FlorenceVQA.encode`'s, each distinct question once."""

import keras
import numpy as np
import pytest

from florence_keras.models.florence_vqa import FlorenceVQA
from florence_keras.models.vqa_feature_cache import cache_vqa_features
from tests.model_fixtures import tiny_clip


def test_cache_matches_encode_and_dedupes_questions():
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    vqa = FlorenceVQA(clip.backbone, clip.preprocessor, answer_vocabulary=["yes", "no"], question_length=12,
                      fusion_dim=16, fusion_layers=1, fusion_heads=2)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3)).astype("uint8")
    ids = vqa.tokenize_questions(["is there a circle?", "how many?", "is there a circle?", "how many?"]).numpy()
    with pytest.raises(ValueError, match="frozen"):
        cache_vqa_features(vqa, images, ids)
    vqa.backbone.trainable = False
    with pytest.raises(ValueError, match="Nothing to encode"):
        cache_vqa_features(vqa, images[:0], ids, verbose=0)
    cache = cache_vqa_features(vqa, images, ids, batch_size=2, verbose=0)
    assert len(cache["text_tokens"]) == 2 and cache["question_index"].tolist() in ([0, 1, 0, 1], [1, 0, 1, 0])
    normalize = vqa.preprocessor.image_converter.normalizer()
    expected = vqa.encode(normalize(images.astype("float32")), ids)
    np.testing.assert_allclose(cache["image_maps"], np.asarray(expected["image_map"]), rtol=1e-5, atol=1e-5)
    rows = cache["question_index"]
    np.testing.assert_allclose(cache["text_tokens"][rows], np.asarray(expected["text_tokens"]), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(cache["text_masks"][rows], np.asarray(expected["text_mask"]))
