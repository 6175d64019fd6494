import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data import labels


def test_text_label_is_the_prefixed_63_bit_hash():
    texts = ["a red circle", "", "ünïcode ✓"]
    expected = tf.strings.to_hash_bucket_fast([f"text:{t}" for t in texts], 2**63 - 1).numpy()
    np.testing.assert_array_equal(labels.text_label(texts).numpy(), expected)
    assert labels.text_label(texts).dtype == tf.int64
    expected_class = tf.strings.to_hash_bucket_fast("class:circle", 2**63 - 1).numpy()
    assert labels.class_label("circle").numpy() == expected_class


def test_identical_texts_share_a_label_whatever_the_shape():
    grid = labels.text_label([["a", "b"], ["b", "a"]]).numpy()
    assert grid.shape == (2, 2)
    assert grid[0, 0] == grid[1, 1] == labels.text_label("a").numpy()
    assert grid[0, 1] == grid[1, 0] != grid[0, 0]
    assert labels.text_label("circle").numpy() != labels.class_label("circle").numpy()  # separate label spaces
    assert (labels.text_label(["x"] * 3).numpy() >= 0).all()


def test_labels_are_the_same_eagerly_and_inside_tf_data():
    texts = ["a red circle", "two objects", "a red circle"]
    in_pipeline = [v.numpy() for v in tf.data.Dataset.from_tensor_slices(texts).map(labels.text_label)]
    np.testing.assert_array_equal(in_pipeline, labels.text_label(texts).numpy())
    classes = [v.numpy() for v in tf.data.Dataset.from_tensor_slices(["star"]).map(labels.class_label)]
    assert classes[0] == labels.class_label("star").numpy()


def test_fill_random_template_is_seeded_and_draws_every_template():
    templates = ["a photo of a {}.", "{} here", "the {}"]
    filled = {labels.fill_random_template("golden_retriever", [seed, 1], templates).numpy().decode()
              for seed in range(60)}
    assert filled == {"a photo of a golden retriever.", "golden retriever here", "the golden retriever"}
    first = labels.fill_random_template(["a", "b", "c"], [4, 2], templates).numpy()
    again = labels.fill_random_template(["a", "b", "c"], [4, 2], templates).numpy()
    np.testing.assert_array_equal(first, again)
    in_pipeline = next(iter(tf.data.Dataset.from_tensors(tf.constant(["a", "b", "c"])).map(
        lambda names: labels.fill_random_template(names, tf.constant([4, 2]), templates)))).numpy()
    np.testing.assert_array_equal(in_pipeline, first)


@pytest.mark.parametrize("templates", [["no placeholder"], ["{} and {}"], [], "a {}", [3]])
def test_bad_templates_are_refused(templates):
    with pytest.raises(ValueError, match="template"):
        labels.validate_templates(templates)


def test_imagenet_templates_are_clips_80():
    templates = labels.imagenet_templates()
    assert len(templates) == 80 and len(set(templates)) == 80
    assert templates[0] == "a bad photo of a {}."
    assert all(t.count("{}") == 1 for t in templates)
    labels.validate_templates(labels.DEFAULT_TEMPLATES)


def test_articles_agree_with_the_next_word():
    texts = ["a photo of a orange.", "An red circle", "an apple and a egg", "a cat", "an 8 and a 8"]
    expected = [b"a photo of an orange.", b"A red circle", b"an apple and an egg", b"a cat", b"a 8 and a 8"]
    assert labels.fix_indefinite_articles(texts).numpy().tolist() == expected
    filled = labels.fill_random_template(["orange circle", "red star"], [1, 2], ["a photo of a {}."]).numpy()
    assert filled.tolist() == [b"a photo of an orange circle.", b"a photo of a red star."]


def test_strip_leading_article_only_strips_a_whole_leading_article():
    texts = ["a red circle", "An orange", "theatre", "two objects", "  the cat", "a"]
    assert labels.strip_leading_article(texts).numpy().tolist() == [
        b"red circle", b"orange", b"theatre", b"two objects", b"cat", b"a"]
