"""`prompt_ensemble_embeddings`: zero-shot classifier weights from class names and prompt templates."""

import numpy as np


def check_class_names_and_templates(class_names, templates, allow_callables=False):
    """Validates class names (non-empty str) and templates (str with one `{}`; with `allow_callables`, also
    callables `name -> str`); returns both as lists."""
    class_names = list(class_names)
    templates = list(templates)
    if not class_names:
        raise ValueError("`class_names` is empty.")
    bad = [name for name in class_names if not isinstance(name, str) or not name.strip()]
    if bad:
        raise ValueError(f"`class_names` must be non-empty strings. Received: {bad[0]!r}")
    if not templates:
        raise ValueError("`templates` is empty; give at least one template such as 'a photo of a {}.'")
    for template in templates:
        if allow_callables and callable(template):
            continue
        if not isinstance(template, str) or template.count("{}") != 1:
            kinds = "a callable or a str" if allow_callables else "a str"
            raise ValueError(f"Each template must be {kinds} with one '{{}}' placeholder. Received: {template!r}")
    return class_names, templates


def fill_template(template, class_name):
    """`template.format(class_name)`, or `template(class_name)` for a callable template (must give a str)."""
    text = template(class_name) if callable(template) else template.format(class_name)
    if not isinstance(text, str):
        raise ValueError(f"A template must produce a str. Received: {text!r} from template {template!r}")
    return text


def _normalise(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def prompt_ensemble_embeddings(encode_texts, class_names, templates, batch_size=256, encode_all=None):
    """Class weights `[C, D]` from prompt-ensembled text embeddings (CLIP's zero-shot head, SPEC §4).

    Row c = normalise(mean_t normalise(encode_texts(template_t.format(class_c)))).

    Args:
        encode_texts: callable, list of str -> `[B, D]` text embeddings (re-normalised here).
        class_names: list of `C` non-empty str.
        templates: list of str with one `{}` placeholder (e.g. `"a photo of a {}."`), or callables
            `name -> str` when `encode_all` is given (evaluation's richer templates).
        batch_size: texts per `encode_texts` call.
        encode_all: optional callable, list of all `C·T` str -> `[C·T, D]`, replacing the batching over
            `encode_texts` (e.g. one with a progress bar).

    Returns:
        float32 numpy array `[C, D]` with rows of unit L2 norm.

    Example:
    >>> table = {"a cat": [1.0, 0.0], "a dog": [0.0, 2.0]}
    >>> prompt_ensemble_embeddings(lambda ts: np.array([table[t] for t in ts]), ["cat", "dog"],
    ...                            ["a {}"]).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    class_names, templates = check_class_names_and_templates(
        class_names, templates, allow_callables=encode_all is not None)
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
    texts = [fill_template(template, name) for name in class_names for template in templates]
    if encode_all is not None:
        embeddings = np.asarray(encode_all(texts), dtype=np.float64)
    else:
        chunks = [np.asarray(encode_texts(texts[i:i + batch_size]), dtype=np.float64)
                  for i in range(0, len(texts), batch_size)]
        embeddings = np.concatenate(chunks, axis=0)
    embeddings = _normalise(embeddings).reshape(len(class_names), len(templates), -1)
    return _normalise(embeddings.mean(axis=1)).astype(np.float32)
