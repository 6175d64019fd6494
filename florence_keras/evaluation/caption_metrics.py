"""COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr) computed by `pycocoevalcap`, the COCO caption toolkit.

Nothing here re-implements a metric: references and candidates are tokenized by the toolkit's `PTBTokenizer`
(Stanford CoreNLP's PTB tokenizer, lower-cased, punctuation removed) and scored by its `Bleu(4)`, `Meteor()`,
`Rouge()` and `Cider()` (CIDEr-D, document frequencies from the references of the scored set, as `COCOEvalCap`
does). SPICE is not computed (it downloads Stanford CoreNLP models at first use).

Java: `PTBTokenizer` and `Meteor` run the Java jars bundled with the package (`java` on PATH, Java 8 or newer).
Without Java, METEOR is skipped (reported as None) and captions are tokenized by `simple_ptb_tokenize` (lower-case,
PTB punctuation removed, split on spaces — close to the PTB tokenizer on plain captions, not identical); the
result's `java` and `tokenizer` fields say which path ran, and a warning says so plainly.
"""

import logging
import re
import shutil

logger = logging.getLogger(__name__)

METRIC_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
JAVA_MISSING = ("Java was not found on PATH: pycocoevalcap's METEOR and PTB tokenizer run Java jars (install a "
                "JRE, e.g. `apt-get install default-jre-headless`). METEOR is skipped and captions are tokenized by "
                "a Python approximation of the PTB tokenizer.")
# The punctuation pycocoevalcap's PTBTokenizer drops after tokenizing.
_PTB_PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
                    "...", ";"}


def java_available():
    """Whether a `java` executable is on PATH."""
    return shutil.which("java") is not None


def simple_ptb_tokenize(captions):
    """The no-Java fallback of `PTBTokenizer.tokenize`: `{id: [{"caption": str}]}` -> `{id: [str]}`."""
    out = {}
    for key, entries in captions.items():
        out[key] = []
        for entry in entries:
            text = re.sub(r"([.,!?;:\"()])", r" \1 ", entry["caption"].lower())
            out[key].append(" ".join(t for t in text.split() if t not in _PTB_PUNCTUATION and t not in "\"()"))
    return out


def score_captions(references, candidates, use_java=None):
    """Scores candidate captions against references with pycocoevalcap.

    Args:
        references: dict image_id -> list of reference captions (str).
        candidates: dict image_id -> the generated caption (str); the same ids as `references`.
        use_java: None (use Java when found), or bool to force a path (False: the no-Java path, for tests).

    Returns:
        dict: the `METRIC_NAMES` scores (floats in the toolkit's scale: BLEU/METEOR/ROUGE-L in [0, 1], CIDEr in
        [0, 10]; METEOR None without Java), `num_images`, `java` (bool), `tokenizer` (`"PTBTokenizer"` or
        `"simple_ptb_tokenize"`), `per_image` (image_id -> {"BLEU-4", "CIDEr"}).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if set(references) != set(candidates):
        raise ValueError(f"References and candidates must have the same image ids; {len(set(references) ^ set(candidates))} "
                         "differ.")
    if not references:
        raise ValueError("Nothing to score: no image.")
    for key, texts in references.items():
        if not texts:
            raise ValueError(f"Image {key!r} has no reference caption.")
    java = java_available() if use_java is None else bool(use_java)
    if not java:
        logger.warning(JAVA_MISSING)
    ids = list(references)
    gts = {i: [{"caption": str(t)} for t in references[key]] for i, key in enumerate(ids)}
    res = {i: [{"caption": str(candidates[key])}] for i, key in enumerate(ids)}
    if java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tokenizer = PTBTokenizer()
        gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
    else:
        gts, res = simple_ptb_tokenize(gts), simple_ptb_tokenize(res)
    bleu, bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, cider_per_image = Cider().compute_score(gts, res)
    meteor = None
    if java:
        from pycocoevalcap.meteor.meteor import Meteor

        scorer = Meteor()
        meteor, _ = scorer.compute_score(gts, res)
        del scorer  # its `__del__` stops the Java process
    scores = {f"BLEU-{n + 1}": float(bleu[n]) for n in range(4)}
    scores.update({"METEOR": None if meteor is None else float(meteor), "ROUGE-L": float(rouge),
                   "CIDEr": float(cider)})
    return dict(scores, num_images=len(ids), java=java, tokenizer="PTBTokenizer" if java else "simple_ptb_tokenize",
                per_image={key: {"BLEU-4": float(bleu_per_image[3][i]), "CIDEr": float(cider_per_image[i])}
                           for i, key in enumerate(ids)})

