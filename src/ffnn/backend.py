"""The array module behind a device: NumPy on 'cpu' (CuPy on 'cuda' is planned).

The math modules call ufuncs (np.tanh, np.matmul, ... with ``out=``), which dispatch to CuPy arrays through
NumPy's ufunc protocol; only allocation goes through the module returned here.
"""

import numpy as np

from .errors import ConfigError

DEVICES = ("cpu", "cuda")


def get_array_module(device="cpu"):
    """NumPy for 'cpu'. The math only calls ufuncs and matmul with ``out=`` and allocates through this module,
    so a GPU array module (CuPy) can take its place; the 'cuda' device is not finished yet and says so."""
    if device == "cpu":
        return np
    if device == "cuda":
        raise ConfigError("device 'cuda' is not available in this version of ffnn (GPU training is not finished); "
                          "use device 'cpu'")
    raise ConfigError(f"unknown device {device!r}; valid: {', '.join(DEVICES)}")


def to_numpy(array):
    """A NumPy array with the same values (a no-op for NumPy arrays)."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)
