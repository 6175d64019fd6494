"""Preprocessing for FlorenceCLIP: texts -> 77 token ids, images -> model inputs."""

import keras
import tensorflow as tf
from keras_hub.models import Preprocessor

from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_image_converter import FlorenceImageConverter
from florence_keras.models.florence_tokenizer import FlorenceTokenizer
from florence_keras.models.keras_hub_internals import preprocessing_function
from florence_keras.models.token_packing import pack_token_ids


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceCLIPPreprocessor(Preprocessor):
    """Tokenises and packs texts, converts images — eagerly or in `tf.data`.

    Texts become `sequence_length` ids: `<|startoftext|>`, the BPE tokens
    (truncated so that the end token always fits), `<|endoftext|>`, then
    padding with the end token (as transformers' CLIP does; the text encoder
    pools at the first end token).

    Args:
        tokenizer: a `FlorenceTokenizer`.
        image_converter: a `FlorenceImageConverter`.
        sequence_length: int. Defaults to `77`.

    Call arguments:
        x: a dict with `"images"` and/or `"texts"`.

    Returns:
        a dict with `"images"` (normalised float) and/or `"token_ids"` (int32).

    Example:
    >>> pre = FlorenceCLIPPreprocessor(FlorenceTokenizer(),
    ...                                FlorenceImageConverter((32, 32)))
    >>> [int(i) for i in pre.tokenize(["a red circle"])[0, :5]]
    [49406, 320, 736, 7117, 49407]
    """

    backbone_cls = FlorenceBackbone
    tokenizer_cls = FlorenceTokenizer
    image_converter_cls = FlorenceImageConverter

    def __init__(self, tokenizer, image_converter=None, sequence_length=77, **kwargs):
        super().__init__(**kwargs)
        if sequence_length < 2:
            raise ValueError(
                f"`sequence_length` must be at least 2. Received: sequence_length={sequence_length}"
            )
        self.tokenizer = tokenizer
        self.image_converter = image_converter
        self.sequence_length = sequence_length

    def build(self, input_shape=None):
        self.built = True  # nothing to create: the tokenizer and the converter are built already

    def packer(self, tokens):
        """Packs token ids `(B, None)` (ragged or dense) into int32 `(B, sequence_length)`: `<|startoftext|>`, the
        first `sequence_length - 2` tokens, `<|endoftext|>`, then `<|endoftext|>` padding
        (`token_packing.pack_token_ids`, shared with the fusion Tasks' shorter texts)."""
        return pack_token_ids(tokens, self.tokenizer.start_token_id, self.tokenizer.end_token_id,
                              self.sequence_length)

    @preprocessing_function
    def tokenize(self, texts):
        """Strings `(B,)` (or one string) -> int32 token ids `(B, sequence_length)`."""
        texts = tf.convert_to_tensor(texts)
        if texts.dtype != tf.string:
            raise ValueError(f"`texts` must be strings. Received dtype: {texts.dtype}")
        unbatched = texts.shape.rank == 0
        if unbatched:
            texts = texts[None]
        ids = self.packer(self.tokenizer(texts))
        ids = tf.cast(ids, "int32")
        return ids[0] if unbatched else ids

    def call(self, x, y=None, sample_weight=None):
        if not isinstance(x, dict) or not ({"images", "texts"} & set(x)):
            raise ValueError(
                "FlorenceCLIPPreprocessor takes a dict with 'images' and/or 'texts'. "
                f"Received: {type(x).__name__}"
            )
        out = {}
        if "images" in x:
            if self.image_converter is None:
                raise ValueError("This preprocessor has no image_converter.")
            out["images"] = self.image_converter(x["images"])
        if "texts" in x:
            out["token_ids"] = self.tokenize(x["texts"])
        return keras.utils.pack_x_y_sample_weight(out, y, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update({"sequence_length": self.sequence_length})
        return config
