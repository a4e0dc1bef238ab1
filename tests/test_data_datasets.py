import json
import os

import numpy as np
import pytest

from ffnn.arrays import ScaledBytes
from ffnn.data import DATASETS, Dataset, Deferred, Scaling, datasets, load, read_idx, write_idx
from ffnn.errors import ConfigError, DataError

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
SKLEARN_SETS = {  # name -> (n_samples, n_features, n_classes or None)
    "digits": (1797, 64, 10),
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast_cancer": (569, 30, 2),
    "diabetes": (442, 10, None),
}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user cache, data folder, mirrors or system folders leak into a test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FFNN_DATA_DIR", raising=False)
    monkeypatch.setenv("FFNN_MIRRORS", "http://127.0.0.1:9/")  # discard port: nothing answers
    monkeypatch.setitem(datasets.SYSTEM_DIRS, "fashion_mnist", ())


def write_mnist(folder, n_train=20, n_test=8, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        write_idx(folder / (name + ".gz" if gz else name), a)
    return arrays


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST and MNIST


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_system_folder(monkeypatch):
    monkeypatch.setitem(datasets.SYSTEM_DIRS, "fashion_mnist", (FASHION_DIR,))
    ds = load("fashion_mnist", download=False)
    assert ds.X_train.shape == (60000, 784) and ds.X_test.shape == (10000, 784)
    assert ds.X_train.dtype == np.float32
    assert ds.X_train.min() == 0.0 and ds.X_train.max() == 1.0
    assert ds.y_train.dtype == np.int64 and set(np.unique(ds.y_train)) == set(range(10))
    assert ds.n_outputs == 10 and ds.n_features == 784 and ds.task == "classification"
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.y_train[:5].tolist() == [9, 0, 0, 3, 0]  # the published first labels
    assert float(ds.scaling.offset) == 0.0 and float(ds.scaling.scale) == 255.0


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_data_dir(tmp_path, gz):
    arrays = write_mnist(tmp_path / "d", gz=gz)
    ds = load("mnist", data_dir=tmp_path / "d", download=False, dtype="float64")
    assert ds.X_train.shape == (20, 784) and ds.X_test.shape == (8, 784)
    assert ds.X_train.dtype == np.float64
    np.testing.assert_allclose(ds.X_train * 255, arrays["train-images-idx3-ubyte"].reshape(20, 784), rtol=1e-12)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.y_test.dtype == np.int64
    assert ds.class_names == [str(i) for i in range(10)]
    raw_test = arrays["t10k-images-idx3-ubyte"].reshape(8, 784).astype(np.float64)
    np.testing.assert_array_equal(ds.scaling.transform(raw_test), ds.X_test)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mnist_images_stay_bytes_until_read_and_then_have_the_same_numbers(tmp_path, dtype):
    arrays = write_mnist(tmp_path / "d")
    ds = load("mnist", data_dir=tmp_path / "d", download=False, dtype=dtype)
    assert "X_train" not in vars(ds) and "X_test" not in vars(ds)  # both splits are still the files' bytes
    for split, stem, n in (("train", "train", 20), ("test", "t10k", 8)):
        stored = ds.inputs(split)
        assert isinstance(stored, ScaledBytes) and stored.raw.dtype == np.uint8 and stored.shape == (n, 784)
        # what reading with conversion and scaling the floats in place gives
        expected = read_idx(tmp_path / "d" / f"{stem}-images-idx3-ubyte.gz", dtype=dtype).reshape(n, 784)
        expected /= np.asarray(255, dtype)
        X = getattr(ds, f"X_{split}")
        assert X.dtype == np.dtype(dtype) and X.tobytes() == expected.tobytes()
        assert getattr(ds, f"X_{split}") is X  # built once, then kept
        assert ds.inputs(split) is X  # once built, the floats serve
        out = np.empty((3, 784), dtype)
        assert stored.take(np.array([n - 1, 0, 2]), out).tobytes() == expected[[n - 1, 0, 2]].tobytes()
    np.testing.assert_array_equal(ds.X_test * 255, arrays["t10k-images-idx3-ubyte"].reshape(8, 784))


def test_search_order_and_subfolders(tmp_path, monkeypatch):
    write_mnist(tmp_path / "env" / "mnist", n_train=12)
    monkeypatch.setenv("FFNN_DATA_DIR", str(tmp_path / "env"))
    assert load("mnist", download=False).X_train.shape == (12, 784)
    write_mnist(tmp_path / "cache" / "ffnn" / "mnist", n_train=14)
    assert load("mnist", download=False).X_train.shape == (12, 784)  # FFNN_DATA_DIR comes first
    write_mnist(tmp_path / "arg", n_train=16)
    assert load("mnist", data_dir=tmp_path / "arg", download=False).X_train.shape == (16, 784)
    monkeypatch.delenv("FFNN_DATA_DIR")
    assert load("mnist", download=False).X_train.shape == (14, 784)


def test_count_mismatch_names_the_files(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    message = r"t10k-images-idx3-ubyte\.gz and .*t10k-labels-idx1-ubyte\.gz: 8 images but 7 labels"
    with pytest.raises(DataError, match=message):
        load("mnist", data_dir=tmp_path)


def test_wrong_image_shape_and_label_range(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((20, 28, 27), dtype=np.uint8))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: images have shape \(20, 28, 27\)"):
        load("mnist", data_dir=tmp_path)
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(20, 10, dtype=np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: labels range 10..10"):
        load("mnist", data_dir=tmp_path)


def test_empty_and_non_finite_image_files(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(0, dtype=np.uint8))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: no images; at least one example is needed"):
        load("mnist", data_dir=tmp_path)
    write_mnist(tmp_path)
    images = np.zeros((20, 28, 28), np.float32)
    images[3, 4, 5] = np.nan
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: pixel values include NaN or infinity"):
        load("mnist", data_dir=tmp_path)


def test_offline_error_lists_places_and_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("FFNN_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setitem(datasets.SYSTEM_DIRS, "fashion_mnist", ("/nonexistent/fashion-mnist",))
    (tmp_path / "arg").mkdir()
    write_idx(tmp_path / "arg" / "train-images-idx3-ubyte.gz", np.zeros((1, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError) as e:
        load("fashion_mnist", data_dir=tmp_path / "arg", download=False)
    msg = str(e.value)
    assert "\n" not in msg
    for place in (tmp_path / "arg", tmp_path / "env", tmp_path / "env" / "fashion_mnist",
                  tmp_path / "cache" / "ffnn" / "fashion_mnist", "/nonexistent/fashion-mnist"):
        assert str(place) in msg
    assert f"{tmp_path / 'arg'} lacks train-labels-idx1-ubyte.gz" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg


def test_failed_download_is_reported(tmp_path):
    with pytest.raises(DataError, match=r"download failed: http://127\.0\.0\.1:9/train-images-idx3-ubyte\.gz: "):
        load("mnist", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# scikit-learn's bundled sets


@pytest.mark.parametrize("name", sorted(SKLEARN_SETS))
def test_sklearn_sets(name):
    n, n_features, n_classes = SKLEARN_SETS[name]
    ds = load(name)
    n_test = int(np.ceil(0.2 * n))
    assert ds.X_train.shape == (n - n_test, n_features) and ds.X_test.shape == (n_test, n_features)
    assert ds.X_train.dtype == np.float32 and ds.n_features == n_features
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-5)
    std = ds.X_train.std(axis=0)
    assert np.all((np.abs(std - 1) < 1e-4) | (std == 0))  # constant train columns stay 0
    assert abs(ds.X_test.mean()) > 1e-5  # the test split is scaled with the train statistics, not its own
    if n_classes is None:
        assert ds.task == "regression" and ds.class_names is None and ds.n_outputs == 1
        assert ds.y_train.dtype == np.float32 and ds.y_train.min() >= 25  # raw targets, 25..346
    else:
        assert ds.task == "classification" and len(ds.class_names) == n_classes == ds.n_outputs
        assert ds.y_train.dtype == np.int64
        # stratified: class proportions of the two splits agree
        p_train = np.bincount(ds.y_train, minlength=n_classes) / len(ds.y_train)
        p_test = np.bincount(ds.y_test, minlength=n_classes) / len(ds.y_test)
        assert np.abs(p_train - p_test).max() < 0.05


def test_iris_scaling_reproduces_the_features():
    from sklearn.datasets import load_iris

    ds = load("iris", dtype="float64")
    raw = load_iris().data
    assert ds.class_names == ["setosa", "versicolor", "virginica"]
    # every scaled test row is some raw row put through the stored scaling
    scaled_raw = ds.scaling.transform(raw)
    assert scaled_raw.dtype == np.float64
    for row in ds.X_test:
        assert np.min(np.abs(scaled_raw - row).max(axis=1)) < 1e-12


# ---------------------------------------------------------------------------------------------
# Scaling and Dataset


def test_scaling_round_trips_through_json():
    s = Scaling(offset=np.array([1.0, 2.0]), scale=np.array([2.0, 4.0]))
    t = Scaling.from_dict(json.loads(json.dumps(s.to_dict())))
    X = np.array([[3.0, 6.0], [1.0, 2.0]], dtype=np.float32)
    assert t.transform(X).dtype == np.float32
    np.testing.assert_array_equal(t.transform(X), [[1.0, 1.0], [0.0, 0.0]])
    scalar = Scaling.from_dict(json.loads(json.dumps(Scaling(0, 255).to_dict())))
    np.testing.assert_array_equal(scalar.transform(np.array([[255, 51]], dtype=np.uint8)), np.float32([[1.0, 0.2]]))
    with pytest.raises(DataError, match=r"expects \(n, 2\)"):
        s.transform(np.zeros((2, 3)))
    with pytest.raises(DataError, match="offset"):
        Scaling.from_dict({"scale": 1.0})


def test_a_deferred_X_test_is_built_on_first_use_only():
    built = []

    def build(value):
        built.append(value)
        return np.full((2, 3), value)

    ds = Dataset("d", np.zeros((4, 3)), np.zeros(4, np.int64), Deferred(build, 7.0), np.zeros(2, np.int64),
                 ["a", "b"], "classification", None)
    assert ds.n_features == 3 and built == []
    np.testing.assert_array_equal(ds.X_test, np.full((2, 3), 7.0))
    assert ds.X_test is ds.X_test and built == [7.0]
    with pytest.raises(AttributeError, match="no_such"):
        ds.no_such


def test_dataset_outputs_for_regression_columns():
    ds = Dataset("r", np.zeros((4, 3)), np.zeros((4, 2)), np.zeros((1, 3)), np.zeros((1, 2)), None, "regression", None)
    assert ds.n_features == 3 and ds.n_outputs == 2


# ---------------------------------------------------------------------------------------------
# user files


def write_csv(path, text):
    path.write_text(text)
    return path


def test_csv_classification_with_string_labels(tmp_path):
    rows = ["a,b,kind"] + [f"{i},{i % 3 * 10},{['cat', 'ant', 'bee'][i % 3]}" for i in range(30)]
    ds = load(write_csv(tmp_path / "animals.csv", "\n".join(rows) + "\n"), target="kind")
    assert ds.task == "classification" and ds.class_names == ["ant", "bee", "cat"]
    assert ds.X_train.shape == (24, 2) and ds.X_test.shape == (6, 2)
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2]  # stratified hold-out
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-6)
    # the label follows its row: feature b is 10 * (class index of cat=0, ant=1, bee=2 in the file)
    b = ds.scaling.offset[1] + ds.X_train[:, 1] * ds.scaling.scale[1]
    file_class = np.round(b / 10).astype(int)
    assert [ds.class_names[i] for i in ds.y_train] == [["cat", "ant", "bee"][k] for k in file_class]


def test_csv_integer_labels_sort_numerically(tmp_path):
    rows = ["x,label"] + [f"{i},{[2, 10, 9][i % 3]}" for i in range(12)]
    ds = load(write_csv(tmp_path / "d.csv", "\n".join(rows)), target="label")
    assert ds.class_names == ["2", "9", "10"]


def test_csv_regression(tmp_path):
    rows = ["x1,x2,y"] + [f"{i},{i * i},{i * 0.5 + 0.25}" for i in range(20)]
    ds = load(write_csv(tmp_path / "r.csv", "\n".join(rows)), target="y", dtype="float64")
    assert ds.task == "regression" and ds.class_names is None and ds.n_outputs == 1
    assert ds.y_train.shape == (16,) and ds.y_train.dtype == np.float64
    x1 = ds.scaling.offset[0] + ds.X_train[:, 0] * ds.scaling.scale[0]
    np.testing.assert_allclose(ds.y_train, x1 * 0.5 + 0.25)


def test_csv_two_target_columns(tmp_path):
    rows = ["x,y1,y2"] + [f"{i},{i}.5,{-i}.0" for i in range(10)]
    ds = load(write_csv(tmp_path / "r.csv", "\n".join(rows)), target=["y1", "y2"])
    assert ds.y_train.shape == (8, 2) and ds.n_outputs == 2 and ds.n_features == 1


@pytest.mark.parametrize(
    "body, message",
    [
        ("a,b,y\n1,2,0\n3,,1\n", r"bad\.csv line 3: missing value in column 'b'"),
        ("a,b,y\n1,2,0\n3,nan,1\n", r"bad\.csv line 3: missing value \(NaN\) in column 'b'"),
        ("a,b,y\n1,2,0\n3,4,1\n5,6\n", r"bad\.csv line 4: 2 fields, expected 3"),
        ("a,b,y\n1,2,0\n3,four,1\n", r"bad\.csv line 3: non-numeric value 'four' in feature column 'b'"),
        ("a,b,y\n1,inf,0\n", r"bad\.csv line 2: non-finite value 'inf'"),
        ("a,b,y\n1,2,\n", r"bad\.csv line 2: missing value in target column 'y'"),
        ("a,b,c\n1,2,0\n", r"bad\.csv: no target column 'y'; columns: a, b, c"),
        ("1,2,3\n1,2,0\n", r"bad\.csv line 1: .*header row with column names is required"),
        ("a,b,y\n", r"bad\.csv: no data rows"),
        ("\n\n1,2,3\n1,2,0\n", r"bad\.csv line 3: .*header row with column names is required"),
        ("a,b,y\n" + "1,1e200,0\n2,-1e200,1\n" * 3,
         r"bad\.csv: feature column 'b' has values too large to standardise"),
    ],
)
def test_csv_errors(tmp_path, body, message):
    path = write_csv(tmp_path / "bad.csv", body)
    with pytest.raises(DataError, match=message):
        load(path, target="y")


def test_csv_header_after_blank_lines(tmp_path):
    ds = load(write_csv(tmp_path / "b.csv", "\n\n a , b ,y\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(10))),
              target="y")
    assert ds.feature_names == ["a", "b"] and ds.class_names == ["0", "1"]
    assert ds.source == os.path.abspath(tmp_path / "b.csv") and ds.name == "b.csv"


@pytest.mark.parametrize("task", [None, "classification", "regression"])
def test_csv_task_decides_what_the_targets_are(tmp_path, task):
    ints = write_csv(tmp_path / "ints.csv", "x,y\n" + "".join(f"{i},{i % 4 * 100}\n" for i in range(40)))
    floats = write_csv(tmp_path / "floats.csv", "x,y\n" + "".join(f"{i},{i % 2}.0\n" for i in range(40)))
    a, b = load(ints, target="y", task=task), load(floats, target="y", task=task)
    expected = {None: ("classification", "regression"), "classification": ("classification",) * 2,
                "regression": ("regression",) * 2}[task]
    assert (a.task, b.task) == expected
    if a.task == "classification":
        assert a.class_names == ["0", "100", "200", "300"]
    if b.task == "classification":
        assert b.class_names == ["0", "1"] and sorted(set(b.y_train.tolist())) == [0, 1]
    else:
        assert sorted(set(b.y_train.tolist())) == [0.0, 1.0]


def test_csv_task_errors(tmp_path):
    text = write_csv(tmp_path / "t.csv", "x,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(10)))
    with pytest.raises(DataError, match=r"line 2: non-numeric value 'a' in target column 'y' \(a regression needs"):
        load(text, target="y", task="regression")
    two = write_csv(tmp_path / "two.csv", "x,y,z\n" + "".join(f"{i},{i},{i}\n" for i in range(10)))
    with pytest.raises(DataError, match="a classification has one target column; got 2: y, z"):
        load(two, target=["y", "z"], task="classification")
    with pytest.raises(ConfigError, match="classification, regression"):
        load(two, target="y", task="clustering")


def test_npz_task_decides_what_the_targets_are(tmp_path):
    np.savez(tmp_path / "f.npz", X=np.arange(40.0)[:, None], y=np.arange(40.0) % 3)
    assert load(tmp_path / "f.npz").task == "regression"
    ds = load(tmp_path / "f.npz", task="classification")
    assert ds.task == "classification" and ds.class_names == ["0", "1", "2"]
    np.savez(tmp_path / "i.npz", X=np.arange(40.0)[:, None], y=np.arange(40) % 3 * 50)
    ds = load(tmp_path / "i.npz", task="regression")
    assert ds.task == "regression" and ds.y_train.dtype == np.float32 and set(ds.y_train.tolist()) <= {0, 50, 100}
    np.savez(tmp_path / "s.npz", X=np.arange(4.0)[:, None], y=np.array(list("abab")))
    with pytest.raises(DataError, match="regression targets must be numbers"):
        load(tmp_path / "s.npz", task="regression")


def test_csv_needs_a_target(tmp_path):
    path = write_csv(tmp_path / "t.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="target=<column>.*columns: a, b"):
        load(str(path))


def test_npz_with_splits(tmp_path):
    rng = np.random.default_rng(0)
    X_train, X_test = rng.normal(5, 2, (40, 3)), rng.normal(5, 2, (10, 3))
    path = tmp_path / "s.npz"
    np.savez(path, X_train=X_train, y_train=np.array(["b", "a"] * 20), X_test=X_test, y_test=np.array(["c"] * 10))
    ds = load(path)
    assert ds.name == "s.npz" and ds.class_names == ["a", "b", "c"]
    assert ds.y_train[:2].tolist() == [1, 0] and ds.y_test.tolist() == [2] * 10
    np.testing.assert_allclose(ds.scaling.offset, X_train.mean(axis=0))
    np.testing.assert_allclose(ds.X_test, (X_test - X_train.mean(0)) / X_train.std(0), rtol=1e-5)


def test_npz_single_array_is_split(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 2, 2))  # features beyond 2-D are flattened
    y = rng.normal(size=(50, 3))
    np.savez(tmp_path / "r.npz", X=X, y=y)
    ds = load(str(tmp_path / "r.npz"))
    assert ds.task == "regression" and ds.X_train.shape == (40, 4) and ds.y_test.shape == (10, 3)
    assert ds.y_train.dtype == np.float32


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {"X": np.zeros((5, 2)), "target": np.zeros(5)},
            "expected arrays X_train, y_train, X_test, y_test or X, y; found X, target",
        ),
        ({"X": np.array([[1.0, np.nan]] * 5), "y": np.zeros(5)}, "X has non-finite values"),
        ({"X": np.zeros((5, 2)), "y": np.zeros(4)}, "y has 4 rows but X has 5"),
        ({"X": np.zeros(5), "y": np.zeros(5)}, r"X has shape \(5,\)"),
        ({"X_train": np.zeros((0, 3)), "y_train": np.zeros(0, int), "X_test": np.ones((4, 3)), "y_test": np.arange(4)},
         r"X_train is empty \(shape \(0, 3\)\)"),
        ({"X": np.zeros((5, 0)), "y": np.zeros(5)}, r"X is empty"),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "e.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load(tmp_path / "e.npz")


def test_not_an_npz(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"x\.npz: cannot read NPZ"):
        load(tmp_path / "x.npz")


# ---------------------------------------------------------------------------------------------
# names


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        load("cifar10")
    msg = str(e.value)
    assert "'cifar10'" in msg and ".csv" in msg and ".npz" in msg
    for name in DATASETS:
        assert name in msg


def test_bad_dtype_and_stray_target():
    with pytest.raises(ConfigError, match="float32, float64"):
        load("iris", dtype="float16")
    assert load("iris", dtype=np.float32).X_train.dtype == np.float32
    for bad in (None, "float", "f8"):
        with pytest.raises(ConfigError, match="float32, float64"):
            load("iris", dtype=bad)
    assert load("iris", dtype=np.dtype("f8")).X_train.dtype == np.float64
    with pytest.raises(ConfigError, match="only applies to CSV"):
        load("iris", target="species")
