"""Zero-shot classification with prompt ensembles (the CLIP protocol).

Each class name is put into every prompt template; the text embeddings are L2-normalised, averaged per class,
and the mean is L2-normalised again. An image is classified by the cosine similarity of its (normalised) image
embedding to each class weight. Ties between classes follow the rule documented in
`florence_keras.evaluation.metrics` (equal scores: the lower class index ranks first).
"""

import json
import os

import numpy as np

from florence_keras.evaluation import _checks
from florence_keras.evaluation import features as features_lib
from florence_keras.evaluation import metrics
from florence_keras.models.prompt_ensemble import prompt_ensemble_embeddings


_METADATA_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "imagenet_zeroshot_metadata.json"
)
TEMPLATE_SETS = ("imagenet80", "imagenet7")


def _metadata():
    with open(_METADATA_FILE, encoding="utf-8") as file:
        return json.load(file)


def load_templates(spec="imagenet80"):
    """Prompt templates by name or from a file.

    Args:
        spec: `"imagenet80"` (CLIP's 80 ImageNet templates), `"imagenet7"` (CLIP's 7-template subset), or the
            path of a UTF-8 text file with one template per line (each with one `{}`; blank lines and lines
            starting with `#` are ignored).

    Returns:
        list of str.

    Example:
    >>> len(load_templates("imagenet80")), load_templates("imagenet80")[0]
    (80, 'a bad photo of a {}.')
    """
    if spec == "imagenet80":
        return list(_metadata()["imagenet_templates"])
    if spec == "imagenet7":
        return list(_metadata()["simple_imagenet_templates"])
    if not isinstance(spec, (str, os.PathLike)) or not os.path.isfile(spec):
        raise ValueError(
            f"`templates` must be one of {TEMPLATE_SETS} or an existing text file. Received: templates={spec!r}"
        )
    with open(spec, encoding="utf-8") as file:
        templates = [line.rstrip("\n") for line in file if line.strip() and not line.startswith("#")]
    bad = [t for t in templates if t.count("{}") != 1]
    if not templates or bad:
        raise ValueError(f"{spec}: every template needs exactly one '{{}}'. Received: {bad[:1] or templates}")
    return templates


def imagenet_class_names():
    """The 1,000 readable ImageNet class names of CLIP's zero-shot protocol, in class-index order."""
    return list(_metadata()["imagenet_classnames"])


def readable_class_names(class_names, spec=None):
    """Names to put into prompts for the data's class names (e.g. ImageFolder directory names).

    Args:
        class_names: the data's class names in class-index order (sorted, as the recipes use them).
        spec: None (underscores become spaces: `golden_retriever` -> `golden retriever`); `"imagenet"` (the
            1,000 shipped ImageNet names, in order: for ImageNet folders named by WordNet id); or a UTF-8 text
            file, either one name per line in class-index order, or `data_name<TAB>readable name` lines.

    Returns:
        list of str, one per class.

    Example:
    >>> readable_class_names(["golden_retriever", "tabby_cat"])
    ['golden retriever', 'tabby cat']
    """
    class_names = [str(name) for name in class_names]
    if spec is None:
        return [name.replace("_", " ") for name in class_names]
    if spec == "imagenet":
        names = imagenet_class_names()
        if len(class_names) != len(names):
            raise ValueError(
                f"class names 'imagenet' needs the data's {len(names)} ImageNet classes. Received "
                f"{len(class_names)} classes"
            )
        return names
    if not os.path.isfile(spec):
        raise ValueError(f"`class_names` must be None, 'imagenet' or an existing file. Received: {spec!r}")
    with open(spec, encoding="utf-8") as file:
        lines = [line.rstrip("\n") for line in file if line.strip()]
    if lines and all("\t" in line for line in lines):
        mapping = dict(line.split("\t", 1) for line in lines)
        missing = [name for name in class_names if name not in mapping]
        if missing:
            raise ValueError(f"{spec} has no readable name for {len(missing)} classes, e.g. {missing[0]!r}")
        return [mapping[name] for name in class_names]
    if len(lines) != len(class_names):
        raise ValueError(
            f"{spec} lists {len(lines)} names but the data has {len(class_names)} classes (one name per line, in "
            "sorted class order, or data_name<TAB>readable name lines)."
        )
    return lines


