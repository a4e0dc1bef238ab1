"""The dataset registry: Fashion-MNIST, MNIST, scikit-learn's bundled sets, and user CSV/NPZ files.

Every loader returns a :class:`Dataset` with float features ``X`` of shape ``(n, n_features)``
and the :class:`Scaling` that turned raw features into them, so a saved model can apply the
same transformation to new inputs.
"""

import os
import sys
from dataclasses import dataclass

import numpy as np

from ..arrays import ScaledBytes
from ..errors import ConfigError, DataError, unknown_name
from .idx import read_idx

DATASETS = ("fashion_mnist", "mnist", "digits", "iris", "wine", "breast_cancer", "diabetes")
USER_SUFFIXES = (".csv", ".npz")
DTYPES = ("float32", "float64")
TASKS = ("classification", "regression")

# ---------------------------------------------------------------------------------------------
# Scaling and Dataset


@dataclass
class Scaling:
    """``X_scaled = (X - offset) / scale``.

    ``offset`` and ``scale`` are float64 arrays of shape ``(n_features,)``, or 0-d (scalars)
    when one value serves every feature.
    """

    offset: np.ndarray
    scale: np.ndarray

    def __post_init__(self):
        self.offset = np.asarray(self.offset, dtype=np.float64)
        self.scale = np.asarray(self.scale, dtype=np.float64)
        for field in ("offset", "scale"):
            value = getattr(self, field)
            if value.ndim > 1:
                raise DataError(f"scaling {field} must be a scalar or 1-D, got shape {value.shape}")
            if not np.all(np.isfinite(value)):
                raise DataError(f"scaling {field} has non-finite values")
        if np.any(self.scale == 0):
            raise DataError("scaling scale has zeros")
        if self.offset.ndim == self.scale.ndim == 1 and self.offset.shape != self.scale.shape:
            raise DataError(f"scaling offset has {self.offset.size} values but scale has {self.scale.size}")

    @property
    def n_features(self):
        """Number of features it expects, or None when both parts are scalars."""
        for value in (self.offset, self.scale):
            if value.ndim == 1:
                return value.size
        return None

    def transform(self, X):
        """Return ``(X - offset) / scale``, shape ``(n, n_features)``; float32 unless X is float64."""
        X = np.asarray(X)
        dtype = np.float64 if X.dtype == np.float64 else np.float32
        return self._transform_inplace(X.astype(dtype, copy=True))

    def inverse_transform(self, X):
        """The raw features ``X * scale + offset``, float64."""
        return np.asarray(X, dtype=np.float64) * self.scale + self.offset

    def same_as(self, other):
        """Whether ``other`` (a Scaling or None) scales features exactly as this one does."""
        return other is not None and np.array_equal(self.offset, other.offset) and \
            np.array_equal(self.scale, other.scale)

    def _transform_inplace(self, X):
        n = self.n_features
        if n is not None and (X.ndim != 2 or X.shape[1] != n):
            raise DataError(f"X has shape {X.shape}; this scaling expects (n, {n})")
        X -= self.offset.astype(X.dtype)
        X /= self.scale.astype(X.dtype)
        return X

    def to_dict(self):
        """JSON-able form: floats or lists of floats."""
        return {"offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def standardising(cls, X, source="data", column_names=None):
        """The Scaling to mean 0 and standard deviation 1 of each column of the float64 X (a constant column:
        scale 1); a DataError naming the column (of ``source``) whose values are too large to square."""
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = X.mean(axis=0), X.std(axis=0)
        bad = ~(np.isfinite(mean) & np.isfinite(std))
        if bad.any():
            j = int(np.argmax(bad))
            column = repr(column_names[j]) if column_names else str(j + 1)
            raise DataError(f"{source}: feature column {column} has values too large to standardise (up to "
                            f"{np.abs(X[:, j]).max():.3g}); rescale it to at most about 1e150")
        std[std == 0] = 1.0
        return cls(offset=mean, scale=std)

    @classmethod
    def saved(cls, metadata, key):
        """The Scaling a model's metadata holds under ``key`` ("scaling", "target_scaling"), or None."""
        return cls.from_dict(metadata[key]) if metadata.get(key) else None

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(offset=d["offset"], scale=d["scale"])
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"scaling must be a mapping with numeric 'offset' and 'scale' ({e})") from e


