"""Convert transformers checkpoints (Swin, CLIP text, Swin+CLIP dual encoders) to Florence.

Supported sources (a `save_pretrained` directory or an in-memory state dict):
* `SwinModel` -> `CoSwinBackbone(patch_embedding="linear")`;
* `CLIPTextModel` -> `FlorenceTextEncoder`;
* `VisionTextDualEncoderModel` with a Swin vision model and a CLIP text model
  (the UniCL architecture) -> `FlorenceBackbone`.
Every tensor is checked for shape (the error names it) and every checkpoint
tensor must be used.
"""

import numpy as np

from florence_keras.converters.checkpoint_reader import CheckpointReader


def swin_config_to_kwargs(config):
    """`SwinConfig` dict -> `CoSwinBackbone` kwargs (linear patch embedding)."""
    if config.get("use_absolute_embeddings"):
        raise ValueError("Swin checkpoints with absolute position embeddings are not supported.")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"Unsupported Swin activation {config.get('hidden_act')!r}; only 'gelu'.")
    size = config.get("image_size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return {
        "embed_dim": config["embed_dim"],
        "depths": list(config["depths"]),
        "num_heads": list(config["num_heads"]),
        "window_size": config["window_size"],
        "mlp_ratio": config.get("mlp_ratio", 4.0),
        "qkv_bias": config.get("qkv_bias", True),
        "drop_path_rate": config.get("drop_path_rate", 0.1),
        "patch_embedding": "linear",
        "patch_size": config.get("patch_size", 4),
        "image_shape": size + (config.get("num_channels", 3),),
        "layer_norm_epsilon": config.get("layer_norm_eps", 1e-5),
    }


def clip_text_config_to_kwargs(config):
    """`CLIPTextConfig` dict -> `FlorenceTextEncoder` kwargs."""
    if config.get("layer_norm_eps", 1e-5) != 1e-5:
        raise ValueError(
            "Only layer_norm_eps=1e-5 is supported for CLIP text blocks. "
            f"Received: {config.get('layer_norm_eps')}"
        )
    return {
        "vocabulary_size": config["vocab_size"],
        "hidden_dim": config["hidden_size"],
        "num_layers": config["num_hidden_layers"],
        "num_heads": config["num_attention_heads"],
        "intermediate_dim": config["intermediate_size"],
        "max_sequence_length": config["max_position_embeddings"],
        "activation": config.get("hidden_act", "quick_gelu"),
        "layer_norm_epsilon": config.get("layer_norm_eps", 1e-5),
        "eos_token_id": config.get("eos_token_id", 49407),
    }


def _assign(variable, value, name):
    value = np.asarray(value, dtype="float32")
    if tuple(variable.shape) != value.shape:
        raise ValueError(
            f"Shape mismatch for {name}: checkpoint has {value.shape}, "
            f"the Keras variable {variable.path} expects {tuple(variable.shape)}."
        )
    variable.assign(value)


def _linear(layer, reader, prefix, bias=True, aliases=()):
    name = reader.resolve(prefix + ".weight", *(a + ".weight" for a in aliases))
    _assign(layer.kernel, reader.get(name).T, name)
    if bias:
        name = reader.resolve(prefix + ".bias", *(a + ".bias" for a in aliases))
        _assign(layer.bias, reader.get(name), name)


def _norm(layer, reader, prefix):
    _assign(layer.gamma, reader.get(prefix + ".weight"), prefix + ".weight")
    _assign(layer.beta, reader.get(prefix + ".bias"), prefix + ".bias")


# transformers 5 names Swin's tensors `attention.{q,k,v,o}_proj` and `mlp.fc{1,2}` in
# memory but saves the v4 names that hub checkpoints use; accept both.
_SWIN_ALIASES = {
    "q_proj": ("attention.q_proj", "attention.self.query"),
    "k_proj": ("attention.k_proj", "attention.self.key"),
    "v_proj": ("attention.v_proj", "attention.self.value"),
    "o_proj": ("attention.o_proj", "attention.output.dense"),
    "table": ("attention.relative_position_bias.relative_position_bias_table",
              "attention.self.relative_position_bias_table"),
    "fc1": ("mlp.fc1", "intermediate.dense"),
    "fc2": ("mlp.fc2", "output.dense"),
}


