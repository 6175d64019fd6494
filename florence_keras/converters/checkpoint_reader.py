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

    Raises:
        FileNotFoundError: no directory, or no weights file in it.
        ValueError: a damaged weights file, a pickle holding anything but tensors (code is never run), or a
            safetensors index naming shard files outside `directory`.
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


def _shard_files(directory, index):
    """The shard files named by a `model.safetensors.index.json`, each checked to lie inside `directory`."""
    try:
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"{index}: not a safetensors index (a JSON object with a 'weight_map'): {e!r}") from e
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ValueError(f"{index}: 'weight_map' must map tensor names to shard file names.")
    root = os.path.realpath(directory)
    files = set()
    for name in weight_map.values():
        path = os.path.realpath(os.path.join(directory, name))
        if os.path.dirname(path) != root:  # absolute, `..`, sub-folders, or a link out of the directory
            raise ValueError(f"{index}: shard {name!r} is not a file in the checkpoint directory; refused.")
        files.add(path)
    return sorted(files)


def _read_directory(directory):
    """All tensors of a checkpoint directory.

    Raises:
        FileNotFoundError: no directory, or no weights file in it.
        ValueError: a weights file that is damaged, not what its name says, or refused: a pickle that would run
            code (or hold anything but tensors), a safetensors index naming files outside the directory.
    """
    if not os.path.isdir(directory or ""):
        raise FileNotFoundError(f"Checkpoint directory {directory!r} does not exist.")
    single = os.path.join(directory, "model.safetensors")
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(single) or os.path.exists(index):
        from safetensors.numpy import load_file

        files = [single] if os.path.exists(single) else _shard_files(directory, index)
        tensors = {}
        for path in files:
            try:
                tensors.update(load_file(path))
            except FileNotFoundError:
                raise
            except Exception as e:  # safetensors raises SafetensorError (an Exception) for damaged files
                raise ValueError(f"Could not read safetensors file {path!r}: {e}") from e
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
        try:
            # weights_only=True: the unpickler accepts tensors and plain containers only, never a callable.
            state = torch.load(binary, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle.UnpicklingError for refused code; RuntimeError/EOFError when damaged
            raise ValueError(
                f"Refused or unreadable PyTorch checkpoint {binary!r} (read with weights_only=True): "
                f"{type(e).__name__}: {str(e)[:500]}"
            ) from e
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{binary} is not a state dict of tensors.")
        return {k: v.float().numpy() for k, v in state.items()}
    raise FileNotFoundError(
        f"No model.safetensors, model.safetensors.index.json or pytorch_model.bin in {directory!r}."
    )
