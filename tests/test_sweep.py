import collections
import json
import math
import os
import subprocess
import sys
import time
import uuid
import warnings

import pytest
import yaml

from ffnn.errors import ConfigError

optuna = pytest.importorskip("optuna")
from optuna.trial import TrialState  # noqa: E402

from ffnn import sweep as sw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSIGNMENT = os.path.join(ROOT, "configs", "sweep-assignment.yaml")

# 8 grid points on scikit-learn's digits; a trial takes a fraction of a second.
GRID = {
    "method": "grid",
    "metric": {"name": "val_accuracy", "goal": "maximize"},
    "parameters": {
        "dataset": {"value": "digits"},
        "epochs": {"value": 2},
        "num_layers": {"values": [1, 2]},
        "hidden_size": {"values": [8, 16]},
        "activation": {"values": ["tanh", "ReLU"]},
    },
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def write_sweep(path, spec):
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def load(storage, name):
    return optuna.load_study(study_name=name, storage=sw.Storage(storage).open())


def states(study):
    return collections.Counter(t.state.name for t in study.trials)


def param_sets(study):
    return [tuple(sorted(t.params.items())) for t in study.trials]


# -- the sweep file ------------------------------------------------------------------------------------------------
def test_wandb_sweep_format_is_read():
    spec = sw.parse_sweep({
        "method": "random",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "program": "train.py",
        "parameters": {
            "num-layers": {"values": [3, 4, 5]},
            "sz": {"values": [32, 64]},
            "learning_rate": {"min": 0.0001, "max": 0.01, "distribution": "log_uniform_values"},
            "momentum": {"min": 0.5, "max": 0.99},
            "epochs": {"min": 2, "max": 6},
            "w_d": {"value": "5e-4"},
            "hidden_sizes": {"values": [[64, 32], [128]]},
            "beta": {"min": -2.3, "max": -0.1, "distribution": "log_uniform"},
        },
    })
    assert spec.method == "random" and spec.metric == "val_accuracy" and spec.goal == "maximize"
    by_key = {p.key: p for p in spec.params}
    assert by_key["num_layers"].kind == "categorical" and by_key["num_layers"].values == [3, 4, 5]
    assert by_key["hidden_size"].values == [32, 64]
    lr = by_key["learning_rate"]
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 0.0001, 0.01, True)
    assert (by_key["momentum"].kind, by_key["momentum"].log) == ("float", False)
    assert (by_key["epochs"].kind, by_key["epochs"].low, by_key["epochs"].high) == ("int", 2, 6)
    assert spec.constants["weight_decay"] == 0.0005  # YAML reads 5e-4 as text
    assert by_key["hidden_sizes"].encoded
    assert [by_key["hidden_sizes"].decode(v) for v in by_key["hidden_sizes"].values] == [[64, 32], [128]]
    beta = by_key["beta"]  # wandb's log_uniform takes natural logarithms of the bounds
    assert beta.log and math.isclose(beta.low, math.exp(-2.3)) and math.isclose(beta.high, math.exp(-0.1))


def test_metric_names_and_default_goals():
    for name, (metric, goal) in {"validation_accuracy": ("val_accuracy", "maximize"),
                                 "val_loss": ("val_loss", "minimize"), "test_acc": ("test_accuracy", "maximize"),
                                 "train_loss": ("loss", "minimize")}.items():
        spec = sw.parse_sweep({"method": "random", "metric": {"name": name}, "parameters": {"epochs": {"value": 1}}})
        assert (spec.metric, spec.goal) == (metric, goal)


