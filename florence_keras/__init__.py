"""florence_keras: Florence (Yuan et al., 2021) in Keras 3."""

from florence_keras.version import __version__
