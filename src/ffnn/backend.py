"""The array module behind a device: NumPy on 'cpu', CuPy on 'cuda'.

The math modules call ufuncs (np.tanh, np.add, ... with ``out=``), which dispatch to CuPy arrays through NumPy's
ufunc protocol, and the fused steps of :mod:`ffnn.kernels`, which dispatch to :mod:`ffnn.cuda` for CuPy arrays;
only allocation goes through the module returned here.
"""

import numpy as np

from . import cuda
from .errors import ConfigError

DEVICES = ("cpu", "cuda")


def get_array_module(device="cpu"):
    """NumPy for 'cpu'; CuPy for 'cuda', or a one-line ConfigError saying why it cannot be used here."""
    if device == "cpu":
        return np
    if device == "cuda":
        return cuda.array_module()
    raise ConfigError(f"unknown device {device!r}; valid: {', '.join(DEVICES)}")


def to_numpy(array):
    """A NumPy array with the same values (a no-op for NumPy arrays)."""
    if cuda.is_array(array):
        return array.get()
    return np.asarray(array.to_numpy() if hasattr(array, "to_numpy") else array)  # pandas: its values