@pytest.mark.parametrize("spec, words", [
    ({"method": "hyperband", "parameters": {"epochs": {"value": 1}}}, ["method", "grid, random, bayes"]),
    ({"method": "grid", "parameters": {"layers": {"values": [1]}}}, ["unknown parameter 'layers'", "num_layers"]),
    ({"method": "grid", "parameters": {"activation": {"values": ["tanh", "relu2"]}}}, ["activation", "relu2"]),
    ({"method": "grid", "parameters": {"learning_rate": {"min": 0.1, "max": 0.2}}}, ["grid", "learning_rate"]),
    ({"method": "random", "parameters": {"learning_rate": {"min": 0.1, "max": 0.2, "distribution": "normal"}}},
     ["normal", "log_uniform_values"]),
    ({"method": "random", "metric": {"name": "f1"}, "parameters": {"epochs": {"value": 1}}}, ["f1", "val_accuracy"]),
    ({"method": "random", "parameter": {}}, ["unknown key 'parameter'", "parameters"]),
    ({"method": "bayes", "parameters": {"epochs": {"values": [1, 2]}}}, ["bayes", "metric"]),
    ({"method": "grid", "parameters": {"output_dir": {"value": "x"}}}, ["output_dir", "--output-dir"]),
    # a typo or a contradiction inside a parameter is refused, not quietly ignored
    ({"method": "random", "parameters": {"learning_rate": {"min": 0.0001, "max": 0.1,
                                                           "distibution": "log_uniform_values"}}},
     ["'learning_rate'", "'distibution'", "min, max, distribution"]),
    ({"method": "random", "parameters": {"batch_size": {"value": 8, "values": [16, 32]}}},
     ["'batch_size'", "not value and values"]),
    ({"method": "random", "parameters": {"batch_size": {"values": [8, 16], "foo": 1}}},
     ["'batch_size'", "'foo'", "values, distribution"]),
    ({"method": "random", "parameters": {"epochs": {"values": [1, 2], "min": 1, "max": 3}}},
     ["'epochs'", "values and min/max"]),
    ({"method": "random", "parameters": {"epochs": {"value": 1, "distribution": "constant", "q": 2}}},
     ["'epochs'", "'q'", "value, distribution"]),
    ({"method": "random", "parameters": {"batch_size": {"min": 17, "max": 31, "distribution": "q_uniform", "q": 16}}},
     ["'batch_size'", "no multiple of q=16"]),
    ({"method": "random", "early_terminate": {"type": "envelope"}, "parameters": {"epochs": {"value": 4}}},
     ["early_terminate", "hyperband"]),
    ({"method": "random", "early_terminate": {"type": "hyperband", "min_iter": 2, "s": 2},
      "parameters": {"epochs": {"value": 4}}}, ["early_terminate", "'s'", "min_iter, max_iter, eta"]),
])
def test_sweep_file_errors_say_what_is_wrong(spec, words):
    with pytest.raises(ConfigError) as info:
        sw.parse_sweep(spec, source="s.yaml")
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_int_range_in_a_grid_becomes_its_values():
    spec = sw.parse_sweep({"method": "grid", "parameters": {"num_layers": {"min": 1, "max": 3}}})
    assert spec.params[0].values == [1, 2, 3] and spec.grid_size == 3


def test_assignment_sweep_file():
    spec = sw.load_sweep(ASSIGNMENT)
    values = {p.key: [p.decode(v) for v in p.values] for p in spec.params}
    assert (spec.metric, spec.goal) == ("val_accuracy", "maximize")
    assert values["epochs"] == [5, 10]
    assert values["num_layers"] == [3, 4, 5]
    assert values["hidden_size"] == [32, 64, 128]
    assert values["weight_decay"] == [0, 0.0005, 0.5]
    assert values["learning_rate"] == [1e-3, 1e-4]
    assert sorted(values["optimizer"]) == sorted(["sgd", "momentum", "nag", "rmsprop", "adam", "nadam"])
    assert values["batch_size"] == [16, 32, 64]
    assert [v.lower() for v in values["weight_init"]] == ["random", "xavier"]
    assert [v.lower() for v in values["activation"]] == ["sigmoid", "tanh", "relu"]
    assert values["val_fraction"] == [0.1]
    spec.method = "grid"
    assert spec.grid_size == 2 * 3 * 3 * 3 * 2 * 6 * 3 * 2 * 3


def test_readable_names():
    assert sw.readable_name({"activation": "tanh", "batch_size": 16, "num_layers": 3}) == "hl_3_bs_16_ac_tanh"
    assert sw.readable_name({"learning_rate": 0.0001, "weight_decay": 0.0, "hidden_sizes": [64, 32]}) == \
        "hs_64-32_lr_0.0001_wd_0"
    assert sw.readable_name({"learning_rate": 0.00123456}) == "lr_0.00123"


@pytest.mark.parametrize("value, text", [(1000.0, "1e3"), (0.001, "0.001"), (1e-5, "1e-5"), (2.5e-07, "2.5e-7"),
                                         (-1e5, "-1e5"), (1.5e12, "1.5e12")])
def test_readable_names_keep_the_sign_of_exponents(value, text):
    assert sw.readable_name({"learning_rate": value}) == f"lr_{text}"


def test_distinct_values_give_distinct_names():
    values = [1000.0, 0.001, 1e-3 * 1.01, 1e3 * 1.01, 1e-5, 1e5, -1e-5, -1e5, 0.0]
    assert len({sw.readable_name({"learning_rate": v}) for v in values}) == len(values)


def test_storage_urls():
    assert sw.Storage("journal:/shared/study.log").journal == "/shared/study.log"
    assert sw.Storage("/shared/study.journal").journal == "/shared/study.journal"
    assert sw.Storage("sqlite:///x.db").dialect == "sqlite"
    with pytest.raises(ConfigError, match="postgresql://"):
        sw.Storage("study.db")
    masked = sw.Storage("postgresql://me:secret@db.example/ffnn").display
    assert "secret" not in masked and "me" in masked


