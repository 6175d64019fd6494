"""Florence models: CoSwin, the text encoder, the dual encoder and its Tasks (CLIP, image classifier)."""

from florence_keras.models.coswin_backbone import CoSwinBackbone
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_depth_estimator import FlorenceDepthEstimator
from florence_keras.models.florence_detector import FlorenceDetector
from florence_keras.models.florence_image_classifier import FlorenceImageClassifier
from florence_keras.models.florence_image_converter import FlorenceImageConverter
from florence_keras.models.florence_text_encoder import FlorenceTextEncoder
from florence_keras.models.florence_tokenizer import FlorenceTokenizer
from florence_keras.models.florence_vqa import FlorenceVQA
from florence_keras.models.preset_registry import list_presets
