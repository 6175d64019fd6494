"""Florence architecture presets (random init at the published sizes).

The tests' tiny configs live with the tests (`tests/model_fixtures.py`).

Architecture presets build the model from its config with `load_weights=False`
semantics; trained presets are directories (see `florence_keras.models.preset_registry`).

Sizes: tiny/small/base/large follow Swin's configs (SPEC §2). `florence_huge` is
chosen so that the image encoder has CoSwin-H's published 637M parameters and
the text encoder Florence's 256M (each within 3%, pinned in tests): CoSwin at
width 352, depths 2-2-16-2, head dim 32; the text tower 12 layers at width 1176
with the 49,408-token CLIP vocabulary. Windows are 7 (the paper's 384-pixel stage
uses 12; build with `window_size=12, image_shape=(384, 384, 3)` for it).
"""

import copy

CLIP_VOCABULARY_SIZE = 49408
CONTEXT_LENGTH = 77

_TEXT_BASE = {"hidden_dim": 512, "num_layers": 12, "num_heads": 8}

ARCHITECTURE_PRESETS = {
    # [ours] A CPU-scale model for the built-in data (64-pixel scenes): the main job
    # trains it in minutes on 2 cores. Same architecture, smaller everywhere. Two blocks in
    # each of the first three stages, so that the shifted window (every second block) runs at
    # 16x16 and 8x8 tokens (the 4x4 stage is one window, where Swin never shifts): with one
    # block there no window ever shifts and the encoder learns shape far more slowly
    # (docs/training_science.md, supervised check).
    "florence_mini": {
        "image_encoder": {"embed_dim": 32, "depths": [2, 2, 2, 1],
                          "num_heads": [1, 2, 4, 8], "window_size": 4,
                          "drop_path_rate": 0.0},
        "text_encoder": {"hidden_dim": 48, "num_layers": 3, "num_heads": 4},
        "projection_dim": 64,
    },
    "florence_tiny": {
        "image_encoder": {"embed_dim": 96, "depths": [2, 2, 6, 2],
                          "num_heads": [3, 6, 12, 24], "window_size": 7,
                          "drop_path_rate": 0.2},
        "text_encoder": dict(_TEXT_BASE),
        "projection_dim": 512,
    },
    "florence_small": {
        "image_encoder": {"embed_dim": 96, "depths": [2, 2, 18, 2],
                          "num_heads": [3, 6, 12, 24], "window_size": 7,
                          "drop_path_rate": 0.3},
        "text_encoder": dict(_TEXT_BASE),
        "projection_dim": 512,
    },
    "florence_base": {
        "image_encoder": {"embed_dim": 128, "depths": [2, 2, 18, 2],
                          "num_heads": [4, 8, 16, 32], "window_size": 7,
                          "drop_path_rate": 0.5},
        "text_encoder": dict(_TEXT_BASE),
        "projection_dim": 512,
    },
    "florence_large": {
        "image_encoder": {"embed_dim": 192, "depths": [2, 2, 18, 2],
                          "num_heads": [6, 12, 24, 48], "window_size": 7,
                          "drop_path_rate": 0.5},
        "text_encoder": {"hidden_dim": 768, "num_layers": 12, "num_heads": 12},
        "projection_dim": 768,
    },
    "florence_huge": {
        "image_encoder": {"embed_dim": 352, "depths": [2, 2, 16, 2],
                          "num_heads": [11, 22, 44, 88], "window_size": 7,
                          "drop_path_rate": 0.5},
        "text_encoder": {"hidden_dim": 1176, "num_layers": 12, "num_heads": 12},
        "projection_dim": 1024,
    },
}

def architecture_config(name, image_size=224, **overrides):
    """The constructor kwargs of an architecture preset, as plain dicts.

    Args:
        name: one of `ARCHITECTURE_PRESETS`.
        image_size: int, square input size.
        **overrides: `image_encoder` / `text_encoder` dicts merged into the preset's,
            or top-level keys such as `projection_dim`.
    """
    if name not in ARCHITECTURE_PRESETS:
        raise ValueError(
            f"Unknown architecture preset {name!r}. "
            f"Valid names: {', '.join(sorted(ARCHITECTURE_PRESETS))}"
        )
    config = copy.deepcopy(ARCHITECTURE_PRESETS[name])
    config["image_encoder"]["image_shape"] = (image_size, image_size, 3)
    config["text_encoder"].setdefault("vocabulary_size", CLIP_VOCABULARY_SIZE)
    config["text_encoder"].setdefault("max_sequence_length", CONTEXT_LENGTH)
    for key, value in overrides.items():
        if isinstance(value, dict) and key in config:
            config[key].update(value)
        else:
            config[key] = value
    return config


def build_backbone(config, dtype=None):
    """Builds a `FlorenceBackbone` from `architecture_config`-style kwargs."""
    from florence_keras.models.coswin_backbone import CoSwinBackbone
    from florence_keras.models.florence_backbone import FlorenceBackbone
    from florence_keras.models.florence_text_encoder import FlorenceTextEncoder

    config = copy.deepcopy(config)
    image_encoder = CoSwinBackbone(**config.pop("image_encoder"), dtype=dtype)
    text_encoder = FlorenceTextEncoder(**config.pop("text_encoder"), dtype=dtype)
    return FlorenceBackbone(image_encoder, text_encoder, dtype=dtype, **config)

