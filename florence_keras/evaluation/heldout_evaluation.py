"""What pretraining on the built-in scenes learned: zero-shot shape, colour, count and place, and retrieval.

Two test sets, both read from disk through the toolkit's loaders (`write_builtin_dataset`'s `captions_multi` COCO
file for the images and their captions, `attributes` CSV for what each image shows):

* the in-distribution test split ("test"): seen shape-colour combinations, images never seen in training.
  Zero-shot shape, colour and place (left / middle / right) of the object in one-object scenes; zero-shot count
  (1-3 objects) on every scene; image<->text retrieval with several captions per image.
* the unseen-combination split ("heldout"): every primary object is a shape-colour pair that never occurs in
  training. Zero-shot shape and 64-way shape+colour of the object in one-object scenes.
* a linear probe of shape (`shape_linear_probe` in "in_distribution"): a logistic regression on the image embeddings
  of the first `probe_train_images` one-object scenes of the training split (its C chosen on a validation fifth of
  them), scored on the test split's one-object scenes: what the embedding holds, whatever the text side learned.

Why one-object scenes for shape, colour and place [ours]: the label of a scene is its primary (nearest) object,
which pixels identify only when objects overlap; with one object the label is what the image shows. Every score
comes with its chance level and the number of images.

Prompts [ours]: each class is the mean of normalised text embeddings of a few prompts with the right article
("a photo of an orange object."); shape prompts are `SHAPE_TEMPLATES`, as a user would write them.
"""

import csv
import os

import numpy as np

from florence_keras.evaluation import encoded_data
from florence_keras.evaluation import features as features_lib
from florence_keras.evaluation import linear_probe
from florence_keras.evaluation import retrieval
from florence_keras.evaluation import zero_shot

SHAPE_TEMPLATES = ("a {}.", "a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a rendering of a {}.")
COLOUR_TEMPLATES = ("a {} object.", "a photo of a {} object.", "something {}.", "a {} shape.")
COUNT_TEMPLATES = ("{}.", "a photo of {}.", "a picture of {}.")
PLACE_TEMPLATES = ("an object {}.", "a photo of an object {}.", "a shape {}.")
PLACES = ("left", "middle", "right")
PLACE_PHRASES = {"left": "on the left", "middle": "in the middle", "right": "on the right"}
COUNT_PHRASES = {1: "one object", 2: "two objects", 3: "three objects"}


def with_articles(template):
    """A template callable that fills `{}` and puts the right indefinite article before a vowel-initial word.

    Example:
    >>> with_articles("a photo of a {} object.")("orange")
    'a photo of an orange object.'
    """

    def fill(name):
        text = template.format(name)
        words = text.split(" ")
        for i in range(len(words) - 1):
            if words[i].lower() in ("a", "an") and words[i + 1]:
                vowel = words[i + 1][0].lower() in "aeiou"
                words[i] = ("An" if words[i][0] == "A" else "an") if vowel else ("A" if words[i][0] == "A" else "a")
        return " ".join(words)

    return fill


def _classifier(clip, class_names, templates, prompt_names=None):
    prompt_names = list(prompt_names or class_names)
    return zero_shot.build_zero_shot_classifier(
        clip.encode_texts, prompt_names, [with_articles(template) for template in templates])


def _score(features, labels, classifier, class_names, ks=(1,)):
    result = zero_shot.zero_shot_accuracy(features, labels, classifier, ks=ks, class_names=list(class_names))
    scores = {f"top{k}": float(result[f"top{k}"]) for k in ks}
    scores.update({"chance_top1": 1.0 / len(class_names), "classes": len(class_names), "images": int(len(labels)),
                   "mean_per_class_accuracy": float(result["mean_per_class_accuracy"])})
    if 5 in ks:
        scores["chance_top5"] = min(5, len(class_names)) / len(class_names)
    return scores