class Deferred:
    """A value built on first use: ``Deferred(function, *args)``. A :class:`Dataset` accepts one as ``X_test``."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __call__(self):
        return self.function(*self.args)


@dataclass
class Dataset:
    """A train/test split ready for training.

    ``X_*`` are float arrays ``(n, n_features)``; ``y_*`` are int64 labels ``(n,)`` in
    ``0..k-1`` for classification, float ``(n,)`` or ``(n, k)`` for regression.

    ``X_train`` and ``X_test`` may be given as a :class:`~ffnn.arrays.ScaledBytes`, and ``X_test``
    as a :class:`Deferred`: the float array is then built the first time it is read, and kept.
    Fashion-MNIST and MNIST hold their images as bytes that way, a quarter of their float32 size;
    :meth:`inputs` hands them out as bytes, which a training run converts batch by batch.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list | None  # None for regression
    task: str  # "classification" or "regression"
    scaling: Scaling | None  # what was applied to the raw features
    feature_names: list | None = None  # a CSV file's feature columns, in order
    source: str | None = None  # a user's file: its absolute path

    def __post_init__(self):
        self.__dict__["_stored"] = {}
        for field in ("X_train", "X_test"):
            value = self.__dict__[field]
            if isinstance(value, ScaledBytes) or (field == "X_test" and isinstance(value, Deferred)):
                self._stored[field] = self.__dict__.pop(field)

    def __getattr__(self, name):
        # Reached only for attributes the instance lacks: X_train or X_test while they are still stored as built.
        stored = self.__dict__.get("_stored", {}).get(name)
        if stored is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = stored.to_array() if isinstance(stored, ScaledBytes) else stored()
        setattr(self, name, value)
        return value

    def inputs(self, split):
        """X of ``split`` ('train' or 'test') as compactly as this set holds it: a ScaledBytes for images kept as
        bytes (networks and the training loop take it as it is), otherwise the float array."""
        field = {"train": "X_train", "test": "X_test"}[split]
        stored = self._stored.get(field)
        if isinstance(stored, ScaledBytes) and field not in self.__dict__:
            return stored
        return getattr(self, field)

    @property
    def n_features(self):
        return self.inputs("train").shape[1]

    @property
    def n_outputs(self):
        """Number of classes, or number of target columns."""
        if self.task == "classification":
            return len(self.class_names)
        return 1 if self.y_train.ndim == 1 else self.y_train.shape[1]


# ---------------------------------------------------------------------------------------------
# entry point


def load(name, data_dir=None, target=None, *, download=True, mirrors=None, dtype="float32", task=None):
    """Load a dataset by name, or a user's ``.csv`` / ``.npz`` file by path.

    Parameters
    ----------
    name : str or os.PathLike
        One of ``DATASETS``, or a path ending in ``.csv`` or ``.npz``.
    data_dir : str or os.PathLike, optional
        First folder searched for the (Fashion-)MNIST files.
    target : str or sequence of str, optional
        Target column(s) of a CSV file (required for CSV, not used otherwise).
    download : bool
        Fetch missing (Fashion-)MNIST files into the user cache (SHA-256 verified).
    mirrors : sequence of str, optional
        Base URLs to download from, in order; default ``$FFNN_MIRRORS`` (comma-separated), else
        the official ones.
    dtype : {"float32", "float64"}
        dtype of ``X`` (and of regression targets).
    task : {"classification", "regression"}, optional
        What the targets of a user's file are. By default integer or text targets are class labels and other
        numbers are regression targets; given, it decides (integer-valued numbers can then be either).

    Returns
    -------
    Dataset
    """
    try:  # "float32", np.float32 or np.dtype("float32"); not None, which NumPy would read as float64
        dtype_name = str(dtype) if dtype is None or isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:
        dtype_name = str(dtype)
    if dtype_name not in DTYPES:
        raise unknown_name("dtype", str(dtype), DTYPES)
    dtype = np.dtype(dtype_name)
    if task not in (None,) + TASKS:
        raise unknown_name("task", str(task), TASKS)
    path = os.fspath(name)
    if path.lower().endswith(USER_SUFFIXES):
        from .files import load_csv, load_npz  # imported here: files.py builds on this module

        if path.lower().endswith(".csv"):
            return load_csv(path, target, dtype, task)
        _no_target(target, path)
        return load_npz(path, dtype, task)
    key = path.lower().replace("-", "_")
    _no_target(target, path)
    if key in _IDX_SETS:
        return _load_idx_set(key, data_dir, download, mirrors, dtype)
    if key in _SKLEARN_SETS:
        return _load_sklearn(key, dtype)
    err = unknown_name("dataset", path, DATASETS)
    raise ConfigError(f"{err}; a path ending in .csv or .npz is also accepted")


def _no_target(target, name):
    if target is not None:
        raise ConfigError(f"target={target!r} only applies to CSV files, not {name!r}")


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST and MNIST


