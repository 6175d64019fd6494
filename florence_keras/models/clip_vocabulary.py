"""The CLIP byte-level BPE vocabulary shipped with florence_keras.

`assets/clip_bpe_vocab_16e6.txt.gz` is OpenAI CLIP's `bpe_simple_vocab_16e6.txt.gz`
as redistributed (MIT licence, see `assets/LICENSE.open_clip.txt`) in the
open-clip-torch 3.3.0 wheel. The vocabulary is derived from it exactly as CLIP
does: 256 byte symbols, the same with `</w>`, one token per merge (48,894), and
the two special tokens — 49,408 tokens.
"""

import functools
import gzip
import os

ASSET = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "clip_bpe_vocab_16e6.txt.gz")
NUM_MERGES = 49152 - 256 - 2
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"


def bytes_to_unicode():
    """CLIP/GPT-2's reversible map from the 256 byte values to printable characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


@functools.lru_cache(maxsize=1)
def clip_vocabulary_and_merges(path=ASSET):
    """Returns `(vocabulary dict token -> id, merges list of "a b" strings)`."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : NUM_MERGES + 1]
    if len(merges) != NUM_MERGES:
        raise ValueError(f"{path}: expected {NUM_MERGES} merges, found {len(merges)}.")
    symbols = [bytes_to_unicode()[b] for b in sorted(bytes_to_unicode())]
    # CLIP orders the byte symbols as bytes_to_unicode().values() iterates:
    # printable bytes first (in byte order), then the remapped ones.
    mapping = bytes_to_unicode()
    printable = [b for b in range(256) if mapping[b] == chr(b)]
    rest = [b for b in range(256) if mapping[b] != chr(b)]
    symbols = [mapping[b] for b in printable + rest]
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m.split(" ")) for m in merges]
    tokens += [START_TOKEN, END_TOKEN]
    return {t: i for i, t in enumerate(tokens)}, list(merges)
