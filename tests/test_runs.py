import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

import ffnn
from ffnn import runs
from ffnn.config import TrainConfig
from ffnn.errors import ConfigError, ModelFileError
from ffnn.training import History, Trainer
from callbacks import StopAtEpoch


def digits_config(tmp_path, **kw):
    values = {"dataset": "digits", "epochs": 4, "batch_size": 32, "hidden_sizes": [32], "activation": "relu",
              "learning_rate": 2e-3, "output_dir": os.fspath(tmp_path / "runs"), "seed": 0}
    values.update(kw)
    return TrainConfig(**values)


def test_run_folder_contents(tmp_path):
    result = runs.train(digits_config(tmp_path), verbose=0)
    assert result.status == "completed"
    folder = result.run_dir
    assert os.path.basename(folder) == "hl_1_sz_32_bs_32_ac_relu_o_adam"
    assert sorted(os.listdir(folder)) == sorted(
        ["config.json", "history.csv", "model.safetensors", "checkpoint.safetensors", "summary.json"])
    config = json.loads(open(os.path.join(folder, "config.json")).read())
    assert TrainConfig.from_dict(config) == digits_config(tmp_path)
    history = History.from_csv(os.path.join(folder, "history.csv"))
    assert history["epoch"] == [1, 2, 3, 4]
    assert all(v is not None for v in history["val_loss"])
    summary = json.loads(open(os.path.join(folder, "summary.json")).read())
    for key in ("test_loss", "test_accuracy", "epochs_completed", "seconds"):
        assert key in summary
    assert summary["epochs_completed"] == 4 and summary["status"] == "completed"
    assert summary == result.summary

    net = ffnn.Network.load(os.path.join(folder, "model.safetensors"))
    assert np.array_equal(net.theta, result.net.theta)
    ds = ffnn.datasets.load("digits")
    test = net.evaluate(ds.X_test, ds.y_test)
    assert summary["test_loss"] == pytest.approx(test["loss"], rel=1e-6)
    assert summary["test_accuracy"] == test["accuracy"]
    assert net.metadata["class_names"] == ds.class_names
    assert net.metadata["scaling"] == ds.scaling.to_dict()
    assert net.metadata["dataset"] == "digits" and net.metadata["task"] == "classification"

    # the checkpoint at the end holds the same weights
    _, state, _ = ffnn.io.load_checkpoint(os.path.join(folder, "checkpoint.safetensors"))
    assert state["epoch"] == 4


def test_a_dataset_passed_in_is_left_whole(tmp_path):
    ds = ffnn.datasets.load("digits")
    X_train = ds.X_train.copy()
    result = runs.train(digits_config(tmp_path), dataset=ds, verbose=0)
    assert result.status == "completed"
    np.testing.assert_array_equal(ds.X_train, X_train)  # sweeps train on the same dataset again


def test_a_second_run_gets_a_new_folder(tmp_path):
    config = digits_config(tmp_path, epochs=1)
    first = runs.train(config, verbose=0).run_dir
    second = runs.train(config, verbose=0).run_dir
    assert second == first + "-2"
    assert os.path.exists(os.path.join(first, "model.safetensors"))


def test_validation_comes_from_the_training_split_only(tmp_path, monkeypatch):
    seen = {}
    real_fit = Trainer.fit

    def spy(self, X, y, validation_data=None, rows=None, validation_rows=None):
        seen["X"], seen["val"] = np.asarray(X)[rows], np.asarray(X)[validation_rows]
        assert not set(rows) & set(validation_rows)
        return real_fit(self, X, y, validation_data, rows, validation_rows)

    monkeypatch.setattr(Trainer, "fit", spy)
    runs.train(digits_config(tmp_path, epochs=1, val_fraction=0.2), verbose=0)
    ds = ffnn.datasets.load("digits")
    train_rows = {r.tobytes() for r in ds.X_train}
    test_rows = {r.tobytes() for r in ds.X_test} - train_rows  # (digits has a few duplicate images)
    used = [r.tobytes() for r in np.vstack([seen["X"], seen["val"]])]
    assert len(used) == len(ds.X_train)
    assert seen["val"].shape[0] == round(0.2 * len(ds.X_train))
    assert all(r in train_rows for r in used)
    assert not any(r in test_rows for r in used)


