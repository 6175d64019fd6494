"""Data: the built-in procedural scenes and the tf.data input pipelines (DATA.md, SPEC §1).

* `SceneGenerator` / `write_builtin_dataset`: deterministic procedural scenes written in the standard formats.
* `load_image_text_dataset`: csv | tsv | csvlabel | coco | imagefolder | wds | tfrecord -> the raw contract
  `{"images": uint8 [S, S, 3], "texts": tf.string, "labels": int64}`.
* `text_label` / `class_label`: UniCL labels (identical texts share a label everywhere).
* `dataset_stats` (`SkipCounter`): examples skipped as unreadable, with reasons and first paths (the readers log
  one line per epoch when something new was skipped; call `dataset_stats.log_summary()` to log it on demand).
* `write_tfrecord_shards`: any format -> resized TFRecord shards, resumable (recipes/prepare_data.py).
"""

from florence_keras.data.builtin_dataset import DEFAULT_FORMATS as BUILTIN_FORMATS
from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.data.data_format_error import DataFormatError
from florence_keras.data.depth_augmentation import augment_depth_pair
from florence_keras.data.depth_augmentation import depth_dataset
from florence_keras.data.depth_builtin import ensure_builtin_depth_data
from florence_keras.data.depth_pairs import load_depth_pairs
from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.data.image_decoding import decode_image_checked
from florence_keras.data.image_records import DATA_FORMATS
from florence_keras.data.image_records import load_image_records
from florence_keras.data.image_text_dataset import load_image_text_dataset
from florence_keras.data.image_transforms import random_resized_crop
from florence_keras.data.image_transforms import resize_center_crop
from florence_keras.data.labels import DEFAULT_TEMPLATES
from florence_keras.data.labels import LABEL_BUCKETS
from florence_keras.data.labels import class_label
from florence_keras.data.labels import fill_random_template
from florence_keras.data.labels import imagenet_templates
from florence_keras.data.labels import text_label
from florence_keras.data.scene import Clip
from florence_keras.data.scene import Scene
from florence_keras.data.scene import SceneObject
from florence_keras.data.scene_generator import HELDOUT_COMBINATIONS
from florence_keras.data.scene_generator import SceneGenerator
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.data.skip_counter import dataset_stats
from florence_keras.data.tfrecord_example import make_image_text_example
from florence_keras.data.tfrecord_example import parse_image_text_example
from florence_keras.data.tfrecord_shards import write_tfrecord_shards
