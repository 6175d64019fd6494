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