# -- running ---------------------------------------------------------------------------------------------------------
def test_grid_sweep_runs_the_requested_trials_then_stops_at_the_grid(tmp_path):
    spec = sw.parse_sweep(GRID)
    out = tmp_path / "sw"
    lines = []
    result = sw.run_sweep(spec, 5, study_name="g", output_dir=str(out), log=lines.append)
    assert result.finished == 5 and result.ran == [0, 1, 2, 3, 4]
    study = load(f"sqlite:///{out}/study.db", "g")
    assert states(study) == {"COMPLETE": 5}
    folders = sorted(os.listdir(out / "trials"))
    assert len(folders) == 5
    for t in study.trials:
        name = sw.readable_name({k: t.params[k] for k in ("num_layers", "hidden_size", "activation")})
        assert t.user_attrs["run_name"] == name
        run_dir = out / "trials" / f"{t.number:04d}-{name}"
        assert run_dir.is_dir()
        record = json.loads((run_dir / "trial.json").read_text())
        assert record["state"] == "COMPLETE" and record["value"] == t.value
        config = json.loads((run_dir / "config.json").read_text())
        assert config["hidden_size"] == t.params["hidden_size"] and config["epochs"] == 2
        history = (run_dir / "history.csv").read_text().splitlines()
        assert t.value == max(float(line.split(",")[4]) for line in history[1:])  # the best val_accuracy
    info = json.loads((out / "sweep.json").read_text())
    assert info["study"] == "g" and info["storage"] == "study.db" and info["metric"] == "val_accuracy"
    assert any("g" in line and "5 trials finished" in line for line in lines)
    best = result.best["run_dir"]
    assert f"train the best settings again: ffnn train --config {best}/config.json --output-dir runs --name best" \
        in lines

    result = sw.run_sweep(spec, 100, study_name="g", output_dir=str(out), log=lines.append)  # a larger N
    study = load(f"sqlite:///{out}/study.db", "g")
    assert result.finished == 8 and len(study.trials) == 8
    assert len(set(param_sets(study))) == 8  # every grid point once
    assert any("8 points" in line for line in lines)


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_random_and_bayes_sample_inside_the_ranges(tmp_path, method):
    spec = sw.parse_sweep({
        "method": method, "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"dataset": {"value": "iris"}, "epochs": {"min": 1, "max": 2},
                       "learning_rate": {"min": 1e-3, "max": 1e-1, "distribution": "log_uniform_values"},
                       "momentum": {"min": 0.5, "max": 0.9, "distribution": "q_uniform", "q": 0.1},
                       "optimizer": {"values": ["momentum", "nag"]},
                       "hidden_sizes": {"values": [[8, 4], [6]]}}})
    sw.run_sweep(spec, 4, study_name="m", output_dir=str(tmp_path), verbose=0, seed=3)
    study = load(f"sqlite:///{tmp_path}/study.db", "m")
    assert states(study) == {"COMPLETE": 4}
    for t in study.trials:
        p = t.params
        assert p["epochs"] in (1, 2) and isinstance(p["epochs"], int)
        assert 1e-3 <= p["learning_rate"] <= 1e-1
        assert any(math.isclose(p["momentum"], q) for q in (0.5, 0.6, 0.7, 0.8, 0.9))
        config = json.load(open(os.path.join(t.user_attrs["run_dir"], "config.json")))
        assert config["hidden_sizes"] == json.loads(p["hidden_sizes"])
        assert (config["learning_rate"], config["optimizer"]) == (p["learning_rate"], p["optimizer"])
        assert t.value == min(float(r.split(",")[3]) for r in open(
            os.path.join(t.user_attrs["run_dir"], "history.csv")).read().splitlines()[1:])


def test_a_finished_study_runs_nothing_more(tmp_path):
    spec = sw.parse_sweep(GRID)
    sw.run_sweep(spec, 2, study_name="g", output_dir=str(tmp_path), verbose=0)
    result = sw.run_sweep(spec, 2, study_name="g", output_dir=str(tmp_path), verbose=0)
    assert result.ran == [] and result.finished == 2


def test_a_different_sweep_cannot_join_a_study(tmp_path):
    sw.run_sweep(sw.parse_sweep(GRID), 1, study_name="g", output_dir=str(tmp_path), verbose=0)
    other = json.loads(json.dumps(GRID))
    other["parameters"]["hidden_size"]["values"] = [8, 32]
    with pytest.raises(ConfigError, match="different sweep"):
        sw.run_sweep(sw.parse_sweep(other), 2, study_name="g", output_dir=str(tmp_path), verbose=0)


def test_pruned_trials_stop_early_and_count(tmp_path, monkeypatch):
    # a pruner that prunes everything after the first epoch
    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **kw: optuna.pruners.ThresholdPruner(lower=2.0))
    spec = json.loads(json.dumps(GRID))
    spec["parameters"]["epochs"] = {"value": 4}
    result = sw.run_sweep(sw.parse_sweep(spec), 3, study_name="p", output_dir=str(tmp_path), verbose=0)
    study = load(f"sqlite:///{tmp_path}/study.db", "p")
    assert result.finished == 3 and states(study) == {"PRUNED": 3}
    for t in study.trials:
        assert list(t.intermediate_values) == [1]
        summary = json.loads(open(os.path.join(t.user_attrs["run_dir"], "summary.json")).read())
        assert summary["epochs_completed"] == 1
        assert t.user_attrs["status"] == "pruned"


