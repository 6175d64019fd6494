"""Architecture presets have the published sizes: counts of the built models against independent numbers.

Nothing here is a snapshot of our own counts. Each count is taken from the built Keras model and compared with
an independent source: transformers' Swin and CLIP text models of the same configuration (built on PyTorch's
`meta` device: shapes only, no memory), the parameter counts the Swin, CLIP and Florence papers publish, and the
real files of the preset shipped in the package.
"""

import os

import keras
import pytest

from florence_keras.models import FlorenceCLIP
from florence_keras.models import presets
from florence_keras.models import preset_registry
from florence_keras.models.coswin_backbone import CoSwinBackbone
from florence_keras.models.florence_text_encoder import FlorenceTextEncoder
from tests.test_extras import require

torch = require("torch")
transformers = require("transformers")

# Swin paper (Liu et al. 2021), Table 1: ImageNet-1K classifiers at 224 px, rounded to millions.
SWIN_PUBLISHED = {"florence_tiny": 28e6, "florence_small": 50e6, "florence_base": 88e6, "florence_large": 197e6}
# CLIP paper (Radford et al. 2021), section 2.4: "a 63M-parameter 12-layer 512-wide model" (the text encoder).
CLIP_TEXT_PUBLISHED = 63e6
# Florence paper (Yuan et al. 2021), section 2.2: CoSwin-H image encoder 637M, text encoder 256M, 893M in all.
FLORENCE_PUBLISHED = {"image": 637e6, "text": 256e6, "total": 893e6}
# The tolerance `presets.py` states for florence_huge (its widths are chosen to land near the paper's sizes).
FLORENCE_TOLERANCE = 0.03
ROUNDING = 0.5e6  # the papers round to whole millions


def _count_meta(model_cls, config):
    """Parameters of a transformers model, built on the meta device (no weights allocated)."""
    with torch.device("meta"):
        model = model_cls(config)
    return sum(parameter.numel() for parameter in model.parameters())


def _image_encoder_kwargs(name):
    kwargs = dict(presets.architecture_config(name, image_size=224)["image_encoder"])
    kwargs["drop_path_rate"] = 0.0
    return kwargs


def _transformers_swin(kwargs, **extra):
    return transformers.SwinConfig(
        image_size=kwargs["image_shape"][0], patch_size=4, embed_dim=kwargs["embed_dim"], depths=kwargs["depths"],
        num_heads=kwargs["num_heads"], window_size=kwargs["window_size"], **extra,
    )


def _conv_embedding_extra(embed_dim, num_stages):
    """Parameters CvT's convolutional token embeddings add over Swin's linear ones (CoSwin vs Swin).

    Stem: a 7x7 instead of a 4x4 kernel on 3 channels (same bias and LayerNorm). Between stages, from width c to
    2c: a 3x3 convolution with bias and a LayerNorm over 2c (18c² + 2c + 4c) instead of Swin's patch merging, a
    LayerNorm over 4c and a bias-free 4c -> 2c Dense (8c + 8c²): 10c² - 2c more.
    """
    extra = (7 * 7 - 4 * 4) * 3 * embed_dim
    for stage in range(num_stages - 1):
        width = embed_dim * 2**stage
        extra += 10 * width**2 - 2 * width
    return extra


@pytest.fixture(autouse=True)
def _free_models():
    yield
    keras.backend.clear_session()


def test_linear_embedding_coswin_is_swin():
    # With Swin's linear patch embedding / patch merging, the image encoder is Swin: the same count as
    # transformers' SwinModel of that configuration.
    kwargs = _image_encoder_kwargs("florence_tiny")
    swin = CoSwinBackbone(**dict(kwargs, patch_embedding="linear"))
    assert swin.count_params() == _count_meta(transformers.SwinModel, _transformers_swin(kwargs))


