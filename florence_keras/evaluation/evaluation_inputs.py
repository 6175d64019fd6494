"""The evaluation recipes' common start: load the preset, resolve the data, encode it (cached).

`recipes/eval_zeroshot.py`, `eval_retrieval.py`, `fewshot.py` and `linear_probe.py` all begin the same way; this
is that beginning as one library function with plain arguments (the recipes only turn their flags into them,
`recipes/evaluation_flags.py`).
"""

from florence_keras.evaluation import builtin_data
from florence_keras.evaluation import encoded_data
from florence_keras.models.florence_clip import FlorenceCLIP

# What each kind of evaluation data is encoded with.
_ENCODERS = {"labels": encoded_data.encode_labelled_images, "captions": encoded_data.encode_captioned_images}


def load_and_encode(preset, sources, data_format, kind, builtin_dir=None, builtin_settings=None, batch_size=32,
                    cache_dir=None, max_examples=None, verbose=True):
    """Loads `FlorenceCLIP.from_preset(preset)` and encodes each data source with it.

    Args:
        preset: a preset name, directory or handle (see `FlorenceCLIP.from_preset`).
        sources: dict `{name: (data, builtin_split)}`, in the order to encode. `data` is a list of paths in
            `data_format`, or `["builtin"]` for the built-in scenes' `builtin_split` ("train" or "heldout";
            ignored for paths). `name` is the split name of the feature cache ("eval", "train", "test", ...).
        data_format: the format of the given paths (the built-in data is read in its own format, see
            `builtin_data.resolve_data`).
        kind: "labels" (image-label data, `encoded_data.encode_labelled_images`) or "captions" (image-text data,
            `encoded_data.encode_captioned_images`).
        builtin_dir: where the built-in data is written or reused; required when a source is `builtin`.
        builtin_settings: dict of built-in settings (`num_train`, `num_heldout`, `image_size`, `seed`; defaults:
            `builtin_data.DEFAULT_SETTINGS`).
        batch_size: images per encoding batch.
        cache_dir: the feature cache directory, or None (no cache).
        max_examples: read at most this many examples per source; None reads all.
        verbose: progress bars.

    Returns:
        `(clip, encoded)`: the loaded `FlorenceCLIP` and `{name: features dict}` (see the two encoders for the
        dicts' keys).
    """
    if not preset:
        raise ValueError(f"Give a preset: a preset name, a preset directory or a handle. Received: preset={preset!r}")
    if kind not in _ENCODERS:
        raise ValueError(f"`kind` must be one of {sorted(_ENCODERS)}. Received: kind={kind!r}")
    if not sources:
        raise ValueError(f"`sources` names no data to encode. Received: sources={sources!r}")
    resolved = {}
    for name, (data, builtin_split) in sources.items():
        if not data:
            raise ValueError(f"Source {name!r} has no data path. Received: data={data!r}")
        if builtin_data.is_builtin(data) and builtin_dir is None:
            raise ValueError(f"Source {name!r} is the built-in data: give `builtin_dir` (where it is written).")
        resolved[name] = builtin_data.resolve_data(data, data_format, kind, builtin_split, builtin_dir,
                                                   **(builtin_settings or {}))
    clip = FlorenceCLIP.from_preset(preset)
    encode = _ENCODERS[kind]
    encoded = {
        name: encode(clip, preset, paths, source_format, split=name, batch_size=batch_size, cache_dir=cache_dir,
                     max_examples=max_examples, verbose=verbose)
        for name, (paths, source_format) in resolved.items()
    }
    return clip, encoded