@pytest.mark.parametrize("extra", [{}, {"dropout": 0.2, "lr_schedule": "plateau", "lr_gamma": 0.5},
                                   {"lr_schedule": "cosine", "weight_decay": 1e-3}],
                         ids=["plain", "dropout-plateau", "cosine-decay"])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, extra):
    config = digits_config(tmp_path, epochs=5, optimizer="adam", **extra)
    whole = runs.train(config, verbose=0)

    config = digits_config(tmp_path, epochs=5, optimizer="adam", name="split", **extra)
    part = runs.train(config, callbacks=[StopAtEpoch(3)], verbose=0)
    assert part.status == "interrupted" and part.trainer.epoch == 2
    assert f"ffnn train --resume {part.run_dir}" in part.message
    folder = part.run_dir
    assert len(History.from_csv(os.path.join(folder, "history.csv"))) == 2
    assert json.load(open(os.path.join(folder, "summary.json")))["status"] == "interrupted"

    resumed = runs.train(runs.load_run_config(folder), run_dir=folder, resume=True, verbose=0)
    assert resumed.status == "completed" and resumed.trainer.epoch == 5
    a = load_file(os.path.join(whole.run_dir, "model.safetensors"))
    b = load_file(os.path.join(folder, "model.safetensors"))
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    h_whole = History.from_csv(os.path.join(whole.run_dir, "history.csv"))
    h_resumed = History.from_csv(os.path.join(folder, "history.csv"))
    assert h_resumed["epoch"] == [1, 2, 3, 4, 5]
    assert h_resumed["loss"] == h_whole["loss"] and h_resumed["val_loss"] == h_whole["val_loss"]
    assert resumed.summary["test_loss"] == whole.summary["test_loss"]


def test_resume_with_more_epochs_extends_the_run(tmp_path):
    # A constant learning rate: a cosine schedule is laid over the planned epochs, so extending changes it.
    settings = dict(optimizer="momentum", lr_schedule="constant")
    whole = runs.train(digits_config(tmp_path, epochs=4, name="whole", **settings), verbose=0)
    short = runs.train(digits_config(tmp_path, epochs=2, name="short", **settings), verbose=0)
    config = runs.load_run_config(short.run_dir)
    config.epochs = 4
    longer = runs.train(config, run_dir=short.run_dir, resume=True, verbose=0)
    assert longer.summary["epochs_completed"] == 4
    assert len(History.from_csv(os.path.join(short.run_dir, "history.csv"))) == 4
    assert np.array_equal(longer.net.theta, whole.net.theta)


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    first = runs.train(digits_config(tmp_path, epochs=2), verbose=0)
    lines = []
    again = runs.train(runs.load_run_config(first.run_dir), run_dir=first.run_dir, resume=True, verbose=0,
                       log=lines.append)
    assert np.array_equal(again.net.theta, first.net.theta)
    assert any("already finished 2 epochs" in line for line in lines)
    assert again.summary == first.summary  # nothing rewritten
    saved = {name: open(os.path.join(first.run_dir, name), "rb").read() for name in os.listdir(first.run_dir)}
    runs.train(runs.load_run_config(first.run_dir), run_dir=first.run_dir, resume=True, verbose=0)
    assert {name: open(os.path.join(first.run_dir, name), "rb").read() for name in os.listdir(first.run_dir)} == saved


def test_resume_records_the_new_epochs_and_adds_up_the_time(tmp_path):
    first = runs.train(digits_config(tmp_path, epochs=2, lr_schedule="constant"), verbose=0)
    config = runs.load_run_config(first.run_dir)
    config.epochs = 1
    with pytest.raises(ConfigError, match="already finished 2 epochs; --epochs must be at least 2 \\(got 1\\)"):
        runs.train(config, run_dir=first.run_dir, resume=True, verbose=0)
    config.epochs = 3
    longer = runs.train(config, run_dir=first.run_dir, resume=True, verbose=0)
    assert runs.load_run_config(first.run_dir).epochs == 3
    assert longer.summary["seconds"] > first.summary["seconds"]
    assert longer.summary["seconds"] >= first.summary["seconds"] + longer.trainer.history.rows[-1]["seconds"]


