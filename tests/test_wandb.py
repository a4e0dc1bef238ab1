import collections
import glob
import json
import os
import subprocess
import sys
import types

import pytest

from ffnn import runs
from ffnn.config import TrainConfig
from ffnn.errors import ConfigError
from ffnn import wandb_logging


def digits_config(tmp_path, **settings):
    values = {"dataset": "digits", "epochs": 2, "num_layers": 1, "hidden_size": 16, "batch_size": 32,
              "output_dir": str(tmp_path / "runs"), **settings}
    return TrainConfig(**values)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                       "WANDB_CONSOLE": "off", "WANDB_CONFIG_DIR": str(tmp_path / "config"),
                       "WANDB_CACHE_DIR": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    wandb.teardown()  # wandb reads its settings once per process
    yield tmp_path
    wandb.teardown()


def offline_runs(folder):
    return sorted(glob.glob(os.path.join(folder, "wandb", "offline-run-*")))


def run_log(run):
    (path,) = glob.glob(os.path.join(run, "run-*.wandb"))
    return open(path, "rb").read()


def test_without_wandb_one_line_and_training_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    config = digits_config(tmp_path)
    logger = wandb_logging.make_logger("project", None, config)
    assert logger is None
    assert not wandb_logging.wandb_available()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0] == err[1] == wandb_logging.NOT_INSTALLED
    assert "pip install 'ffnn[wandb]'" in err[0]
    result = runs.train(config, verbose=0, handle_sigint=False)
    assert result.status == "completed" and os.path.exists(os.path.join(result.run_dir, "history.csv"))


def test_offline_run_logs_config_metrics_confusion_matrix_and_samples(offline):
    config = digits_config(offline)
    logger = wandb_logging.make_logger("ffnn-test", None, config, name="hl_1_sz_16")
    result = runs.train(config, callbacks=[logger], verbose=0, handle_sigint=False)
    logger.finish(result)
    assert logger.run is None
    (run,) = offline_runs(offline)
    images = glob.glob(os.path.join(run, "files", "media", "images", "samples_*.png"))
    assert len(images) == 10  # one per digit
    (table,) = glob.glob(os.path.join(run, "files", "media", "table", "confusion_matrix_table_*.table.json"))
    matrix = json.load(open(table))
    assert matrix["columns"] == ["Actual", "Predicted", "nPredictions"]
    counts = {(a, p): n for a, p, n in matrix["data"] if n}
    dataset = runs.load_dataset(config)
    predicted = result.net.predict(dataset.X_test)
    assert counts == collections.Counter(zip(map(str, dataset.y_test), map(str, predicted)))
    assert sum(counts.values()) == 360  # digits' test split
    log = run_log(run)
    for key in (b"hidden_size", b"hl_1_sz_16", b"val_accuracy", b"val_loss", b"test_accuracy", b"total_seconds"):
        assert key in log


def test_sweep_trials_log_to_wandb(offline):
    pytest.importorskip("optuna")
    from ffnn import sweep

    spec = sweep.parse_sweep({"method": "grid", "parameters": {
        "dataset": {"value": "iris"}, "epochs": {"value": 1}, "batch_size": {"value": 16},
        "activation": {"values": ["tanh", "ReLU"]}}})
    sweep.run_sweep(spec, 2, study_name="wb", output_dir=str(offline / "sweep"), verbose=0,
                    wandb_project="ffnn-test")
    found = offline_runs(offline)
    assert len(found) == 2
    logs = [run_log(run) for run in found]
    assert sorted(b"ac_tanh" in log for log in logs) == [False, True]
    assert all(b"wb" in log and b"val_accuracy" in log for log in logs)


def test_ffnn_train_with_wandb_project(offline):
    done = subprocess.run([sys.executable, "-m", "ffnn", "train", "-d", "digits", "-e", "2", "-nhl", "1", "-sz", "16",
                           "-q", "-wp", "ffnn-test", "--output-dir", str(offline / "runs")],
                          capture_output=True, text=True, timeout=240, cwd=offline)
    assert done.returncode == 0, done.stderr
    (run,) = offline_runs(offline)
    assert len(glob.glob(os.path.join(run, "files", "media", "images", "samples_*.png"))) == 10
    assert glob.glob(os.path.join(run, "files", "media", "table", "confusion_matrix_table_*.table.json"))
    assert b"val_accuracy" in run_log(run)


# -- wandb installed but unusable: one line, no traceback -------------------------------------------------------
NOT_LOGGED_IN = "Weights & Biases is not logged in: run `wandb login`, or set WANDB_MODE=offline"


def fake_wandb(monkeypatch, error_name, message):
    """A stand-in wandb module whose init raises one of wandb's own errors (the classes mirror wandb.errors)."""
    module = types.ModuleType("wandb")

    class Error(Exception):
        pass

    class UsageError(Error):
        pass

    class CommError(Error):
        pass

    class AuthenticationError(CommError):
        pass

    module.errors = types.SimpleNamespace(Error=Error, UsageError=UsageError, CommError=CommError,
                                          AuthenticationError=AuthenticationError)
    errors = {"UsageError": UsageError, "CommError": CommError, "AuthenticationError": AuthenticationError,
              "RuntimeError": RuntimeError}

    def init(**kwargs):
        raise errors[error_name](message)

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


@pytest.mark.parametrize("error_name, message, expected", [
    ("UsageError", "No API key configured. Use `wandb login` to log in.", NOT_LOGGED_IN),
    ("AuthenticationError", "API key not valid", NOT_LOGGED_IN),
    ("CommError", "Network error (ConnectionError)\nmore", "Weights & Biases cannot be reached (Network error "
                                                          "(ConnectionError)); check the network, or set "
                                                          "WANDB_MODE=offline"),
    ("UsageError", "project name is too long", "Weights & Biases refused the run (project name is too long)"),
])
def test_wandb_init_errors_are_one_config_error_line(tmp_path, monkeypatch, error_name, message, expected):
    fake_wandb(monkeypatch, error_name, message)
    with pytest.raises(ConfigError) as info:
        wandb_logging.make_logger("proj", None, digits_config(tmp_path))
    assert str(info.value) == expected


def test_other_errors_at_wandb_init_are_not_hidden(tmp_path, monkeypatch):
    fake_wandb(monkeypatch, "RuntimeError", "a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        wandb_logging.make_logger("proj", None, digits_config(tmp_path))


def test_ffnn_train_without_a_wandb_login_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from ffnn import cli

    fake_wandb(monkeypatch, "UsageError", "No API key configured. Use `wandb login` to log in.")
    assert cli.main(["train", "-d", "iris", "-e", "1", "-q", "-wp", "proj", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ffnn: error: {NOT_LOGGED_IN}"]


def test_ffnn_sweep_without_a_wandb_login_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("optuna")
    from ffnn import sweep

    fake_wandb(monkeypatch, "UsageError", "No API key configured. Use `wandb login` to log in.")
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps({"method": "random", "parameters": {"dataset": {"value": "iris"},
                                                                   "epochs": {"value": 1}}}))
    assert sweep.main([str(path), "--trials", "1", "-q", "-wp", "proj", "--output-dir", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ffnn: error: {NOT_LOGGED_IN}"]
