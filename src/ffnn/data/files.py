"""The user's own data: CSV files (a header row and a target column) and NPZ archives.

Both are split into train and test (when the file has no split of its own) and standardised on the training
split, like scikit-learn's bundled sets.
"""

import csv
import math
import os
import zipfile

import numpy as np

from ..errors import DataError
from .datasets import _encode_labels, _holdout, _standardised


def load_csv(path, target, dtype, task=None):
    if target is None:
        columns = _csv_header(path)
        raise DataError(f"{path}: a CSV needs target=<column> (--target); columns: {', '.join(columns)}")
    targets = [target] if isinstance(target, str) else list(target)
    header, rows = _read_csv(path)
    missing = [t for t in targets if t not in header]
    if missing:
        raise DataError(f"{path}: no target column {', '.join(map(repr, missing))}; columns: {', '.join(header)}")
    if len(set(targets)) != len(targets):
        raise DataError(f"{path}: target columns repeat: {', '.join(targets)}")
    if len(header) == len(targets):
        raise DataError(f"{path}: no feature columns besides the target")
    t_idx = [header.index(t) for t in targets]
    f_idx = [i for i in range(len(header)) if i not in t_idx]

    X = np.empty((len(rows), len(f_idx)), dtype=np.float64)
    raw_targets = [[] for _ in t_idx]
    for r, (line, row) in enumerate(rows):
        for j, i in enumerate(f_idx):
            X[r, j] = _parse_feature(row[i], path, line, header[i])
        for k, i in enumerate(t_idx):
            cell = row[i].strip()
            if cell == "" or cell.lower() == "nan":
                raise DataError(f"{path} line {line}: missing value in target column {header[i]!r}")
            raw_targets[k].append((line, cell))

    task, y, class_names = _csv_targets(raw_targets, [header[i] for i in t_idx], path, dtype, task)
    X_train, X_test, y_train, y_test = _holdout(X, y, task, path)
    return _standardised(os.path.basename(path), X_train, y_train, X_test, y_test, class_names, task, dtype,
                         feature_names=[header[i] for i in f_idx], source=os.path.abspath(path))


def _csv_header(path):
    header, _ = _read_csv(path, header_only=True)
    return header


