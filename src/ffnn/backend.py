"""The array module behind a device: NumPy on 'cpu', CuPy on 'cuda'.

The math modules call ufuncs (np.tanh, np.matmul, ... with ``out=``), which dispatch to CuPy arrays through
NumPy's ufunc protocol; only allocation goes through the module returned here.
"""

import numpy as np

from .errors import ConfigError

DEVICES = ("cpu", "cuda")


def get_array_module(device="cpu"):
    """NumPy for 'cpu'; CuPy for 'cuda' when it is installed and sees a GPU; a ConfigError otherwise."""
    if device == "cpu":
        return np
    if device == "cuda":
        try:
            import cupy
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no CUDA device")
        except Exception as exc:  # ImportError, CUDA driver errors
            raise ConfigError(f"device 'cuda' is not available here ({exc}); install ffnn[gpu] on a machine "
                              "with an NVIDIA GPU, or use device 'cpu'") from None
        return cupy
    raise ConfigError(f"unknown device {device!r}; valid: {', '.join(DEVICES)}")


def to_numpy(array):
    """A NumPy array with the same values (a no-op for NumPy arrays)."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)
