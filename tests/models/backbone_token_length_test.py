"""FlorenceBackbone takes token ids of any length up to the context, as keras-hub and transformers do."""

import numpy as np
import pytest

from tests.model_fixtures import tiny_test_backbone
from tests.model_fixtures import tiny_clip


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


def test_truncated_ids_give_the_padded_text_embedding(clip):
    backbone = clip.backbone
    ids = np.asarray(clip.preprocessor.tokenize(["a red circle", "two blue squares on the left"]))
    assert ids.shape == (2, 77)
    end = clip.preprocessor.tokenizer.end_token_id
    assert (ids[:, :8] == end).any(axis=1).all()  # both rows keep their end token
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    full = backbone({"images": images, "token_ids": ids})
    short = backbone({"images": images, "token_ids": ids[:, :8]})
    np.testing.assert_allclose(short["text_embeddings"], full["text_embeddings"], atol=1e-6)
    np.testing.assert_allclose(short["image_embeddings"], full["image_embeddings"], atol=1e-6)
    np.testing.assert_allclose(clip.encode_texts(ids[:, :8]), clip.encode_texts(ids), atol=1e-6)
    assert backbone.sequence_length == 77


def test_ids_longer_than_the_context_are_rejected(clip):
    images = np.zeros((1, 32, 32, 3), "float32")
    with pytest.raises(ValueError, match="longer than the text encoder's context: 78 > max_sequence_length=77"):
        clip.backbone({"images": images, "token_ids": np.ones((1, 78), "int32")})
    with pytest.raises(ValueError, match=r"1 <= L <= 77"):
        clip.encode_texts(np.ones((1, 78), "int32"))


def test_config_round_trip_keeps_the_context():
    backbone = tiny_test_backbone()
    restored = type(backbone).from_config(backbone.get_config())
    assert restored.sequence_length == 77
    assert restored.input["token_ids"].shape == (None, None)
