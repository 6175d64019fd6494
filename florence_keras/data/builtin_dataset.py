"""Writes the built-in procedural dataset (`SceneGenerator`) to disk in the standard formats.

Every format holds the same JPEG bytes and the same caption per image, so reading any of them back through the
real loaders gives identical examples. Layout under `out_dir` (`{split}` is `train`, `heldout` or `test`):

    images/{split}/{split}_000000.jpg          the images (always written)
    {split}.csv                                 csv: filepath,caption (paths relative to out_dir)
    {split}_labels.csv                          csvlabel: filepath,label (the primary object's class)
    captions_{split}.json                       coco: COCO captions (file_name relative to out_dir)
    imagefolder/{split}/{class}/...jpg          imagefolder (hard links to images/)
    wds/{split}-000000.tar                      wds: key.jpg + key.txt
    tfrecord/{split}-00000-of-00004.tfrecord    tfrecord: image/encoded + caption
    instances_{split}.json                      instances: COCO instances (boxes, RLE masks, attributes)
    attributes_{split}.csv                      attributes: filepath,shape,colour,size,place,count,caption_style
                                                (the primary object's attributes and the number of objects)
    captions_multi_{split}.json                 captions_multi: COCO captions, several per image
                                                (`MULTI_CAPTION_STYLES`: retrieval with several captions per image)
    depth/{split}/..png, depth_{split}.csv      depth: 16-bit PNG depth (millimetres), filepath,depth pairs
    dense_labels/{split}/{split}_000000.png     dense_labels: what is where per pixel (`scene.dense_label_map`:
                                                occlusion code, shape index + 1, colour index + 1), beside no index:
                                                `dense_label_path` finds an image's map from its path
    vqa/questions_{split}.json, vqa/annotations_{split}.json   vqa: VQA v2 layout (+ an "images" list)
    video/{split}/{label}/..avi, video_{split}.csv             video (not default): MJPG clips, path,label
    video_captions_{split}.csv                                  video: the clips' captions, filepath,caption
    builtin_info.json                           classes, colours, held-out combinations, counts, seed
"""

import csv
import io
import json
import os
import shutil
import tarfile

import cv2
import numpy as np
import tensorflow as tf

from florence_keras.data import scene as scene_lib
from florence_keras.data import scene_generator as generator_lib
from florence_keras.data.tfrecord_example import make_image_text_example

FORMATS = ("csv", "csvlabel", "coco", "imagefolder", "wds", "tfrecord", "instances", "depth", "vqa", "video",
           "attributes", "captions_multi", "dense_labels")
DEFAULT_FORMATS = tuple(name for name in FORMATS if name != "video")
# The formats `ensure_builtin_dataset` writes (pretraining, its evaluation and the evaluation recipes).
ENSURED_FORMATS = ("csv", "coco", "imagefolder", "tfrecord", "attributes", "captions_multi", "dense_labels")
# Caption styles of `captions_multi` [ours]: the specific ones (size and place; count and relation; every object).
# The generic styles ("a circle", "a red object") are left out: identical on many images, they make text->image
# recall ill-posed.
MULTI_CAPTION_STYLES = ("photo", "count", "objects")
ATTRIBUTE_COLUMNS = ("filepath", "shape", "colour", "size", "place", "count", "caption_style")
# An image's dense label map from its path: `images/{split}/{name}.jpg` (or its `imagefolder/{split}/{class}/` link)
# -> `dense_labels/{split}/{name}.png` (RE2 syntax, for `tf.strings.regex_replace`).
_DENSE_LABEL_PATTERN = r"^(.*/)?(?:images|imagefolder)/(train|heldout|test)/(?:[^/]+/)?([^/]+)\.jpg$"
_DENSE_LABEL_REWRITE = r"\1dense_labels/\2/\3.png"


def dense_label_path(image_paths):
    """The built-in dense label map (`dense_labels` format) of each built-in image path.

    Args:
        image_paths: str or `tf.string` tensor of image paths (`images/...` or `imagefolder/...` of the built-in data).

    Returns:
        `tf.string` tensor of the same shape; a path that is not a built-in image's comes back unchanged.

    Example:
    >>> dense_label_path("/data/images/train/train_000007.jpg").numpy()
    b'/data/dense_labels/train/train_000007.png'
    """
    return tf.strings.regex_replace(tf.convert_to_tensor(image_paths, tf.string), _DENSE_LABEL_PATTERN,
                                    _DENSE_LABEL_REWRITE)