def read_attributes(path):
    """The `attributes_{split}.csv` rows, keyed by image file name (its basename)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return {os.path.basename(row["filepath"]): dict(row, count=int(row["count"])) for row in rows}


def _encode_split(clip, builtin_paths, split, preset_id, batch_size, verbose):
    captions = encoded_data.encode_captioned_images(
        clip, preset_id, builtin_paths["captions_multi"][split], "coco", split=split, batch_size=batch_size,
        cache_dir=None, verbose=verbose,
    )
    attributes = read_attributes(builtin_paths["attributes"][split])
    rows = []
    for source in captions["image_sources"]:
        name = os.path.basename(str(source))
        if name not in attributes:
            raise ValueError(f"{source} has no row in {builtin_paths['attributes'][split]}")
        rows.append(attributes[name])
    return captions, rows


def probe_scores(train_features, train_labels, test_features, test_labels, num_classes):
    """A linear probe's test scores, each with its chance level (`linear_probe.linear_probe_evaluate`'s protocol).

    With too few training examples to split off a validation set (tiny runs), one fit at C = 1 is scored instead
    and `validated` is False.

    Returns:
        dict: `top1`, `chance_top1`, `classes`, `images`, `train_images`, `best_C`, `validated`.
    """
    grid = tuple(10.0**e for e in range(-1, 6))
    try:
        result = linear_probe.linear_probe_evaluate(train_features, train_labels, test_features, test_labels,
                                                    coarse_grid=grid, refine_steps=1, max_iter=300, ks=(1,))
        top1, best_c, validated = result["top1"], result["best_C"], True
    except ValueError as error:
        if "validation" not in str(error):
            raise
        model = linear_probe.fit_logistic_regression(train_features, train_labels, C=1.0)
        top1, best_c, validated = float(np.mean(model.predict(test_features) == test_labels)), 1.0, False
    return {"top1": float(top1), "chance_top1": 1.0 / num_classes, "classes": int(num_classes),
            "images": int(len(test_labels)), "train_images": int(len(train_labels)), "best_C": float(best_c),
            "validated": validated}


def _shape_probe(clip, builtin_paths, shapes, test_features, test_shapes, batch_size, verbose, max_train_images):
    """`probe_scores` of shape: fitted on the first `max_train_images` one-object training scenes."""
    import tensorflow as tf

    from florence_keras.data import image_transforms

    if "train" not in builtin_paths["attributes"]:
        raise ValueError("The shape probe needs the training split's attributes file; write it with "
                         "ensure_builtin_dataset, or pass probe_train_images=0.")
    rows = [row for row in read_attributes(builtin_paths["attributes"]["train"]).values() if row["count"] == 1]
    rows = sorted(rows, key=lambda row: row["filepath"])[:max_train_images]
    files = [os.path.join(builtin_paths["root"], row["filepath"]) for row in rows]
    size = encoded_data.model_image_size(clip)
    dataset = tf.data.Dataset.from_tensor_slices(files).map(
        lambda f: image_transforms.resize_center_crop(tf.io.decode_image(tf.io.read_file(f), channels=3,
                                                                         expand_animations=False), size),
        num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)
    train = features_lib.encode_image_dataset(clip.encode_images, dataset, keep_keys=(), verbose=verbose,
                                              num_batches=-(-len(files) // batch_size))
    labels = np.array([shapes.index(row["shape"]) for row in rows])
    return probe_scores(train["features"], labels, test_features, test_shapes, len(shapes))


def evaluate_builtin(clip, builtin_paths, preset_id, batch_size=64, verbose=True, probe_train_images=2000):
    """Scores a `FlorenceCLIP` on the built-in test splits (see the module docstring).

    Args:
        clip: a `FlorenceCLIP`.
        builtin_paths: the dict of `write_builtin_dataset` / `ensure_builtin_dataset`, with the `attributes` and
            `captions_multi` formats of the "test" and "heldout" splits.
        preset_id: the preset directory the model was saved to (identifies it in logs/caches).
        batch_size: images per encoding batch.
        verbose: progress bars.
        probe_train_images: one-object training scenes the shape probe is fitted on (the first, by file name);
            0 skips the probe.

    Returns:
        dict: `"in_distribution"` with `shape`, `colour`, `count`, `place` and `shape_linear_probe`
        (`probe_scores`'s, when asked); `"unseen_combinations"` with `shape` and `shape_colour` (all pairs);
        `"retrieval"` (R@1/5/10 both directions on the test split). Each score dict holds `top1` (and `top5`
        where asked), `chance_top1`, `classes`, `images`.
    """
    for key in ("attributes", "captions_multi"):
        missing = [split for split in ("test", "heldout") if split not in builtin_paths.get(key, {})]
        if missing:
            raise ValueError(f"The built-in data has no {key!r} file for split(s) {missing}; write it with "
                             "ensure_builtin_dataset (num_test > 0) or write_builtin_dataset(formats=...).")
    shapes = list(builtin_paths["class_names"])
    result = {}

    test, rows = _encode_split(clip, builtin_paths, "test", preset_id, batch_size, verbose)
    features = test["image_features"]
    # The generator's palette where the paths record it (data written before they did: the colours seen).
    colours = sorted(builtin_paths.get("colours") or
                     {row["colour"] for row in rows} | {c for _, c in builtin_paths["heldout_combinations"]})
    single = np.array([row["count"] == 1 for row in rows])
    shape_classifier = _classifier(clip, shapes, SHAPE_TEMPLATES)
    colour_classifier = _classifier(clip, colours, COLOUR_TEMPLATES)
    counts = sorted(COUNT_PHRASES)
    count_classifier = _classifier(clip, counts, COUNT_TEMPLATES, [COUNT_PHRASES[c] for c in counts])
    place_classifier = _classifier(clip, PLACES, PLACE_TEMPLATES, [PLACE_PHRASES[p] for p in PLACES])
    single_rows = [row for row, one in zip(rows, single) if one]
    result["in_distribution"] = {
        "split": "test",
        "shape": _score(features[single], np.array([shapes.index(r["shape"]) for r in single_rows]),
                        shape_classifier, shapes),
        "colour": _score(features[single], np.array([colours.index(r["colour"]) for r in single_rows]),
                         colour_classifier, colours),
        "count": _score(features, np.array([counts.index(r["count"]) for r in rows]), count_classifier,
                        [COUNT_PHRASES[c] for c in counts]),
        "place": _score(features[single], np.array([PLACES.index(r["place"]) for r in single_rows]),
                        place_classifier, PLACES),
    }
    if probe_train_images:
        result["in_distribution"]["shape_linear_probe"] = _shape_probe(
            clip, builtin_paths, shapes, features[single],
            np.array([shapes.index(r["shape"]) for r in single_rows]), batch_size, verbose, probe_train_images)
    text_features = np.asarray(clip.encode_texts([str(c) for c in test["captions"]]))
    rt = retrieval.retrieval_metrics(features, text_features, test["text_to_image"], ks=(1, 5, 10))
    result["retrieval"] = {key: (float(value) if isinstance(value, (float, np.floating)) else value)
                           for key, value in rt.items()}
    result["retrieval"].update(split="test", **retrieval_chance(test["text_to_image"], (1, 5, 10)))

    heldout, rows = _encode_split(clip, builtin_paths, "heldout", preset_id, batch_size, verbose)
    single = np.array([row["count"] == 1 for row in rows])
    single_rows = [row for row, one in zip(rows, single) if one]
    features = heldout["image_features"][single]
    pairs = [f"{colour} {shape}" for colour in colours for shape in shapes]
    pair_classifier = _classifier(clip, pairs, SHAPE_TEMPLATES)
    result["unseen_combinations"] = {
        "split": "heldout",
        "shape": _score(features, np.array([shapes.index(r["shape"]) for r in single_rows]), shape_classifier,
                        shapes),
        "shape_colour": _score(features, np.array([pairs.index(f"{r['colour']} {r['shape']}") for r in single_rows]),
                               pair_classifier, pairs, ks=(1, 5)),
    }
    return result


def retrieval_chance(text_to_image, ks):
    """Recall@k of a random ranking: image->text (an image's own captions among all) and text->image (1 of I).

    Returns:
        dict `chance_image_to_text_R@k` and `chance_text_to_image_R@k` for each k.
    """
    text_to_image = np.asarray(text_to_image)
    num_texts, num_images = text_to_image.size, int(text_to_image.max()) + 1
    own = np.bincount(text_to_image, minlength=num_images)
    chance = {}
    for k in ks:
        # P(no own caption in the first k of a random order) = prod_{j<k} (T - m - j) / (T - j), per image.
        miss = np.ones(num_images)
        for j in range(min(k, num_texts)):
            miss *= np.clip(num_texts - own - j, 0, None) / (num_texts - j)
        chance[f"chance_image_to_text_R@{k}"] = float(np.mean(1.0 - miss))
        chance[f"chance_text_to_image_R@{k}"] = min(k, num_images) / num_images
    return chance


_ROWS = (
    ("in_distribution", "shape", "zero-shot shape", "seen combinations, one-object scenes"),
    ("in_distribution", "colour", "zero-shot colour", "one-object scenes"),
    ("in_distribution", "count", "zero-shot count (1-3 objects)", "every scene"),
    ("in_distribution", "place", "zero-shot place (left/middle/right)", "one-object scenes"),
    ("in_distribution", "shape_linear_probe", "linear probe shape", "one-object scenes; fitted on the train split"),
    ("unseen_combinations", "shape", "zero-shot shape", "unseen shape-colour pairs, one-object scenes"),
    ("unseen_combinations", "shape_colour", "zero-shot shape+colour", "unseen pairs among all pairs"),
)


def builtin_table(results):
    """A Markdown table of `evaluate_builtin` results, each score beside its chance level."""
    lines = ["| split | metric | score | chance | images | note |", "|---|---|---|---|---|---|"]
    for part, key, name, note in _ROWS:
        if key not in results[part]:
            continue
        score = results[part][key]
        label = "in-distribution test" if part == "in_distribution" else "unseen combinations"
        lines.append(f"| {label} | {name} top-1 ({score['classes']}-way) | {100 * score['top1']:.1f}% | "
                     f"{100 * score['chance_top1']:.1f}% | {score['images']} | {note} |")
        if "top5" in score:
            lines.append(f"| {label} | {name} top-5 | {100 * score['top5']:.1f}% | {100 * score['chance_top5']:.1f}% "
                         f"| {score['images']} | |")
    rt = results["retrieval"]
    for direction in ("image_to_text", "text_to_image"):
        for k in (1, 5, 10):
            chance = rt[f"chance_{direction}_R@{k}"]
            lines.append(f"| in-distribution test | {direction.replace('_', ' ')} R@{k} | "
                         f"{100 * rt[f'{direction}_R@{k}']:.1f}% | {100 * chance:.1f}% | {rt['num_images']} | "
                         f"{rt['num_texts']} captions |")
    return "\n".join(lines)
