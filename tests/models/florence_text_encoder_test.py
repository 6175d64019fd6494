import numpy as np
import pytest

from florence_keras.models.florence_text_encoder import EndOfTextPooler
from florence_keras.models.florence_text_encoder import FlorenceTextEncoder


def _tiny():
    return FlorenceTextEncoder(hidden_dim=8, num_layers=2, num_heads=2, vocabulary_size=20,
                               max_sequence_length=6, eos_token_id=19)


def test_causal_pooling_ignores_tokens_after_end():
    encoder = _tiny()
    a = np.array([[1, 5, 19, 19, 19, 19]], "int32")
    b = np.array([[1, 5, 19, 7, 3, 2]], "int32")
    np.testing.assert_allclose(encoder(a)["pooled_output"], encoder(b)["pooled_output"], atol=1e-6)
    c = np.array([[1, 6, 19, 19, 19, 19]], "int32")
    assert not np.allclose(encoder(a)["pooled_output"], encoder(c)["pooled_output"])


def test_pooler_first_end_token_and_fallback():
    hidden = np.arange(2 * 4 * 1, dtype="float32").reshape(2, 4, 1)
    ids = np.array([[3, 9, 9, 0], [3, 4, 2, 1]], "int32")  # row 1 has no end token (9)
    out = EndOfTextPooler(9)(hidden, ids).numpy()
    np.testing.assert_array_equal(out[:, 0], [1, 5])  # first end; else the largest id (4 at 1)


def test_config_round_trip():
    encoder = _tiny()
    assert FlorenceTextEncoder.from_config(encoder.get_config()).get_config() == encoder.get_config()


@pytest.mark.parametrize(
    "kwargs,match",
    [({"activation": "relu"}, "activation"), ({"num_heads": 3}, "divisible"),
     ({"eos_token_id": 20}, "eos_token_id")],
)
def test_bad_config(kwargs, match):
    args = dict(hidden_dim=8, num_layers=1, num_heads=2, vocabulary_size=20, eos_token_id=19)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FlorenceTextEncoder(**args)


def test_any_length_up_to_the_context():
    encoder = _tiny()
    padded = np.array([[1, 5, 7, 19, 19, 19], [2, 3, 4, 5, 19, 19]], "int32")
    full = encoder(padded)
    for length in (5, 6):  # every length that still holds each row's end token
        cut = encoder(padded[:, :length])
        assert tuple(cut["sequence_output"].shape) == (2, length, 8)
        # Causal attention: position i sees tokens <= i only, so the kept positions do not change,
        # and the pooled output (taken at the first end token) is the padded sequence's.
        # float32 rounding only: the matmul kernels for 5 and 6 rows may sum in another order (1.7e-6 on values
        # ~1.9 seen on an Intel AMX machine under `pytest -n 2`), far below what a position seeing later tokens
        # would change.
        np.testing.assert_allclose(cut["pooled_output"], full["pooled_output"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(cut["sequence_output"], full["sequence_output"][:, :length], rtol=1e-5,
                                   atol=1e-5)


def test_short_sequence_uses_the_first_position_embeddings():
    # An independent computation of the embedding output for a 2-token input: token + position rows 0 and 1.
    encoder = _tiny()
    ids = np.array([[3, 19]], "int32")
    embedding = encoder.embedding
    expected = (np.asarray(embedding.token_embedding.embeddings)[ids[0]]
                + np.asarray(embedding.position_embedding.position_embeddings)[:2])
    np.testing.assert_allclose(embedding(ids)[0], expected, atol=1e-6)
    assert tuple(encoder(ids)["pooled_output"].shape) == (1, 8)


def test_longer_than_context_is_a_clear_error():
    encoder = _tiny()
    with pytest.raises(ValueError, match=r"longer than the text encoder's context: 7 > max_sequence_length=6"):
        encoder(np.ones((1, 7), "int32"))


def test_serialized_model_keeps_variable_length(tmp_path):
    import keras

    encoder = _tiny()
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    loaded = keras.saving.load_model(path)
    ids = np.array([[1, 5, 19]], "int32")
    np.testing.assert_allclose(loaded(ids)["pooled_output"], encoder(ids)["pooled_output"], atol=1e-6)
