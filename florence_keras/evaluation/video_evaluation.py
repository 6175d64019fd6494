"""Multi-view action recognition scores and zero-shot text-video retrieval for video Tasks."""

import numpy as np
from tqdm import tqdm

from florence_keras.data.skip_counter import SkipCounter
from florence_keras.data.video_dataset import video_dataset
from florence_keras.evaluation.metrics import classification_metrics
from florence_keras.evaluation.retrieval import group_captions
from florence_keras.evaluation.retrieval import retrieval_metrics


def parse_views(views):
    """`"4x3"` -> `(4, 3)`: temporal x spatial views."""
    try:
        temporal, spatial = (int(v) for v in str(views).lower().split("x"))
    except ValueError as error:
        raise ValueError(f"`views` must look like '4x3' (temporal x spatial). Received: {views!r}") from error
    if temporal < 1 or spatial < 1:
        raise ValueError(f"`views` must be positive. Received: {views!r}")
    return temporal, spatial


def evaluate_video_classifier(task, paths, labels, class_names, views="4x3", num_frames=None, stride=1,
                              sampling="dense", batch_size=8, ks=(1, 5)):
    """Scores averaged over temporal x spatial views -> top-k, per-class accuracy, confusion matrix.

    Args:
        task: a `FlorenceVideoClassifier`.
        paths, labels: the clips and their class indices in `class_names` (each a class of the task; the task's
            other classes may be absent).
        views: `"TxS"`.
        num_frames: frames per view (default the task's).

    Returns:
        dict: `classification_metrics` (`top1`, `top5`, ...) of the averaged scores, plus `single_view_top1`
        (the middle view only), `views`, `skipped_clips`, `skipped_reasons`.
    """
    model_index = {name: i for i, name in enumerate(task.class_names)}
    unknown = sorted(set(class_names) - set(model_index))
    if unknown:
        raise ValueError(f"The data's classes {unknown} are not among the model's {list(task.class_names)}.")
    # A held-out set may lack some of the model's classes: labels are the model's indices.
    labels = [model_index[class_names[label]] for label in labels]
    class_names = list(task.class_names)
    temporal, spatial = parse_views(views)
    counter = SkipCounter(name="video clips")
    ds = video_dataset(paths, labels=labels, num_frames=num_frames or task.num_frames, image_size=task.image_size,
                       batch_size=batch_size, training=False, sampling=sampling, stride=stride,
                       temporal_views=temporal, spatial_views=spatial, skip_counter=counter)
    scores, truth, middle = [], [], []
    middle_view = (temporal // 2) * spatial + spatial // 2
    for batch in tqdm(ds, desc="clips", unit="batch", total=-(-len(paths) // batch_size)):
        videos = batch["videos"].numpy()
        probs = task.predict(videos.reshape((-1,) + videos.shape[2:]), batch_size=batch_size * temporal * spatial)
        probs = probs.reshape(videos.shape[0], temporal * spatial, -1)
        scores.append(probs.mean(axis=1))
        middle.append(probs[:, middle_view])
        truth.append(batch["labels"].numpy())
    scores, truth, middle = np.concatenate(scores), np.concatenate(truth), np.concatenate(middle)
    result = classification_metrics(scores, truth, ks=tuple(k for k in ks if k <= len(class_names)) or (1,),
                                    class_names=class_names)
    for k in ks:  # top-k with k >= the number of classes is 1 by definition
        result.setdefault(f"top{k}", 1.0)
    result["single_view_top1"] = float(np.mean(middle.argmax(-1) == truth))
    result.update(views=f"{temporal}x{spatial}", skipped_clips=counter.count, skipped_reasons=dict(counter.reasons))
    return result


def video_embeddings_from_frames(clip_model, paths, num_frames=8, image_size=64, stride=1, sampling="uniform",
                                 batch_size=8, skip_counter=None):
    """Florence's zero-shot video embedding from an image model: each frame embedded, the unit embeddings
    averaged over the frames and re-normalised.

    Returns:
        `(embeddings (N, D), kept_indices)`: clips that could not be decoded are left out (counted).
    """
    ds = video_dataset(paths, num_frames=num_frames, image_size=image_size, batch_size=batch_size, training=False,
                       sampling=sampling, stride=stride, skip_counter=skip_counter)
    out, kept = [], []
    for batch in tqdm(ds, desc="clips", unit="batch", total=-(-len(paths) // batch_size)):
        videos = batch["videos"].numpy()[:, 0]  # one view
        frames = videos.reshape((-1,) + videos.shape[2:])
        embeddings = np.asarray(clip_model.encode_images(frames)).reshape(videos.shape[0], videos.shape[1], -1)
        out.append(_unit(embeddings.mean(axis=1)))
        kept.append(batch["index"].numpy())
    return np.concatenate(out), np.concatenate(kept)


def video_embeddings_from_video_task(task, paths, stride=1, sampling="uniform", batch_size=8, skip_counter=None):
    """Embeddings of a `FlorenceVideoClassifier` (its Video CoSwin + projection), one central view per clip."""
    ds = video_dataset(paths, num_frames=task.num_frames, image_size=task.image_size, batch_size=batch_size,
                       training=False, sampling=sampling, stride=stride, skip_counter=skip_counter)
    out, kept = [], []
    for batch in tqdm(ds, desc="clips", unit="batch", total=-(-len(paths) // batch_size)):
        out.append(task.encode_videos(batch["videos"].numpy()[:, 0], batch_size=batch_size))
        kept.append(batch["index"].numpy())
    return np.concatenate(out), np.concatenate(kept)


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def video_text_retrieval(video_embeddings, clip_captions, text_embedding_fn, ks=(1, 5, 10)):
    """Text->video and video->text recall@k and median rank (1-based).

    Identical captions are one query: the distinct captions are embedded once, a caption's query is right when
    it ranks any clip carrying it within k (clips of one caption are indistinguishable by it: "a red circle
    moving left" describes every such clip), and a clip's query is right when its caption ranks within k among
    the distinct captions.

    Args:
        video_embeddings: `(N, D)` unit embeddings.
        clip_captions: N strings.
        text_embedding_fn: list of strings -> `(M, D)` unit embeddings.

    Returns:
        dict: `text_to_video_R@k`, `video_to_text_R@k`, `text_to_video_median_rank`, `video_to_text_median_rank`,
        `num_videos`, `num_captions` (distinct).
    """
    first, clip_to_caption = group_captions(list(clip_captions))
    captions = [clip_captions[i] for i in first]
    text_embeddings = np.asarray(text_embedding_fn(captions))
    # Distinct captions play retrieval_metrics' "images" (several "captions" = clips each) and clips its "texts".
    raw = retrieval_metrics(text_embeddings, video_embeddings, clip_to_caption, ks=ks)
    result = {}
    for key, value in raw.items():
        key = key.replace("image_to_text", "T2V").replace("text_to_image", "V2T")
        key = key.replace("T2V", "text_to_video").replace("V2T", "video_to_text")
        result[key] = value
    result["num_captions"] = result.pop("num_images")
    result["num_videos"] = result.pop("num_texts")
    return result
