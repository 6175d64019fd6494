"""Zero-shot classification and image-text retrieval on the built-in held-out split."""

import numpy as np

from florence_keras.data.labels import DEFAULT_TEMPLATES
from florence_keras.evaluation import encoded_data
from florence_keras.evaluation import retrieval
from florence_keras.evaluation import zero_shot

# Prompts for zero-shot colour classification [ours].
COLOUR_TEMPLATES = ("a {} object.", "a photo of a {} object.", "a {} shape.", "something {}.")


def evaluate_builtin_heldout(clip, builtin_paths, preset_id, templates=DEFAULT_TEMPLATES, batch_size=64,
                             verbose=True):
    """Scores a model on the built-in held-out split (scenes with unseen shape-colour pairs).

    Args:
        clip: a `FlorenceCLIP`.
        builtin_paths: the dict returned by `florence_keras.data.write_builtin_dataset`.
        preset_id: the preset directory the model was saved to (identifies it in logs/caches).
        templates: zero-shot prompt templates.
        batch_size: images per encoding batch.
        verbose: progress bars.

    Returns:
        dict with `"zero_shot"` (shape classes: top1, top5, mean per-class accuracy, chance, classes,
        images), `"zero_shot_colour"` (colour of the primary object), `"zero_shot_unseen_pairs"`
        (64 colour-shape pairs; the true pair never occurs in training) and `"retrieval"` (R@1/5/10
        both directions, images, texts).
    """
    class_names = list(builtin_paths["class_names"])
    data = encoded_data.encode_labelled_images(
        clip, preset_id, builtin_paths["imagefolder"]["heldout"], "imagefolder", split="heldout",
        batch_size=batch_size, cache_dir=None, verbose=verbose,
    )
    lookup = {name: i for i, name in enumerate(class_names)}
    shapes = [str(name) for name in data["class_names"]]
    labels = np.array([lookup[name] for name in shapes])
    classifier = zero_shot.build_zero_shot_classifier(clip.encode_texts, class_names, templates)
    zs = zero_shot.zero_shot_accuracy(data["features"], labels, classifier, ks=(1, 5), class_names=class_names)
    # Every held-out primary object is an unseen (shape, colour) pair: its colour follows from its shape.
    colour_of = {shape: colour for shape, colour in builtin_paths["heldout_combinations"]}
    colours = sorted(set(colour_of.values()))
    colour_labels = np.array([colours.index(colour_of[name]) for name in shapes])
    colour_classifier = zero_shot.build_zero_shot_classifier(clip.encode_texts, colours, COLOUR_TEMPLATES)
    zc = zero_shot.zero_shot_accuracy(data["features"], colour_labels, colour_classifier, ks=(1,),
                                      class_names=colours)
    pairs = [f"{colour} {shape}" for colour in colours for shape in class_names]
    pair_labels = np.array([pairs.index(f"{colour_of[name]} {name}") for name in shapes])
    pair_classifier = zero_shot.build_zero_shot_classifier(clip.encode_texts, pairs, templates)
    zp = zero_shot.zero_shot_accuracy(data["features"], pair_labels, pair_classifier, ks=(1, 5),
                                      class_names=pairs)
    captions = encoded_data.encode_captioned_images(
        clip, preset_id, builtin_paths["coco"]["heldout"], "coco", split="heldout", batch_size=batch_size,
        cache_dir=None, verbose=verbose,
    )
    text_features = np.asarray(clip.encode_texts([str(c) for c in captions["captions"]]))
    rt = retrieval.retrieval_metrics(captions["image_features"], text_features, captions["text_to_image"],
                                     ks=(1, 5, 10))
    return {
        "zero_shot": {
            "top1": float(zs["top1"]), "top5": float(zs["top5"]),
            "mean_per_class_accuracy": float(zs["mean_per_class_accuracy"]),
            "chance_top1": 1.0 / len(class_names), "classes": len(class_names),
            "images": int(len(labels)), "templates": len(templates),
        },
        "zero_shot_colour": {
            "top1": float(zc["top1"]), "chance_top1": 1.0 / len(colours), "classes": len(colours),
            "images": int(len(labels)), "templates": len(COLOUR_TEMPLATES),
        },
        "zero_shot_unseen_pairs": {
            "top1": float(zp["top1"]), "top5": float(zp["top5"]), "chance_top1": 1.0 / len(pairs),
            "classes": len(pairs), "images": int(len(labels)),
        },
        "retrieval": {key: (float(value) if isinstance(value, (float, np.floating)) else value)
                      for key, value in rt.items()},
    }


def heldout_table(results):
    """A Markdown table of `evaluate_builtin_heldout` results."""
    zs, rt = results["zero_shot"], results["retrieval"]
    rows = [
        ("zero-shot top-1", f"{100 * zs['top1']:.1f}%", f"chance {100 * zs['chance_top1']:.1f}%"),
        ("zero-shot top-5", f"{100 * zs['top5']:.1f}%", f"{zs['classes']} classes, {zs['images']} images"),
        ("zero-shot mean per-class", f"{100 * zs['mean_per_class_accuracy']:.1f}%", f"{zs['templates']} templates"),
    ]
    if "zero_shot_colour" in results:
        zc, zp = results["zero_shot_colour"], results["zero_shot_unseen_pairs"]
        rows += [
            ("zero-shot colour top-1", f"{100 * zc['top1']:.1f}%", f"chance {100 * zc['chance_top1']:.1f}%"),
            ("zero-shot colour+shape top-1", f"{100 * zp['top1']:.1f}%",
             f"{zp['classes']} pairs, all unseen in training; chance {100 * zp['chance_top1']:.1f}%"),
            ("zero-shot colour+shape top-5", f"{100 * zp['top5']:.1f}%", ""),
        ]
    for direction in ("image_to_text", "text_to_image"):
        for k in (1, 5, 10):
            rows.append((f"{direction.replace('_', ' ')} R@{k}", f"{100 * rt[f'{direction}_R@{k}']:.1f}%",
                         f"{rt['num_images']} images, {rt['num_texts']} captions"))
    lines = ["| metric | held-out | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)