def load_swin_weights(backbone, reader, prefix=""):
    """Copies a transformers `SwinModel` into a linear-mode `CoSwinBackbone`."""
    if backbone.patch_embedding != "linear":
        raise ValueError("Swin checkpoints load into CoSwinBackbone(patch_embedding='linear').")
    p = prefix
    conv = reader.get(p + "embeddings.patch_embeddings.projection.weight")
    _assign(backbone.stem.conv.kernel, conv.transpose(2, 3, 1, 0),
            p + "embeddings.patch_embeddings.projection.weight")
    _assign(backbone.stem.conv.bias, reader.get(p + "embeddings.patch_embeddings.projection.bias"),
            p + "embeddings.patch_embeddings.projection.bias")
    _norm(backbone.stem.norm, reader, p + "embeddings.norm")
    for stage, blocks in enumerate(backbone.stages):
        for i, block in enumerate(blocks):
            b = f"{p}encoder.layers.{stage}.blocks.{i}."
            names = {k: [b + n for n in v] for k, v in _SWIN_ALIASES.items()}
            _norm(block.norm_before, reader, b + "layernorm_before")
            _norm(block.norm_after, reader, b + "layernorm_after")
            att = block.attention
            qkv = [names[n] for n in ("q_proj", "k_proj", "v_proj")]
            weights = [reader.get(*(c + ".weight" for c in cands)) for cands in qkv]
            _assign(att.qkv.kernel, np.concatenate(weights, axis=0).T, b + "attention q/k/v weight")
            if att.qkv_bias:
                biases = [reader.get(*(c + ".bias" for c in cands)) for cands in qkv]
                _assign(att.qkv.bias, np.concatenate(biases), b + "attention q/k/v bias")
            _linear(att.projection, reader, names["o_proj"][0], aliases=names["o_proj"][1:])
            table = reader.resolve(*names["table"])
            _assign(att.relative_position_bias_table, reader.get(table), table)
            _linear(block.mlp_dense_1, reader, names["fc1"][0], aliases=names["fc1"][1:])
            _linear(block.mlp_dense_2, reader, names["fc2"][0], aliases=names["fc2"][1:])
        if stage + 1 < len(backbone.stages):
            merge = backbone.downsamplers[stage]
            d = f"{p}encoder.layers.{stage}.downsample."
            _norm(merge.norm, reader, d + "norm")
            _linear(merge.projection, reader, d + "reduction", bias=False)
    _norm(backbone.final_norm, reader, p + "layernorm")


def load_clip_text_weights(encoder, reader, prefix=""):
    """Copies a transformers `CLIPTextModel` into a `FlorenceTextEncoder`."""
    p = prefix
    emb = encoder.embedding
    _assign(emb.token_embedding.embeddings, reader.get(p + "embeddings.token_embedding.weight"),
            p + "embeddings.token_embedding.weight")
    _assign(emb.position_embedding.position_embeddings,
            reader.get(p + "embeddings.position_embedding.weight"),
            p + "embeddings.position_embedding.weight")
    heads, width = encoder.num_heads, encoder.hidden_dim
    head_dim = width // heads
    for i, block in enumerate(encoder.encoder_layers):
        b = f"{p}encoder.layers.{i}."
        _norm(block.layer_norm_1, reader, b + "layer_norm1")
        _norm(block.layer_norm_2, reader, b + "layer_norm2")
        att = block.attention
        for name, dense in (("q", att._query_dense), ("k", att._key_dense), ("v", att._value_dense)):
            w = reader.get(f"{b}self_attn.{name}_proj.weight").T.reshape(width, heads, head_dim)
            _assign(dense.kernel, w, f"{b}self_attn.{name}_proj.weight")
            bias = reader.get(f"{b}self_attn.{name}_proj.bias").reshape(heads, head_dim)
            _assign(dense.bias, bias, f"{b}self_attn.{name}_proj.bias")
        out = reader.get(b + "self_attn.out_proj.weight").T.reshape(heads, head_dim, width)
        _assign(att._output_dense.kernel, out, b + "self_attn.out_proj.weight")
        _assign(att._output_dense.bias, reader.get(b + "self_attn.out_proj.bias"),
                b + "self_attn.out_proj.bias")
        _linear(block.dense_1, reader, b + "mlp.fc1")
        _linear(block.dense_2, reader, b + "mlp.fc2")
    _norm(encoder.final_norm, reader, p + "final_layer_norm")


