"""UniCL labels and prompt templates (SPEC §1).

Every distinct text gets a label: its 63-bit hash. Identical texts share a label wherever they occur (any file,
shard, worker or epoch), so image-text pairs with the same caption are positives of each other. Image-label data
(ImageFolder, CSV `filepath,label`) joins the same loss with the label of its class name and a text drawn at random
from prompt templates filled with that name. The `"text:"` / `"class:"` prefixes keep the two label spaces apart.

All functions here are TensorFlow ops that work eagerly and inside `tf.data` / `tf.function` alike.
"""

import functools
import json
from pathlib import Path

import tensorflow as tf

# Hash buckets of a label: the whole non-negative int64 range (2**63 - 1 buckets).
LABEL_BUCKETS = 2**63 - 1

# [ours] A small default set for image-label data; `imagenet_templates()` gives CLIP's 80.
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a rendering of a {}.",
    "a {}.",
    "{}",
)

_METADATA_FILE = Path(__file__).resolve().parent.parent / "assets" / "imagenet_zeroshot_metadata.json"


def _prefixed_hash(strings, prefix):
    strings = tf.convert_to_tensor(strings, dtype=tf.string)
    return tf.strings.to_hash_bucket_fast(tf.strings.join([prefix, strings]), LABEL_BUCKETS)


def text_label(texts):
    """UniCL label of caption texts: identical texts share a label.

    Args:
        texts: str, list of str, or a `tf.string` tensor of any shape.

    Returns:
        int64 tensor of the same shape: `to_hash_bucket_fast("text:" + text, 2**63 - 1)`.

    Example:
    >>> int(text_label("a red circle")) == int(text_label(["a red circle"])[0])
    True
    """
    return _prefixed_hash(texts, "text:")


def class_label(class_names):
    """UniCL label of image-label data: every image of a class shares its label.

    Args:
        class_names: str, list of str, or a `tf.string` tensor of any shape.

    Returns:
        int64 tensor of the same shape: `to_hash_bucket_fast("class:" + name, 2**63 - 1)`.

    Example:
    >>> int(class_label("circle")) != int(text_label("circle"))
    True
    """
    return _prefixed_hash(class_names, "class:")


@functools.lru_cache(maxsize=None)
def _load_metadata():
    with open(_METADATA_FILE, encoding="utf-8") as f:
        return json.load(f)


def imagenet_templates():
    """The 80 prompt templates of OpenAI's CLIP ImageNet zero-shot protocol (shipped under assets/).

    Returns:
        tuple of 80 str, each with one `{}` placeholder.
    """
    return tuple(_load_metadata()["imagenet_templates"])


def validate_templates(templates):
    """Checks prompt templates and splits each at its placeholder.

    Args:
        templates: non-empty sequence of str, each with exactly one `{}` placeholder.

    Returns:
        `(prefixes, suffixes)`: two tuples of str, `template == prefix + "{}" + suffix`.
    """
    if isinstance(templates, str):
        raise ValueError(f"`templates` must be a list of str, not a single str. Received: templates={templates!r}")
    templates = tuple(templates)
    if not templates:
        raise ValueError("`templates` is empty; give at least one template such as 'a photo of a {}.'")
    prefixes, suffixes = [], []
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"Each template must be a str with exactly one '{{}}' placeholder. Received: {template!r}")
        prefix, suffix = template.split("{}")
        prefixes.append(prefix)
        suffixes.append(suffix)
    return tuple(prefixes), tuple(suffixes)


def prompt_class_name(class_names):
    """The readable form of class names used in prompts: underscores become spaces (`golden_retriever`).

    Args:
        class_names: str or `tf.string` tensor.

    Returns:
        `tf.string` tensor of the same shape.
    """
    return tf.strings.regex_replace(tf.convert_to_tensor(class_names, tf.string), "_", " ")


# "a "/"an " before a number word (the article is removed).
_ARTICLE_BEFORE_NUMBER = r"\b(?:[Aa]n?) ((?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b)"


def fix_indefinite_articles(texts):
    """Makes every "a"/"an" agree with the next word's first letter ("a orange" -> "an orange", "an red" -> "a red").

    The rule is the first letter (a vowel takes "an"), as `florence_keras.data.scene.article`; English exceptions
    ("an hour", "a unicorn") are not handled. An article before a number word is dropped, since
    a template's "a" does not belong before a count ("a photo of a two objects." -> "a photo of two objects.").
    Used after filling templates such as "a photo of a {}." and after removing words from a caption.

    Args:
        texts: str or `tf.string` tensor of any shape.

    Returns:
        `tf.string` tensor of the same shape.

    Example:
    >>> fix_indefinite_articles(["a photo of a orange.", "An red circle", "a photo of an one object."]).numpy().tolist()
    [b'a photo of an orange.', b'A red circle', b'a photo of one object.']
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    texts = tf.strings.regex_replace(texts, r"\b([Aa]) ([AEIOUaeiou])", r"\1n \2")
    texts = tf.strings.regex_replace(texts, r"\b([Aa])n ([B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z0-9])", r"\1 \2")
    return tf.strings.regex_replace(texts, _ARTICLE_BEFORE_NUMBER, r"\1")


def strip_leading_article(texts):
    """Removes one leading "a ", "an " or "the " (any case): "a red circle" -> "red circle".

    Args:
        texts: str or `tf.string` tensor of any shape.

    Returns:
        `tf.string` tensor of the same shape.

    Example:
    >>> strip_leading_article(["a red circle", "An orange", "theatre", "two objects"]).numpy().tolist()
    [b'red circle', b'orange', b'theatre', b'two objects']
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    return tf.strings.regex_replace(tf.strings.strip(texts), r"^(?i:an|a|the)\s+", "")


def fill_random_template(class_names, seed, templates=DEFAULT_TEMPLATES):
    """Fills one prompt template, drawn at random per element, with each class name.

    The draw is stateless: the same `seed` gives the same templates, eagerly and inside `tf.data`. The indefinite
    articles of the result agree with the name ("a photo of an orange.", see `fix_indefinite_articles`).

    Args:
        class_names: `tf.string` tensor of any shape (underscores are shown as spaces, see `prompt_class_name`).
        seed: int32/int64 tensor of shape `[2]`, a stateless random seed.
        templates: sequence of str with one `{}` each. Defaults to `DEFAULT_TEMPLATES`.

    Returns:
        `tf.string` tensor shaped like `class_names`.

    Example:
    >>> fill_random_template("red_circle", [1, 2], ["a photo of a {}."]).numpy()
    b'a photo of a red circle.'
    """
    prefixes, suffixes = validate_templates(templates)
    names = prompt_class_name(class_names)
    index = tf.random.stateless_uniform(
        tf.shape(names), seed=tf.cast(seed, tf.int64), minval=0, maxval=len(prefixes), dtype=tf.int32
    )
    prefix = tf.gather(tf.constant(prefixes), index)
    suffix = tf.gather(tf.constant(suffixes), index)
    return fix_indefinite_articles(tf.strings.join([prefix, names, suffix]))
