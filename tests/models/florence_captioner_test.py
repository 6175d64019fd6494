"""FlorenceCaptioner: loss vs a NumPy cross-entropy, greedy vs a hand loop, beam search vs brute force, training."""

import itertools

import keras
import numpy as np
import pytest

from florence_keras.models.caption_vocabulary import END_ID
from florence_keras.models.caption_vocabulary import PAD_ID
from florence_keras.models.caption_vocabulary import START_ID
from florence_keras.models.caption_vocabulary import UNK_ID
from florence_keras.models.florence_captioner import FlorenceCaptioner
from tests.model_fixtures import tiny_clip

VOCAB = ["<pad>", "<unk>", "<start>", "<end>", "red", "blue"]


def _captioner(max_length=4, vocabulary=VOCAB, **kwargs):
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    captioner = FlorenceCaptioner(clip.backbone, clip.preprocessor, vocabulary=vocabulary, max_length=max_length,
                                  hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32, dropout=0.0,
                                  **kwargs)
    rng = np.random.default_rng(1)  # logits far apart: no near-ties between search results
    for weight in captioner.decoder.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    return captioner


def _images(count=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3)).astype(np.uint8)


def _log_softmax(logits):
    logits = logits - logits.max(-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def test_replica_loss_is_masked_token_cross_entropy():
    captioner = _captioner(max_length=6)
    images = np.asarray(captioner.caption_inputs(_images()))
    ids = np.array([[START_ID, 4, 5, 4, END_ID, PAD_ID], [START_ID, 5, END_ID, PAD_ID, PAD_ID, PAD_ID]], np.int32)
    logits = np.asarray(captioner({"images": images, "token_ids": ids}), np.float64)
    log_probs = _log_softmax(logits[:, :-1])
    expected = []
    for row in range(2):
        targets = ids[row, 1:]
        losses = [-log_probs[row, t, target] for t, target in enumerate(targets) if target != PAD_ID]
        expected.append(np.mean(losses))
    loss = float(captioner.replica_loss({"images": images, "token_ids": ids}, training=False))
    np.testing.assert_allclose(loss, np.mean(expected), rtol=1e-5)


def _sequence_log_prob(captioner, image_states, sequence):
    """log P(sequence) with the generation rules: <pad>/<start>/<unk> banned; after <end> only <pad> (prob 1)."""
    logits = np.asarray(captioner.decoder.decode(np.array([sequence], np.int32), image_states), np.float64)[0]
    total, finished = 0.0, False
    for t in range(1, len(sequence)):
        if finished:
            assert sequence[t] == PAD_ID
            continue
        step = logits[t - 1].copy()
        step[[PAD_ID, START_ID, UNK_ID]] = -np.inf
        total += _log_softmax(step)[sequence[t]]
        finished = sequence[t] == END_ID
    return total


def test_greedy_equals_a_hand_argmax_loop():
    captioner = _captioner(max_length=6)
    images = captioner.caption_inputs(_images(3))
    ids = np.asarray(captioner.generate_ids(images, num_beams=1))
    states = captioner.decoder.project_image_tokens(captioner.image_tokens(images))
    for row in range(3):
        prefix = [START_ID]
        while len(prefix) < 6 and prefix[-1] != END_ID:
            logits = np.array(captioner.decoder.decode(np.array([prefix], np.int32), states[row:row + 1]))[0, -1]
            logits[[PAD_ID, START_ID, UNK_ID]] = -np.inf
            prefix.append(int(np.argmax(logits)))
        expected = prefix + [PAD_ID] * (6 - len(prefix))
        np.testing.assert_array_equal(ids[row], expected)
    assert captioner.generate(_images(3), num_beams=1) == captioner.caption_vocabulary.decode(ids)


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_beam_search_finds_the_brute_force_best(alpha):
    captioner = _captioner(max_length=4)
    images = captioner.caption_inputs(_images(2, seed=3))
    states = captioner.decoder.project_image_tokens(captioner.image_tokens(images))
    # Every caption of up to 3 generated tokens; 9 beams keep every prefix of 2, so the search is exhaustive.
    candidates = set()
    for tokens in itertools.product([END_ID, 4, 5], repeat=3):
        tokens = list(tokens)
        if END_ID in tokens:
            tokens = tokens[:tokens.index(END_ID) + 1]
        candidates.add(tuple([START_ID] + tokens + [PAD_ID] * (3 - len(tokens))))
    assert len(candidates) == 1 + 2 + 4 + 8  # ended after 1, 2 or 3 tokens, or not ended
    ids = np.asarray(captioner.generate_ids(images, num_beams=9, length_penalty=alpha))
    for row in range(2):
        def score(sequence):
            length = sequence.index(END_ID) if END_ID in sequence else 3
            return _sequence_log_prob(captioner, states[row:row + 1], list(sequence)) / ((5 + length) / 6) ** alpha

        best = max(candidates, key=score)
        np.testing.assert_array_equal(ids[row], best)


def test_fit_learns_two_captions_and_preset_round_trip(tmp_path):
    vocabulary = ["<pad>", "<unk>", "<start>", "<end>", "a", "red", "blue", "circle", "star", "photo", "of"]
    captioner = _captioner(max_length=8, vocabulary=vocabulary, train_backbone=False)
    images = np.zeros((2, 32, 32, 3), np.uint8)
    images[0, ..., 0] = 255
    images[1, ..., 2] = 255
    texts = ["a red circle", "a photo of a blue star"]
    ids = captioner.caption_vocabulary.encode(texts, 8)
    x = {"images": np.asarray(captioner.caption_inputs(images)), "token_ids": ids}
    captioner.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = captioner.fit(x, batch_size=2, epochs=60, verbose=0).history["loss"]
    assert history[-1] < 0.05 < history[0]
    assert captioner.generate(images) == texts
    assert captioner.generate(images, num_beams=3, length_penalty=0.6) == texts
    captioner.save_to_preset(str(tmp_path / "preset"))
    loaded = FlorenceCaptioner.from_preset(str(tmp_path / "preset"))
    assert loaded.vocabulary == vocabulary and loaded.max_length == 8
    assert loaded.generate(images) == texts


def test_bad_arguments():
    clip = tiny_clip()
    with pytest.raises(ValueError, match="vocabulary"):
        FlorenceCaptioner(clip.backbone, clip.preprocessor)
    with pytest.raises(ValueError, match="multiple"):
        FlorenceCaptioner(clip.backbone, clip.preprocessor, vocabulary=VOCAB, image_size=20)
