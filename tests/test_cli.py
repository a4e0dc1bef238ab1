import contextlib
import io as _io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

import ffnn
from ffnn import cli, runs
from ffnn.training import History
from callbacks import StopAtEpoch

FASHION = "/usr/share/datasets/fashion-mnist"
DIGITS_FLAGS = ["-d", "digits", "-e", "30", "-b", "32", "-a", "relu", "-sz", "64", "-lr", "1e-3", "-q"]
SMALL_FLAGS = ["-d", "digits", "-e", "5", "-b", "32", "-a", "tanh", "-nhl", "1", "-sz", "32", "-lr", "2e-3",
               "-q"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default "runs" folder never lands in the source tree


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def only_run_dir(output_dir):
    (name,) = os.listdir(output_dir)
    return os.path.join(output_dir, name)


def assert_one_error_line(code, err):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ffnn: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("digits")
    stdout = _io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["train", *DIGITS_FLAGS, "--output-dir", os.fspath(out_dir)])
    return code, stdout.getvalue(), only_run_dir(out_dir)


# -- train ------------------------------------------------------------------------------------------------
def test_train_digits_end_to_end(digits_run):
    code, out, run_dir = digits_run
    assert code == 0
    assert "test accuracy" in out and f"saved to {run_dir}" in out
    assert sorted(os.listdir(run_dir)) == sorted(
        ["config.json", "history.csv", "model.safetensors", "checkpoint.safetensors", "summary.json"])
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["test_accuracy"] >= 0.95
    assert summary["epochs_completed"] == 30
    assert summary["test_loss"] > 0 and summary["seconds"] > 0
    history = History.from_csv(os.path.join(run_dir, "history.csv"))
    assert history["epoch"] == list(range(1, 31))
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert (config["epochs"], config["batch_size"], config["activation"], config["hidden_size"],
            config["learning_rate"]) == (30, 32, "relu", 64, 1e-3)


def write_fashion_subset(folder, n_train=2000, n_test=500):
    from ffnn.data import read_idx, write_idx

    for split, n in (("train", n_train), ("t10k", n_test)):
        images = read_idx(os.path.join(FASHION, f"{split}-images-idx3-ubyte.gz"))[:n]
        labels = read_idx(os.path.join(FASHION, f"{split}-labels-idx1-ubyte.gz"))[:n]
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte"), images)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte"), labels)


@pytest.mark.skipif(not os.path.isfile(os.path.join(FASHION, "train-images-idx3-ubyte.gz")),
                    reason="Fashion-MNIST files (Debian dataset-fashion-mnist) are not installed")
def test_train_fashion_mnist_subset(tmp_path, capsys):
    data_dir = tmp_path / "fashion"
    write_fashion_subset(data_dir)
    code, out, err = run(capsys, "train", "-d", "fashion_mnist", "--data-dir", os.fspath(data_dir), "-e", "3",
                         "-b", "32", "-a", "relu", "-sz", "64", "-lr", "2e-3", "-q", "--output-dir", "out")
    assert code == 0, err
    run_dir = only_run_dir("out")
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["epochs_completed"] == 3 and summary["test_accuracy"] >= 0.7
    assert len(History.from_csv(os.path.join(run_dir, "history.csv"))) == 3
    net = ffnn.Network.load(os.path.join(run_dir, "model.safetensors"))
    assert net.sizes == [784, 64, 64, 10]
    assert net.metadata["class_names"][-1] == "Ankle boot"

    code, out, err = run(capsys, "evaluate", run_dir, "--data-dir", os.fspath(data_dir))
    assert code == 0, err
    assert "500 test examples" in out and "Ankle boot" in out
    assert f"accuracy {summary['test_accuracy']:.4f}" in out


def test_assignment_flags_verbatim(capsys):
    code, out, err = run(capsys, "train", "-d", "digits", "--output-dir", "out",
                         "-nhl", "3", "-sz", "32", "-a", "ReLU", "-o", "nadam", "-lr", "1e-3", "-w_i", "Xavier",
                         "-w_d", "0.0005", "-l", "mean_squared_error", "-b", "16", "-e", "2", "-beta1", "0.9",
                         "-beta2", "0.999", "-eps", "1e-6", "-m", "0.5", "-beta", "0.5", "-q")
    assert code == 0, err
    run_dir = only_run_dir("out")
    assert os.path.basename(run_dir) == "hl_3_sz_32_bs_16_ac_relu_o_nadam_l_mse"
    config = json.load(open(os.path.join(run_dir, "config.json")))
    expected = {"num_layers": 3, "hidden_size": 32, "activation": "relu", "optimizer": "nadam",  # one spelling
                "learning_rate": 1e-3, "weight_init": "xavier", "weight_decay": 0.0005,
                "loss": "mean_squared_error", "batch_size": 16, "epochs": 2, "beta1": 0.9, "beta2": 0.999,
                "epsilon": 1e-6, "momentum": 0.5, "beta": 0.5, "dataset": "digits"}
    assert {k: config[k] for k in expected} == expected
    net = ffnn.Network.load(os.path.join(run_dir, "model.safetensors"))
    assert net.config["sizes"] == [64, 32, 32, 32, 10]
    assert (net.config["activation"], net.config["output"], net.config["loss"]) == ("relu", "softmax",
                                                                                    "squared_error")
    assert len(History.from_csv(os.path.join(run_dir, "history.csv"))) == 2