def test_an_early_stopped_run_is_finished(tmp_path):
    lines = []
    first = runs.train(digits_config(tmp_path, epochs=40, patience=1, learning_rate=0.05, optimizer="sgd",
                                     lr_schedule="constant", hidden_sizes=[8]), verbose=1, log=lines.append)
    stopped = first.trainer.epoch
    assert stopped < 40 and first.trainer.stopped_early
    # the line of the epoch that stopped it comes first, then why
    assert lines[-2].startswith(f"epoch {stopped}/40") and lines[-1].startswith("early stopping: no improvement for 1 "
                                                                               "epoch;")
    with pytest.raises(ConfigError, match=f"stopped early after epoch {stopped}"):
        runs.train(runs.load_run_config(first.run_dir), run_dir=first.run_dir, resume=True, verbose=0)


class FailsInEpoch:
    def on_epoch_begin(self, trainer):
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("case", ["batch", "smoothing", "epoch"])
def test_a_run_that_fails_before_its_first_epoch_leaves_no_folder(tmp_path, case):
    # a batch larger than the data and label smoothing for regression are refused before the folder is made; a
    # failure in the first epoch removes the folder it made, holding config.json alone
    config = digits_config(tmp_path, batch_size=5000) if case == "batch" else \
        digits_config(tmp_path, dataset="diabetes", label_smoothing=0.1) if case == "smoothing" else \
        digits_config(tmp_path)
    with pytest.raises((ConfigError, OSError)):
        runs.train(config, verbose=0, callbacks=[FailsInEpoch()] if case == "epoch" else [])
    assert not os.path.exists(tmp_path / "runs") or os.listdir(tmp_path / "runs") == []
    # a folder that holds anything else is left alone
    os.makedirs(tmp_path / "mine")
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(OSError):
        runs.train(digits_config(tmp_path), run_dir=os.fspath(tmp_path / "mine"), verbose=0,
                   callbacks=[FailsInEpoch()])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_a_file_dataset_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    result = runs.train(digits_config(tmp_path, dataset="d.csv", target="y", batch_size=8, epochs=1,
                                      data_dir="."), verbose=0)
    config = runs.load_run_config(result.run_dir)
    assert config.dataset == os.fspath(tmp_path / "d.csv") and config.data_dir == os.fspath(tmp_path)
    assert result.net.metadata["dataset"] == os.fspath(tmp_path / "d.csv")
    assert result.net.metadata["feature_names"] == ["x"]


@pytest.mark.parametrize("enabled", [True, False])
def test_a_run_says_what_it_trains_on_and_how(tmp_path, monkeypatch, enabled):
    from ffnn import kernels

    monkeypatch.setattr(kernels, "ENABLED", enabled)
    lines = []
    runs.train(digits_config(tmp_path, epochs=1), verbose=1, log=lines.append)
    assert lines[0] == "data: digits, 1293 training, 144 validation and 360 test examples"
    assert lines[1] == "network: 64-32-10 relu, softmax + cross_entropy, 2,410 parameters"
    assert lines[2] == ("training: adam (lr 0.002, beta1 0.9, beta2 0.999, epsilon 1e-08), cosine schedule, "
                        "batch 32, 1 epoch, float32, "
                        + ("compiled kernels" if enabled else "NumPy only (ffnn's C extension is not in use)"))


def test_a_run_notes_schedule_settings_its_schedule_ignores(tmp_path):
    lines = []
    runs.train(digits_config(tmp_path, epochs=1, lr_schedule="constant", lr_gamma=0.5, lr_step_size=2), verbose=1,
               log=lines.append)
    assert "note: --lr-gamma and --lr-step-size have no effect with the constant schedule" in lines
    lines.clear()
    runs.train(digits_config(tmp_path, epochs=1, lr_schedule="step", lr_gamma=0.5, lr_step_size=2), verbose=1,
               log=lines.append)
    assert not any(line.startswith("note:") for line in lines)


@pytest.mark.parametrize("edit, words", [({"hidden_sizes": [16]}, "sizes 64-16-10 against 64-32-10"),
                                         ({"optimizer": "sgd"}, "optimizer sgd against adam"),
                                         ({"dtype": "float64"}, "dtype float64 against float32")])
def test_a_config_json_that_disagrees_with_its_checkpoint_is_not_resumed(tmp_path, edit, words):
    first = runs.train(digits_config(tmp_path, epochs=1), verbose=0)
    path = os.path.join(first.run_dir, "config.json")
    config = json.loads(open(path).read())
    config.update(edit, epochs=3)
    open(path, "w").write(json.dumps(config))
    with pytest.raises(ConfigError, match=f"config.json and checkpoint.safetensors disagree \\({words}\\)"):
        runs.train(runs.load_run_config(first.run_dir), run_dir=first.run_dir, resume=True, verbose=0)


