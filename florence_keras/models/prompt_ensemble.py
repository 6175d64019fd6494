"""`prompt_ensemble_embeddings`: zero-shot classifier weights from class names and prompt templates."""

import numpy as np


def check_class_names_and_templates(class_names, templates):
    """Validates class names (non-empty str) and templates (str with one `{}`); returns both as lists."""
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
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"Each template must be a str with one '{{}}' placeholder. Received: {template!r}")
    return class_names, templates


def _normalise(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def prompt_ensemble_embeddings(encode_texts, class_names, templates, batch_size=256):
    """Class weights `[C, D]` from prompt-ensembled text embeddings (CLIP's zero-shot head, SPEC §4).

    Row c = normalise(mean_t normalise(encode_texts(template_t.format(class_c)))).

    Args:
        encode_texts: callable, list of str -> `[B, D]` text embeddings (re-normalised here).
        class_names: list of `C` non-empty str.
        templates: list of str with one `{}` placeholder (e.g. `"a photo of a {}."`).
        batch_size: texts per `encode_texts` call.

    Returns:
        float32 numpy array `[C, D]` with rows of unit L2 norm.

    Example:
    >>> table = {"a cat": [1.0, 0.0], "a dog": [0.0, 2.0]}
    >>> prompt_ensemble_embeddings(lambda ts: np.array([table[t] for t in ts]), ["cat", "dog"],
    ...                            ["a {}"]).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    class_names, templates = check_class_names_and_templates(class_names, templates)
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
    texts = [template.format(name) for name in class_names for template in templates]
    chunks = [np.asarray(encode_texts(texts[i:i + batch_size]), dtype=np.float64)
              for i in range(0, len(texts), batch_size)]
    embeddings = _normalise(np.concatenate(chunks, axis=0)).reshape(len(class_names), len(templates), -1)
    return _normalise(embeddings.mean(axis=1)).astype(np.float32)
