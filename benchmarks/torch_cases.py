"""The torch reference side: transformers `SwinModel` and `CLIPTextModel` (random init, CPU).

Each case builds the model from a config dict with a fixed seed, saves it with `save_pretrained`
to `spec["model_dir"]` (the TensorFlow side converts that very checkpoint, so both sides run the
same config and weights) and then times forward (`torch.no_grad`, eval mode) or a training step
(train mode, forward + `backward` of `mean(pooled ** 2)`, gradients set to None between steps).
transformers' default attention implementation (SDPA) is used: what a user gets.
"""

import torch
import transformers

from benchmarks import flop_counter
from benchmarks.inputs import swin_inputs
from benchmarks.inputs import text_inputs


transformers.utils.logging.disable_progress_bar()


class _TorchCase:
    def __init__(self, model, inputs, train, pooled, flops_forward):
        self.flops_per_step = flops_forward * (3 if train else 1)
        self.model = model
        self.inputs = inputs
        self.train = train
        self.pooled = pooled
        with torch.no_grad():
            self.model.eval()
            self.output = pooled(self.model(**inputs)).numpy()
        self.model.train(train)

    def step(self):
        if self.train:
            self.model.zero_grad(set_to_none=True)
            loss = self.pooled(self.model(**self.inputs)).pow(2).mean()
            loss.backward()
        else:
            with torch.no_grad():
                self.pooled(self.model(**self.inputs))

    def info(self):
        return {"output": self.output.tolist(), "torch": torch.__version__,
                "flops_per_step": self.flops_per_step,
                "transformers": transformers.__version__,
                "threads": torch.get_num_threads(),
                "attention": self.model.config._attn_implementation}


def make_swin(spec, cases):
    """`spec`: config (SwinConfig kwargs), batch, train, model_dir, save (default True)."""
    torch.manual_seed(spec.get("seed", 0))
    config = transformers.SwinConfig(**spec["config"])
    model = transformers.SwinModel(config)
    if spec.get("save", True):  # the default-configured twin builds the same weights, the tuned one saves them
        model.save_pretrained(spec["model_dir"])
    images = swin_inputs(spec["batch"], config.image_size)
    inputs = {"pixel_values": torch.from_numpy(images.transpose(0, 3, 1, 2).copy())}
    flops = flop_counter.swin_flops(
        config.embed_dim, config.depths, config.num_heads, config.window_size,
        image_shape=(config.image_size, config.image_size, config.num_channels),
        mlp_ratio=config.mlp_ratio, patch_size=config.patch_size)["total"]
    return _TorchCase(model, inputs, spec["train"], lambda out: out.pooler_output,
                      flops * spec["batch"])


def make_clip_text(spec, cases):
    """`spec`: config (CLIPTextConfig kwargs), batch, train, model_dir, save (default True)."""
    torch.manual_seed(spec.get("seed", 0))
    config = transformers.CLIPTextConfig(**spec["config"])
    model = transformers.CLIPTextModel(config)
    if spec.get("save", True):
        model.save_pretrained(spec["model_dir"])
    ids = text_inputs(spec["batch"], config.max_position_embeddings, config.eos_token_id)
    inputs = {"input_ids": torch.from_numpy(ids.astype("int64"))}
    flops = flop_counter.text_encoder_flops(
        config.hidden_size, config.num_hidden_layers, intermediate_dim=config.intermediate_size,
        max_sequence_length=config.max_position_embeddings)["total"]
    return _TorchCase(model, inputs, spec["train"], lambda out: out.pooler_output,
                      flops * spec["batch"])


CASES = {"swin": make_swin, "clip_text": make_clip_text}
