"""Converted transformers checkpoints give the reference outputs (float32, 1e-4)."""

import json
import os

import numpy as np
import pytest

from tests.test_extras import require

torch = require("torch")
transformers = require("transformers")

from florence_keras.converters.transformers_converter import convert_checkpoint  # noqa: E402

ATOL = 1e-4


def _perturb(model, seed):
    # Random init leaves biases/LayerNorms at 0/1; perturb every tensor so each matters.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def _swin(size, window, depths, heads, embed_dim=16, seed=0):
    torch.manual_seed(seed)
    config = transformers.SwinConfig(
        image_size=size, embed_dim=embed_dim, depths=depths, num_heads=heads,
        window_size=window, drop_path_rate=0.0,
    )
    return _perturb(transformers.SwinModel(config), seed)


def _clip_text(seed=0, layers=2):
    torch.manual_seed(seed)
    config = transformers.CLIPTextConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=98,
        eos_token_id=99, pad_token_id=99,
    )
    return _perturb(transformers.CLIPTextModel(config), seed)


def _token_ids(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 98, (batch, 77))
    ids[:, 0] = 98
    for row, end in enumerate(rng.integers(2, 77, batch)):
        ids[row, end:] = 99
    return ids


# (image size, window, depths, heads): sizes not divisible by the window, windows 2-4,
# depth > 1 so shifted blocks run. (transformers fails when a stage is smaller than
# the window; that case is covered in tests/models/coswin_backbone_test.py.)
SWIN_CASES = [
    (60, 3, [2, 2, 2], [2, 2, 4]),
    (57, 2, [2, 3], [1, 2]),
    (64, 4, [2, 2], [2, 4]),
    (50, 3, [1, 2, 2], [2, 2, 2]),
]


@pytest.mark.parametrize("size,window,depths,heads", SWIN_CASES)
def test_swin_model_parity(tmp_path, size, window, depths, heads):
    reference = _swin(size, window, depths, heads)
    reference.save_pretrained(tmp_path)
    model = convert_checkpoint(str(tmp_path))
    x = np.random.default_rng(1).random((2, size, size, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    out = model(x)
    pooled_err = np.abs(out["pooled_output"].numpy() - expected.pooler_output.numpy()).max()
    tokens = out["feature_map"].numpy().reshape(2, -1, model.output_dim)
    seq_err = np.abs(tokens - expected.last_hidden_state.numpy()).max()
    print(f"swin size={size} window={window}: pooled {pooled_err:.2e}, tokens {seq_err:.2e}")
    assert pooled_err < ATOL and seq_err < ATOL


def test_clip_text_parity(tmp_path):
    reference = _clip_text()
    reference.save_pretrained(tmp_path)
    model = convert_checkpoint(str(tmp_path))
    ids = _token_ids()
    with torch.no_grad():
        expected = reference(torch.from_numpy(ids))
    out = model(ids.astype("int32"))
    err = np.abs(out["pooled_output"].numpy() - expected.pooler_output.numpy()).max()
    seq = np.abs(out["sequence_output"].numpy() - expected.last_hidden_state.numpy()).max()
    print(f"clip text: pooled {err:.2e}, sequence {seq:.2e}")
    assert err < ATOL and seq < ATOL


def test_dual_encoder_parity(tmp_path):
    vision = _swin(48, 3, [2, 2], [2, 2], seed=3)
    text = _clip_text(seed=4)
    reference = transformers.VisionTextDualEncoderModel(vision_model=vision, text_model=text)
    _perturb(reference, 5)
    reference.save_pretrained(tmp_path)
    model = convert_checkpoint(str(tmp_path))
    x = np.random.default_rng(2).random((2, 48, 48, 3)).astype("float32")
    ids = _token_ids(2)
    with torch.no_grad():
        img = reference.get_image_features(pixel_values=torch.from_numpy(x.transpose(0, 3, 1, 2)))
        txt = reference.get_text_features(input_ids=torch.from_numpy(ids))
        img = getattr(img, "pooler_output", img)
        txt = getattr(txt, "pooler_output", txt)
        img = torch.nn.functional.normalize(img, dim=-1).numpy()
        txt = torch.nn.functional.normalize(txt, dim=-1).numpy()
        scale = reference.logit_scale.exp().item()
    out = model({"images": x, "token_ids": ids.astype("int32")})
    img_err = np.abs(out["image_embeddings"].numpy() - img).max()
    txt_err = np.abs(out["text_embeddings"].numpy() - txt).max()
    print(f"dual encoder: image {img_err:.2e}, text {txt_err:.2e}")
    assert img_err < ATOL and txt_err < ATOL
    assert abs(float(out["logit_scale"]) - min(scale, 100.0)) < 1e-3


def test_shape_mismatch_names_the_tensor(tmp_path):
    reference = _swin(32, 2, [1], [1])
    reference.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["embed_dim"] = 8
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="embeddings.patch_embeddings.projection.weight"):
        convert_checkpoint(str(tmp_path))


def test_unsupported_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        convert_checkpoint(str(tmp_path / "nope"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    np.save(tmp_path / "x.npy", np.zeros(1))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        convert_checkpoint(str(tmp_path))