def _read_csv(path, header_only=False):
    """(header, [(line number, row), ...]); rows all have the header's length, blank lines dropped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next((row for row in reader if any(c.strip() for c in row)), None)  # past blank lines
            if header is None:
                raise DataError(f"{path}: empty file; a header row with column names is required")
            header = [h.strip() for h in header]
            if all(_is_number(h) for h in header):
                raise DataError(f"{path} line {reader.line_num}: looks like data; a header row with column names "
                                "is required")
            if any(h == "" for h in header):
                raise DataError(f"{path} line {reader.line_num}: empty column name in the header")
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise DataError(f"{path} line {reader.line_num}: repeated column names: {', '.join(dup)}")
            if header_only:
                return header, []
            rows = []
            for row in reader:
                if not row or all(c.strip() == "" for c in row) and len(row) == 1:
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path} line {reader.line_num}: {len(row)} fields, expected {len(header)}")
                rows.append((reader.line_num, row))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        raise DataError(f"{path}: cannot read CSV ({reason})") from e
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return header, rows


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_feature(cell, path, line, column):
    text = cell.strip()
    if text == "":
        raise DataError(f"{path} line {line}: missing value in column {column!r}")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path} line {line}: non-numeric value {text!r} in feature column {column!r}") from None
    if math.isnan(value):
        raise DataError(f"{path} line {line}: missing value (NaN) in column {column!r}")
    if math.isinf(value):
        raise DataError(f"{path} line {line}: non-finite value {text!r} in column {column!r}")
    return value


def _csv_targets(raw_targets, names, path, dtype, task=None):
    """Decide the task from the target cells unless ``task`` is given: integers or strings -> classes, other
    numbers -> regression."""
    if len(raw_targets) > 1 and task == "classification":
        raise DataError(f"{path}: a classification has one target column; got {len(raw_targets)}: "
                        f"{', '.join(names)}")
    if len(raw_targets) == 1 and task != "regression":
        cells = [c for _, c in raw_targets[0]]
        ints = _all_ints(cells, integral_floats=task == "classification")
        if ints is not None:
            class_names, y = _encode_labels(ints, path)
            return "classification", y, class_names
        if task == "classification" or not all(_is_number(c) for c in cells):
            class_names, y = _encode_labels(cells, path)
            return "classification", y, class_names
    columns = []
    for name, cells in zip(names, raw_targets):
        column = []
        for line, cell in cells:
            try:
                value = float(cell)
            except ValueError:
                why = "a regression needs numbers" if len(names) == 1 else "several target columns must all be numeric"
                raise DataError(f"{path} line {line}: non-numeric value {cell!r} in target column {name!r} ({why})"
                                ) from None
            if not math.isfinite(value):
                raise DataError(f"{path} line {line}: non-finite value {cell!r} in target column {name!r}")
            column.append(value)
        columns.append(column)
    y = np.asarray(columns, dtype=dtype).T
    return "regression", (y[:, 0].copy() if len(columns) == 1 else y), None


def _all_ints(cells, integral_floats=False):
    """The cells as ints when each is written as an integer ("3"), or also as an integral number ("3.0") when
    ``integral_floats``; None otherwise."""
    try:
        return [int(c) for c in cells]
    except ValueError:
        if not integral_floats:
            return None
    try:
        values = [float(c) for c in cells]
    except ValueError:
        return None
    return [int(v) for v in values] if all(math.isfinite(v) and v == int(v) for v in values) else None


def load_npz(path, dtype, task=None):
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"PK":  # every zip file starts so
                raise DataError(f"{path}: cannot read NPZ (not a zip archive of arrays, as numpy.savez writes)")
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if {"X_train", "y_train", "X_test", "y_test"} <= keys:
                parts = {k: npz[k] for k in ("X_train", "y_train", "X_test", "y_test")}
            elif {"X", "y"} <= keys:
                parts = {k: npz[k] for k in ("X", "y")}
            else:
                raise DataError(
                    f"{path}: expected arrays X_train, y_train, X_test, y_test or X, y; "
                    f"found {', '.join(sorted(keys)) or 'none'}"
                )
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise DataError(f"{path}: cannot read NPZ ({reason})") from e

    for key in [k for k in parts if k.startswith("X")]:
        parts[key] = _npz_features(parts[key], path, key)
    for key in [k for k in parts if k.startswith("y")]:
        X_key = "X" + key[1:]
        y, X = parts[key], parts[X_key]
        if y.ndim == 0 or len(y) != len(X):
            rows = f"{len(y)} rows" if y.ndim else "no rows (a scalar)"
            raise DataError(f"{path}: {key} has {rows} but {X_key} has {len(X)}")

    if "X" in parts:
        task, y, class_names = _npz_targets([parts["y"]], path, dtype, task)
        X_train, X_test, y_train, y_test = _holdout(parts["X"], y[0], task, path)
    else:
        X_train, X_test = parts["X_train"], parts["X_test"]
        if X_train.shape[1] != X_test.shape[1]:
            raise DataError(f"{path}: X_train has {X_train.shape[1]} features but X_test has {X_test.shape[1]}")
        task, (y_train, y_test), class_names = _npz_targets([parts["y_train"], parts["y_test"]], path, dtype,
                                                            task)
    return _standardised(os.path.basename(path), X_train, y_train, X_test, y_test, class_names, task, dtype,
                         source=os.path.abspath(path))


def _npz_features(X, path, key):
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: {key} has dtype {X.dtype}; features must be numeric")
    if X.ndim < 2:
        raise DataError(f"{path}: {key} has shape {X.shape}; expected (n, n_features)")
    if X.shape[0] == 0 or X.size == 0:
        raise DataError(f"{path}: {key} is empty (shape {X.shape}); at least one example with one feature is needed")
    X = X.reshape(len(X), -1).astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise DataError(f"{path}: {key} has non-finite values (NaN or inf)")
    return X


def _npz_targets(ys, path, dtype, task=None):
    """Task, encoded targets and class names for the y arrays (train and test share the classes). Integers and
    strings are class labels and floats regression targets, unless ``task`` says otherwise."""
    kinds = {y.dtype.kind for y in ys}
    if task == "classification" and not all(y.dtype.kind in "biuUS" or np.all(np.isfinite(y)) for y in ys):
        raise DataError(f"{path}: class labels have non-finite values (NaN or inf)")
    integral = kinds <= set("f") and all(np.all(y == np.round(y)) for y in ys)
    if task == "regression" and not kinds <= set("biuf"):
        raise DataError(f"{path}: regression targets must be numbers; got dtype "
                        f"{', '.join(sorted(str(y.dtype) for y in ys))}")
    if task == "classification" or (task is None and kinds <= set("biuUS")):
        if any(y.ndim != 1 for y in ys):
            raise DataError(f"{path}: class labels must be 1-D, got shapes {', '.join(str(y.shape) for y in ys)}")
        labels = np.concatenate(ys)
        class_names, codes = _encode_labels(labels.astype(np.int64) if integral else labels, path)
        bounds = np.cumsum([len(y) for y in ys])[:-1]
        return "classification", np.split(codes, bounds), class_names
    if kinds <= set("biuf"):
        out = []
        for y in ys:
            if y.ndim not in (1, 2):
                raise DataError(f"{path}: regression targets have shape {y.shape}; expected (n,) or (n, k)")
            if not np.all(np.isfinite(y)):
                raise DataError(f"{path}: regression targets have non-finite values (NaN or inf)")
            out.append(y.astype(dtype))
        if len({y.shape[1:] for y in out}) > 1:
            shapes = ", ".join(str(y.shape) for y in out)
            raise DataError(f"{path}: train and test targets differ in shape: {shapes}")
        return "regression", out, None
    dtypes = ", ".join(sorted(str(y.dtype) for y in ys))
    raise DataError(f"{path}: targets have dtype {dtypes}; expected numbers or strings")
