"""The main job's built-in training texts: they fit the shorter training context, which embeds them exactly."""

import numpy as np

from florence_keras.data import labels as labels_lib
from florence_keras.data.attribute_captions import ATTRIBUTE_CAPTIONS
from florence_keras.data.scene_generator import SceneGenerator
from florence_keras.models import FlorenceCLIP
from florence_keras.models import preset_registry
from florence_keras.training.pretrain_unicl import BUILTIN_TEXT_SEQUENCE_LENGTH
from florence_keras.training.pretrain_unicl import _load_preprocessor


def _builtin_texts(num_scenes=300):
    texts = []
    for scene in SceneGenerator(image_size=64, seed=0).scenes(num_scenes):
        texts.extend(scene.captions.values())
        row = {"shape": scene.primary.shape, "colour": scene.primary.colour, "count": len(scene.objects),
               "place": "middle"}
        texts.extend(caption(row) for caption in ATTRIBUTE_CAPTIONS.values())
    # The longest prompt-augmented form of each (templates add words).
    longest_template = max(labels_lib.DEFAULT_TEMPLATES, key=len)
    texts.extend(longest_template.format(text) for text in list(texts))
    return texts


def test_every_builtin_training_text_fits_the_training_context():
    preprocessor = preset_registry.build_architecture_preprocessor("florence_mini", 64)
    texts = _builtin_texts()
    # Tokenised at the full context: a text fits when its end-of-text token comes within the shorter one.
    ids = np.asarray(preprocessor.tokenize(texts))
    end_of_text = ids.max(axis=1, keepdims=True)  # the highest id of CLIP's vocabulary
    lengths = np.argmax(ids == end_of_text, axis=1) + 1
    assert len(texts) > 3000 and lengths.max() <= BUILTIN_TEXT_SEQUENCE_LENGTH, (lengths.max(), texts[lengths.argmax()])


def test_a_text_that_fits_embeds_the_same_at_the_shorter_context():
    clip = FlorenceCLIP.from_preset("florence_mini", image_size=32)
    full = _load_preprocessor("florence_mini", 32)
    short = _load_preprocessor("florence_mini", 32, BUILTIN_TEXT_SEQUENCE_LENGTH)
    assert full.sequence_length == 77 and short.sequence_length == BUILTIN_TEXT_SEQUENCE_LENGTH
    texts = ["a red circle", "two objects: a red circle to the left of a blue star", "a photo of one object."]
    ids_full, ids_short = full.tokenize(texts), short.tokenize(texts)
    assert ids_short.shape == (3, BUILTIN_TEXT_SEQUENCE_LENGTH)
    np.testing.assert_array_equal(np.asarray(ids_full)[:, :BUILTIN_TEXT_SEQUENCE_LENGTH], np.asarray(ids_short))
    np.testing.assert_allclose(np.asarray(clip.backbone.embed_texts(ids_full)),
                               np.asarray(clip.backbone.embed_texts(ids_short)), rtol=0, atol=1e-6)