def _check_all_used(reader, ignore=()):
    leftovers = [k for k in reader.unused() if not any(k.endswith(s) for s in ignore)]
    if leftovers:
        raise ValueError(
            f"{len(leftovers)} checkpoint tensors have no place in the Keras model, e.g. "
            f"{leftovers[:5]}"
        )


def _model_type(config):
    return config.get("model_type", "")


def convert_checkpoint(directory=None, config=None, tensors=None):
    """Builds the Florence model for a transformers checkpoint and loads its weights.

    Args:
        directory: a transformers `save_pretrained` directory.
        config: optional config dict (read from `directory` when omitted).
        tensors: optional in-memory state dict (name -> array).

    Returns:
        a `CoSwinBackbone`, `FlorenceTextEncoder` or `FlorenceBackbone`.
    """
    from florence_keras.models.coswin_backbone import CoSwinBackbone
    from florence_keras.models.florence_backbone import FlorenceBackbone
    from florence_keras.models.florence_text_encoder import FlorenceTextEncoder

    reader = CheckpointReader(directory, tensors)
    config = config or reader.config()
    kind = _model_type(config)
    ignore = ("position_ids", "relative_position_index")
    if kind == "swin":
        model = CoSwinBackbone(**swin_config_to_kwargs(config))
        load_swin_weights(model, reader)
    elif kind == "clip_text_model":
        model = FlorenceTextEncoder(**clip_text_config_to_kwargs(config))
        load_clip_text_weights(model, reader)
    elif kind == "vision-text-dual-encoder":
        vision, text = config["vision_config"], config["text_config"]
        if _model_type(vision) != "swin" or _model_type(text) not in ("clip_text_model", "clip"):
            raise ValueError(
                "Only Swin vision + CLIP text dual encoders are supported. Received: "
                f"vision={_model_type(vision)!r}, text={_model_type(text)!r}"
            )
        text = text.get("text_config", text)
        image_encoder = CoSwinBackbone(**swin_config_to_kwargs(vision))
        text_encoder = FlorenceTextEncoder(**clip_text_config_to_kwargs(text))
        scale = float(np.exp(reader.tensors["logit_scale"])) if reader.has("logit_scale") else 1 / 0.07
        model = FlorenceBackbone(
            image_encoder, text_encoder, projection_dim=config["projection_dim"],
            logit_scale_init=scale,
        )
        load_swin_weights(image_encoder, reader, prefix="vision_model.")
        load_clip_text_weights(text_encoder, reader, prefix="text_model.")
        _linear(model.image_projection, reader, "visual_projection", bias=False)
        _linear(model.text_projection, reader, "text_projection", bias=False)
        _assign(model.log_logit_scale, reader.get("logit_scale").reshape(()), "logit_scale")
    else:
        raise ValueError(
            f"Unsupported transformers model_type {kind!r}. Supported: 'swin', "
            "'clip_text_model', 'vision-text-dual-encoder' (Swin + CLIP text)."
        )
    _check_all_used(reader, ignore)
    return model
