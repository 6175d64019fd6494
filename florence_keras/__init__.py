"""florence_keras: Florence (Yuan et al., 2021) in Keras 3.

    >>> import florence_keras
    >>> clip = florence_keras.FlorenceCLIP.from_preset("florence_tiny")  # doctest: +SKIP
"""

import os as _os

# Quiet TensorFlow's C++ start-up logging unless the user asked for it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from florence_keras.startup_logging import list_physical_devices_quietly as _list_devices  # noqa: E402

# Devices are listed now, so that a machine without a GPU starts without TensorFlow's CUDA probe error.
_list_devices()

from florence_keras import layers  # noqa: E402
from florence_keras import models  # noqa: E402
from florence_keras.models import CoSwinBackbone  # noqa: E402
from florence_keras.models import FlorenceBackbone  # noqa: E402
from florence_keras.models import FlorenceCLIP  # noqa: E402
from florence_keras.models import FlorenceCLIPPreprocessor  # noqa: E402
from florence_keras.models import FlorenceCaptioner  # noqa: E402
from florence_keras.models import FlorenceDensePretrainer  # noqa: E402
from florence_keras.models import FlorenceDepthEstimator  # noqa: E402
from florence_keras.models import FlorenceDetector  # noqa: E402
from florence_keras.models import FlorenceFusionPretrainer  # noqa: E402
from florence_keras.models import FlorenceImageClassifier  # noqa: E402
from florence_keras.models import FlorenceImageConverter  # noqa: E402
from florence_keras.models import FlorenceTextEncoder  # noqa: E402
from florence_keras.models import FlorenceTokenizer  # noqa: E402
from florence_keras.models import FlorenceVQA  # noqa: E402
from florence_keras.models import list_presets  # noqa: E402
from florence_keras.models import FlorenceVideoClassifier  # noqa: E402
from florence_keras.models import VideoCoSwinBackbone  # noqa: E402
from florence_keras.version import __version__  # noqa: E402
