"""Architecture presets build at the published sizes; counts are pinned."""

import keras
import pytest

from florence_keras.models import FlorenceCLIP
from florence_keras.models import presets

# (image encoder, text encoder, whole dual encoder) parameters, counted by building.
PINNED = {
    "florence_mini": (1_643_651, 2_460_192, 4_123_300),  # [ours] CPU-scale, 64 px
    "florence_tiny": (29_462_874, 63_165_952, 93_284_187),
    "florence_small": (50_780_778, 63_165_952, 114_602_091),
    "florence_base": (90_194_744, 63_165_952, 154_147_129),
    "florence_large": (202_753_236, 123_060_480, 327_583_189),
    "florence_huge": (633_280_450, 257_528_712, 894_896_971),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_parameter_counts_pinned(name):
    backbone = presets.build_backbone(presets.architecture_config(name, image_size=64 if name == "florence_mini" else 224))
    counts = (backbone.image_encoder.count_params(), backbone.text_encoder.count_params(),
              backbone.count_params())
    del backbone
    keras.backend.clear_session()
    assert counts == PINNED[name]


def test_mini_weights_fit_the_20mb_budget():
    # The trained built-in preset ships in git: float32 weights must stay under 20 MB.
    assert PINNED["florence_mini"][2] * 4 < 20e6


def test_huge_matches_the_paper_within_3_percent():
    image, text, total = PINNED["florence_huge"]
    assert abs(image / 637e6 - 1) < 0.03
    assert abs(text / 256e6 - 1) < 0.03
    assert abs(total / 893e6 - 1) < 0.03


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match="florence_tiny.*") as info:
        FlorenceCLIP.from_preset("florence_gigantic")
    for name in PINNED:
        assert name in str(info.value)


def test_file_instead_of_directory(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="is a file"):
        FlorenceCLIP.from_preset(str(path))