def test_a_checkpoint_with_a_damaged_trainer_state_is_a_model_file_error(tmp_path):
    from ffnn import io

    first = runs.train(digits_config(tmp_path, epochs=1), verbose=0)
    path = os.path.join(first.run_dir, "checkpoint.safetensors")
    tensors, meta = io.read_file(path)
    meta["trainer"]["optimizer"]["t"] = "abc"
    io.write_file(path, tensors, meta)
    config = runs.load_run_config(first.run_dir)
    config.epochs = 2
    with pytest.raises(ModelFileError, match="damaged checkpoint \\(its trainer state"):
        runs.train(config, run_dir=first.run_dir, resume=True, verbose=0)


def test_load_run_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a run folder"):
        runs.load_run_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    with pytest.raises(ConfigError, match="no checkpoint"):
        runs.load_run_config(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(ConfigError, match="cannot read"):
        runs.load_run_config(tmp_path)
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(ConfigError, match="not a mapping of settings"):
        runs.load_run_config(tmp_path)


def test_resume_from_a_damaged_checkpoint_is_a_model_file_error(tmp_path):
    first = runs.train(digits_config(tmp_path, epochs=1), verbose=0)
    path = os.path.join(first.run_dir, "checkpoint.safetensors")
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0xFF
    open(path, "wb").write(bytes(data))
    config = runs.load_run_config(first.run_dir)
    config.epochs = 2
    with pytest.raises(ModelFileError, match="checkpoint.safetensors"):
        runs.train(config, run_dir=first.run_dir, resume=True, verbose=0)


def test_diverged_run_keeps_the_last_good_weights(tmp_path):
    config = TrainConfig(dataset="diabetes", epochs=5, batch_size=64, optimizer="sgd", learning_rate=10.0,
                         hidden_sizes=[16], output_dir=os.fspath(tmp_path), name="d")
    with np.errstate(all="ignore"):
        result = runs.train(config, verbose=0)
    assert result.status == "diverged" and "learning rate" in result.message
    net = ffnn.Network.load(os.path.join(result.run_dir, "model.safetensors"))
    assert np.all(np.isfinite(net.theta))
    assert json.load(open(os.path.join(result.run_dir, "summary.json")))["status"] == "diverged"
    assert len(History.from_csv(os.path.join(result.run_dir, "history.csv"))) == result.trainer.epoch


def test_class_labels_with_a_linear_output_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="'iris' holds class labels; use output 'softmax'"):
        runs.train(digits_config(tmp_path, dataset="iris", output="linear", loss="mean_squared_error"), verbose=0)
    assert not os.path.exists(tmp_path / "runs")


def test_regression_dataset_with_softmax_output_is_refused(tmp_path):
    config = TrainConfig(dataset="diabetes", output="softmax", output_dir=os.fspath(tmp_path))
    with pytest.raises(ConfigError, match="regression"):
        runs.train(config, verbose=0)
    assert not os.path.exists(os.path.join(tmp_path, config.run_name()))


def test_an_image_set_trains_as_bytes_with_the_results_of_its_floats(tmp_path, monkeypatch):
    from test_data_datasets import write_mnist
    from ffnn.arrays import ScaledBytes

    write_mnist(tmp_path / "mnist", n_train=300, n_test=50)
    config = TrainConfig(dataset="mnist", data_dir=os.fspath(tmp_path / "mnist"), epochs=2, batch_size=32,
                         hidden_sizes=[16], output_dir=os.fspath(tmp_path / "runs"), seed=0)
    floats = ffnn.datasets.load("mnist", data_dir=tmp_path / "mnist")
    floats.X_train, floats.X_test  # noqa: B018 -- built now: this run trains on the float arrays
    expected = runs.train(config, dataset=floats, verbose=0)

    def no_floats(self, dtype=None):
        raise AssertionError("the images were converted as a whole")

    monkeypatch.setattr(ScaledBytes, "to_array", no_floats)
    result = runs.train(config, verbose=0)
    assert result.net.theta.tobytes() == expected.net.theta.tobytes()
    assert result.summary["test_loss"] == expected.summary["test_loss"]
    assert result.summary["test_accuracy"] == expected.summary["test_accuracy"]
