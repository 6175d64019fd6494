"""Attention targets for the built-in scenes' VQA questions: where each object a question names is.

`FlorenceVQA(grounding_weight=w)` pulls the fusion's text-to-image attention at a named object's text position
toward that object's image tokens. The built-in scenes know where every object is: the renderer's visible masks.
For each question that names objects of its scene ("is the red circle in front of the blue square?"), this module
gives the text position of each name's last token (the shape word, or "object" in "the cyan object") and a
distribution over the image tokens: the share of the object's visible pixels in each token's cell, each image
scale given an equal share (the summary token none). Measured on the built-in scenes in docs/vqa.md (session 24).
"""

import re

import cv2
import numpy as np

from florence_keras.data import scene as scene_lib
from florence_keras.data.vqa_builtin import builtin_scene

# The built-in question templates (`Scene.questions`, plus the training-only place questions) that name objects,
# and what the named words are: a shape, a colour ("the cyan object") or a full name ("red circle").
_NAMED = (
    (re.compile(r"^is there an? (?P<a>[a-z]+)\?$"), "shape"),
    (re.compile(r"^what colou?r is the (?P<a>[a-z]+)\?$"), "shape"),
    (re.compile(r"^what shape is the (?P<a>[a-z]+) object\?$"), "colour"),
    (re.compile(r"^is the (?P<a>[a-z]+ [a-z]+) in front of the (?P<b>[a-z]+ [a-z]+)\?$"), "name"),
    (re.compile(r"^which side is the (?P<a>[a-z]+ [a-z]+) on\?$"), "name"),
    (re.compile(r"^where is the (?P<a>[a-z]+ [a-z]+)\?$"), "name"),
    (re.compile(r"^is the (?P<a>[a-z]+ [a-z]+) partly hidden\?$"), "name"),
)
_KEYS = {"shape": lambda obj: obj.shape, "colour": lambda obj: obj.colour, "name": lambda obj: obj.name}
MAX_NAMES = 2  # the most objects one built-in question names


def token_targets(mask, grids):
    """A bool mask `(H, W)` -> a distribution `(1 + Σ g²,)` over the image tokens: the summary token 0, then per
    scale (grid side g, cells row-major as `fusion_tokens.grid_cells`) the mask's area share in each cell
    (`cv2.INTER_AREA`), scaled to `1 / len(grids)`. An empty mask gives zeros.

    Example:
    >>> mask = np.zeros((4, 4), bool); mask[:2, :2] = True
    >>> token_targets(mask, [2]).tolist()
    [0.0, 1.0, 0.0, 0.0, 0.0]
    """
    parts = [np.zeros(1, np.float32)]
    area = np.asarray(mask, np.float32)
    for grid in grids:
        cells = cv2.resize(area, (grid, grid), interpolation=cv2.INTER_AREA).reshape(-1)
        total = cells.sum()
        parts.append(cells / total / len(grids) if total > 0 else np.zeros_like(cells))
    return np.concatenate(parts).astype(np.float32)


def builtin_grounding(records, generator, grids, tokenize, question_mask, split="train"):
    """Attention targets for the built-in scenes' records.

    Args:
        records: VQA records (`question`, `image_id`: the scene index + 1, as `write_builtin_dataset` numbers them).
        generator: the `SceneGenerator` that drew the records' scenes (`builtin_scene`).
        grids: the image tokens' grid side per scale (`FlorenceVQA.image_token_grids`).
        tokenize: strings -> token ids `(N, L)` (`FlorenceVQA.tokenize_questions`); question_mask: token ids ->
            validity `(N, L)`, 1 up to and including the end token (`FlorenceVQA.question_mask`).
        split: the records' split.

    Returns:
        dict: `positions` int32 `(N, MAX_NAMES)` (each name's last token; -1: none), `targets` float32
        `(N, MAX_NAMES, 1 + Σ g²)`, `grounded_questions` and `names` (counts). A question no template matches,
        or whose named object is not in the image ("is there a hexagon?" answered no), gets no target.
    """
    tokens = 1 + sum(g * g for g in grids)
    positions = np.full((len(records), MAX_NAMES), -1, np.int32)
    targets = np.zeros((len(records), MAX_NAMES, tokens), np.float32)
    last_token, scenes = {}, {}
    grounded = names = 0
    for row, record in enumerate(records):
        question = record["question"].strip().lower()
        match, kind = next(((m, k) for m, k in ((p.match(question), k) for p, k in _NAMED) if m), (None, None))
        if match is None:
            continue
        image_id = int(record["image_id"])
        if image_id not in scenes:
            scene = builtin_scene(generator, image_id, split)
            scenes[image_id] = (scene.objects, scene_lib.visible_masks(scene.objects, generator.image_size)[0])
        objects, visible = scenes[image_id]
        slot = 0
        for group in ("a", "b"):
            word = match.groupdict().get(group)
            chosen = [mask for obj, mask in zip(objects, visible) if word and _KEYS[kind](obj) == word]
            if not chosen:
                continue
            prefix = question[:match.end(group)] + (" object" if kind == "colour" else "")
            if prefix not in last_token:  # the prefix's tokens: start, its words, end
                last_token[prefix] = int(np.asarray(question_mask(np.asarray(tokenize([prefix]))))[0].sum()) - 2
            positions[row, slot] = last_token[prefix]
            targets[row, slot] = token_targets(np.logical_or.reduce(chosen), grids)
            slot += 1
        grounded += slot > 0
        names += slot
    return {"positions": positions, "targets": targets, "grounded_questions": grounded, "names": names}
