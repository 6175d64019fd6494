"""Evaluation progress bars know their total (the examples the data lists), also when a bad image is skipped."""

import os
import re

import pytest

from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.evaluation import encoded_data
from tests.model_fixtures import tiny_clip


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


def _bar_states(output):
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    return re.findall(r"(\d+)/(\d+|Unknown) ", plain)


@pytest.mark.parametrize("damage", [False, True])
def test_captioned_images_bar_has_a_total(clip, tmp_path, capsys, damage):
    paths = write_builtin_dataset(str(tmp_path), num_train=10, num_heldout=0, formats=("csv",))
    index = paths["csv"]["train"]
    if damage:  # one unreadable image: 9 are encoded, the bar still ends (short of its total)
        with open(index, encoding="utf-8") as f:
            first_image = f.read().splitlines()[1].split(",")[0]
        with open(os.path.join(os.path.dirname(index), first_image), "wb") as f:
            f.write(b"not an image")
    out = encoded_data.encode_captioned_images(clip, "florence_mini", index, "csv", batch_size=4)
    states = _bar_states(capsys.readouterr().out)
    assert states and all(total == "3" for _, total in states), states  # ceil(10 / 4) batches
    assert int(states[-1][0]) == 3 and len(out["image_sources"]) == (9 if damage else 10)
    assert "Unknown" not in str(states)
