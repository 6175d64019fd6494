"""The analytic FLOP counter against PERF.md's 8.7 GFLOP, torch's FLOP counter and the built model."""

import math

import pytest

from tests.test_extras import require

from benchmarks import flop_counter

SWIN_T = dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7)


def test_swin_t_matches_the_8_7_gflop_figure():
    flops = flop_counter.swin_flops(**SWIN_T)
    # PERF.md: a FLOP counter on transformers' Swin-T gives 8.7 GFLOP per image. That counter
    # (torch FlopCounterMode over SDPA attention) sees every projection and convolution but not the
    # attention products: exactly our "dense" part, to the FLOP.
    assert round(flops["dense"] / 1e9, 1) == 8.7
    assert flops["dense"] == 8_699_314_176
    # Hand count of the attention products: 2 products x 2 FLOP x tokens x 49 x width per block.
    attention = sum(
        depth * 2 * 2 * tokens * 49 * width
        for depth, tokens, width in ((2, 3136, 96), (2, 784, 192), (6, 196, 384), (2, 49, 768))
    )
    assert flops["attention"] == attention
    assert flops["total"] == flops["dense"] + attention
    assert round(flops["total"] / 1e9, 2) == 8.98


def test_swin_t_patch_embedding_by_hand():
    flops = flop_counter.swin_flops(**SWIN_T)
    assert flops["stem"] == 2 * 56 * 56 * 96 * (4 * 4 * 3)
    # Linear merging: 4C -> 2C on each output token.
    assert flops["merging"] == sum(2 * t * 4 * c * 2 * c for t, c in ((784, 96), (196, 192), (49, 384)))


def _torch_swin_flops(config, eager):
    torch = require("torch")
    transformers = require("transformers")
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = transformers.SwinModel(transformers.SwinConfig(
        **config, attn_implementation="eager" if eager else "sdpa")).eval()
    assert model.config._attn_implementation == ("eager" if eager else "sdpa")
    images = torch.zeros(1, 3, config["image_size"], config["image_size"])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(pixel_values=images)
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "config",
    [
        dict(image_size=32, embed_dim=8, depths=[1, 2], num_heads=[1, 2], window_size=2),
        # 30 px: 8x8 -> 4x4 maps, window 3 pads the maps (padded tokens are computed).
        dict(image_size=30, embed_dim=8, depths=[2, 1], num_heads=[2, 2], window_size=3),
        # 14 -> 7 (padded to 8, shifted) -> 4 (no larger than the window: Swin's rule, no shift).
        dict(image_size=56, embed_dim=12, depths=[1, 2, 2], num_heads=[1, 2, 3], window_size=4),
    ],
)
def test_swin_matches_torch_flop_counter(config):
    ours = flop_counter.swin_flops(
        config["embed_dim"], config["depths"], config["num_heads"], config["window_size"],
        image_shape=(config["image_size"], config["image_size"], 3))
    assert ours["total"] == _torch_swin_flops(config, eager=True)
    assert ours["dense"] == _torch_swin_flops(config, eager=False)


def test_text_encoder_matches_torch_flop_counter_and_perf_md():
    torch = require("torch")
    transformers = require("transformers")
    from torch.utils.flop_counter import FlopCounterMode

    config = transformers.CLIPTextConfig(vocab_size=50, hidden_size=16, intermediate_size=40,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         max_position_embeddings=11, eos_token_id=49,
                                         attn_implementation="eager")
    model = transformers.CLIPTextModel(config).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=torch.ones(1, 11, dtype=torch.long))
    ours = flop_counter.text_encoder_flops(16, 2, intermediate_dim=40, max_sequence_length=11)
    assert ours["total"] == counter.get_total_flops()
    # PERF.md: CLIP's text tower costs 5.8 GFLOP per 77-token text (projections only).
    assert round(flop_counter.text_encoder_flops(512, 12)["dense"] / 1e9, 1) == 5.8


def test_conv_embeddings_match_the_built_model():
    from florence_keras.models.coswin_backbone import CoSwinBackbone

    backbone = CoSwinBackbone(embed_dim=8, depths=[1, 1, 1], num_heads=[1, 2, 2], window_size=2,
                              image_shape=(37, 29, 3), patch_embedding="conv")
    expected_stem = expected_merging = 0
    outputs = [backbone.pyramid_outputs[f"P{i + 2}"] for i in range(3)]
    for index, layer in enumerate([backbone.stem] + backbone.downsamplers):
        kernel = layer.conv.kernel.shape  # (kh, kw, in, out)
        out = outputs[index].shape  # (None, h, w, out)
        flops = 2 * out[1] * out[2] * math.prod(kernel)
        if index == 0:
            expected_stem = flops
        else:
            expected_merging += flops
    ours = flop_counter.swin_flops(8, [1, 1, 1], [1, 2, 2], 2, image_shape=(37, 29, 3),
                                   patch_embedding="conv")
    assert ours["stem"] == expected_stem
    assert ours["merging"] == expected_merging
    linear = flop_counter.swin_flops(8, [1, 1, 1], [1, 2, 2], 2, image_shape=(37, 29, 3))
    assert ours["projections"] == linear["projections"]
    assert ours["attention"] == linear["attention"]


def test_florence_flops_adds_the_towers():
    config = {
        "image_encoder": dict(SWIN_T, image_shape=(224, 224, 3)),
        "text_encoder": {"hidden_dim": 512, "num_layers": 12, "num_heads": 8},
        "projection_dim": 512,
    }
    flops = flop_counter.florence_flops(config)
    image = flop_counter.swin_flops(**SWIN_T, patch_embedding="conv")["total"]
    text = flop_counter.text_encoder_flops(512, 12)["total"]
    assert flops["forward"] == image + text + 2 * (768 + 512) * 512
    assert flops["train_step"] == 3 * flops["forward"]
    assert flop_counter.unicl_loss_flops(4, 8) == 3 * 2 * 2 * 16 * 8


def test_bad_patch_embedding_is_quoted():
    with pytest.raises(ValueError, match="overlap"):
        flop_counter.swin_flops(8, [1], [1], 2, patch_embedding="overlap")
