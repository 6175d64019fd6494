"""Safe readers for checkpoint directories (no pickle code execution)."""

import json
import os

import numpy as np


class CheckpointReader:
    """Tensors of a `save_pretrained`-style directory, read without pickle.

    Reads `model.safetensors` (or a sharded `model.safetensors.index.json`);
    a `pytorch_model.bin` is read only with `torch.load(weights_only=True)`,
    which refuses pickled code. Keeps track of which tensors were used, so a
    converter can fail on leftovers instead of silently dropping weights.

    Args:
        directory: path of the checkpoint directory.
        tensors: optional dict name -> array (for in-memory use and tests).
    """

    def __init__(self, directory=None, tensors=None):
        if tensors is None:
            tensors = _read_directory(directory)
        self.tensors = {k: np.asarray(v) for k, v in tensors.items()}
        self.used = set()
        self.directory = directory

    def config(self):
        path = os.path.join(self.directory, "config.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"No config.json in checkpoint directory {self.directory!r}.")
        with open(path, encoding="utf-8") as f:
            try:
                return json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: invalid JSON ({e}).") from e

    def has(self, name):
        return name in self.tensors

    def resolve(self, name, *aliases):
        """The first of `name, *aliases` present in the checkpoint."""
        for candidate in (name,) + aliases:
            if candidate in self.tensors:
                return candidate
        raise KeyError(
            f"Checkpoint tensor {name!r} is missing from {self.directory or 'the state dict'!r}"
            + (f" (also tried {list(aliases)})." if aliases else ".")
        )

    def get(self, name, *aliases):
        """Tensor `name` (or the first alias present) as float32; marks it used."""
        name = self.resolve(name, *aliases)
        self.used.add(name)
        return self.tensors[name].astype("float32")

    def unused(self, prefix=""):
        return sorted(k for k in self.tensors if k.startswith(prefix) and k not in self.used)


def _read_directory(directory):
    if not os.path.isdir(directory or ""):
        raise FileNotFoundError(f"Checkpoint directory {directory!r} does not exist.")
    single = os.path.join(directory, "model.safetensors")
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(single) or os.path.exists(index):
        from safetensors.numpy import load_file

        files = [single]
        if not os.path.exists(single):
            with open(index, encoding="utf-8") as f:
                files = sorted({os.path.join(directory, v) for v in json.load(f)["weight_map"].values()})
        tensors = {}
        for path in files:
            tensors.update(load_file(path))
        return tensors
    binary = os.path.join(directory, "pytorch_model.bin")
    if os.path.exists(binary):
        try:
            import torch
        except ImportError as e:
            raise ImportError(
                f"{binary} is a PyTorch checkpoint; install torch to read it, or save the "
                "model with safetensors (`save_pretrained(..., safe_serialization=True)`)."
            ) from e
        state = torch.load(binary, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in state.items()}
    raise FileNotFoundError(
        f"No model.safetensors, model.safetensors.index.json or pytorch_model.bin in {directory!r}."
    )
