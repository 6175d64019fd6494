import numpy as np
import pytest

from florence_keras.data.vqa_colour_permutation import CHANNEL_PERMUTATIONS
from florence_keras.data.vqa_colour_permutation import add_colour_permuted_copies
from florence_keras.data.vqa_colour_permutation import is_colour_free
from florence_keras.data.vqa_colour_permutation import names_colour


def _record(question, answer):
    return {"question_id": hash(question) % 1000, "question": question, "answers": [answer] * 10}


def test_colour_words_are_found_as_whole_words_in_any_case():
    assert names_colour("what colour is the hexagon?") and names_colour("What COLOR is it")
    assert names_colour("is the cyan hexagon on the left?") and names_colour("Is the car Red?")
    assert names_colour("is the light grey or gray?") and names_colour("a teal-and-navy flag")
    assert not names_colour("is there a hexagon?") and not names_colour("how many objects are there?")
    assert not names_colour("is the redundant bluetooth tanker here?")  # colour words only as whole words
    assert is_colour_free(_record("is there a star?", "yes"))
    assert not is_colour_free(_record("what shape is the cyan object?", "hexagon"))  # the question names one
    assert not is_colour_free(_record("what is on the table?", "red apple"))  # an answer names one
    mixed = {"question": "what is it?", "answers": ["apple"] * 9 + ["green apple"]}
    assert not is_colour_free(mixed)  # any of the human answers
    assert not is_colour_free({"question": "is there a star?"})  # no answers (a test question): never copied
    assert not is_colour_free({"question": "is there a star?", "answers": []})


def _images():
    # Each image's channels hold distinct constants, so a channel order can be read back from the pixels.
    images = np.zeros((3, 4, 4, 3), np.uint8)
    for row in range(3):
        images[row] = np.array([10, 20, 30]) + 100 * (row == 2) + row
    return images


def test_copies_are_the_images_with_channels_permuted_carrying_only_colour_free_questions():
    images = _images()
    records = [_record("is there a star?", "yes"), _record("what colour is the star?", "red"),
               _record("how many objects are there?", "2"),  # image 0: two colour-free questions
               _record("what shape is the red object?", "star"),  # image 1: none, so no copy
               _record("is there a ring?", "no")]  # image 2
    index = np.array([0, 0, 0, 1, 2])
    out = add_colour_permuted_copies(images, index, records, copies=1, seed=3)
    assert out["added_images"] == 2 and out["added_questions"] == 3
    assert out["images"].shape == (5, 4, 4, 3) and np.array_equal(out["images"][:3], images)
    assert np.array_equal(out["image_index"][:5], index) and out["records"][:5] == records
    copies = out["records"][5:]
    assert [r["question"] for r in copies] == ["is there a star?", "how many objects are there?", "is there a ring?"]
    assert list(out["image_index"][5:]) == [3, 3, 4]
    for record, row, source, original in zip(copies, out["image_index"][5:], (0, 0, 2), (0, 2, 4)):
        order = record["colour_permutation"]
        assert tuple(order) in CHANNEL_PERMUTATIONS and tuple(order) != (0, 1, 2)
        assert np.array_equal(out["images"][row], images[source][..., order])
        assert not np.array_equal(out["images"][row], images[source])  # distinct channel values: visibly permuted
        assert {k: v for k, v in record.items() if k != "colour_permutation"} == records[original]
    assert "colour_permutation" not in records[0]  # the originals are not changed


def test_copies_are_deterministic_by_seed_and_use_every_permutation():
    images = np.repeat(_images()[:1], 200, axis=0)
    records = [_record("is there a star?", "yes") for _ in range(200)]
    index = np.arange(200)
    first = add_colour_permuted_copies(images, index, records, copies=2, seed=0)
    again = add_colour_permuted_copies(images, index, records, copies=2, seed=0)
    other = add_colour_permuted_copies(images, index, records, copies=2, seed=1)
    orders = [tuple(r["colour_permutation"]) for r in first["records"][200:]]
    assert len(orders) == 400 and first["added_images"] == 400  # two copies of each image
    assert orders == [tuple(r["colour_permutation"]) for r in again["records"][200:]]
    assert np.array_equal(first["images"], again["images"])
    assert orders != [tuple(r["colour_permutation"]) for r in other["records"][200:]]
    assert set(orders) == set(CHANNEL_PERMUTATIONS)  # all five non-identity orders, about 80 each
    assert min(orders.count(p) for p in CHANNEL_PERMUTATIONS) > 40
    assert all(orders[i] != orders[200 + i] for i in range(200))  # an image's two copies differ


def test_five_copies_are_the_five_orders_and_the_first_copy_does_not_depend_on_how_many():
    images = np.repeat(_images()[:1], 30, axis=0)
    records = [_record("is there a star?", "yes") for _ in range(30)]
    five = add_colour_permuted_copies(images, np.arange(30), records, copies=5, seed=4)
    one = add_colour_permuted_copies(images, np.arange(30), records, copies=1, seed=4)
    orders = [tuple(r["colour_permutation"]) for r in five["records"][30:]]
    for image in range(30):  # copy k of image i is row 30 + 30 k + i
        assert sorted(orders[image::30]) == sorted(CHANNEL_PERMUTATIONS)
    assert orders[:30] == [tuple(r["colour_permutation"]) for r in one["records"][30:]]


def test_no_copies_and_bad_arguments():
    images, records = _images(), [_record("is there a star?", "yes")]
    none = add_colour_permuted_copies(images, [0], records, copies=0)
    assert none["added_images"] == 0 and none["images"] is images and none["records"] == records
    only_colour = add_colour_permuted_copies(images, [0], [_record("what colour is it?", "red")])
    assert only_colour["added_questions"] == 0 and len(only_colour["images"]) == 3
    with pytest.raises(ValueError, match="copies"):
        add_colour_permuted_copies(images, [0], records, copies=-1)
    for bad in (6, 1.5, True):
        with pytest.raises(ValueError, match="0..5"):
            add_colour_permuted_copies(images, [0], records, copies=bad)
    with pytest.raises(ValueError, match="2 rows for 1 records"):
        add_colour_permuted_copies(images, [0, 1], records)


def test_answer_types_choose_which_colour_free_questions_are_copied():
    images = _images()
    records = [dict(_record("is there a star?", "yes"), answer_type="yes/no"),
               dict(_record("how many objects are there?", "2"), answer_type="number"),
               dict(_record("what colour is the star?", "red"), answer_type="other"),
               _record("is it a star?", "yes")]  # no answer_type: "unknown"
    out = add_colour_permuted_copies(images, [0, 0, 0, 1], records, answer_types=("yes/no",))
    assert [r["question"] for r in out["records"][4:]] == ["is there a star?"] and out["added_images"] == 1
    both = add_colour_permuted_copies(images, [0, 0, 0, 1], records, answer_types=["yes/no", "number"])
    assert [r["question"] for r in both["records"][4:]] == ["is there a star?", "how many objects are there?"]
    every = add_colour_permuted_copies(images, [0, 0, 0, 1], records)
    assert every["added_questions"] == 3 and every["added_images"] == 2  # the colour question never
