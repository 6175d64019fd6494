"""recipes/convert_checkpoint.py end to end: transformers dual encoder -> FlorenceCLIP preset."""

import os
import subprocess
import sys

import numpy as np

from tests.test_extras import require

torch = require("torch")
transformers = require("transformers")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_convert_dual_encoder_to_preset(tmp_path):
    torch.manual_seed(0)
    vision = transformers.SwinModel(transformers.SwinConfig(
        image_size=32, embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=2, drop_path_rate=0.0))
    # The real CLIP vocabulary size, so the packaged tokenizer's ids are valid.
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=77))
    reference = transformers.VisionTextDualEncoderModel(vision_model=vision, text_model=text).eval()
    src = tmp_path / "hf"
    reference.save_pretrained(src)
    out = tmp_path / "preset"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "convert_checkpoint.py"),
         "--source=transformers", f"--input={src}", f"--output={out}"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FlorenceCLIP" in result.stdout

    from florence_keras.models import FlorenceCLIP

    clip = FlorenceCLIP.from_preset(str(out))
    ids = clip.preprocessor.tokenize(["a photo of a cat"]).numpy()
    with torch.no_grad():
        expected = reference.get_text_features(input_ids=torch.from_numpy(ids.astype("int64")))
        expected = getattr(expected, "pooler_output", expected)
        expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
    np.testing.assert_allclose(clip.encode_texts(["a photo of a cat"]).numpy(), expected, atol=1e-4)

    again = subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "convert_checkpoint.py"),
         f"--input={src}", f"--output={out}"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert again.returncode != 0 and "not empty" in again.stderr, again.stderr[-3000:]