_IDX_FILES = (  # (images, labels) for the train split, then the test split
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
_IDX_SETS = {
    "fashion_mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "mnist": tuple(str(i) for i in range(10)),
}
IMAGE_SHAPE = (28, 28)

# SHA-256 of the published .gz files
SHA256 = {
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
}
MIRRORS = {
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
}
SYSTEM_DIRS = {  # folders of distribution packages (Debian: dataset-fashion-mnist)
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist",),
    "mnist": (),
}
HOW_TO_GET = {
    "fashion_mnist": "apt-get install dataset-fashion-mnist, or ",
    "mnist": "",
}


def cache_dir(name):
    """``$XDG_CACHE_HOME/ffnn/<name>``, by default ``~/.cache/ffnn/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ffnn", name)


def _search_roots(name, data_dir):
    """Folders searched for the four files, in order, each with its subfolders named after the set."""
    roots = []
    if data_dir is not None:
        roots.append(os.fspath(data_dir))
    env = os.environ.get("FFNN_DATA_DIR")
    if env:
        roots.append(env)
    roots.append(cache_dir(name))
    roots.extend(SYSTEM_DIRS.get(name, ()))
    folders = []
    for root in roots:
        for sub in ("", name, name.replace("_", "-")):
            folder = os.path.join(root, sub) if sub else root
            if folder not in folders:
                folders.append(folder)
    return folders


def _find_in(folder):
    """The four file paths in ``folder`` (each .gz or not), or the list of missing names."""
    found, missing = [], []
    for base in (b for pair in _IDX_FILES for b in pair):
        for candidate in (base + ".gz", base):
            if os.path.isfile(os.path.join(folder, candidate)):
                found.append(os.path.join(folder, candidate))
                break
        else:
            missing.append(base + ".gz")
    return found, missing


def _mirror_list(name, mirrors):
    if mirrors is None:
        env = os.environ.get("FFNN_MIRRORS", "")
        mirrors = [m.strip() for m in env.split(",") if m.strip()] or MIRRORS[name]
    elif isinstance(mirrors, str):
        mirrors = [m.strip() for m in mirrors.split(",") if m.strip()]
    return list(mirrors)


def _fetch(name, mirrors):
    """Download the missing files into the cache; return (their paths or None, failure notes)."""
    # Imported here: urllib, http.client and ssl cost several MB of memory that a run on local files never needs.
    from .download import download as _download

    folder = cache_dir(name)
    failures = []
    paths = []
    for base in (b for pair in _IDX_FILES for b in pair):
        have = [os.path.join(folder, c) for c in (base + ".gz", base) if os.path.isfile(os.path.join(folder, c))]
        if have:
            paths.append(have[0])
            continue
        filename = base + ".gz"
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            try:
                dest = os.path.join(folder, filename)
                paths.append(_download(url, dest, SHA256[name][filename], progress=sys.stderr.isatty()))
                break
            except (DataError, OSError) as e:
                failures.append(str(e) if isinstance(e, DataError) else f"{url}: {e}")
        else:
            return None, failures
    return paths, failures


def _load_idx_set(name, data_dir, download, mirrors, dtype):
    folders = _search_roots(name, data_dir)
    incomplete = []
    for folder in folders:
        paths, missing = _find_in(folder)
        if not missing:
            return _assemble_idx(name, paths, dtype)
        if paths:
            incomplete.append(f"{folder} lacks {', '.join(missing)}")
    failures = []
    if download:
        mirror_list = _mirror_list(name, mirrors)
        paths, failures = _fetch(name, mirror_list)
        if paths is not None:
            return _assemble_idx(name, paths, dtype)
        if not mirror_list:
            failures = ["no mirrors given"]
    files = ", ".join(b + ".gz" for pair in _IDX_FILES for b in pair)
    parts = [f"{name}: files not found (need {files}, .gz or not); looked in {', '.join(folders)}"]
    if incomplete:
        parts.append("incomplete: " + "; ".join(incomplete))
    parts.append(("download failed: " + "; ".join(failures)) if download else "download disabled")
    fetch = "allow the download" if not download else "give working mirrors (mirrors=, FFNN_MIRRORS)"
    parts.append(
        f"to get them: {HOW_TO_GET[name]}put the four files in a folder and pass it as data_dir "
        f"(--data-dir) or set FFNN_DATA_DIR, or {fetch}"
    )
    raise DataError("; ".join(parts))


def _read_split(images_path, labels_path, n_classes, dtype):
    # With a dtype the images are converted while read, so the raw bytes are never held in full; without one
    # they stay as stored.
    images = read_idx(images_path, dtype=dtype)
    labels = read_idx(labels_path)
    names = f"{images_path} and {labels_path}"
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{images_path}: images have shape {images.shape}; expected (n, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})"
        )
    if images.size and (images.min() < 0 or images.max() > 255):
        raise DataError(f"{images_path}: pixel values range {images.min()}..{images.max()}; expected 0..255")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{labels_path}: labels have shape {labels.shape} and dtype {labels.dtype}; expected (n,) integers"
        )
    if len(images) != len(labels):
        raise DataError(f"{names}: {len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise DataError(f"{names}: no images; at least one example is needed")
    if images.dtype.kind == "f" and not np.all(np.isfinite(images)):
        raise DataError(f"{images_path}: pixel values include NaN or infinity; expected 0..255")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{labels_path}: labels range {labels.min()}..{labels.max()}; expected 0..{n_classes - 1}")
    return images.reshape(len(images), -1), labels.astype(np.int64)


def _assemble_idx(name, paths, dtype):
    class_names = list(_IDX_SETS[name])
    train_img, train_lab, test_img, test_lab = paths
    scaling = Scaling(offset=0.0, scale=255.0)  # pixels 0..255 -> [0, 1]
    # The images stay as stored, bytes in the published files: X_train and X_test become float arrays the first
    # time they are read, and a training run takes them as bytes through Dataset.inputs.
    X_train, y_train = _read_split(train_img, train_lab, len(class_names), None)
    X_test, y_test = _read_split(test_img, test_lab, len(class_names), None)
    X_train, X_test = (_stored_images(images, dtype, scaling) for images in (X_train, X_test))
    return Dataset(
        name=name,
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        class_names=class_names,
        task="classification",
        scaling=scaling,
    )


def _stored_images(images, dtype, scaling):
    """The images as ScaledBytes when they are bytes; floats now when they are stored wider (nothing to save)."""
    if images.dtype == np.uint8:
        return ScaledBytes(images, float(scaling.offset), float(scaling.scale), dtype)
    return scaling._transform_inplace(images.astype(dtype))


# ---------------------------------------------------------------------------------------------
# scikit-learn's bundled sets

_SKLEARN_SETS = {  # name -> (loader name, task)
    "digits": ("load_digits", "classification"),
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
TEST_SIZE = 0.2  # held-out fraction when a set has no test split of its own
SPLIT_SEED = 0  # random_state of that split, so every run sees the same split


def _load_sklearn(name, dtype):
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    loader_name, task = _SKLEARN_SETS[name]
    kwargs = {"scaled": False} if name == "diabetes" else {}  # raw features; the split's own scaling follows
    bunch = getattr(sklearn.datasets, loader_name)(**kwargs)
    X = np.asarray(bunch.data, dtype=np.float64)
    if task == "classification":
        y = np.asarray(bunch.target, dtype=np.int64)
        class_names = [str(c) for c in bunch.target_names]
        stratify = y
    else:
        y = np.asarray(bunch.target, dtype=dtype)
        class_names = None
        stratify = None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=stratify
    )
    return _standardised(name, X_train, y_train, X_test, y_test, class_names, task, dtype)


def _standardised(name, X_train, y_train, X_test, y_test, class_names, task, dtype, feature_names=None,
                 source=None):
    """Standardise features with the train split's mean and std (std 0 -> 1)."""
    X_train = np.asarray(X_train, dtype=np.float64)
    scaling = Scaling.standardising(X_train, name, feature_names)
    return Dataset(
        name=name,
        X_train=scaling.transform(X_train).astype(dtype, copy=False),
        y_train=y_train,
        X_test=scaling.transform(np.asarray(X_test, dtype=np.float64)).astype(dtype, copy=False),
        y_test=y_test,
        class_names=class_names,
        task=task,
        scaling=scaling,
        feature_names=feature_names,
        source=source,
    )


def _holdout(X, y, task, source):
    """Split off a test set (stratified for classification when every class allows it)."""
    from sklearn.model_selection import train_test_split

    if len(X) < 2:
        raise DataError(f"{source}: {len(X)} rows; at least 2 are needed to hold out a test split")
    if task == "classification":
        try:
            return train_test_split(X, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y)
        except ValueError:
            pass  # a class too small to be in both splits
    return train_test_split(X, y, test_size=TEST_SIZE, random_state=SPLIT_SEED)


# ---------------------------------------------------------------------------------------------
# user files


def _encode_labels(values, source):
    """Class names (sorted, as str) and int64 indices for label values (numbers or strings)."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise DataError(f"{source}: class labels must be 1-D, got shape {values.shape}")
    classes, y = np.unique(values, return_inverse=True)
    return [str(c) for c in classes], y.astype(np.int64).reshape(-1)