def dense_label_classes(paths):
    """Classes per channel of the dense label maps of the built-in data whose `write_builtin_dataset` result
    (or `ensure_builtin_dataset`'s) is `paths`: (occlusion 3, shapes + 1, colours + 1)."""
    return (scene_lib.DENSE_OCCLUSION_CLASSES, len(paths["class_names"]) + 1, len(paths["colours"]) + 1)


def _write_json(path, document):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, separators=(",", ":"))


def _write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _link(source, target):
    if os.path.lexists(target):
        os.remove(target)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _rle(mask):
    """Uncompressed COCO RLE (column-major run lengths, starting with a run of zeros)."""
    flat = np.asarray(mask, np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def _shard_ranges(count, num_shards):
    num_shards = max(1, min(num_shards, count))
    edges = np.linspace(0, count, num_shards + 1).round().astype(int)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(num_shards)]


def _add_tar_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _write_split(out_dir, split, count, generator, formats, num_shards, jpeg_quality, num_clips, clip_frames,
                 progress):
    paths = {}
    names = [f"{split}_{i:06d}" for i in range(count)]
    image_files = [f"images/{split}/{name}.jpg" for name in names]
    os.makedirs(os.path.join(out_dir, "images", split), exist_ok=True)
    captions, classes, encoded = [], [], []
    instances, questions, answers, depth_rows = [], [], [], []
    attribute_rows, multi_captions = [], []
    for index, name in enumerate(names):
        scene = generator.scene(index, split)
        ok, jpeg = cv2.imencode(".jpg", scene.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise RuntimeError(f"cv2 could not encode image {name}")
        jpeg = jpeg.tobytes()
        with open(os.path.join(out_dir, image_files[index]), "wb") as f:
            f.write(jpeg)
        encoded.append(jpeg)
        captions.append(scene.caption)
        classes.append(scene.primary.shape)
        image_id = index + 1
        if "attributes" in formats:
            primary = scene.primary
            attribute_rows.append((image_files[index], primary.shape, primary.colour, primary.size,
                                   scene_lib.horizontal_place(primary, generator.image_size), len(scene.objects),
                                   scene.caption_style))
        if "captions_multi" in formats:
            texts = list(dict.fromkeys(scene.captions[style] for style in MULTI_CAPTION_STYLES))
            multi_captions.extend((image_id, text) for text in texts)
        if "instances" in formats:
            for k, (obj, mask) in enumerate(zip(scene.objects, scene.masks)):
                instances.append({
                    "id": image_id * 10 + k,
                    "image_id": image_id,
                    "category_id": generator.shapes.index(obj.shape) + 1,
                    "bbox": [float(v) for v in obj.box],
                    "area": float(obj.area),
                    "iscrowd": 0,
                    "segmentation": _rle(mask),
                    "attributes": {"colour": obj.colour, "size": obj.size, "depth": round(obj.depth, 4)},
                })
        if "vqa" in formats:
            for k, qa in enumerate(scene.questions()):
                question_id = image_id * 100 + k
                questions.append({"image_id": image_id, "question": qa["question"], "question_id": question_id})
                answers.append({
                    "question_id": question_id,
                    "image_id": image_id,
                    "question_type": qa["question_type"],
                    "answer_type": qa["answer_type"],
                    "multiple_choice_answer": qa["answer"],
                    "answers": [
                        {"answer": qa["answer"], "answer_confidence": "yes", "answer_id": j + 1} for j in range(10)
                    ],
                })
        if "depth" in formats:
            depth_file = f"depth/{split}/{name}.png"
            os.makedirs(os.path.join(out_dir, "depth", split), exist_ok=True)
            if not cv2.imwrite(os.path.join(out_dir, depth_file), scene.depth_png16()):
                raise RuntimeError(f"cv2 could not write {depth_file}")
            depth_rows.append((image_files[index], depth_file))
        if "dense_labels" in formats:
            label_file = f"dense_labels/{split}/{name}.png"
            os.makedirs(os.path.join(out_dir, "dense_labels", split), exist_ok=True)
            label_map = scene_lib.dense_label_map(scene.objects, generator.image_size, generator.shapes,
                                                  generator.colours)
            if not cv2.imwrite(os.path.join(out_dir, label_file), label_map[:, :, ::-1]):  # cv2 writes BGR
                raise RuntimeError(f"cv2 could not write {label_file}")
        if progress is not None:
            progress.update(1)

    images = [
        {"id": i + 1, "file_name": image_files[i], "width": generator.image_size, "height": generator.image_size}
        for i in range(count)
    ]
    if "csv" in formats:
        paths["csv"] = os.path.join(out_dir, f"{split}.csv")
        _write_csv(paths["csv"], ("filepath", "caption"), zip(image_files, captions))
    if "csvlabel" in formats:
        paths["csvlabel"] = os.path.join(out_dir, f"{split}_labels.csv")
        _write_csv(paths["csvlabel"], ("filepath", "label"), zip(image_files, classes))
    if "coco" in formats:
        paths["coco"] = os.path.join(out_dir, f"captions_{split}.json")
        _write_json(paths["coco"], {
            "info": {"description": f"florence_keras built-in scenes, {split} split"},
            "licenses": [],
            "images": images,
            "annotations": [
                {"id": i + 1, "image_id": i + 1, "caption": caption} for i, caption in enumerate(captions)
            ],
        })
    if "dense_labels" in formats:
        paths["dense_labels"] = os.path.join(out_dir, "dense_labels", split)
    if "attributes" in formats:
        paths["attributes"] = os.path.join(out_dir, f"attributes_{split}.csv")
        _write_csv(paths["attributes"], ATTRIBUTE_COLUMNS, attribute_rows)
    if "captions_multi" in formats:
        paths["captions_multi"] = os.path.join(out_dir, f"captions_multi_{split}.json")
        _write_json(paths["captions_multi"], {
            "info": {"description": f"florence_keras built-in scenes, {split} split, captions of the styles "
                                    f"{', '.join(MULTI_CAPTION_STYLES)}"},
            "licenses": [],
            "images": images,
            "annotations": [
                {"id": i + 1, "image_id": image_id, "caption": text}
                for i, (image_id, text) in enumerate(multi_captions)
            ],
        })
    if "imagefolder" in formats:
        root = os.path.join(out_dir, "imagefolder", split)
        shutil.rmtree(root, ignore_errors=True)  # no class folders or links left from data written before
        for class_name in generator.class_names:
            os.makedirs(os.path.join(root, class_name), exist_ok=True)
        for i, class_name in enumerate(classes):
            _link(os.path.join(out_dir, image_files[i]), os.path.join(root, class_name, f"{names[i]}.jpg"))
        paths["imagefolder"] = root
    if "wds" in formats:
        os.makedirs(os.path.join(out_dir, "wds"), exist_ok=True)
        paths["wds"] = []
        for shard, (start, stop) in enumerate(_shard_ranges(count, num_shards)):
            shard_path = os.path.join(out_dir, "wds", f"{split}-{shard:06d}.tar")
            with tarfile.open(shard_path, "w", format=tarfile.USTAR_FORMAT) as tar:
                for i in range(start, stop):
                    _add_tar_member(tar, f"{names[i]}.jpg", encoded[i])
                    _add_tar_member(tar, f"{names[i]}.txt", captions[i].encode("utf-8"))
            paths["wds"].append(shard_path)
    if "tfrecord" in formats:
        os.makedirs(os.path.join(out_dir, "tfrecord"), exist_ok=True)
        paths["tfrecord"] = []
        ranges = _shard_ranges(count, num_shards)
        for shard, (start, stop) in enumerate(ranges):
            shard_path = os.path.join(out_dir, "tfrecord", f"{split}-{shard:05d}-of-{len(ranges):05d}.tfrecord")
            with tf.io.TFRecordWriter(shard_path) as writer:
                for i in range(start, stop):
                    writer.write(make_image_text_example(encoded[i], caption=captions[i]))
            paths["tfrecord"].append(shard_path)
    if "instances" in formats:
        paths["instances"] = os.path.join(out_dir, f"instances_{split}.json")
        _write_json(paths["instances"], {
            "info": {"description": f"florence_keras built-in scenes, {split} split; bbox = visible pixels"},
            "licenses": [],
            "images": images,
            "annotations": instances,
            "categories": [
                {"id": k + 1, "name": shape, "supercategory": "shape"} for k, shape in enumerate(generator.shapes)
            ],
        })
    if "depth" in formats:
        paths["depth"] = os.path.join(out_dir, f"depth_{split}.csv")
        _write_csv(paths["depth"], ("filepath", "depth"), depth_rows)
    if "vqa" in formats:
        os.makedirs(os.path.join(out_dir, "vqa"), exist_ok=True)
        header = {"info": {"description": f"florence_keras built-in scenes, {split} split"}, "license": {},
                  "data_type": "builtin", "data_subtype": split}
        paths["vqa"] = {
            "questions": os.path.join(out_dir, "vqa", f"questions_{split}.json"),
            "annotations": os.path.join(out_dir, "vqa", f"annotations_{split}.json"),
        }
        _write_json(paths["vqa"]["questions"], {**header, "task_type": "Open-Ended", "questions": questions,
                                                "images": images})
        _write_json(paths["vqa"]["annotations"], {**header, "annotations": answers})
    if "video" in formats:
        paths["video"] = _write_clips(out_dir, split, generator, count if num_clips is None else num_clips,
                                      clip_frames)
    return paths, captions


def _write_clips(out_dir, split, generator, count, num_frames):
    rows, captions = [], []
    for index in range(count):
        clip = generator.clip(index, num_frames, split)
        label_dir = clip.label.replace(" ", "_")
        relative = f"video/{split}/{label_dir}/{split}_{index:06d}.avi"
        target = os.path.join(out_dir, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        size = generator.image_size
        writer = cv2.VideoWriter(target, cv2.VideoWriter_fourcc(*"MJPG"), 8.0, (size, size))
        if not writer.isOpened():
            raise RuntimeError(f"cv2.VideoWriter could not open {target} (MJPG)")
        for frame in clip.frames:
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
        writer.release()
        rows.append((relative, clip.label))
        captions.append((relative, clip.caption))
    path = os.path.join(out_dir, f"video_{split}.csv")
    _write_csv(path, ("path", "label"), rows)
    # Text-video pairs ("a red circle moving left") beside the class-per-folder tree.
    _write_csv(os.path.join(out_dir, f"video_captions_{split}.csv"), ("filepath", "caption"), captions)
    return path


def write_builtin_dataset(out_dir, num_train, num_heldout, image_size=64, seed=0, formats=DEFAULT_FORMATS,
                          num_shards=4, jpeg_quality=95, num_clips=None, clip_frames=8, verbose=False, num_test=0,
                          caption_style_probabilities=None, layout="flat", clip_distractor_speed=1.0,
                          palette="default", shapes=None):
    """Generates the built-in scenes and writes them in the standard on-disk formats.

    Args:
        out_dir: str, the output directory (created; existing files of the same names are overwritten).
        num_train: int >= 1, training images.
        num_heldout: int >= 0, held-out images (their primary objects have held-out (shape, colour) combinations).
        image_size: int >= 32, image side.
        seed: int, the dataset seed.
        formats: subset of `FORMATS`; default every format except `video`.
        num_shards: tar / TFRecord shards per split (fewer if there are fewer images).
        jpeg_quality: int in 1..100.
        num_clips: clips per split for `video` (default: as many as images).
        clip_frames: frames per clip.
        verbose: show a progress bar.
        num_test: int >= 0, in-distribution test images (seen combinations, images never in the training split).
        caption_style_probabilities: the caption mix (see `SceneGenerator`); None: its default.
        layout: `"flat"` (default) or `"ground_plane"` (depth visible in the image; see `SceneGenerator`).
        clip_distractor_speed: the other objects' speed in `video` clips (see `SceneGenerator`; 1.0: today's).
        palette, shapes: the colours (a name of `scene.PALETTES` or a dict name -> RGB) and the shapes drawn (None:
            all); see `SceneGenerator`. The defaults write today's data.

    Returns:
        dict: `root`, `info` (builtin_info.json), `class_names`, `colours`, `heldout_combinations`, and per format a
        dict split -> path (a list of shards for `wds` / `tfrecord`; `{"questions", "annotations"}` for `vqa`).

    Example:
    >>> import tempfile
    >>> paths = write_builtin_dataset(tempfile.mkdtemp(), num_train=8, num_heldout=4, formats=("csv", "wds"))
    >>> os.path.basename(paths["csv"]["train"]), len(paths["wds"]["heldout"])
    ('train.csv', 4)
    """
    formats = tuple(formats)
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ValueError(f"Unknown format(s) {unknown}; expected a subset of {FORMATS}. Received: formats={formats}")
    if not isinstance(num_train, int) or num_train < 1:
        raise ValueError(f"`num_train` must be an int >= 1. Received: num_train={num_train!r}")
    if not isinstance(num_heldout, int) or num_heldout < 0:
        raise ValueError(f"`num_heldout` must be an int >= 0. Received: num_heldout={num_heldout!r}")
    if not isinstance(num_test, int) or num_test < 0:
        raise ValueError(f"`num_test` must be an int >= 0. Received: num_test={num_test!r}")
    if not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
        raise ValueError(f"`jpeg_quality` must be an int in 1..100. Received: jpeg_quality={jpeg_quality!r}")
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"`num_shards` must be an int >= 1. Received: num_shards={num_shards!r}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    generator = generator_lib.SceneGenerator(image_size=image_size, seed=seed,
                                             caption_style_probabilities=caption_style_probabilities,
                                             layout=layout, clip_distractor_speed=clip_distractor_speed,
                                             palette=palette, shapes=shapes)
    progress = None
    if verbose:
        from tqdm import tqdm  # local: only for the progress bar

        progress = tqdm(total=num_train + num_heldout + num_test, desc="built-in scenes", unit="img")
    result = {
        "root": out_dir,
        "class_names": generator.class_names,
        "colours": list(generator.colours),
        "heldout_combinations": [list(pair) for pair in generator.heldout_combinations],
    }
    counts = {}
    for split, count in (("train", num_train), ("heldout", num_heldout), ("test", num_test)):
        if count == 0:
            continue
        split_paths, captions = _write_split(out_dir, split, count, generator, formats, num_shards, jpeg_quality,
                                             num_clips, clip_frames, progress)
        for name, path in split_paths.items():
            result.setdefault(name, {})[split] = path
        counts[split] = {"images": count, "distinct_captions": len(set(captions))}
    if progress is not None:
        progress.close()
    info = {
        "generator": "florence_keras.data.SceneGenerator",
        "seed": seed,
        "image_size": image_size,
        "classes": generator.class_names,
        "colours": list(generator.colours),
        "colour_rgb": {name: list(rgb) for name, rgb in generator.palette.items()},
        "heldout_combinations": result["heldout_combinations"],
        "caption_style_probabilities": generator.caption_style_probabilities,
        "depth_png_scale": scene_lib.DEPTH_PNG_SCALE,
        "layout": layout,
        "formats": list(formats),
        "splits": counts,
    }
    result["info"] = os.path.join(out_dir, "builtin_info.json")
    with open(result["info"], "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    return result


# In-distribution test images that `ensure_builtin_dataset` writes unless told otherwise.
DEFAULT_NUM_TEST = 1000


def ensure_builtin_dataset(directory, num_train, num_heldout, image_size, seed, num_test=DEFAULT_NUM_TEST,
                           caption_style_probabilities=None, palette="default", shapes=None):
    """Writes the built-in dataset once (`ENSURED_FORMATS`); reuses it when the same settings were written before.
    Pretraining, fine-tuning and the evaluation recipes share it through `--builtin_dir`.

    Args:
        directory: where the data goes.
        num_train, num_heldout, num_test: images of the training, held-out (unseen combinations) and
            in-distribution test splits.
        image_size: image side.
        seed: dataset seed.
        caption_style_probabilities: the caption mix (see `SceneGenerator`); None: its default.
        palette, shapes: the colours and shapes drawn (see `SceneGenerator`; the defaults: today's data).

    Returns:
        The paths dict of `write_builtin_dataset`.
    """
    generator = generator_lib.SceneGenerator(
        image_size=max(int(image_size), 32), caption_style_probabilities=caption_style_probabilities,
        palette=palette, shapes=shapes,
    )
    styles = generator.caption_style_probabilities
    settings = {"num_train": num_train, "num_heldout": num_heldout, "num_test": num_test, "image_size": image_size,
                "seed": seed, "caption_style_probabilities": styles, "formats": list(ENSURED_FORMATS)}
    default = (tuple(generator.palette.items()) == tuple(scene_lib.COLOURS.items())
               and generator.shapes == scene_lib.SHAPES)
    if not default:  # the default data keeps its marker (and so its written files)
        settings.update(palette={name: list(rgb) for name, rgb in generator.palette.items()},
                        shapes=list(generator.shapes))
    marker = os.path.join(directory, "florence_builtin_settings.json")
    paths_file = os.path.join(directory, "florence_builtin_paths.json")
    if os.path.exists(marker) and os.path.exists(paths_file):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == settings:
                with open(paths_file, encoding="utf-8") as g:
                    return json.load(g)
    paths = write_builtin_dataset(directory, num_train, num_heldout, image_size=image_size, seed=seed,
                                  formats=ENSURED_FORMATS, verbose=True, num_test=num_test,
                                  caption_style_probabilities=caption_style_probabilities, palette=palette,
                                  shapes=shapes)
    with open(paths_file, "w", encoding="utf-8") as f:
        json.dump(paths, f)
    with open(marker, "w", encoding="utf-8") as f:  # written last: marks a complete dataset
        json.dump(settings, f)
    return paths