def test_no_prune_runs_every_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **kw: optuna.pruners.ThresholdPruner(lower=2.0))
    spec = json.loads(json.dumps(GRID))
    spec["parameters"]["epochs"] = {"value": 3}
    sw.run_sweep(sw.parse_sweep(spec), 2, study_name="p", output_dir=str(tmp_path), verbose=0, prune=False)
    study = load(f"sqlite:///{tmp_path}/study.db", "p")
    assert states(study) == {"COMPLETE": 2}
    assert all(list(t.intermediate_values) == [1, 2, 3] for t in study.trials)


def test_pruning_callback_stops_the_trainer_but_not_after_the_last_epoch():
    class Trial:
        def __init__(self):
            self.reported = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return True

    class Trainer:
        epochs = 3
        stop_training = False

    trial, trainer = Trial(), Trainer()
    callback = sw.Pruning(trial, "val_accuracy")
    callback.on_epoch_end(trainer, {"epoch": 3, "val_accuracy": 0.5})
    assert not trainer.stop_training and not callback.pruned
    callback.on_epoch_end(trainer, {"epoch": 2, "val_accuracy": 0.25})
    assert trainer.stop_training and callback.pruned
    assert trial.reported == [(3, 0.5), (2, 0.25)]


def test_a_dead_workers_trial_is_failed_and_replaced(tmp_path):
    spec = sw.parse_sweep(GRID)
    store = sw.Storage(f"sqlite:///{tmp_path}/study.db")
    study = sw.open_study(spec, store, "s")
    dead = study.ask()  # a worker that was killed: running, its heartbeat long silent
    study._storage.set_trial_system_attr(dead._trial_id, sw.HEARTBEAT_ATTR, time.time() - sw.STALE_SECONDS - 60)
    sw.suggest(dead, spec)
    result = sw.run_sweep(spec, 8, study_name="s", output_dir=str(tmp_path), verbose=0)
    study = load(f"sqlite:///{tmp_path}/study.db", "s")
    assert result.finished == 8
    assert states(study) == {"COMPLETE": 8, "FAIL": 1}
    assert study.trials[0].state == TrialState.FAIL and study.trials[0].system_attrs["ffnn:stale"]
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 8  # its grid point ran again


def test_regression_data_with_an_accuracy_metric_is_refused(tmp_path):
    spec = sw.parse_sweep({"method": "random", "parameters": {"dataset": {"value": "diabetes"},
                                                              "epochs": {"value": 1}}})
    with pytest.raises(ConfigError, match="val_loss"):
        sw.run_sweep(spec, 1, study_name="r", output_dir=str(tmp_path / "o"), verbose=0)
    assert not (tmp_path / "o").exists()  # refused before the study was created


# B: a one-epoch random sweep on digits, the base of the tests below
B = {"method": "random", "parameters": {"dataset": {"value": "digits"}, "epochs": {"value": 1},
                                        "hidden_size": {"values": [8, 16]}}}


@pytest.mark.parametrize("mistake", [["-d", "digts"], ["--config", "CONFIG"], ["-d", "diabetes"],
                                     ["-d", "ir is"]])