@pytest.mark.parametrize("name", sorted(SWIN_PUBLISHED))
def test_coswin_image_encoders_against_swin(name):
    kwargs = _image_encoder_kwargs(name)
    built = CoSwinBackbone(**kwargs).count_params()
    # Without CoSwin's convolutional embeddings the encoder has exactly transformers' Swin count ...
    swin_form = built - _conv_embedding_extra(kwargs["embed_dim"], len(kwargs["depths"]))
    assert swin_form == _count_meta(transformers.SwinModel, _transformers_swin(kwargs))
    # ... and with Swin's ImageNet-1K classifier head, the size the Swin paper publishes.
    final_width = kwargs["embed_dim"] * 2 ** (len(kwargs["depths"]) - 1)
    head = final_width * 1000 + 1000
    assert head == (_count_meta(transformers.SwinForImageClassification, _transformers_swin(kwargs, num_labels=1000))
                    - _count_meta(transformers.SwinModel, _transformers_swin(kwargs)))
    assert abs(swin_form + head - SWIN_PUBLISHED[name]) <= ROUNDING


@pytest.mark.parametrize("name", ["florence_tiny", "florence_large"])  # small and base share tiny's text tower
def test_text_encoders_are_clip_text_transformers(name):
    config = presets.architecture_config(name)["text_encoder"]
    built = FlorenceTextEncoder(**config).count_params()
    reference = transformers.CLIPTextConfig(
        vocab_size=config["vocabulary_size"], hidden_size=config["hidden_dim"],
        intermediate_size=4 * config["hidden_dim"], num_hidden_layers=config["num_layers"],
        num_attention_heads=config["num_heads"], max_position_embeddings=config["max_sequence_length"],
    )
    assert built == _count_meta(transformers.CLIPTextModel, reference)
    if config["hidden_dim"] == 512:
        assert abs(built - CLIP_TEXT_PUBLISHED) <= ROUNDING
    for other in ("florence_small", "florence_base"):
        if name == "florence_tiny":
            assert presets.architecture_config(other)["text_encoder"] == config


def test_huge_matches_the_florence_paper():
    backbone = presets.build_backbone(presets.architecture_config("florence_huge", image_size=224))
    counts = {"image": backbone.image_encoder.count_params(), "text": backbone.text_encoder.count_params(),
              "total": backbone.count_params()}
    config = presets.architecture_config("florence_huge")
    del backbone
    for part, published in FLORENCE_PUBLISHED.items():
        assert abs(counts[part] / published - 1) < FLORENCE_TOLERANCE, (part, counts[part], published)
    # The total is the two towers plus the two bias-free projections and the logit scale, nothing else.
    image = config["image_encoder"]
    image_width = image["embed_dim"] * 2 ** (len(image["depths"]) - 1)
    text_width = config["text_encoder"]["hidden_dim"]
    projections = (image_width + text_width) * config["projection_dim"]
    assert counts["total"] == counts["image"] + counts["text"] + projections + 1


def test_shipped_mini_preset_is_florence_mini():
    built = presets.build_backbone(presets.architecture_config("florence_mini", image_size=64)).count_params()
    assert FlorenceCLIP.from_preset("florence_mini_builtin").backbone.count_params() == built


def test_shipped_mini_preset_files():
    # The trained built-in preset ships in git, stored as float32 weights, and the whole directory stays under
    # 20 MB. (That it is florence_mini itself: test_shipped_mini_preset_is_florence_mini.)
    path = preset_registry.resolve("florence_mini_builtin").path
    shipped = FlorenceCLIP.from_preset("florence_mini_builtin")
    built = shipped.backbone.count_params()
    weights = os.path.getsize(os.path.join(path, "model.weights.h5"))
    assert 4 * built <= weights <= 4 * built * 1.05  # float32 values plus the HDF5 index
    total = sum(os.path.getsize(os.path.join(folder, f)) for folder, _, files in os.walk(path) for f in files)
    assert total < 20e6


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match="florence_tiny.*") as info:
        FlorenceCLIP.from_preset("florence_gigantic")
    for name in presets.ARCHITECTURE_PRESETS:
        assert name in str(info.value)


def test_file_instead_of_directory(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="is a file"):
        FlorenceCLIP.from_preset(str(path))
