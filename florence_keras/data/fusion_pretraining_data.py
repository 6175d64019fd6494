"""Image-text data for fusion pretraining (ITM + MLM): captions CSV or COCO captions JSON, held in memory.

Batches: `{"images": normalised float32 (B, S, S, 3), "token_ids": int32 (B, L), "labels": int64 (B,)}`, one
example per (image, caption) pair; `labels` is the image's index, so two captions of one image in a batch are
positives of each other and never each other's hard negative.
"""

import collections
import json
import os

import numpy as np
import tensorflow as tf

from florence_keras.data.coco_captions import decode_image_file
from florence_keras.data.coco_captions import load_caption_data
from florence_keras.data.coco_captions import resize_image
from florence_keras.data.csv_index import read_csv_index
from florence_keras.data.skip_counter import SkipCounter

_plain = tf.autograph.experimental.do_not_convert


def load_image_captions(paths, image_size, image_root=None, max_images=None, verbose=True):
    """Reads captioned images into memory.

    Args:
        paths: a path or a list of them: `.json` (COCO captions: `images` + `annotations`) or `.csv` / `.tsv`
            (`filepath,caption` with a header; rows of the same image are grouped).
        image_size: int, the square size of the returned images.
        image_root: folder of relative image paths (default: each file's folder).
        max_images: optional int, stop after this many good images (per file).
        verbose: progress bars.

    Returns:
        dict: `images` uint8 `(N, S, S, 3)`, `captions` (list of lists of str), `skip_counter` (bad records by
        reason: the COCO reader's, `empty_caption`, the image decoder's `missing` / `not_an_image` / ...).

    Raises:
        ValueError: an unknown file type, or no usable image.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    counter = SkipCounter(name="fusion pretraining data")
    images, captions = [], []
    for path in map(os.fspath, paths):
        extension = os.path.splitext(path)[1].lower()
        if extension == ".json":
            data = load_caption_data(path, image_size, image_root=image_root, max_images=max_images,
                                     skip_counter=counter, verbose=verbose)
            images.extend(data["images"])
            captions.extend(data["captions"])
        elif extension in (".csv", ".tsv"):
            loaded = _load_csv(path, image_size, image_root, max_images, counter, verbose,
                               "\t" if extension == ".tsv" else ",")
            images.extend(loaded[0])
            captions.extend(loaded[1])
        else:
            raise ValueError(f"Fusion pretraining reads captions .csv/.tsv (filepath,caption) or COCO captions "
                             f".json. Received: {path}")
    if not images:
        raise ValueError(f"No usable captioned image in {paths}. {counter.summary()}")
    return {"images": np.stack(images), "captions": captions, "skip_counter": counter}


def _load_csv(path, image_size, image_root, max_images, counter, verbose, delimiter):
    from tqdm import tqdm

    files, texts = read_csv_index(path, ("filepath", "caption"), delimiter=delimiter, image_root=image_root)
    grouped = collections.OrderedDict()
    for line, (file, text) in enumerate(zip(files, texts), start=2):
        text = " ".join(str(text).split())
        if not text:
            counter.record("empty_caption", f"{path}:{line}")
            continue
        grouped.setdefault(file, []).append(text)
    images, captions = [], []
    for file, group in tqdm(grouped.items(), desc="decoding images", unit="image", disable=not verbose,
                            mininterval=2.0):
        if max_images is not None and len(images) >= max_images:
            break
        try:
            image = decode_image_file(file)
        except ValueError as bad:
            counter.record(str(bad), file)
            continue
        images.append(resize_image(image, image_size))
        captions.append(group)
    if counter.count:
        counter.log_summary()
    return images, captions


def ensure_builtin_captions(directory, num_train, seed=0, image_size=64):
    """The built-in scenes' training split with several captions per scene (`captions_multi`), written once.

    The scenes are `SceneGenerator(seed).scene(i, "train")`, the same images as the built-in VQA training split of
    the same seed (`vqa_builtin.ensure_builtin_vqa_data`): pretraining never sees a held-out scene.

    Returns:
        str, the COCO captions JSON of the training split.
    """
    from florence_keras.data.builtin_dataset import write_builtin_dataset

    settings = {"num_train": num_train, "image_size": image_size, "seed": seed, "formats": ["captions_multi"]}
    marker = os.path.join(directory, "florence_builtin_fusion_settings.json")
    path = os.path.join(directory, "captions_multi_train.json")
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == settings and os.path.exists(path):
                return path
        os.remove(marker)
    write_builtin_dataset(directory, num_train, 0, image_size=image_size, seed=seed, formats=("captions_multi",),
                          verbose=True)
    with open(marker, "w", encoding="utf-8") as f:  # written last: marks a complete dataset
        json.dump(settings, f)
    return path


def caption_pairs(captions):
    """`(image_index int32 (P,), texts list of P str)`: one pair per caption."""
    image_index = np.array([i for i, group in enumerate(captions) for _ in group], np.int32)
    return image_index, [text for group in captions for text in group]


def fusion_pretraining_dataset(images, image_index, token_ids, batch_size, normalize, seed=0, repeat=True,
                               drop_remainder=True):
    """A tf.data stream of pretraining batches (see the module docstring), shuffled (seeded) and repeated.

    Args:
        images: uint8 `(N, S, S, 3)`; image_index: int `(P,)`, the image of each pair; token_ids: int32 `(P, L)`.
        batch_size: int.
        normalize: callable on `(B, S, S, 3)` -> normalised float (the preset converter's `normalizer()`).
        seed: the shuffle seed.
        repeat: True: shuffled and repeated (training); False: one pass in order.
        drop_remainder: bool.
    """
    count = int(len(image_index))
    if count == 0 or count != len(token_ids):
        raise ValueError(f"Need as many (>0) image indices as id rows. Received: {count} and {len(token_ids)}")
    table = tf.constant(images)
    dataset = tf.data.Dataset.from_tensor_slices({"image_index": tf.constant(image_index, tf.int32),
                                                  "token_ids": tf.constant(token_ids, tf.int32)})
    if repeat:
        dataset = dataset.repeat().shuffle(min(count, 16384), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    @_plain
    def finish(batch):
        pixels = tf.gather(table, batch["image_index"])
        return {"images": tf.cast(normalize(tf.cast(pixels, tf.float32)), tf.float32),
                "token_ids": batch["token_ids"], "labels": tf.cast(batch["image_index"], tf.int64)}

    return dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
