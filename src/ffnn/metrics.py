"""Accuracy, confusion matrix, and their text form."""

import numpy as np


def accuracy(y_true, y_pred):
    """Fraction of predictions equal to the true labels."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def confusion_matrix(y_true, y_pred, n_classes):
    """Counts C[i, j] of examples of true class i predicted as j; shape (n_classes, n_classes)."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def format_confusion(cm, class_names=None):
    """The confusion matrix as aligned text: rows are true classes, columns predicted ones (by number)."""
    k = cm.shape[0]
    names = [str(c) for c in class_names] if class_names else [str(i) for i in range(k)]
    name_w = min(max(len(n) for n in names), 14)
    cell = max(len(str(int(cm.max()))), len(str(k - 1))) + 2
    lines = ["rows: true class; columns: predicted class, numbered as the rows",
             " " * (name_w + 5) + "".join(f"{j:>{cell}}" for j in range(k))]
    for i in range(k):
        lines.append(f"{i:>3} {names[i][:name_w]:<{name_w}} " + "".join(f"{int(v):>{cell}}" for v in cm[i]))
    return "\n".join(lines)