def test_long_flags_and_hidden_sizes(capsys):
    code, _, err = run(capsys, "train", "--dataset", "iris", "--epochs", "2", "--batch-size", "8",
                       "--learning-rate", "0.01", "--hidden-sizes", "8", "4", "--weight-decay", "0.001",
                       "--val-fraction", "0", "--seed", "3", "--dtype", "float64", "--output-dir", "out",
                       "--name", "r", "-q")
    assert code == 0, err
    net = ffnn.Network.load(os.path.join("out", "r", "model.safetensors"))
    assert net.sizes == [4, 8, 4, 3] and net.dtype == np.float64
    history = History.from_csv(os.path.join("out", "r", "history.csv"))
    assert history["val_loss"] == [None, None]


def test_config_file_with_flags_overriding(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("dataset: iris\nepochs: 4\nbatch-size: 8\nhidden_sizes: [6]\n"
                                     "optimizer: momentum\nlearning_rate: 0.05\noutput_dir: out\nname: cfg\n")
    code, _, err = run(capsys, "train", "--config", "c.yaml", "-e", "2", "-lr", "0.01", "-q")
    assert code == 0, err
    config = json.load(open(os.path.join("out", "cfg", "config.json")))
    assert config["epochs"] == 2 and config["learning_rate"] == 0.01  # the flags win
    assert config["batch_size"] == 8 and config["optimizer"] == "momentum" and config["hidden_sizes"] == [6]
    assert len(History.from_csv(os.path.join("out", "cfg", "history.csv"))) == 2
    # the assignment's short keys work in a file too, and flags still win over them
    (tmp_path / "s.yaml").write_text("d: iris\ne: 4\nb: 8\nnhl: 1\nsz: 6\nlr: 0.05\noutput_dir: out\nname: short\n")
    code, _, err = run(capsys, "train", "--config", "s.yaml", "-e", "2", "--hidden_size", "5", "-q")
    assert code == 0, err
    config = json.load(open(os.path.join("out", "short", "config.json")))
    assert (config["epochs"], config["batch_size"], config["num_layers"], config["hidden_size"]) == (2, 8, 1, 5)


@pytest.mark.parametrize("text,words", [
    ("epochs: 2\nhiden_size: 3\n", ["c.yaml", "hiden_size", "hidden_size"]),
    ("epochs: [1\n", ["c.yaml", "YAML"]),
    ("- 1\n- 2\n", ["c.yaml", "mapping"]),
    ("epochs: 0\n", ["epochs", "positive integer"]),
])
def test_bad_config_files(tmp_path, capsys, text, words):
    (tmp_path / "c.yaml").write_text(text)
    code, _, err = run(capsys, "train", "--config", "c.yaml", "-d", "iris", "--output-dir", "out")
    line = assert_one_error_line(code, err)
    for word in words:
        assert word in line
    code, _, err = run(capsys, "train", "--config", "missing.yaml")
    assert "missing.yaml" in assert_one_error_line(code, err)


# -- evaluate and predict ---------------------------------------------------------------------------------
def test_evaluate_prints_loss_accuracy_and_confusion_matrix(digits_run, capsys):
    _, _, run_dir = digits_run
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    code, out, err = run(capsys, "evaluate", os.path.join(run_dir, "model.safetensors"))
    assert code == 0, err
    assert f"loss {summary['test_loss']:.4f}" in out
    assert f"accuracy {summary['test_accuracy']:.4f}" in out
    assert "360 test examples" in out and "rows: true class" in out
    code, out_dir, _ = run(capsys, "evaluate", run_dir)  # a run folder works too
    assert code == 0 and out_dir == out


def test_evaluate_shows_class_names(capsys):
    code, _, err = run(capsys, "train", "-d", "iris", "-e", "3", "-b", "16", "--output-dir", "out", "-q")
    assert code == 0, err
    code, out, err = run(capsys, "evaluate", os.path.join(only_run_dir("out"), "model.safetensors"))
    assert code == 0, err
    matrix = out.split("rows: true class")[1]
    for name in ("setosa", "versicolor", "virginica"):
        assert name in matrix
    counts = [int(v) for line in matrix.strip().splitlines()[2:] for v in line.split()[2:]]
    assert sum(counts) == 30


def raw_digits_test_features():
    ds = ffnn.datasets.load("digits")
    raw = np.rint(ds.X_test.astype(np.float64) * ds.scaling.scale + ds.scaling.offset)
    assert raw.min() >= 0 and raw.max() <= 16  # pixel values 0..16
    return ds, raw


@pytest.mark.parametrize("header", [False, True])
def test_predict_matches_the_network_on_scaled_data(digits_run, tmp_path, capsys, header):
    _, _, run_dir = digits_run
    ds, raw = raw_digits_test_features()
    with open("input.csv", "w") as f:
        if header:
            f.write(",".join(f"pixel{i}" for i in range(64)) + "\n")
        for row in raw:
            f.write(",".join(str(int(v)) for v in row) + "\n")
    model = os.path.join(run_dir, "model.safetensors")
    code, out, err = run(capsys, "predict", model, "input.csv", "-o", "out.csv")
    assert code == 0, err
    assert out == "" and "out.csv" in err
    net = ffnn.Network.load(model)
    lines = open("out.csv").read().splitlines()
    assert lines[0].split(",") == ["prediction"] + [f"p_{c}" for c in ds.class_names]
    labels = [line.split(",")[0] for line in lines[1:]]
    expected = [ds.class_names[i] for i in net.predict(ds.X_test)]
    assert labels == expected
    assert [ds.class_names[i] for i in net.predict(ds.scaling.transform(raw))] == expected
    probs = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    np.testing.assert_allclose(probs, net.predict_proba(ds.X_test), rtol=1e-5, atol=1e-6)

    code, out, err = run(capsys, "predict", run_dir, "input.csv")  # to standard output
    assert code == 0 and out.splitlines() == lines


def test_predict_regression(tmp_path, capsys):
    code, _, err = run(capsys, "train", "-d", "diabetes", "-e", "2", "-b", "32", "--output-dir", "out", "-q")
    assert code == 0, err
    run_dir = only_run_dir("out")
    (tmp_path / "x.csv").write_text("\n".join(",".join(["0.5"] * 10) for _ in range(3)) + "\n")
    code, out, err = run(capsys, "predict", run_dir, "x.csv")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "prediction" and len(lines) == 4
    net = ffnn.Network.load(os.path.join(run_dir, "model.safetensors"))
    from ffnn.data import Scaling
    X = Scaling.from_dict(net.metadata["scaling"]).transform(np.full((3, 10), 0.5))
    target = Scaling.from_dict(net.metadata["target_scaling"])  # the network learns standardised targets
    expected = net.predict(X.astype(net.dtype))[:, 0] * target.scale[0] + target.offset[0]
    np.testing.assert_allclose([float(v) for v in lines[1:]], expected, rtol=1e-6)
    y = ffnn.datasets.load("diabetes").y_train
    np.testing.assert_allclose([target.offset[0], target.scale[0]], [y.mean(), y.std()], rtol=1e-6)


def test_regression_learns_targets_of_any_size(capsys):
    code, out, err = run(capsys, "train", "-d", "diabetes", "-e", "30", "-b", "32", "--output-dir", "out")
    assert code == 0, err
    assert "targets standardised" in out
    summary = json.loads(open(os.path.join(only_run_dir("out"), "summary.json")).read())
    y_test = ffnn.datasets.load("diabetes").y_test
    assert summary["test_loss"] < 0.7  # a fraction of the variance left unexplained: predicting the mean gives ~1
    assert summary["test_rmse"] < 0.85 * y_test.std()
    code, out, err = run(capsys, "evaluate", only_run_dir("out"))
    assert code == 0, err
    assert f"RMSE {summary['test_rmse']:.4g}" in out and f"loss {summary['test_loss']:.4f}" in out


def animals_csv(path, names=("cat", "dog", "emu"), shift=0.0, factor=1.0, columns=("a", "b", "c"), bom=False,
                rename=None):
    """Three well separated classes in features a, b, c written in the order ``columns`` (and ``rename``d), the
    label last; features optionally moved and stretched."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(90):
        k = i % 3
        x = (np.array([k, -k, 2 * k], float) + rng.normal(0, 0.1, 3)) * factor + shift
        rows.append(dict(zip(("a", "b", "c"), x), label=names[k]))
    order = list(columns) + ["label"]
    text = ",".join((rename or {}).get(c, c) for c in order) + "\n"
    text += "".join(",".join(str(r[c]) for c in order) + "\n" for r in rows)
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8") as f:
        f.write(text)
    return path


@pytest.fixture
def animals_run(capsys):
    os.makedirs("data")
    animals_csv("data/animals.csv")
    code, _, err = run(capsys, "train", "-d", "data/animals.csv", "--target", "label", "-e", "20", "-b", "8",
                       "-sz", "16", "--output-dir", "out", "-q")
    assert code == 0, err
    return only_run_dir("out")


def evaluated(capsys, *argv):
    code, out, err = run(capsys, "evaluate", *argv)
    assert code == 0, err
    return float(out.split("loss ")[1].split()[0]), float(out.split("accuracy ")[1].split()[0]), out


def test_evaluate_finds_the_training_file_from_anywhere(capsys, animals_run):
    loss, accuracy, out = evaluated(capsys, animals_run)
    assert accuracy == 1.0 and "animals.csv: 18 test examples" in out
    os.makedirs("elsewhere")
    os.chdir("elsewhere")
    animals_csv("animals.csv", names=("x", "y", "z"))  # a file of the same name here is not the one trained on
    assert evaluated(capsys, os.path.join("..", animals_run))[:2] == (loss, accuracy)


def test_evaluate_on_a_new_file_uses_the_model_scaling_and_class_names(capsys, animals_run):
    loss, accuracy, _ = evaluated(capsys, animals_run)
    # a file without cats numbers dogs 0 and emus 1, the model 1 and 2
    animals_csv("all.csv")
    with open("all.csv") as f, open("no_cats.csv", "w") as g:
        g.writelines(line for line in f if not line.endswith(",cat\n"))
    assert accuracy == 1.0 and evaluated(capsys, animals_run, "-d", "no_cats.csv")[1] == 1.0
    # features a thousand times larger mean something else to the model: far worse, not the same numbers
    animals_csv("stretched.csv", shift=500.0, factor=1000.0)
    assert evaluated(capsys, animals_run, "-d", "stretched.csv")[1] < 0.5
    # the columns are taken by name, in any order; other names are refused
    animals_csv("perm.csv", columns=("c", "a", "b"))
    assert evaluated(capsys, animals_run, "-d", "perm.csv")[:2] == (loss, accuracy)
    animals_csv("renamed.csv", rename={"a": "x"})
    code, _, err = run(capsys, "evaluate", animals_run, "-d", "renamed.csv")
    assert "no column 'a'; unknown column 'x'" in assert_one_error_line(code, err)
    # a class the model never saw is refused
    animals_csv("new.csv", names=("cat", "dog", "ant"))
    code, _, err = run(capsys, "evaluate", animals_run, "-d", "new.csv")
    line = assert_one_error_line(code, err)
    assert "'ant'" in line and "'cat', 'dog', 'emu'" in line


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_evaluate_gives_an_estimators_network_its_features_as_they_are(capsys):
    from ffnn import FFNNClassifier

    animals_csv("animals.csv", shift=3.0, factor=2.0)
    ds = ffnn.datasets.load("animals.csv", target="label")
    raw_train, raw_test = (ds.scaling.inverse_transform(X) for X in (ds.X_train, ds.X_test))
    labels = np.array(ds.class_names)
    clf = FFNNClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(raw_train, labels[ds.y_train])
    clf.network_.save("est.safetensors")
    _, accuracy, _ = evaluated(capsys, "est.safetensors", "-d", "animals.csv", "--target", "label")
    assert accuracy == pytest.approx(clf.score(raw_test, labels[ds.y_test]), abs=1e-4)
    assert 0.2 < accuracy < 1.0  # a half-trained network, whose accuracy tells raw and scaled features apart
    assert accuracy != pytest.approx(clf.score(ds.X_test, labels[ds.y_test]), abs=1e-4)


def test_predict_notes_inputs_that_look_already_scaled(capsys):
    net = ffnn.Network([4, 3, 2], seed=0)
    net.metadata = {"scaling": {"offset": 0.0, "scale": 255.0}, "class_names": ["a", "b"]}
    net.save("img.safetensors")
    write_csv("scaled.csv", "0.1,0.5,1.0,0\n")
    code, out, err = run(capsys, "predict", "img.safetensors", "scaled.csv")
    assert code == 0 and "holds values in [0, 1], but this model takes raw values, which it divides by 255" in err
    write_csv("raw.csv", "10,128,255,0\n")
    code, out, err = run(capsys, "predict", "img.safetensors", "raw.csv")
    assert code == 0 and err == ""


def test_a_runs_config_json_retrains_it_elsewhere(capsys):
    code, _, err = run(capsys, "train", *SMALL_FLAGS, "-e", "1", "--name", "first")
    assert code == 0, err
    config = json.loads(open("runs/first/config.json").read())
    config["extra"] = {"study": "s", "trial": 3}  # as a sweep's trial records it
    open("trial.json", "w").write(json.dumps(config))
    code, _, err = run(capsys, "train", "--config", "trial.json", "--output-dir", "again", "--name", "best")
    assert code == 0, err
    again = json.loads(open("again/best/config.json").read())
    assert again["extra"] == {} and again["epochs"] == 1 and again["hidden_size"] == 32


def test_predict_to_standard_output_as_a_file_name(digits_run, tmp_path):
    (tmp_path / "x.csv").write_text(",".join(["1"] * 64) + "\n")
    piped = subprocess.run(f"{sys.executable} -m ffnn predict {digits_run[2]} x.csv -o /dev/stdout | cat",
                           shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[0].startswith("prediction,p_0,p_1")
    (tmp_path / "log.txt").write_text("before\n")
    appended = subprocess.run(f"{sys.executable} -m ffnn predict {digits_run[2]} x.csv -o /dev/stdout >> log.txt",
                              shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert appended.returncode == 0, appended.stderr
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0] == "before" and lines[1].startswith("prediction,")


def test_predict_takes_columns_by_name_and_skips_a_bom(capsys, animals_run, tmp_path):
    animals_csv("same.csv")
    code, expected, err = run(capsys, "predict", animals_run, "same.csv")
    assert code == 0, err
    assert expected.splitlines()[0] == "prediction,p_cat,p_dog,p_emu"
    animals_csv("shuffled.csv", columns=("c", "a", "b"), bom=True)
    code, out, err = run(capsys, "predict", animals_run, "shuffled.csv")
    assert code == 0, err
    assert out == expected
    animals_csv("wrong.csv", rename={"c": "d"})
    code, _, err = run(capsys, "predict", animals_run, "wrong.csv")
    line = assert_one_error_line(code, err)
    assert "no column 'c'" in line and "unknown column 'd'" in line and "a, b, c" in line


def test_predict_errors_give_the_file_line(capsys, digits_run):
    write_csv("x.csv", "\n\n" + ",".join(["1"] * 64) + "\n\n" + ",".join(["1"] * 63 + ["x"]) + "\n")
    code, _, err = run(capsys, "predict", digits_run[2], "x.csv")
    assert "line 5" in assert_one_error_line(code, err)


def test_an_explicit_output_decides_the_task_of_a_file(capsys):
    write_csv("price.csv", "x,price\n" + "".join(f"{i},{100 + 7 * i}\n" for i in range(50)))
    code, _, err = run(capsys, "train", "-d", "price.csv", "--target", "price", "--output", "linear", "-e", "2",
                       "-b", "8", "--output-dir", "out", "-q")
    assert code == 0, err
    net = ffnn.Network.load(os.path.join(only_run_dir("out"), "model.safetensors"))
    assert net.sizes[-1] == 1 and net.metadata["task"] == "regression"
    loss, _ = evaluated_regression(capsys, only_run_dir("out"))
    assert loss > 0


def evaluated_regression(capsys, *argv):
    code, out, err = run(capsys, "evaluate", *argv)
    assert code == 0, err
    return float(out.split("loss ")[1].split()[0]), out


# -- gradcheck --------------------------------------------------------------------------------------------
def test_gradcheck_passes(capsys):
    code, out, _ = run(capsys, "gradcheck")
    assert code == 0 and "passed" in out and "FAIL" not in out
    code, out, _ = run(capsys, "gradcheck", "--sizes", "3", "5", "2", "-a", "relu", "--output", "linear", "-l",
                       "squared_error", "--batch", "4")
    assert code == 0 and "passed" in out


def test_gradcheck_fails_for_a_broken_gradient(capsys, monkeypatch):
    real = ffnn.Network.back_propagation

    def broken(self, cache, y, out=None):
        grads = real(self, cache, y, out)
        grads["W1"] *= 1.01
        return grads

    monkeypatch.setattr(ffnn.Network, "back_propagation", broken)
    code, out, _ = run(capsys, "gradcheck")
    assert code == 1
    assert "FAILED" in out
    assert [line.split()[0] for line in out.splitlines() if line.rstrip().endswith("FAIL")] == ["W1"]


# -- resume -----------------------------------------------------------------------------------------------
def tensors(run_dir):
    return load_file(os.path.join(run_dir, "model.safetensors"))


def test_interrupted_run_resumes_to_the_same_weights(capsys, monkeypatch):
    code, _, err = run(capsys, "train", *SMALL_FLAGS, "--output-dir", "whole")
    assert code == 0, err

    real_train = runs.train

    def interrupted(config, **kw):
        return real_train(config, **{**kw, "callbacks": [*kw.get("callbacks", ()), StopAtEpoch(3)]})

    monkeypatch.setattr(runs, "train", interrupted)
    code, _, err = run(capsys, "train", *SMALL_FLAGS, "--output-dir", "split")
    monkeypatch.setattr(runs, "train", real_train)
    run_dir = only_run_dir("split")
    assert code == 130
    assert f"ffnn train --resume {run_dir}" in err and "Traceback" not in err
    assert len(History.from_csv(os.path.join(run_dir, "history.csv"))) == 2

    code, out, err = run(capsys, "train", "--resume", run_dir)
    assert code == 0, err
    a, b = tensors(only_run_dir("whole")), tensors(run_dir)
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert History.from_csv(os.path.join(run_dir, "history.csv"))["epoch"] == [1, 2, 3, 4, 5]

    # --epochs extends the finished run
    code, out, err = run(capsys, "train", "--resume", run_dir, "--epochs", "7")
    assert code == 0, err
    assert json.load(open(os.path.join(run_dir, "summary.json")))["epochs_completed"] == 7
    assert len(History.from_csv(os.path.join(run_dir, "history.csv"))) == 7
    assert not np.array_equal(tensors(run_dir)["W1"], a["W1"])


@pytest.mark.parametrize("extra", [["-lr", "0.1"], ["-d", "iris"], ["--config", "c.yaml"]])
def test_resume_with_other_flags_is_an_error(capsys, tmp_path, extra):
    (tmp_path / "c.yaml").write_text("epochs: 3\n")
    code, _, err = run(capsys, "train", "-d", "iris", "-e", "1", "-b", "16", "--output-dir", "out", "-q")
    assert code == 0, err
    run_dir = only_run_dir("out")
    before = open(os.path.join(run_dir, "model.safetensors"), "rb").read()
    code, _, err = run(capsys, "train", "--resume", run_dir, *extra)
    line = assert_one_error_line(code, err)
    assert "--resume" in line and "--epochs" in line
    assert open(os.path.join(run_dir, "model.safetensors"), "rb").read() == before


def test_resume_of_something_that_is_not_a_run(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--resume", os.fspath(tmp_path))
    assert "not a run folder" in assert_one_error_line(code, err)


def test_sigint_stops_the_run_and_it_resumes(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "sig"
    history = run_dir / "history.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ffnn", "train", "-d", "digits", "-e", "500", "-b", "16", "-sz", "64", "-q",
         "--output-dir", os.fspath(tmp_path / "runs"), "--name", "sig"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if history.exists() and len(history.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert f"ffnn train --resume {run_dir}" in err
    assert "Traceback" not in err
    for name in ("history.csv", "checkpoint.safetensors", "model.safetensors", "summary.json"):
        assert (run_dir / name).exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    done = summary["epochs_completed"]
    assert summary["status"] == "interrupted" and 1 <= done < 500
    assert len(History.from_csv(history)) == done

    code, out, err = run(capsys, "train", "--resume", os.fspath(run_dir), "--epochs", str(done + 2))
    assert code == 0, err
    assert json.loads((run_dir / "summary.json").read_text())["epochs_completed"] == done + 2
    assert History.from_csv(history)["epoch"] == list(range(1, done + 3))


# -- errors -----------------------------------------------------------------------------------------------
def write_csv(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


GOOD_CSV = "a,b,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(40))

TRAIN_ERRORS = [
    (["-d", "digits", "-a", "swish"], ["'swish'", "relu", "tanh", "sigmoid", "identity"]),
    (["-d", "digits", "-o", "adagrad"], ["'adagrad'", "sgd", "momentum", "nag", "rmsprop", "adam", "nadam"]),
    (["-d", "cifar10"], ["'cifar10'", "fashion_mnist", "mnist", "digits", "iris", ".csv"]),
    (["-d", "digits", "-l", "hinge"], ["'hinge'", "cross_entropy", "mean_squared_error"]),
    (["-d", "digits", "-w_i", "orthogonal"], ["'orthogonal'", "xavier", "he", "random"]),
    (["-d", "digits", "-e", "0"], ["epochs", "positive integer"]),
    (["-d", "digits", "-b", "0"], ["batch_size", "positive integer"]),
    (["-d", "digits", "-lr", "-1"], ["learning_rate", "> 0"]),
    (["-d", "digits", "-sz", "0"], ["hidden_size", "positive integer"]),
    (["-d", "digits", "--val-fraction", "1"], ["val_fraction", "< 1"]),
    (["-d", "digits", "--dtype", "float16"], ["dtype", "float32", "float64"]),
    (["-d", "iris", "-b", "100000"], ["batch_size", "100000"]),
    (["-d", "diabetes", "-l", "cross_entropy"], ["cross_entropy", "valid pairs", "squared_error"]),
    (["-d", "diabetes", "--output", "softmax"], ["regression", "linear"]),
    (["-d", "missing.csv", "--target", "y"], ["missing.csv"]),
    (["-d", "good.csv"], ["target", "a, b, label"]),
    (["-d", "good.csv", "--target", "nope"], ["'nope'", "a, b, label"]),
    (["-d", "gap.csv", "--target", "label"], ["gap.csv", "line 3", "missing value", "'b'"]),
    (["-d", "nan.csv", "--target", "label"], ["nan.csv", "line 2", "NaN", "'a'"]),
    (["-d", "text.csv", "--target", "label"], ["text.csv", "non-numeric", "'x'"]),
    (["-d", "digits", "--target", "label"], ["target", "CSV"]),
]


@pytest.mark.parametrize("argv,words", TRAIN_ERRORS, ids=[" ".join(a) for a, _ in TRAIN_ERRORS])
def test_bad_training_input_is_one_error_line(tmp_path, capsys, argv, words):
    write_csv("good.csv", GOOD_CSV)
    write_csv("gap.csv", "a,b,label\n1,2,0\n3,,1\n" + "4,5,0\n" * 10)
    write_csv("nan.csv", "a,b,label\nnan,2,0\n3,4,1\n" + "4,5,0\n" * 10)
    write_csv("text.csv", "a,b,label\n1,2,0\n3,x,1\n" + "4,5,0\n" * 10)
    code, out, err = run(capsys, "train", *argv, "-e", "1", "--output-dir", "out", "-q") if "-e" not in argv \
        else run(capsys, "train", *argv, "--output-dir", "out", "-q")
    line = assert_one_error_line(code, err)
    assert code == 1
    for word in words:
        assert word in line, line
    assert "Traceback" not in out


def test_a_csv_dataset_trains(capsys):
    write_csv("good.csv", GOOD_CSV)
    code, _, err = run(capsys, "train", "-d", "good.csv", "--target", "label", "-e", "2", "-b", "8",
                       "--output-dir", "out", "-q")
    assert code == 0, err


@pytest.fixture
def damaged_model(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    return os.fspath(path)


def test_bad_model_files_for_evaluate_and_predict(capsys, damaged_model, digits_run):
    write_csv("x.csv", "1,2,3\n")
    for argv in (["evaluate", damaged_model], ["predict", damaged_model, "x.csv"],
                 ["evaluate", "no-such-model.safetensors"], ["predict", "no-such-folder/", "x.csv"]):
        code, out, err = run(capsys, *argv)
        line = assert_one_error_line(code, err)
        assert argv[1].rstrip("/") in line
    # a truncated copy of a real model
    data = open(os.path.join(digits_run[2], "model.safetensors"), "rb").read()
    open("cut.safetensors", "wb").write(data[:-10])
    code, _, err = run(capsys, "evaluate", "cut.safetensors")
    assert "truncated" in assert_one_error_line(code, err)


@pytest.mark.parametrize("text,words", [
    ("1,2,3\n", ["line 1", "3 values", "64 features"]),
    (",".join(["1"] * 64) + "\n" + ",".join(["1"] * 65) + "\n", ["line 2", "65 values", "64"]),
    (",".join(["1"] * 63 + ["nan"]) + "\n", ["NaN"]),
    (",".join(["1"] * 64) + "\n" + ",".join(["1"] * 63 + [""]) + "\n", ["line 2", "missing or not a number"]),
    (",".join(["1"] * 64) + "\n" + ",".join(["1"] * 63 + ["x"]) + "\n", ["line 2", "missing or not a number"]),
    ("", ["no rows"]),
])
def test_bad_prediction_input(capsys, digits_run, text, words):
    write_csv("x.csv", text)
    code, out, err = run(capsys, "predict", digits_run[2], "x.csv", "-o", "y.csv")
    line = assert_one_error_line(code, err)
    for word in words:
        assert word in line, line
    assert not os.path.exists("y.csv")


def test_a_first_row_with_a_missing_value_is_not_taken_for_a_header(capsys, digits_run):
    write_csv("x.csv", ",".join(["1"] * 63 + [""]) + "\n" + (",".join(["2"] * 64) + "\n") * 2)
    code, out, err = run(capsys, "predict", digits_run[2], "x.csv")
    line = assert_one_error_line(code, err)
    assert "line 1" in line


DIVERGING = ["train", "-d", "diabetes", "-o", "sgd", "-lr", "10", "-e", "5", "-sz", "16", "--output-dir", "out",
             "-q"]


def test_diverged_run_exits_1_and_names_the_kept_weights(capsys):
    with np.errstate(all="ignore"):
        code, out, err = run(capsys, *DIVERGING)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("ffnn: the training loss became") and "smaller learning rate" in lines[0]
    model = os.path.join(only_run_dir("out"), "model.safetensors")
    assert lines[1] == f"ffnn: the last good weights are in {model}"
    assert np.all(np.isfinite(ffnn.Network.load(model).theta))


def test_diverged_run_prints_no_numpy_warnings(capsys):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, _ = run(capsys, *DIVERGING)
    assert code == 1
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ffnn.ConfigError, match="epochs"):
        cli.main(["--debug", "train", "-d", "digits", "-e", "0", "--output-dir", "out"])
    with pytest.raises(ffnn.ConfigError, match="activation"):
        cli.main(["train", "-d", "digits", "-a", "swish", "--debug", "--output-dir", "out"])
    with pytest.raises(ffnn.ModelFileError):
        cli.main(["--debug", "evaluate", "no-such-model.safetensors"])


def test_usage_errors_exit_2_with_one_line(capsys):
    for argv in (["train", "-e", "many"], ["train", "--bogus"], ["frobnicate"], []):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "error:" in err and "Traceback" not in err


def test_python_dash_m_exit_codes(tmp_path):
    def ffnn_cmd(*argv):
        return subprocess.run([sys.executable, "-m", "ffnn", *argv], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)

    ok = ffnn_cmd("gradcheck")
    assert ok.returncode == 0 and "passed" in ok.stdout
    bad = ffnn_cmd("train", "-d", "digits", "-e", "0")
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [bad.stderr.strip()] and bad.stderr.startswith("ffnn: error: epochs")
    usage = ffnn_cmd("train", "--bogus")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    debug = ffnn_cmd("--debug", "train", "-d", "digits", "-e", "0")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
    version = ffnn_cmd("--version")
    assert version.returncode == 0 and ffnn.__version__ in version.stdout
    assert not os.path.exists(tmp_path / "runs")


def test_a_closed_pipe_does_not_stop_training(tmp_path):
    # `ffnn train | head -1`: the reader goes after the first line; the run still finishes and saves everything
    proc = subprocess.Popen([sys.executable, "-m", "ffnn", "train", *SMALL_FLAGS[:-1], "--name", "piped"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith(b"data: digits") and "Traceback" not in err and "Exception" not in err
    summary = json.loads((tmp_path / "runs" / "piped" / "summary.json").read_text())
    assert summary["epochs_completed"] == 5 and summary["status"] == "completed"


@pytest.mark.parametrize("argv,words", [
    (["gradcheck", "--seed", "-1"], ["--seed", "non-negative", "-1"]),
    (["gradcheck", "--tolerance", "nan"], ["--tolerance", "between 0 and 1", "nan"]),
    (["gradcheck", "--tolerance", "-1"], ["--tolerance", "-1"]),
    (["train", "-d", "digits", "--name", "../escape"], ["name", "plain folder name", "'../escape'"]),
    (["train", "-d", "digits", "--name", "."], ["name", "'.'"]),
    (["train", "-d", "text.npz"], ["text.npz", "not a zip archive"]),
])
def test_bad_arguments_are_one_error_line(capsys, argv, words):
    write_csv("text.npz", "1,2,3\n")
    code, out, err = run(capsys, *argv, *(["-e", "1", "-q"] if argv[0] == "train" else []))
    line = assert_one_error_line(code, err)
    for word in words:
        assert word in line, line
    assert not os.path.exists("runs") and not os.path.exists("../escape")


def test_predict_writes_through_links_and_refuses_folders(capsys, digits_run, tmp_path):
    write_csv("x.csv", ",".join(["1"] * 64) + "\n")
    os.makedirs("folder")
    code, _, err = run(capsys, "predict", digits_run[2], "x.csv", "-o", "folder")
    line = assert_one_error_line(code, err)
    assert "is a folder" in line and line.endswith("folder") and ".tmp" not in line
    write_csv("real.csv", "old\n")
    os.symlink("real.csv", "link.csv")
    code, out, err = run(capsys, "predict", digits_run[2], "x.csv", "-o", "link.csv")
    assert code == 0, err
    assert out == "" and "ffnn: wrote 1 prediction to link.csv" in err
    assert os.path.islink("link.csv") and open("real.csv").read().startswith("prediction,")


def test_resume_may_change_the_device_and_the_data_folder(capsys):
    code, _, err = run(capsys, "train", *SMALL_FLAGS, "--name", "r", "-e", "1")
    assert code == 0, err
    code, out, err = run(capsys, "train", "--resume", "runs/r", "-e", "2", "--device", "cpu", "--data-dir", ".")
    assert code == 0, err
    assert json.loads(open("runs/r/summary.json").read())["epochs_completed"] == 2
    code, _, err = run(capsys, "train", "--resume", "runs/r", "-lr", "0.1")
    line = assert_one_error_line(code, err)
    assert "--epochs, --device, --data-dir" in line and "--learning_rate" in line


def test_a_resumed_run_records_where_its_data_is_now(capsys, monkeypatch):
    from ffnn.data import write_idx

    monkeypatch.setenv("FFNN_MIRRORS", "http://127.0.0.1:9/")  # nothing is downloaded
    monkeypatch.setenv("FFNN_DATA_DIR", os.path.abspath("nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.abspath("cache"))
    rng = np.random.default_rng(0)
    os.makedirs("d1")
    for split, n in (("train", 60), ("t10k", 20)):
        write_idx(f"d1/{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(f"d1/{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    code, _, err = run(capsys, "train", "-d", "mnist", "--data-dir", "d1", "-e", "1", "-b", "16", "-sz", "8",
                       "--name", "m", "-q")
    assert code == 0, err
    os.rename("d1", "d2")
    code, _, err = run(capsys, "train", "--resume", "runs/m", "-e", "2", "--data-dir", "d2")
    assert code == 0, err
    assert json.loads(open("runs/m/config.json").read())["data_dir"] == os.path.abspath("d2")
    code, out, err = run(capsys, "evaluate", "runs/m")
    assert code == 0, err
    assert "mnist: 20 test examples" in out


def test_resuming_a_stopped_run_to_the_epochs_it_has_completes_it(capsys, monkeypatch):
    code, _, err = run(capsys, "train", *SMALL_FLAGS, "--name", "s", "-e", "2")
    assert code == 0, err
    summary = json.loads(open("runs/s/summary.json").read())
    summary["status"] = "interrupted"  # as Ctrl-C after epoch 2 of a longer run leaves it
    open("runs/s/summary.json", "w").write(json.dumps(summary))
    code, out, err = run(capsys, "train", "--resume", "runs/s", "-e", "2")
    assert code == 0 and err == ""
    assert "already finished 2 epochs" in out
    assert json.loads(open("runs/s/summary.json").read())["status"] == "completed"


def test_a_config_file_may_name_the_wandb_project(tmp_path, capsys, monkeypatch):
    from ffnn import wandb_logging

    seen = []
    monkeypatch.setattr(wandb_logging, "make_logger", lambda project, entity, config: seen.append((project, entity)))
    write_csv("c.yaml", "dataset: digits\nepochs: 1\nwandb_project: course\nwandb_entity: me\n")
    code, _, err = run(capsys, "train", "--config", "c.yaml", "-q")
    assert code == 0, err
    assert seen == [("course", "me")]
    code, _, err = run(capsys, "train", "--config", "c.yaml", "-q", "-wp", "other")
    assert seen[-1] == ("other", "me")


def test_training_imports_neither_the_other_commands_nor_the_downloader(tmp_path):
    # explain, sweep and report, and urllib and http.client for downloads, are memory a training run does not need
    from ffnn.data import write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 10)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    unwanted = ("ffnn.explain", "ffnn.sweep", "ffnn.report", "ffnn.data.download", "urllib.request", "http.client")
    script = (f"import sys\nfrom ffnn.cli import main\n"
              f"code = main(['train', '--data-dir', {os.fspath(tmp_path)!r}, '-e', '1', '-b', '8', '-sz', '8', '-q', "
              f"'--output-dir', {os.fspath(tmp_path / 'runs')!r}])\n"
              f"print(code, [m for m in {unwanted!r} if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 []"


def test_a_single_class_csv_is_one_error_line(capsys, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{2 * i},x\n" for i in range(40)))
    code, out, err = run(capsys, "train", "-d", str(path), "--target", "label", "-e", "1", "--output-dir",
                         str(tmp_path / "runs"))
    line = assert_one_error_line(code, err)
    assert "single class" in line and "at least two" in line


def test_running_out_of_memory_is_one_error_line(capsys, monkeypatch):
    from ffnn import training

    class OutOfMemoryError(MemoryError):  # as CuPy's, on a GPU
        pass

    def fail(*args, **kwargs):
        raise OutOfMemoryError("Out of memory allocating 1,073,741,824 bytes (allocated so far: 0 bytes).")

    monkeypatch.setattr(training.Trainer, "fit", fail)
    code, out, err = run(capsys, "train", "-d", "iris", "-e", "1", "-q", "--output-dir", "out")
    line = assert_one_error_line(code, err)
    assert code == 1 and "out of memory (Out of memory allocating 1,073,741,824 bytes" in line
    assert "smaller batch size" in line


def test_two_target_columns_through_train_evaluate_and_predict(capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    rows = "".join(f"{a:.4f},{b:.4f},{c:.4f},{a + b:.4f},{b - c:.4f}\n" for a, b, c in X)
    write_csv("reg2.csv", "a,b,c,y1,y2\n" + rows)
    code, _, err = run(capsys, "train", "-d", "reg2.csv", "--target", "y1,y2", "-e", "2", "-b", "8", "--name", "r2",
                       "-q")
    assert code == 0, err
    code, out, err = run(capsys, "predict", "runs/r2", "reg2.csv")  # its target columns are dropped by name
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "y1,y2" and len(lines) == 61
    np.savez("reg2.npz", X=X, y=np.stack([X[:, 0] + X[:, 1], X[:, 1] - X[:, 2]], axis=1))
    code, out, err = run(capsys, "evaluate", "runs/r2", "-d", "reg2.npz")  # no CSV target for an NPZ file
    assert code == 0, err
    assert "reg2.npz: 12 test examples" in out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_numbers_as_feature_names_are_a_header(capsys):
    pd = pytest.importorskip("pandas")
    from ffnn import FFNNClassifier

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(30, 3)), columns=["2019", "2020", "2021"])
    clf = FFNNClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(frame, np.arange(30) % 2)
    clf.network_.save("years.safetensors")
    frame[["2021", "2019", "2020"]].to_csv("years.csv", index=False)
    code, out, err = run(capsys, "predict", "years.safetensors", "years.csv")
    assert code == 0, err
    assert len(out.splitlines()) == 31
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == [str(v) for v in clf.predict(frame)]


def test_resume_of_a_file_says_it_is_not_a_run_folder(capsys, digits_run):
    code, _, err = run(capsys, "train", "--resume", os.path.join(digits_run[2], "model.safetensors"))
    assert "is not a run folder (a file)" in assert_one_error_line(code, err)


def test_predict_output_goes_to_a_folder_that_exists(capsys, digits_run):
    write_csv("x.csv", ",".join(["1"] * 64) + "\n")
    code, _, err = run(capsys, "predict", digits_run[2], "x.csv", "-o", "no/such/folder/y.csv")
    assert "no folder" in assert_one_error_line(code, err)
    assert not os.path.exists("no")


def test_evaluate_with_a_different_number_of_targets_says_so(capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    write_csv("t.csv", "a,b,y1,y2\n" + "".join(f"{a:.3f},{b:.3f},{a + b:.3f},{a - b:.3f}\n" for a, b in X))
    code, _, err = run(capsys, "train", "-d", "t.csv", "--target", "y1,y2", "-e", "1", "-b", "8", "--name", "t",
                       "-q")
    assert code == 0, err
    code, _, err = run(capsys, "evaluate", "runs/t", "--target", "y2")
    assert "the model predicts y1, y2; --target names y2" in assert_one_error_line(code, err)


def test_names_have_one_spelling_in_config_json(capsys):
    code, _, err = run(capsys, "train", *SMALL_FLAGS, "-e", "1", "-w_i", "Xavier", "-a", "ReLU", "--name", "n")
    assert code == 0, err
    config = json.loads(open("runs/n/config.json").read())
    assert (config["weight_init"], config["activation"], config["optimizer"]) == ("xavier", "relu", "adam")
