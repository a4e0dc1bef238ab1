import numpy as np
import pytest

from ffnn.metrics import accuracy, confusion_matrix, format_confusion


def test_accuracy():
    assert accuracy([0, 1, 2, 1], [0, 2, 2, 1]) == pytest.approx(0.75)
    assert accuracy(np.array([3]), np.array([3])) == 1.0
    assert accuracy([1, 1], [0, 0]) == 0.0


def test_accuracy_of_nothing_is_nan():
    assert np.isnan(accuracy([], []))


def test_confusion_matrix_small_case():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    cm = confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0],
                                       [0, 2, 1],
                                       [1, 0, 0]])
    assert cm.sum() == len(y_true)
    # The diagonal over the total is the accuracy.
    assert np.trace(cm) / cm.sum() == pytest.approx(accuracy(y_true, y_pred))


def test_confusion_matrix_counts_repeats_and_unseen_classes():
    cm = confusion_matrix(np.array([1, 1, 1]), np.array([1, 1, 0]), 4)
    assert cm.shape == (4, 4)
    assert cm[1, 1] == 2 and cm[1, 0] == 1
    assert cm.sum() == 3


def test_format_confusion_contains_names_and_counts():
    cm = np.array([[12, 3], [0, 457]])
    text = format_confusion(cm, ["T-shirt", "Sneaker"])
    assert "T-shirt" in text and "Sneaker" in text
    lines = text.splitlines()
    shirt = next(line for line in lines if "T-shirt" in line)
    sneaker = next(line for line in lines if "Sneaker" in line)
    assert shirt.split()[-2:] == ["12", "3"]
    assert sneaker.split()[-2:] == ["0", "457"]
    assert lines.index(shirt) < lines.index(sneaker)


def test_format_confusion_without_names_numbers_the_rows():
    cm = confusion_matrix([0, 1, 2], [0, 2, 2], 3)
    text = format_confusion(cm)
    rows = [line.split() for line in text.splitlines()[-3:]]
    assert rows[0] == ["0", "0", "1", "0", "0"]
    assert rows[1] == ["1", "1", "0", "0", "1"]
    assert rows[2] == ["2", "2", "0", "0", "1"]