def build_zero_shot_classifier(encode_texts, class_names, templates, batch_size=256, verbose=False):
    """Class weights `[C, D]` from prompt-ensembled text embeddings.

    Args:
        encode_texts: callable, list of str -> `[B, D]` text embeddings (`FlorenceCLIP.encode_texts` fits;
            they are re-normalised here, so unnormalised encoders work too).
        class_names: list of `C` non-empty str.
        templates: list of prompt templates: str with one `{}` placeholder (e.g. `"a photo of a {}."`) or
            callables `name -> str`.
        batch_size: texts per `encode_texts` call.
        verbose: show a progress bar.

    Returns:
        float32 numpy array `[C, D]`, rows of unit L2 norm; row c = normalise(mean_t normalise(embed(t(c)))).

    Example:
    >>> table = {"a cat": [1.0, 0.0], "a dog": [0.0, 2.0]}
    >>> build_zero_shot_classifier(lambda ts: np.array([table[t] for t in ts]), ["cat", "dog"],
    ...                            ["a {}"]).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    return prompt_ensemble_embeddings(
        encode_texts, class_names, templates, batch_size=batch_size,
        encode_all=lambda texts: features_lib.encode_texts_in_batches(
            encode_texts, texts, batch_size=batch_size, verbose=verbose))


def zero_shot_scores(image_features, classifier):
    """Cosine similarities `[N, C]` between image features `[N, D]` and class weights `[C, D]`.

    Both are L2-normalised here (a no-op for `FlorenceCLIP` outputs). Multiplying by the logit scale does not
    change any ranking, so it is left out.
    """
    image_features = _checks.as_matrix(image_features, "image_features")
    classifier = _checks.as_matrix(classifier, "classifier")
    if image_features.shape[1] != classifier.shape[1]:
        raise ValueError(
            "`image_features` and `classifier` must have the same embedding size. Received: "
            f"image_features.shape={image_features.shape}, classifier.shape={classifier.shape}"
        )
    return _checks.l2_normalize(image_features) @ _checks.l2_normalize(classifier).T


def zero_shot_classify(image_features, classifier, k=1):
    """Top-k class indices of each image, best first (ties: lower class index first).

    Args:
        image_features: `[N, D]` image embeddings.
        classifier: `[C, D]` class weights from `build_zero_shot_classifier`.
        k: number of classes to return per image (clipped to C).

    Returns:
        `(indices, scores)`: int64 `[N, min(k, C)]` and the float64 cosine scores `[N, C]`.

    Example:
    >>> indices, _ = zero_shot_classify([[1.0, 0.0], [0.6, 0.8]], [[1.0, 0.0], [0.0, 1.0]], k=1)
    >>> indices[:, 0].tolist()
    [0, 1]
    """
    scores = zero_shot_scores(image_features, classifier)
    return metrics.top_k_indices(scores, k), scores


def zero_shot_accuracy(image_features, labels, classifier, ks=(1, 5), class_names=None):
    """Top-k accuracies, per-class accuracy and confusion matrix of zero-shot classification.

    Args:
        image_features: `[N, D]` image embeddings.
        labels: int `[N]` class indices in `[0, C)`.
        classifier: `[C, D]` class weights.
        ks: the reported top-k accuracies (default top-1 and top-5).
        class_names: optional list of `C` names, copied into the result.

    Returns:
        the dict of `metrics.classification_metrics`: `"top1"`, `"top5"`, `"mean_per_class_accuracy"`,
        `"per_class_accuracy"`, `"class_counts"`, `"confusion_matrix"`, `"predictions"`, ...

    Example:
    >>> result = zero_shot_accuracy([[1.0, 0.0], [0.6, 0.8]], [0, 0], [[1.0, 0.0], [0.0, 1.0]], ks=(1,))
    >>> result["top1"], result["per_class_accuracy"]
    (0.5, [0.5, nan])
    """
    scores = zero_shot_scores(image_features, classifier)
    return metrics.classification_metrics(scores, labels, ks=ks, class_names=class_names)
