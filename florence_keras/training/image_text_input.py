"""The pretraining input pipeline: files on disk -> per-replica UniCL batches for the trainer."""

import tensorflow as tf

from florence_keras.data import image_transforms
from florence_keras.data import labels as labels_lib
from florence_keras.data.image_text_dataset import load_image_text_dataset

# Florence's stage 1 adds prompt-augmented short texts [paper]; a text of at most this
# many words counts as short [ours].
SHORT_TEXT_WORDS = 3


def augment_short_texts(texts, seed, templates=labels_lib.DEFAULT_TEMPLATES, max_words=SHORT_TEXT_WORDS):
    """Wraps short texts ("a red circle") in a prompt template drawn per element ("a photo of a red circle.").

    A leading article is dropped before the text fills the template, and the template's articles agree with
    the text ("an orange circle" -> "a photo of an orange circle.", never "a photo of a an orange circle.").
    The UniCL label is computed from the original text, so a text and its
    prompted forms stay one class. Longer texts are returned unchanged.

    Args:
        texts: string tensor `[B]` or scalar.
        seed: int32 `[2]` stateless seed.
        templates: strings with one `{}`.
        max_words: texts with at most this many words are augmented.
    """
    words = tf.strings.split(tf.strings.strip(texts))
    count = words.row_lengths() if isinstance(words, tf.RaggedTensor) else tf.size(words, out_type=tf.int64)
    prompted = labels_lib.fill_random_template(labels_lib.strip_leading_article(texts), seed, templates=templates)
    return tf.where(count <= max_words, prompted, texts)


def make_image_text_input_fn(train_data, data_format, preprocessor, augment=True,
                             templates=labels_lib.DEFAULT_TEMPLATES, skip_counter=None,
                             shuffle_buffer_size=1000, num_parallel_calls=tf.data.AUTOTUNE,
                             greyscale_probability=0.0, hard_negative_fraction=0.0, hard_negative_group=16,
                             dense_labels=None, dense_label_classes=None):
    """Builds the trainer's `make_dataset(request)` for image-text(-label) data on disk.

    Each request (see `florence_keras.training.DatasetRequest`) gets this input
    pipeline's share of the files, decoded and augmented at the stage's
    resolution by `load_image_text_dataset`, with prompt-augmented short texts
    when the stage asks for them, normalised by the preset's image converter,
    tokenised to 77 ids and batched per replica: an endless positioned stream
    (epoch after epoch, each in its own order drawn from the request's seed) that
    starts at `request.start_position` without reading the records before it, and
    whose batches carry each example's `positions` for the trainer's checkpoint.
    Every random draw (order, crop, flip, template) follows from the seed and the
    example's position, so the stream is the same whatever position it starts at.
    The stream keeps its order whatever `request.deterministic` says (every map is
    ordered; what that costs is small next to decoding), so the positions the trainer
    checkpoints are exact: a resume neither repeats nor skips an example.

    Args:
        train_data: path(s) (comma-separated str or list).
        data_format: csv | tsv | csvlabel | coco | imagefolder | wds | tfrecord.
        preprocessor: a `FlorenceCLIPPreprocessor` (tokenizer + image converter).
        augment: random-resized-crop and flip.
        templates: prompt templates for class names and short texts.
        skip_counter: optional `SkipCounter` for unreadable examples.
        shuffle_buffer_size: element shuffle buffer for tar / TFRecord data.
        num_parallel_calls: tf.data parallelism.
        greyscale_probability: float in [0, 1]; this fraction of training images is turned greyscale and
            loses the colour words of its caption (`image_transforms.random_greyscale`; its UniCL label is then
            that of the new text), so captions stay true of the pixels.
        hard_negative_fraction: float in [0, 1]; this share of each epoch comes in groups of examples whose
            captions share a word (in-batch hard negatives; index formats, see `load_image_records`).
        hard_negative_group: int >= 1, the size of those groups; at most the per-replica batch size.
        dense_labels, dense_label_classes: per-pixel label maps read, cropped and flipped with the images (see
            `load_image_text_dataset`); the batches then carry `dense_labels`, float32 `[B, S, S, sum(classes)]`
            class fractions, for a Task with a dense loss (`FlorenceDensePretrainer`).
    """
    if not 0.0 <= greyscale_probability <= 1.0:
        raise ValueError(f"`greyscale_probability` must be in [0, 1]. Received: {greyscale_probability!r}")
    normalize = preprocessor.image_converter.normalizer()  # the loader already crops and resizes

    def make_dataset(request):
        stage = request.stage
        context = tf.distribute.InputContext(
            num_input_pipelines=request.num_input_pipelines,
            input_pipeline_id=request.input_pipeline_id,
            num_replicas_in_sync=max(request.global_batch_size // request.batch_size, 1),
        )
        dataset = load_image_text_dataset(
            train_data, data_format, image_size=stage.image_size, training=True, seed=request.seed,
            input_context=context, augment=augment, templates=templates, skip_counter=skip_counter,
            shuffle_buffer_size=shuffle_buffer_size, num_parallel_calls=num_parallel_calls,
            start_position=request.start_position, hard_negative_fraction=hard_negative_fraction,
            hard_negative_group=min(hard_negative_group, request.batch_size),
            dense_labels=dense_labels, dense_label_classes=dense_label_classes,
        )
        if augment and greyscale_probability > 0:
            # Before prompting: a greyscale "a red circle" becomes "a circle", with that text's label.
            grey_seed = request.seed + 11 + 1_000_003 * request.input_pipeline_id

            def greyscale(example):
                seed = tf.stack([tf.constant(grey_seed, tf.int64), example["positions"]]) % (2**31 - 1)
                images, texts, _ = image_transforms.random_greyscale(
                    example["images"], example["texts"], tf.cast(seed, tf.int32), greyscale_probability)
                labels = tf.where(tf.equal(texts, example["texts"]), example["labels"], labels_lib.text_label(texts))
                return {**example, "images": images, "texts": texts, "labels": labels}

            dataset = dataset.map(tf.autograph.experimental.do_not_convert(greyscale),
                                  num_parallel_calls=num_parallel_calls, deterministic=True)
        if stage.prompt_augmented_texts:
            text_seed = request.seed + 7 + 1_000_003 * request.input_pipeline_id

            def prompt_short_texts(example):
                # Each example's draw follows from its position (the same whatever the batch it lands in).
                seed = tf.stack([tf.constant(text_seed, tf.int64), example["positions"]]) % (2**31 - 1)
                return {**example, "texts": augment_short_texts(example["texts"], tf.cast(seed, tf.int32), templates)}

            dataset = dataset.map(tf.autograph.experimental.do_not_convert(prompt_short_texts),
                                  num_parallel_calls=num_parallel_calls, deterministic=True)
        dataset = dataset.batch(request.batch_size, drop_remainder=True)

        def to_model_inputs(batch):
            inputs = {
                "images": tf.cast(normalize(batch["images"]), tf.float32),
                "token_ids": preprocessor.tokenize(batch["texts"]),
                "labels": batch["labels"],
                "positions": batch["positions"],
            }
            if "dense_labels" in batch:
                inputs["dense_labels"] = batch["dense_labels"]
            return inputs

        dataset = dataset.map(
            tf.autograph.experimental.do_not_convert(to_model_inputs), num_parallel_calls=num_parallel_calls,
            deterministic=True,
        )
        options = tf.data.Options()
        options.deterministic = True
        return dataset.with_options(options).prefetch(2)

    return make_dataset
