"""SavedModel export for TF Serving (see docs/serving.md).

A Task contributes a list of `ExportSignature`s (`clip_signatures` for FlorenceCLIP,
`image_classifier_signatures` for FlorenceImageClassifier, `estimate_depth_signature` for
FlorenceDepthEstimator); a `SavedModelExporter` writes any such list as
`BASE_DIR/VERSION/` with one warm-up request per signature.
"""

from florence_keras.export.answer_signature import ANSWER_SERVING_DEFAULT
from florence_keras.export.answer_signature import answer_signature
from florence_keras.export.classifier_signatures import CLASSIFIER_SERVING_DEFAULT
from florence_keras.export.classifier_signatures import image_classifier_signatures
from florence_keras.export.classify_signature import classify_signature
from florence_keras.export.clip_signatures import CLIP_SERVING_DEFAULT
from florence_keras.export.clip_signatures import clip_signatures
from florence_keras.export.depth_signature import DEPTH_SERVING_DEFAULT
from florence_keras.export.depth_signature import estimate_depth_signature
from florence_keras.export.detect_signature import DETECT_SERVING_DEFAULT
from florence_keras.export.detect_signature import detect_signature
from florence_keras.export.export_signature import ExportSignature
from florence_keras.export.rest_examples import rest_examples_markdown
from florence_keras.export.rest_examples import rest_predict_example
from florence_keras.export.saved_model_exporter import SavedModelExporter
from florence_keras.export.saved_model_exporter import existing_versions
from florence_keras.export.serving_ops import assert_non_empty_batch
from florence_keras.export.serving_ops import decode_image_batch
from florence_keras.export.serving_ops import pack_token_ids
from florence_keras.export.serving_ops import rgb_images
from florence_keras.export.signature_ops import signature_names
from florence_keras.export.signature_ops import signature_op_types
from florence_keras.export.signature_ops import unregistered_op_types
from florence_keras.export.warmup_requests import make_predict_request
from florence_keras.export.warmup_requests import read_warmup_requests
from florence_keras.export.warmup_requests import request_inputs
from florence_keras.export.warmup_requests import warmup_path
from florence_keras.export.warmup_requests import write_warmup_requests
from florence_keras.export.video_signatures import VIDEO_SERVING_DEFAULT
from florence_keras.export.video_signatures import video_signatures
