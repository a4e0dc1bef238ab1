import base64
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ffnn import data, runs
from ffnn.config import TrainConfig
from ffnn.errors import ConfigError

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

from ffnn import report  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def train_run(output_dir, **settings):
    values = {"dataset": "digits", "epochs": 3, "num_layers": 1, "hidden_size": 16, "batch_size": 32,
              "output_dir": str(output_dir), **settings}
    return runs.train(TrainConfig(**values), verbose=0, handle_sigint=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("runs")).run_dir


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A finished grid sweep that used both losses."""
    optuna = pytest.importorskip("optuna")
    del optuna
    from ffnn import sweep

    out = tmp_path_factory.mktemp("sweep")
    spec = sweep.parse_sweep({
        "method": "grid",
        "metric": {"name": "val_accuracy", "goal": "maximize"},
        "parameters": {"dataset": {"value": "digits"}, "epochs": {"value": 3}, "batch_size": {"value": 32},
                       "loss": {"values": ["cross_entropy", "mean_squared_error"]},
                       "hidden_size": {"values": [8, 32]}, "learning_rate": {"values": [0.003, 0.0003]}},
    })
    sweep.run_sweep(spec, 8, study_name="losses", output_dir=str(out), verbose=0, prune=False)
    return str(out)


def embedded_images(index):
    text = open(index, encoding="utf-8").read()
    return text, [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def assert_self_contained(index, figures):
    text, images = embedded_images(index)
    assert len(images) == len(figures)
    assert all(image.startswith(PNG) for image in images)
    assert sorted(images) == sorted(open(f, "rb").read() for f in figures)  # the PNG files, embedded
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing loaded from elsewhere


# -- pieces -------------------------------------------------------------------------------------------------------
def test_class_samples_are_one_image_per_class():
    ds = data.load("digits")
    samples = report.class_samples(ds)
    assert [s["label"] for s in samples] == list(range(10))
    for s in samples:
        assert ds.y_test[s["index"]] == s["label"]
        assert s["image"].shape == (8, 8) and s["image"].dtype == np.uint8
        assert s["image"].min() == 0 and s["image"].max() == 255
    raw = ds.X_test[samples[3]["index"]] * ds.scaling.scale + ds.scaling.offset  # the original 0..16 pixels
    expected = np.round((raw - raw.min()) / (raw.max() - raw.min()) * 255).reshape(8, 8)
    np.testing.assert_array_equal(samples[3]["image"], expected)
    assert report.class_samples(data.load("iris")) == []  # 4 features are no image


def test_confusion_figure_has_class_names_counts_and_normalised_rows():
    cm = np.array([[5, 1, 0], [0, 2, 2], [1, 0, 9]])
    fig = report.plot_confusion(cm, ["cat", "dog", "emu"])
    fig.draw_without_rendering()
    counts, normalised = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    for ax in (counts, normalised):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "emu"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "emu"]
    assert [t.get_text() for t in counts.texts] == [str(v) for v in cm.ravel()]
    shares = np.array([float(t.get_text()) for t in normalised.texts]).reshape(3, 3)
    np.testing.assert_allclose(shares, np.round(cm / cm.sum(axis=1, keepdims=True), 2))
    assert fig._suptitle is None
    titled = report.plot_confusion(cm, ["cat", "dog", "emu"], "run-7: animals test set, accuracy 0.7000")
    assert titled._suptitle.get_text() == "run-7: animals test set, accuracy 0.7000"


def test_parallel_coordinates_draws_one_line_per_complete_trial():
    trials = [report.Trial(i, "COMPLETE", v, {"lr": lr, "act": act})
              for i, (v, lr, act) in enumerate([(0.5, 1e-4, "tanh"), (0.9, 1e-3, "relu"), (0.7, 1e-2, "tanh")])]
    trials.append(report.Trial(3, "FAIL", None, {"lr": 1e-3, "act": "relu"}))
    fig = report.plot_parallel(trials, ["lr", "act"], "val_accuracy", "maximize")
    lines = [line for line in fig.axes[0].lines if len(line.get_xdata()) == 3]
    assert len(lines) == 3
    best = max(lines, key=lambda line: line.get_linewidth())
    assert list(best.get_ydata()) == [0.5, 0.0, 1.0]  # lr 1e-3 midway on a log axis; relu; the top metric


def test_importance_and_correlation():
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    trials = [report.Trial(i, "COMPLETE", v, {"hidden_size": 8 * (i + 1), "act": "a" if i < 3 else "b",
                                               "noise": [3, 1, 2, 1, 3, 2][i]})
              for i, v in enumerate(values)]
    _, correlation, _ = report.importance_and_correlation(trials, ["hidden_size", "act", "noise"])
    assert correlation["hidden_size"] == pytest.approx((1.0, "spearman"))
    assert correlation["act"][1] == "eta" and correlation["act"][0] == pytest.approx(np.sqrt(0.0675 / 0.0875))
    assert abs(correlation["noise"][0]) < 0.5


# -- a run ------------------------------------------------------------------------------------------------------
def test_run_report(run_dir, tmp_path):
    result = report.make_report(run_dir, tmp_path / "rep")
    names = sorted(os.path.basename(f) for f in result.figures)
    assert names == ["confusion_matrix.png", "curves.png", "samples.png"]
    for f in result.figures:
        image = imread(f)
        assert image.shape[0] > 200 and image.shape[1] > 300
        assert image[..., :3].std() > 0.05  # not a blank canvas
    assert result.index == str(tmp_path / "rep" / "index.html")
    assert_self_contained(result.index, result.figures)
    text = open(result.index, encoding="utf-8").read()
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert f"{summary['test_accuracy']:.4g}" in text
    assert result.notes == []


def test_run_report_without_the_data_still_draws_the_curves(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["dataset"] = str(tmp_path / "gone.npz")
    (copy / "config.json").write_text(json.dumps(config))
    result = report.make_report(str(copy))
    assert [os.path.basename(f) for f in result.figures] == ["curves.png"]
    assert any("skipped" in n and "gone.npz" in n for n in result.notes)
    assert result.output_dir == str(copy / "report")


def test_report_of_nothing_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no run folder"):
        report.make_report(str(tmp_path))
    with pytest.raises(ConfigError, match="not a folder"):
        report.make_report(str(tmp_path / "missing"))


# -- a sweep ----------------------------------------------------------------------------------------------------
def test_sweep_report(sweep_dir, tmp_path):
    result = report.make_report(sweep_dir, tmp_path / "rep")
    names = {os.path.basename(f) for f in result.figures}
    assert {"sweep_progress.png", "parallel_coordinates.png", "importance.png", "loss_comparison.png",
            "best_curves.png", "best_confusion_matrix.png", "best_samples.png"} == names
    assert_self_contained(result.index, result.figures)
    text = open(result.index, encoding="utf-8").read()
    for word in ("Parallel coordinates", "Cross-entropy vs squared error", "Parameter importance", "hidden_size",
                 "learning_rate", "squared_error", "cross_entropy"):
        assert word in text
    assert result.notes == []


def test_sweep_report_trials_match_the_study(sweep_dir):
    trials, info, study, note = report.sweep_trials(sweep_dir)
    assert note == "" and info["study"] == "losses"
    assert len(trials) == 8 and all(t.state == "COMPLETE" for t in trials)
    assert {t.loss for t in trials} == {"cross_entropy", "squared_error"}
    assert all(t.run_dir and os.path.isdir(t.run_dir) for t in trials)
    assert all(len(t.val_accuracy_curve()) == 3 for t in trials)
    fig = report.plot_loss_comparison(trials, "val_accuracy")
    left, right = fig.axes
    means = [line for line in left.lines if line.get_linewidth() == 2.5]
    assert sorted(line.get_label() for line in means) == ["cross_entropy (mean of 4)", "squared_error (mean of 4)"]
    ce = np.mean([t.val_accuracy_curve() for t in trials if t.loss == "cross_entropy"], axis=0)
    (ce_line,) = [line for line in means if line.get_label().startswith("cross")]
    np.testing.assert_allclose(ce_line.get_ydata(), ce)


def test_sweep_report_without_its_storage_uses_the_trial_folders(sweep_dir, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("study.db*", "report"))
    info = json.loads((copy / "sweep.json").read_text())
    info["storage"] = "postgresql+psycopg://me:***@db.example/ffnn"
    (copy / "sweep.json").write_text(json.dumps(info))
    result = report.make_report(str(copy))
    assert any("--storage" in n for n in result.notes)
    names = {os.path.basename(f) for f in result.figures}
    assert {"sweep_progress.png", "parallel_coordinates.png", "loss_comparison.png"} <= names


def test_folder_of_runs_compares_the_losses(tmp_path):
    for loss in ("cross_entropy", "squared_error"):
        for lr in (1e-3, 3e-3):
            train_run(tmp_path / "runs", loss=loss, learning_rate=lr, epochs=2)
    trials, metric, goal = report.folder_trials(str(tmp_path / "runs"))
    assert (metric, goal) == ("val_accuracy", "maximize")
    assert len(trials) == 4 and {tuple(sorted(t.params)) for t in trials} == {("learning_rate", "loss")}
    result = report.make_report(str(tmp_path / "runs"))
    assert "loss_comparison.png" in {os.path.basename(f) for f in result.figures}


# -- in a browser -----------------------------------------------------------------------------------------------
def test_report_renders_in_headless_chromium(sweep_dir, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    result = report.make_report(sweep_dir, tmp_path / "rep")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1800",
                    f"--screenshot={shot}", "file://" + result.index],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists()
    image = imread(str(shot))[..., :3]
    assert image.shape[:2] == (1800, 1280)
    spread = image.max(axis=2) - image.min(axis=2)
    assert (spread > 0.25).mean() > 0.002  # coloured pixels: the figures were drawn, not broken-image icons
    assert (image.mean(axis=2) < 0.5).mean() > 0.002  # and dark text


# -- the ffnn command -----------------------------------------------------------------------------------------
def test_ffnn_report_command(run_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "ffnn", "report", run_dir, "--output-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "index.html" in done.stdout
    assert (tmp_path / "r" / "index.html").exists() and (tmp_path / "r" / "curves.png").exists()


# -- few points, odd values, broken folders -------------------------------------------------------------------
def drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


def test_one_epoch_curves_have_integer_ticks():
    rows = [{"epoch": 1, "loss": 0.5, "val_loss": 0.6, "accuracy": 0.8, "val_accuracy": 0.7}]
    fig = drawn(report.plot_curves(rows))
    for ax in fig.axes:
        assert list(ax.get_xticks()) == [1]
        assert all(line.get_marker() == "o" for line in ax.lines)


def test_one_trial_progress_has_an_integer_tick():
    fig = drawn(report.plot_progress([report.Trial(0, "COMPLETE", 0.5)], "val_accuracy", "maximize"))
    assert list(fig.axes[0].get_xticks()) == [0]


def test_loss_comparison_of_one_epoch_shows_points():
    trials = [report.Trial(i, "COMPLETE", 0.5 + i / 10, {"loss": loss}, loss=loss, intermediate={1: 0.5 + i / 10},
                           metric="val_accuracy") for i, loss in enumerate(["cross_entropy", "squared_error"])]
    left = drawn(report.plot_loss_comparison(trials, "val_accuracy")).axes[0]
    assert left.lines and all(line.get_marker() == "o" for line in left.lines)  # a line of one point is invisible
    assert list(left.get_xticks()) == [1]


def test_parallel_axis_separates_zero_from_small_values():
    positions, ticks, labels = report._axis_values([0, 0.0005, 0.5, 0.0005])
    assert positions[0] == 0 and positions[2] == 1
    assert 0.05 < positions[1] < 0.5 and positions[1] == positions[3]  # not on top of 0
    assert labels == ["0", "0.0005", "0.5"]


def test_correlation_labels_do_not_cover_the_parameter_names():
    correlation = {"learning_rate": (-1.0, "spearman"), "weight_decay": (0.45, "spearman"),
                   "activation": (0.8, "eta"), "hidden_size": (-0.2, "spearman")}
    fig = drawn(report.plot_importance({"learning_rate": 0.6, "weight_decay": 0.3}, correlation))
    ax = fig.axes[1]
    renderer = fig.canvas.get_renderer()
    names = [t.get_window_extent(renderer) for t in ax.get_yticklabels() if t.get_text()]
    texts = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(names) == 4 and len(texts) == 4
    assert not any(a.overlaps(b) for a in names for b in texts)
    inside = ax.get_window_extent(renderer)
    assert all(inside.x0 <= b.x0 and b.x1 <= inside.x1 for b in texts)


def test_diverged_trials_are_noted(tmp_path):
    trials = [report.Trial(0, "COMPLETE", 0.5, {"lr": 1e-3}, "a"), report.Trial(1, "COMPLETE", 0.4, {"lr": 1e-2}, "b"),
              report.Trial(2, "COMPLETE", float("inf"), {"lr": 10.0}, "lr_10", status="diverged")]
    fig = report.plot_progress(trials, "val_loss", "minimize")
    assert any("diverged" in t.get_text() and "2" in t.get_text() for t in fig.axes[0].texts)
    page, _, _ = report._trials_report("t", str(tmp_path), trials, "val_loss", "minimize", None, [])
    assert "diverged" in page.render() and "lr_10" in page.render()


def test_folder_report_skips_a_run_with_an_unreadable_config(tmp_path):
    for lr in (1e-3, 3e-3, 1e-2):
        train_run(tmp_path / "runs", learning_rate=lr, epochs=1)
    broken = sorted(os.listdir(tmp_path / "runs"))[0]
    (tmp_path / "runs" / broken / "config.json").write_text("{not json")
    result = report.make_report(str(tmp_path / "runs"))
    assert any(broken in n and "cannot be read" in n for n in result.notes)
    trials, _, _ = report.folder_trials(str(tmp_path / "runs"))
    assert len(trials) == 2
    assert "best_confusion_matrix.png" in {os.path.basename(f) for f in result.figures}


def test_folder_report_says_when_its_runs_train_on_several_datasets(tmp_path):
    train_run(tmp_path / "runs", epochs=1)
    train_run(tmp_path / "runs", epochs=1, dataset="wine")
    notes = []
    report.folder_trials(str(tmp_path / "runs"), notes)
    assert any("these runs train on 2 datasets (digits, wine)" in n for n in notes)
    train_run(tmp_path / "same", epochs=1)
    train_run(tmp_path / "same", epochs=1, learning_rate=3e-3)
    notes = []
    report.folder_trials(str(tmp_path / "same"), notes)
    assert not any("datasets" in n for n in notes)


def test_run_report_with_an_unreadable_config_draws_the_curves(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report"))
    (copy / "config.json").write_text("{not json")
    result = report.make_report(str(copy))
    assert [os.path.basename(f) for f in result.figures] == ["curves.png"]
    assert any("cannot be read" in n for n in result.notes)


def test_sweep_report_never_creates_a_missing_study_db(sweep_dir, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("study.db*", "report"))
    result = report.make_report(str(copy))
    assert not (copy / "study.db").exists()
    assert any("does not exist" in n for n in result.notes)
    assert "sweep_progress.png" in {os.path.basename(f) for f in result.figures}


def test_storage_without_study_names_the_studies_and_fails(sweep_dir, tmp_path, capsys):
    from ffnn import cli

    (tmp_path / "empty").mkdir()
    url = f"sqlite:///{sweep_dir}/study.db"
    assert cli.main(["report", str(tmp_path / "empty"), "--storage", url]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--study" in err[0] and "losses" in err[0] and "pass --storage" not in err[0]
    assert cli.main(["report", str(tmp_path / "empty"), "--storage", f"sqlite:///{tmp_path}/x.db"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
    assert cli.main(["report", str(tmp_path / "empty"), "--storage", url, "--study", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "report" / "index.html").exists()
