"""Colour-permuted copies of VQA training images, for the questions whose answer does not depend on colour.

A model trained on scenes where shapes come in some colours only learns "hexagon" partly as "a hexagon in the
colours I saw". Held-out data with shape-colour pairs never seen in training (CLEVR-CoGenT; the built-in held-out
split) then fails where it matters: on the built-in split "is there a hexagon?" was right for 84% of the objects of
an unseen pair that share the scene with others, against 99% for a lone one (session 22). Showing each training
image once more with its RGB channels permuted gives the colour-free questions ("is there a hexagon?") new colours
on the same shapes. A question or an answer that names a colour is never copied: its answer would change with the
colours. Training only; nothing changes at inference."""

import itertools
import re

import numpy as np

from florence_keras.data import scene as scene_lib

# Colour names of VQA v2's frequent colour answers, the built-in palettes, and the words that ask about colour [ours].
COLOUR_WORDS = frozenset({
    "color", "colour", "colors", "colours", "colored", "coloured", "colorful", "colourful", "multicolored",
    "multicoloured", "multicolor", "multicolour", "hue", "shade", "tint", "rainbow",
    "white", "black", "red", "blue", "green", "yellow", "brown", "gray", "grey", "orange", "pink", "purple",
    "silver", "tan", "beige", "gold", "golden", "cream", "maroon", "navy", "teal", "turquoise", "lime", "magenta",
    "cyan", "violet", "khaki", "copper", "bronze", "blonde", "brunette", "burgundy", "lavender", "indigo", "olive",
    "peach", "aqua", "crimson", "ivory",
} | set(scene_lib.COLOURS) | set(scene_lib.ALT_COLOURS))

# The five orders of the RGB channels other than the identity.
CHANNEL_PERMUTATIONS = tuple(p for p in itertools.permutations(range(3)) if p != (0, 1, 2))

_WORD = re.compile(r"[a-z]+")


def names_colour(text):
    """Whether `text` (a question or an answer) contains a colour word of `COLOUR_WORDS` (case-insensitive)."""
    return any(word in COLOUR_WORDS for word in _WORD.findall(text.lower()))


def is_colour_free(record):
    """Whether a VQA record's answer cannot depend on colour: neither its question nor any of its answers names a
    colour. A record without answers (a test question) is not: there is nothing to train on."""
    answers = record.get("answers") or ()
    return bool(answers) and not names_colour(record["question"]) and not any(names_colour(a) for a in answers)


def add_colour_permuted_copies(images, image_index, records, copies=1, seed=0, answer_types=None):
    """Appends `copies` channel-permuted copies of every image that has a colour-free question, with those
    questions.

    Args:
        images: uint8 `(M, S, S, 3)`, the distinct images.
        image_index: int `(N,)`, each record's row in `images`.
        records: list of N VQA records (`question`, `answers`, ...).
        copies: int in 0..5, copies per image, each with a different order, drawn from the 5 non-identity ones.
        seed: int, the permutations' seed.
        answer_types: optional collection of answer types (`"yes/no"`, `"number"`, `"other"`): only colour-free
            questions of these types are copied (records without an `answer_type` count as `"unknown"`). None:
            every type.

    Returns:
        dict: `images` `(M + A, S, S, 3)`, `image_index` `(N + Q,)`, `records` (N + Q; the copies' records are the
        originals with `colour_permutation` set to the channel order), `added_images` A, `added_questions` Q.
    """
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) \
            or not 0 <= copies <= len(CHANNEL_PERMUTATIONS):
        raise ValueError(f"`copies` must be in 0..{len(CHANNEL_PERMUTATIONS)} (the non-identity channel orders). "
                         f"Received: copies={copies}")
    image_index = np.asarray(image_index, np.int32)
    if len(image_index) != len(records):
        raise ValueError(f"`image_index` has {len(image_index)} rows for {len(records)} records.")
    free = {}
    for position, record in enumerate(records):
        if (answer_types is None or record.get("answer_type", "unknown") in answer_types) and is_colour_free(record):
            free.setdefault(int(image_index[position]), []).append(position)
    rng = np.random.default_rng(seed)
    used = {source: [] for source in free}
    new_images, new_index, new_records = [], [], []
    row = len(images)
    for _ in range(copies):
        for source in sorted(free):
            # The first copy draws from all five orders; each later one from those its image has not had yet.
            left = [order for order in CHANNEL_PERMUTATIONS if order not in used[source]]
            order = left[int(rng.integers(len(left)))]
            used[source].append(order)
            new_images.append(np.asarray(images[source])[..., list(order)])
            for position in free[source]:
                new_records.append(dict(records[position], colour_permutation=list(order)))
                new_index.append(row)
            row += 1
    if not new_images:
        return {"images": images, "image_index": image_index, "records": list(records), "added_images": 0,
                "added_questions": 0}
    return {"images": np.concatenate([np.asarray(images), np.stack(new_images)]),
            "image_index": np.concatenate([image_index, np.asarray(new_index, np.int32)]),
            "records": list(records) + new_records, "added_images": len(new_images),
            "added_questions": len(new_records)}