def test_a_refused_first_run_records_nothing_so_the_corrected_run_works(tmp_path, capsys, mistake):
    path = write_sweep(tmp_path / "b.yaml", B)
    (tmp_path / "bad.yaml").write_text("lerning_rate: 0.01\n")
    mistake = [str(tmp_path / "bad.yaml") if m == "CONFIG" else m for m in mistake]
    out = tmp_path / "o"
    assert sw.main([path, "--trials", "1", "--output-dir", str(out), "-q", *mistake]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ffnn: error: ")
    assert not out.exists()  # no study created, nothing recorded
    assert sw.main([path, "--trials", "1", "--output-dir", str(out), "-q"]) == 0
    assert states(load(f"sqlite:///{out}/study.db", "b")) == {"COMPLETE": 1}


def test_a_config_file_takes_the_assignments_short_keys(tmp_path, capsys):
    path = write_sweep(tmp_path / "b.yaml", B)
    (tmp_path / "base.yaml").write_text("lr: 0.01\nnhl: 1\n")
    out = tmp_path / "o"
    assert sw.main([path, "--trials", "1", "--config", str(tmp_path / "base.yaml"), "--output-dir", str(out),
                    "-q"]) == 0
    (config,) = [json.loads(p.read_text()) for p in out.glob("trials/*/config.json")]
    assert config["learning_rate"] == 0.01 and config["num_layers"] == 1


def test_the_shipped_assignment_sweep_keeps_the_learning_rate_constant():
    sweep = sw.load_sweep(os.path.join(os.path.dirname(__file__), "..", "configs", "sweep-assignment.yaml"))
    assert sweep.constants["lr_schedule"] == "constant"


def test_a_grid_takes_a_q_uniform_range_as_its_multiples_and_names_an_empty_list():
    sweep = sw.parse_sweep({"method": "grid", "parameters": {
        "learning_rate": {"min": 0.001, "max": 0.01, "distribution": "q_uniform", "q": 0.004},
        "hidden_sizes": {"values": [[], [8]]}}})
    (lr,) = [p for p in sweep.swept if p.key == "learning_rate"]
    assert lr.values == [0.004, 0.008]
    assert sw.readable_name({"hidden_sizes": []}) == "hs_none"


def test_the_training_loss_cannot_compare_label_smoothings(tmp_path, capsys):
    spec = json.loads(json.dumps(B))
    spec["metric"] = {"name": "loss", "goal": "minimize"}
    spec["parameters"]["label_smoothing"] = {"values": [0, 0.1]}
    path = write_sweep(tmp_path / "s.yaml", spec)
    assert sw.main([path, "--trials", "1", "--output-dir", str(tmp_path / "o"), "-q"]) == 1
    assert "metric loss is measured against the smoothed targets" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_config_keys_the_sweep_sets_are_noted(tmp_path, capsys):
    path = write_sweep(tmp_path / "b.yaml", B)
    (tmp_path / "base.yaml").write_text("epochs: 3\nlr: 0.01\n")
    assert sw.main([path, "--trials", "1", "--config", str(tmp_path / "base.yaml"), "--output-dir",
                    str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert f"ffnn: note: the sweep's own epochs overrides {tmp_path / 'base.yaml'}'s" in err


def test_a_bad_config_file_key_names_the_file(tmp_path, capsys):
    path = write_sweep(tmp_path / "b.yaml", B)
    (tmp_path / "bad.yaml").write_text("lerning_rate: 0.01\n")
    assert sw.main([path, "--trials", "1", "--config", str(tmp_path / "bad.yaml"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml: unknown key 'lerning_rate'" in err and "learning_rate" in err


@pytest.mark.parametrize("metric", ["val_accuracy", "val_loss"])
@pytest.mark.parametrize("val_fraction", [{"value": 0}, {"values": [0.1, 0]}, {"min": 0, "max": 0.2}])
def test_a_validation_metric_without_a_validation_set_is_refused(tmp_path, metric, val_fraction):
    spec = json.loads(json.dumps(B))
    spec["metric"] = {"name": metric}
    spec["parameters"]["val_fraction"] = val_fraction
    with pytest.raises(ConfigError, match="needs a validation set") as info:
        sw.run_sweep(sw.parse_sweep(spec), 1, study_name="v", output_dir=str(tmp_path / "o"), verbose=0)
    assert "\n" not in str(info.value) and "val_fraction" in str(info.value)
    assert not (tmp_path / "o").exists()


def test_a_training_metric_needs_no_validation_set(tmp_path):
    spec = json.loads(json.dumps(B))
    spec["metric"] = {"name": "accuracy"}
    spec["parameters"]["val_fraction"] = {"value": 0}
    result = sw.run_sweep(sw.parse_sweep(spec), 1, study_name="v", output_dir=str(tmp_path), verbose=0)
    assert result.finished == 1 and 0 < result.best["value"] <= 1


@pytest.mark.parametrize("metric", ["val_loss", "loss", "test_loss"])
def test_losses_are_not_compared_by_a_loss_metric(tmp_path, metric):
    spec = json.loads(json.dumps(B))
    spec["metric"] = {"name": metric}
    spec["parameters"]["loss"] = {"values": ["cross_entropy", "mean_squared_error"]}
    with pytest.raises(ConfigError, match="val_accuracy"):
        sw.run_sweep(sw.parse_sweep(spec), 1, study_name="l", output_dir=str(tmp_path / "o"), verbose=0)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("storage", ["sqlite:///{tmp}/newdir/g1.db", "journal:{tmp}/jr/g1.log"])
def test_storage_in_a_folder_that_does_not_exist_yet(tmp_path, storage):
    url = storage.format(tmp=tmp_path)
    result = sw.run_sweep(sw.parse_sweep(B), 1, storage=url, study_name="g1", output_dir=str(tmp_path / "o"),
                          verbose=0)
    assert result.finished == 1
    assert states(load(url, "g1")) == {"COMPLETE": 1}


def _no_user_warnings(caught):
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_q_uniform_with_integers_samples_integer_multiples_of_q(tmp_path):
    spec = json.loads(json.dumps(B))
    spec["parameters"]["batch_size"] = {"min": 10, "max": 70, "distribution": "q_uniform", "q": 16}
    spec["parameters"]["momentum"] = {"min": 0.45, "max": 0.95, "distribution": "q_uniform", "q": 0.1}
    spec["parameters"]["optimizer"] = {"value": "momentum"}
    parsed = sw.parse_sweep(spec)
    bs = next(p for p in parsed.params if p.key == "batch_size")
    assert (bs.kind, bs.low, bs.high, bs.step) == ("int", 16, 64, 16)  # wandb: multiples of q inside [min, max]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sw.run_sweep(parsed, 4, study_name="q", output_dir=str(tmp_path), verbose=0, seed=0)
    assert _no_user_warnings(caught) == []
    study = load(f"sqlite:///{tmp_path}/study.db", "q")
    assert states(study) == {"COMPLETE": 4}
    for t in study.trials:
        assert t.params["batch_size"] in (16, 32, 48, 64) and isinstance(t.params["batch_size"], int)
        assert any(math.isclose(t.params["momentum"], m) for m in (0.5, 0.6, 0.7, 0.8, 0.9))
        config = json.loads(open(os.path.join(t.user_attrs["run_dir"], "config.json")).read())
        assert config["batch_size"] == t.params["batch_size"]


def test_q_uniform_in_a_grid_is_its_multiples():
    spec = sw.parse_sweep({"method": "grid", "parameters": {"batch_size": {"min": 16, "max": 64, "q": 16,
                                                                           "distribution": "q_uniform"}}})
    assert spec.params[0].values == [16, 32, 48, 64]


def test_q_log_uniform_values_samples_multiples_of_q_on_a_log_scale(tmp_path):
    spec = json.loads(json.dumps(B))
    spec["parameters"]["batch_size"] = {"min": 8, "max": 256, "distribution": "q_log_uniform_values", "q": 8}
    spec["parameters"]["learning_rate"] = {"min": 0.001, "max": 0.1, "distribution": "q_log_uniform_values",
                                           "q": 0.001}
    parsed = sw.parse_sweep(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sizes = []
    for _ in range(200):
        params = sw.suggest(study.ask(), parsed)
        assert params["batch_size"] % 8 == 0 and 8 <= params["batch_size"] <= 256
        assert isinstance(params["batch_size"], int)
        assert 0.001 <= params["learning_rate"] <= 0.1
        assert params["learning_rate"] == round(params["learning_rate"], 3)  # 0.003, not 0.0030000000000000001
        sizes.append(params["batch_size"])
    assert sum(s <= 48 for s in sizes) > sum(s >= 216 for s in sizes) * 2  # log-uniform: small values more often
    result = sw.run_sweep(parsed, 2, study_name="ql", output_dir=str(tmp_path), verbose=0, seed=1)
    for t in load(f"sqlite:///{tmp_path}/study.db", "ql").trials:
        ran = json.loads(open(os.path.join(t.user_attrs["run_dir"], "config.json")).read())
        assert ran["batch_size"] == t.user_attrs["rounded_params"]["batch_size"]
    assert result.finished == 2


def test_hyperband_early_terminate_becomes_optunas_hyperband_pruner(tmp_path):
    spec = json.loads(json.dumps(B))
    spec["parameters"]["epochs"] = {"values": [3, 4]}
    spec["early_terminate"] = {"type": "hyperband", "min_iter": 2, "eta": 2}
    parsed = sw.parse_sweep(spec)
    assert parsed.early_terminate == {"type": "hyperband", "min_iter": 2, "max_iter": None, "eta": 2}
    study = sw.open_study(parsed, sw.Storage(f"sqlite:///{tmp_path}/s.db"), "h", max_epochs=4)
    pruner = study.pruner
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (2, 4, 2)
    assert isinstance(sw.make_pruner(parsed, prune=False), optuna.pruners.NopPruner)
    result = sw.run_sweep(parsed, 2, study_name="h", output_dir=str(tmp_path / "o"), verbose=0)
    assert result.finished == 2
    too_late = json.loads(json.dumps(spec))
    too_late["early_terminate"]["min_iter"] = 4
    with pytest.raises(ConfigError, match="min_iter"):
        sw.run_sweep(sw.parse_sweep(too_late), 1, study_name="h2", output_dir=str(tmp_path / "o2"), verbose=0)


def test_regression_sweep_on_val_loss(tmp_path):
    spec = sw.parse_sweep({"method": "random", "metric": {"name": "val_loss"},
                           "parameters": {"dataset": {"value": "diabetes"}, "epochs": {"value": 2},
                                          "learning_rate": {"min": 1e-3, "max": 1e-2,
                                                            "distribution": "log_uniform_values"}}})
    result = sw.run_sweep(spec, 2, study_name="r", output_dir=str(tmp_path), verbose=0, seed=1)
    study = load(f"sqlite:///{tmp_path}/study.db", "r")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert states(study) == {"COMPLETE": 2}
    assert all(1e-3 <= t.params["learning_rate"] <= 1e-2 for t in study.trials)
    assert result.best["value"] == min(t.value for t in study.trials)


def test_module_entry_reports_errors_on_one_line(tmp_path, capsys):
    bad = json.loads(json.dumps(GRID))
    bad["parameters"]["layers"] = {"values": [1, 2]}
    path = write_sweep(tmp_path / "bad.yaml", bad)
    assert sw.main([path, "--trials", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ffnn: error: ") and "layers" in err[0]


def test_dataset_flag_replaces_the_sweeps_dataset(tmp_path):
    spec = json.loads(json.dumps(GRID))
    spec["parameters"]["dataset"] = {"value": "fashion_mnist"}
    path = write_sweep(tmp_path / "s.yaml", spec)
    assert sw.main([path, "--trials", "1", "-d", "iris", "--output-dir", str(tmp_path / "o"), "-q"]) == 0
    (folder,) = os.listdir(tmp_path / "o" / "trials")
    assert json.loads((tmp_path / "o" / "trials" / folder / "config.json").read_text())["dataset"] == "iris"


# -- several workers ---------------------------------------------------------------------------------------------
def run_workers(tmp_path, storage, study, n_trials, spec, workers=2):
    path = write_sweep(tmp_path / "sweep.yaml", spec)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "src"), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "ffnn.sweep", path, "--trials", str(n_trials), "--storage",
                               storage, "--study", study, "--output-dir", str(tmp_path / f"worker{i}"), "-q"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(workers)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    return load(storage, study)


def check_exact(study, n_trials, tmp_path, grid):
    counts = states(study)
    assert counts["COMPLETE"] + counts["PRUNED"] == n_trials
    assert sum(counts.values()) == n_trials  # none failed or left running
    assert sorted(t.number for t in study.trials) == list(range(n_trials))
    if grid:
        assert len(set(param_sets(study))) == n_trials  # no grid point twice
    # a worker that started late on a loaded machine may have found every trial taken: it has no trial folders
    folders = [f for i in range(2) if (tmp_path / f"worker{i}" / "trials").is_dir()
               for f in os.listdir(tmp_path / f"worker{i}" / "trials")]
    assert len(folders) == n_trials  # each trial trained once, by one worker
    assert sorted(int(f.split("-")[0]) for f in folders) == list(range(n_trials))


SLOWER = json.loads(json.dumps(GRID))  # long enough that both workers take trials
SLOWER["parameters"].update({"epochs": {"value": 3}, "batch_size": {"value": 16},
                             "hidden_size": {"values": [16, 32, 48]}})


def test_two_workers_share_one_sqlite_study(tmp_path):
    study = run_workers(tmp_path, f"sqlite:///{tmp_path}/shared.db", "two", 10, SLOWER)
    check_exact(study, 10, tmp_path, grid=True)


def test_two_workers_share_one_journal_file(tmp_path):
    spec = json.loads(json.dumps(SLOWER))
    spec["method"] = "random"
    study = run_workers(tmp_path, f"journal:{tmp_path}/study.log", "journal", 6, spec)
    check_exact(study, 6, tmp_path, grid=False)


@pytest.mark.skipif(not os.environ.get("FFNN_TEST_POSTGRES_URL"),
                    reason="set FFNN_TEST_POSTGRES_URL to a PostgreSQL database (.ci/run does)")
def test_two_workers_share_one_postgresql_study(tmp_path):
    url = os.environ["FFNN_TEST_POSTGRES_URL"]
    name = f"two-{uuid.uuid4().hex[:8]}"
    study = run_workers(tmp_path, url, name, 10, SLOWER)
    check_exact(study, 10, tmp_path, grid=True)


# -- worker processes on this machine (--jobs) -------------------------------------------------------------------
def trial_values(study):
    return {tuple(sorted(t.params.items())): t.value for t in study.trials if t.state == TrialState.COMPLETE}


def test_jobs_run_the_trials_in_worker_processes_with_the_numbers_of_one_process(tmp_path):
    spec = sw.parse_sweep(GRID)
    alone = sw.run_sweep(spec, 8, study_name="one", output_dir=str(tmp_path / "one"), verbose=0)
    lines = []
    shared = sw.run_sweep(spec, 8, study_name="two", output_dir=str(tmp_path / "two"), log=lines.append, jobs=2)
    assert alone.finished == shared.finished == 8 and shared.ran == list(range(8))
    one, two = load(f"sqlite:///{tmp_path}/one/study.db", "one"), load(f"sqlite:///{tmp_path}/two/study.db", "two")
    assert states(two) == {"COMPLETE": 8}
    assert trial_values(two) == trial_values(one)  # each grid point trained to the same numbers on one thread
    assert "; 2 workers, " in lines[0]
    assert sorted(int(line.split()[1]) for line in lines if line.startswith("trial ")) == list(range(8))
    assert lines[-2].startswith("study 'two': 8 trials finished (8 here)")
    assert len(os.listdir(tmp_path / "two" / "trials")) == 8


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_jobs_must_be_a_positive_integer(tmp_path, jobs):
    with pytest.raises(ConfigError, match="--jobs must be a positive integer"):
        sw.run_sweep(sw.parse_sweep(GRID), 2, study_name="j", output_dir=str(tmp_path / "o"), verbose=0, jobs=jobs)


def test_an_in_memory_storage_cannot_be_shared_by_jobs(tmp_path):
    with pytest.raises(ConfigError, match="cannot be shared by --jobs 2 workers"):
        sw.run_sweep(sw.parse_sweep(GRID), 2, study_name="m", storage="sqlite:///:memory:",
                     output_dir=str(tmp_path / "o"), verbose=0, jobs=2)


def test_a_failing_worker_stops_the_others_and_its_error_is_raised_here(tmp_path):
    spec = sw.parse_sweep({"method": "grid", "parameters": {"dataset": {"value": "iris"}, "epochs": {"value": 2},
                                                            "batch_size": {"values": [16, 100000]}}})
    with pytest.raises(ConfigError, match="batch_size 100000 is larger than"):
        sw.run_sweep(spec, 2, study_name="f", output_dir=str(tmp_path / "o"), verbose=0, jobs=2)
    study = load(f"sqlite:///{tmp_path}/o/study.db", "f")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert {"batch_size": 100000} in [t.params for t in failed]
    assert "RUNNING" not in states(study)  # the other worker's trial was finished or given back


def test_a_claim_cut_short_gives_its_trial_back(tmp_path, monkeypatch):
    spec = sw.parse_sweep(GRID)
    store = sw.Storage(f"sqlite:///{tmp_path}/study.db")
    study = sw.open_study(spec, store, "s")

    def interrupted(trial, sweep):
        raise KeyboardInterrupt

    monkeypatch.setattr(sw, "suggest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sw.claim_trial(study, spec, store, "s", 8)
    assert states(load(f"sqlite:///{tmp_path}/study.db", "s")) == {"FAIL": 1}  # not left running


@pytest.mark.parametrize("n_trials", [1, 2])
def test_a_stop_between_trials_is_an_interruption_unless_the_study_is_full(tmp_path, monkeypatch, n_trials):
    spec = sw.parse_sweep(GRID)
    store = sw.Storage(f"sqlite:///{tmp_path}/study.db")
    study = sw.open_study(spec, store, "s")
    stop, real = sw._Stop(), sw._run_trial

    def run_then_stop(*args):
        real(*args)
        stop.request()  # a Ctrl-C as the first trial ends

    monkeypatch.setattr(sw, "_run_trial", run_then_stop)
    claims = dict(sweep=spec, n_trials=n_trials, study_name="s", output_dir=str(tmp_path), base={}, project=None,
                  entity=None, verbose=0, log=print, stop=stop)
    if n_trials == 1:
        assert sw._claims(study, store, {}, **claims) == [0]
    else:
        with pytest.raises(sw.Interrupted, match="run the same command again"):
            sw._claims(study, store, {}, **claims)
    assert states(load(f"sqlite:///{tmp_path}/study.db", "s")) == {"COMPLETE": 1}


def test_an_abort_interrupts_a_training_once_and_elsewhere_only_stops():
    stop = sw._Stop()
    stop.abort()  # claiming or giving back a trial: no KeyboardInterrupt there
    assert stop.requested and not stop.aborted
    stop.training = True
    with pytest.raises(KeyboardInterrupt):
        stop.abort()
    stop.abort()  # once: giving the trial back is not cut short
    assert stop.aborted


def start_sweep(tmp_path, jobs):
    """``ffnn sweep`` of SLOWER in a session of its own, once it has finished a trial."""
    path = write_sweep(tmp_path / "s.yaml", SLOWER)
    proc = subprocess.Popen([sys.executable, "-m", "ffnn", "sweep", path, "--trials", "12", "--study", "c",
                             "--output-dir", str(tmp_path / "o"), "-j", str(jobs)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stdout:
        if line.startswith("trial "):
            break
    return proc


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_gives_the_running_trials_back(tmp_path, jobs):
    import signal

    proc = start_sweep(tmp_path, jobs)
    proc.send_signal(signal.SIGINT)  # to the command alone, as a terminal's Ctrl-C reaches it (and its workers)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0] == "ffnn: stopping after the current batch (press Ctrl-C again to abort at once)"
    assert lines[-1].startswith("ffnn: interrupted: ") and lines[-1].endswith("run the same command again to "
                                                                                 "continue the study")
    counts = states(load(f"sqlite:///{tmp_path}/o/study.db", "c"))
    assert "RUNNING" not in counts and counts["COMPLETE"] + counts["PRUNED"] < 12


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # ended, not yet reaped
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_workers_stop_when_the_sweep_command_is_killed(tmp_path):
    import signal

    proc = start_sweep(tmp_path, 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    study = load(f"sqlite:///{tmp_path}/o/study.db", "c")
    pids = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in study.trials if "worker" in t.user_attrs}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(gone(pid) for pid in pids):
        time.sleep(0.1)
    assert pids and all(gone(pid) for pid in pids)
    assert "RUNNING" not in states(load(f"sqlite:///{tmp_path}/o/study.db", "c"))  # their trials were given back


# -- the ffnn command -----------------------------------------------------------------------------------------------
def test_ffnn_sweep_command(tmp_path):
    path = write_sweep(tmp_path / "s.yaml", GRID)
    done = subprocess.run([sys.executable, "-m", "ffnn", "sweep", path, "--trials", "2", "--study", "cli",
                           "--output-dir", str(tmp_path / "o")], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "best val_accuracy" in done.stdout
    assert len(os.listdir(tmp_path / "o" / "trials")) == 2
    assert states(load(f"sqlite:///{tmp_path}/o/study.db", "cli")) == {"COMPLETE": 2}
