"""One caption set per attribute of the built-in scenes: "a circle", "a red object", "two objects", ...

The built-in data's `attributes_{split}.csv` names each scene's primary object's shape, colour and place and the
number of objects. `write_attribute_captions` turns each attribute into a caption file of its own
(`filepath,caption`, the csv format), so that pretraining can give every attribute batches of its own
(`florence_keras.training.source_mixture`): in a batch where captions differ only by shape, colour cannot answer
the loss. Short captions ("a circle", "two objects") are prompt-augmented by the pipeline like any short text.
"""

import csv
import os

__all__ = ["ATTRIBUTE_CAPTIONS", "attribute_caption", "write_attribute_captions"]

_NUMBER_WORDS = {1: "one object", 2: "two objects", 3: "three objects", 4: "four objects", 5: "five objects"}
_PLACE_WORDS = {"left": "on the left", "middle": "in the middle", "right": "on the right"}


def _article(word):
    return "an" if word[:1].lower() in "aeiou" else "a"


def _shape(row):
    return f"{_article(row['shape'])} {row['shape']}"


def _colour(row):
    return f"{_article(row['colour'])} {row['colour']} object"


def _count(row):
    count = int(row["count"])
    return _NUMBER_WORDS.get(count, f"{count} objects")


def _place(row):
    return f"an object {_PLACE_WORDS[row['place']]}"


# attribute -> caption of an `attributes_{split}.csv` row (the primary object's shape, colour and place; the count).
ATTRIBUTE_CAPTIONS = {"shape": _shape, "colour": _colour, "count": _count, "place": _place}
# Attributes of the primary object alone: in a scene of several objects "a circle" is only true of one of them,
# so by default these captions are written for the one-object scenes only (`single_object_attributes`).
OBJECT_ATTRIBUTES = ("shape", "colour", "place")


def attribute_caption(attribute, row):
    """The caption of one attribute of a scene: `attribute_caption("colour", {"colour": "orange"})` ->
    "an orange object"."""
    if attribute not in ATTRIBUTE_CAPTIONS:
        raise ValueError(f"`attribute` must be one of {sorted(ATTRIBUTE_CAPTIONS)}. Received: {attribute!r}")
    return ATTRIBUTE_CAPTIONS[attribute](row)


def write_attribute_captions(attributes_csv, attributes, out_dir=None, single_object_attributes=OBJECT_ATTRIBUTES):
    """Writes one `filepath,caption` csv per attribute from the built-in `attributes_{split}.csv`.

    Args:
        attributes_csv: path of the attributes file (its `filepath` column is relative to its directory).
        attributes: names from `ATTRIBUTE_CAPTIONS`.
        out_dir: where to write (default: beside `attributes_csv`, so the relative image paths hold). Elsewhere
            the image paths are written absolute.
        single_object_attributes: attributes written for the scenes of one object only (default: those of the
            primary object, `OBJECT_ATTRIBUTES`); the others (the count) for every scene.

    Returns:
        dict attribute -> csv path (`{stem}_{attribute}.csv`, the stem being the attributes file's name without
        `.csv`).
    """
    source_dir = os.path.dirname(os.path.abspath(attributes_csv))
    out_dir = os.path.abspath(out_dir or source_dir)
    with open(attributes_csv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    stem = os.path.splitext(os.path.basename(attributes_csv))[0]
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for attribute in attributes:
        path = os.path.join(out_dir, f"{stem}_{attribute}.csv")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("filepath", "caption"))
            for row in rows:
                if attribute in single_object_attributes and int(row["count"]) != 1:
                    continue
                image = row["filepath"]
                if out_dir != source_dir and not os.path.isabs(image):
                    image = os.path.join(source_dir, image)
                writer.writerow((image, attribute_caption(attribute, row)))
        os.replace(tmp, path)
        paths[attribute] = path
    return paths
