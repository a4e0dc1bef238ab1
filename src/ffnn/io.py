"""Model and checkpoint files: safetensors, never pickle.

A model file holds the tensors W1..WL, b1..bL and, in the safetensors metadata, the format name and version,
the architecture (``config``), user metadata (class names, feature scaling, ...) and a SHA-256 of the tensor
data and of that metadata (from format 2 on), so a truncated, altered or foreign file is refused with one clear
line. A checkpoint is a model file with
the optimizer's arrays and the trainer's state added, enough to resume a run exactly.

Every write is atomic (temporary file, fsync, rename): a failed save leaves the previous file intact.
"""

import hashlib
import json
import os
import struct

import numpy as np

from .backend import to_numpy
from .errors import FFNNError, ModelFileError
from .fsutil import write_bytes

FORMAT = "ffnn"
FORMAT_VERSION = 2  # 2: the checksum covers the metadata too (format 1 files, tensors alone, still load)
MAX_HEADER = 64 * 1024 * 1024
_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U64": np.uint64, "U8": np.uint8}


def _digest(tensors, meta_json=None):
    h = hashlib.sha256()
    if meta_json is not None:
        h.update(b"meta\0" + meta_json.encode("utf-8") + b"\0")
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(name.encode() + b"\0" + str(a.dtype).encode() + b"\0" + str(a.shape).encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def _plain(value):
    # NumPy scalars and arrays in metadata (class names from a dataset, say) as the JSON numbers and lists they hold
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"metadata values must be numbers, strings, lists or mappings; got {type(value).__name__}")


def _plain_keys(value):
    # NumPy keys (np.int64(0), say) as the Python values JSON takes
    if isinstance(value, dict):
        return {(k.item() if isinstance(k, np.generic) else k): _plain_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_keys(v) for v in value]
    return value


def write_file(path, tensors, meta):
    """Write named NumPy arrays and a JSON-able ``meta`` dict as one safetensors file, atomically."""
    from safetensors.numpy import save

    tensors = {k: np.ascontiguousarray(to_numpy(v)) for k, v in tensors.items()}
    try:
        meta_json = json.dumps(_plain_keys(meta), sort_keys=True, default=_plain)
    except TypeError as exc:  # keys of mixed types, say, which JSON cannot order
        raise TypeError(f"metadata cannot be written as JSON ({exc}); use string keys") from None
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "sha256": _digest(tensors, meta_json),
              "meta": meta_json}
    write_bytes(path, save(tensors, metadata=header))


