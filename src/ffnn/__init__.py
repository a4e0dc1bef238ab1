"""ffnn: feedforward neural networks with hand-written backpropagation.

>>> import ffnn
>>> net = ffnn.Network([784, 128, 128, 10], activation="tanh", output="softmax", loss="cross_entropy")
"""

from . import data as datasets
from .errors import ConfigError, DataError, FFNNError, ModelFileError, TrainingDiverged
from .network import Network
from .training import History, Trainer

__version__ = "0.1.0"

__all__ = ["Network", "History", "Trainer", "FFNNClassifier", "FFNNRegressor", "datasets", "FFNNError", "ConfigError", "DataError",
           "ModelFileError", "TrainingDiverged", "__version__"]


def __getattr__(name):
    # The scikit-learn estimators import scikit-learn, which the command line and the core do not need.
    if name in ("FFNNClassifier", "FFNNRegressor"):
        from . import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'ffnn' has no attribute {name!r}")
