"""florence_keras: Florence (image-text foundation model) in Keras 3."""

import os

from setuptools import find_packages
from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))

# The tested dependency set (../shared/docs/ENV.md); constraints.txt pins every
# transitive package of the environment the test suite ran in.
INSTALL_REQUIRES = [
    "keras==3.15.1",
    "keras-hub==0.32.0",
    "keras-nlp==0.32.0",
    "keras-cv==0.9.0",
    "tensorflow==2.20.0",
    "tensorflow-text==2.20.1",
    "tf-keras==2.20.1",
    "tf-models-official==2.20.0",
    # Headless OpenCV only: tf-models-official already depends on it, and adding
    # `opencv-python` would install a second, conflicting cv2 (and needs a display stack).
    "opencv-python-headless==5.0.0.93",
    "absl-py==1.4.0",
    "pycocotools==2.0.11",
    # COCO caption metrics (BLEU, METEOR, ROUGE-L, CIDEr) for captioning; METEOR and its
    # PTB tokenizer run bundled Java jars (needs `java` on PATH; see docs/captioning.md).
    "pycocoevalcap==1.2",
    "safetensors==0.8.0",
    "tensorflow-serving-api==2.20.0",
    "matplotlib==3.11.2",
    "scipy==1.17.1",
    "tqdm==4.70.1",
]

TEST_REQUIRES = [
    # Reference implementations for parity tests (CPU build of torch).
    "torch==2.13.0",
    "transformers==5.24.0",
    "pytest==9.2.0",
    "pytest-xdist==3.8.0",
    "hypothesis==6.170.17",
    "scikit-image==0.26.0",
    "scikit-learn==1.9.1",
    "nbclient==0.11.0",
    "nbformat==5.11.1",
    "ipykernel==7.4.0",
    "psutil==7.2.2",
    # CPU JAX: the model stack is tested under KERAS_BACKEND=jax against TensorFlow (tests/backends).
    "jax[cpu]==0.10.2",
]

setup(
    name="florence_keras",
    version="0.1.0",
    description="Florence (Yuan et al., 2021) in Keras 3: CoSwin, UniCL pretraining, evaluation, serving.",
    packages=find_packages(include=["florence_keras", "florence_keras.*"]),
    package_data={"florence_keras": ["assets/*", "presets/*/*", "presets/*/*/*", "presets/*/*/*/*"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES},
)