def read_file(path):
    """Read a file written by :func:`write_file`: (tensors, meta). Anything else is a ModelFileError."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            # the header first: a file that is not a model is refused before anything large is read
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
            if n is not None and n <= MAX_HEADER:
                head += f.read(n)
            header, size = _parse_header(name, head, os.fstat(f.fileno()).st_size)
            data = head + f.read(size - len(head) + 1)  # one byte more than described: trailing data shows
    except OSError as exc:
        raise ModelFileError(f"{name}: cannot read the model file ({exc.strerror or exc})") from None
    if len(data) != size:
        raise ModelFileError(f"{name}: truncated or damaged model file ({len(data)} bytes or more; the header "
                             f"describes {size})")
    meta_raw = header.get("__metadata__") or {}
    if meta_raw.get("format") != FORMAT:
        raise ModelFileError(f"{name}: not an ffnn model file (no ffnn format tag in its metadata)")
    try:
        version = int(meta_raw.get("format_version", ""))
        if version < 1:
            raise ValueError
    except ValueError:
        raise ModelFileError(f"{name}: damaged model file (bad format version)") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{name}: written by a newer ffnn (model format {version}); this version reads "
                             f"format {FORMAT_VERSION} and older: upgrade ffnn")
    from safetensors.numpy import load
    try:
        tensors = load(data)
    except Exception as exc:  # safetensors raises its own error types for damaged buffers
        raise ModelFileError(f"{name}: damaged model file ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    meta_json = meta_raw.get("meta", "{}")
    if _digest(tensors, meta_json if version >= 2 else None) != meta_raw.get("sha256"):
        raise ModelFileError(f"{name}: damaged model file (its parameters or settings do not match their checksum)")
    try:
        meta = json.loads(meta_json)
    except (ValueError, RecursionError):
        raise ModelFileError(f"{name}: damaged model file (unreadable metadata)") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{name}: damaged model file (unreadable metadata)")
    return tensors, meta


def _parse_header(name, data, file_size):
    """(header, the file's size as the header describes it) from the file's first bytes ``data``. safetensors
    layout: 8-byte little-endian header length, JSON header, then the tensor bytes."""
    if len(data) < 8:
        raise ModelFileError(f"{name}: not a model file (only {len(data)} bytes; truncated or empty)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise ModelFileError(f"{name}: not a model file or truncated (header of {n} bytes in a file of "
                             f"{max(file_size, len(data))})")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{name}: not a model file (unreadable header)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{name}: not a model file (unreadable header)")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise ModelFileError(f"{name}: not a model file (bad metadata)")
            continue
        try:
            lo, hi = info["data_offsets"]
            end = max(end, int(hi))
            dtype = info["dtype"]
        except (TypeError, KeyError, ValueError, OverflowError):
            raise ModelFileError(f"{name}: not a model file (bad tensor entry {key!r})") from None
        if dtype not in _DTYPES:
            raise ModelFileError(f"{name}: not a model file (tensor {key!r} is of type {dtype!r}; ffnn writes "
                                 f"{', '.join(_DTYPES)})")
    size = 8 + n + end
    if file_size and file_size != size:  # a regular file's size is known before it is read
        raise ModelFileError(f"{name}: truncated or damaged model file ({file_size} bytes; the header describes "
                             f"{size})")
    return header, size


def save_network(net, path, metadata=None):
    """Save ``net`` (architecture, parameters, ``net.metadata`` updated with ``metadata``) to ``path``."""
    meta = {"config": net.config, "metadata": {**net.metadata, **(metadata or {})}}
    write_file(path, {k: v for k, v in net.params.items()}, meta)


def network_from(tensors, meta, name, device="cpu"):
    """Build a Network from the tensors and meta of a model or checkpoint file."""
    from .network import Network
    from .backend import get_array_module

    get_array_module(device)  # a device that is not usable here is not a fault of the file

    try:
        config = meta["config"]
        sizes = [int(n) for n in config["sizes"]]
        for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), 1):  # before a network of that size is made
            for key, shape in ((f"W{k}", (n_out, n_in)), (f"b{k}", (n_out,))):
                if tuple(tensors[key].shape) != shape:
                    raise ValueError(f"{key} has shape {tuple(tensors[key].shape)}, expected {shape}")
        net = Network(config["sizes"], activation=config["activation"], output=config["output"],
                      loss=config["loss"], init=config.get("init", "xavier"), dtype=config["dtype"], seed=0,
                      device=device, dropout=config.get("dropout", 0.0))
        for key, view in net.params.items():
            array = tensors[key]
            if array.shape != view.shape:
                raise ValueError(f"{key} has shape {array.shape}, expected {view.shape}")
            view[...] = net.xp.asarray(array)
        metadata = meta.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not a mapping")
    except (KeyError, TypeError, ValueError, FFNNError) as exc:
        raise ModelFileError(f"{name}: damaged model file (inconsistent architecture: {exc})") from None
    if any(tensors[key].dtype != net.dtype for key in net.params):
        raise ModelFileError(f"{name}: damaged model file (parameters of type {tensors['W1'].dtype}, its "
                             f"architecture says {net.dtype})")
    net.metadata = dict(metadata)
    return net


def load_network(path, device="cpu"):
    """Read a model written by :func:`save_network`; predictions are bit-identical to the saved network's."""
    tensors, meta = read_file(path)
    return network_from(tensors, meta, os.fspath(path), device)


def save_checkpoint(path, net, trainer, extra=None):
    """Parameters, optimizer arrays and trainer state: everything needed to resume exactly."""
    state = trainer.state_dict()
    tensors = dict(net.params)
    for key, array in state["optimizer"].pop("arrays").items():
        tensors[f"optimizer.{key}"] = array
    best = state.pop("best_theta")
    if best is not None:
        tensors["trainer.best_theta"] = best
    meta = {"config": net.config, "metadata": net.metadata, "trainer": state, "extra": extra or {}}
    write_file(path, tensors, meta)


def load_checkpoint(path, device="cpu"):
    """(net, trainer_state, extra) from :func:`save_checkpoint`; feed trainer_state to Trainer.load_state_dict."""
    name = os.fspath(path)
    tensors, meta = read_file(path)
    net = network_from(tensors, meta, name, device)
    try:
        state = meta["trainer"]
        state["optimizer"]["arrays"] = {k[len("optimizer."):]: v for k, v in tensors.items()
                                        if k.startswith("optimizer.")}
        state["best_theta"] = tensors.get("trainer.best_theta")
    except (KeyError, TypeError):
        raise ModelFileError(f"{name}: not a checkpoint (no trainer state); pass a run folder or checkpoint") from None
    return net, state, meta.get("extra", {})
