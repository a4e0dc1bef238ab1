"""Reports: PNG figures and one self-contained ``index.html`` (images embedded) for a run, a sweep or a folder of runs.

For a run folder: loss and accuracy curves (training vs validation), the confusion matrix on the test set (counts and
normalised by true class, with class names), and one sample image per class.
For a sweep folder (or any folder of run folders): the metric of every trial with the best so far, a
parallel-coordinates view of the parameters, parameter importance (fANOVA) and correlations, cross-entropy against
squared error when the trials used both, and the run figures of the best trial.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display).
"""

import argparse
import base64
import html
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError, FFNNError, plural
from .fsutil import read_json, write_text

REPORT_DIR = "report"
INDEX = "index.html"
LOSS_COLORS = {"cross_entropy": "#1f77b4", "squared_error": "#ff7f0e"}
SKIP_KEYS = ("name", "output_dir", "extra", "data_dir")  # config keys never shown as parameters


# -- data for the figures ----------------------------------------------------------------------------------------
def image_side(dataset):
    """Side of the square image a feature vector is (28 for Fashion-MNIST, 8 for digits), or None."""
    n = dataset.n_features
    side = math.isqrt(n)
    return side if side * side == n and side >= 8 else None


def class_samples(dataset):
    """One test image per class: a list of {"label", "name", "index", "image" (uint8, side x side)}.

    Features are mapped back through the dataset's scaling and stretched to 0..255. Empty when the features are
    not a square image or the task is regression.
    """
    side = image_side(dataset)
    if side is None or dataset.task != "classification":
        return []
    samples = []
    for label, name in enumerate(dataset.class_names):
        (where,) = np.nonzero(np.asarray(dataset.y_test) == label)
        if where.size == 0:
            continue
        x = np.asarray(dataset.X_test[where[0]], dtype=np.float64)
        if dataset.scaling is not None:
            x = x * dataset.scaling.scale + dataset.scaling.offset
        low, high = x.min(), x.max()
        scaled = (x - low) / (high - low) if high > low else np.zeros_like(x)
        image = np.round(scaled * 255).astype(np.uint8).reshape(side, side)
        samples.append({"label": label, "name": str(name), "index": int(where[0]), "image": image})
    return samples


def _history_rows(run_dir):
    from .runs import HISTORY
    from .training import History

    path = os.path.join(run_dir, HISTORY)
    if not os.path.exists(path):
        return []
    try:
        return History.from_csv(path).rows
    except (OSError, ValueError, KeyError):
        return []


def _column(rows, key):
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows], dtype=float)


# -- figures ------------------------------------------------------------------------------------------------------
def _figure(width, height):
    _require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("ffnn report needs matplotlib: pip install 'ffnn[report]'") from None


def _save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.savefig(path, format="png")
    return path


def _integer_ticks(ax, values):
    """Integer x ticks: every integer when the values span few (one epoch is tick 1, not 0.945 ... 1.050)."""
    from matplotlib.ticker import MaxNLocator

    values = [int(v) for v in values if _finite(v)]
    if values and max(values) - min(values) <= 12:
        ax.set_xticks(range(min(values), max(values) + 1))
        ax.set_xlim(min(values) - 0.5, max(values) + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_curves(rows, title=""):
    """Loss and accuracy per epoch, training vs validation; a Figure (or None without epochs)."""
    if not rows:
        return None
    epochs = _column(rows, "epoch")
    has_acc = any(r.get("accuracy") is not None for r in rows)
    fig = _figure(11 if has_acc else 6, 4)
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    marker = "o" if len(rows) <= 30 else None
    panels = [("loss", "loss")] + ([("accuracy", "accuracy")] if has_acc else [])
    for ax, (key, label) in zip(axes, panels):
        ax.plot(epochs, _column(rows, key), marker=marker, label="training")
        val = _column(rows, "val_" + key)
        if not np.all(np.isnan(val)):
            ax.plot(epochs, val, marker=marker, label="validation")
        ax.set_xlabel("epoch")
        _integer_ticks(ax, epochs.tolist())
        ax.set_ylabel(label)
        ax.set_title(f"{label}: training vs validation")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def plot_confusion(cm, class_names, title=None):
    """Confusion matrix on the test set: counts and normalised by true class (rows), with class names; ``title``
    (which run, its accuracy) above both, so that the figure says what it shows on its own."""
    k = cm.shape[0]
    names = [str(c) for c in class_names] if class_names else [str(i) for i in range(k)]
    size = max(4.5, 0.5 * k + 2.5)
    fig = _figure(2 * size + 1, size + (0.4 if title else 0))
    if title:
        fig.suptitle(title)
    axes = fig.subplots(1, 2)
    totals = cm.sum(axis=1, keepdims=True)
    normalised = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)
    for ax, matrix, title, fmt in ((axes[0], cm, "counts", "d"), (axes[1], normalised, "normalised by true class",
                                                                      ".2f")):
        image = ax.imshow(matrix, cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(k), labels=names, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(k), labels=names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"confusion matrix ({title})")
        if k <= 30:
            threshold = matrix.max() / 2 if matrix.max() > 0 else 1
            for i in range(k):
                for j in range(k):
                    value = matrix[i, j]
                    ax.text(j, i, format(int(value) if fmt == "d" else value, fmt), ha="center", va="center",
                            fontsize=8 if k <= 12 else 6, color="white" if value > threshold else "black")
    return fig


def plot_samples(samples, predictions=None):
    """A grid of one sample image per class, titled with the class (and the prediction, green when right)."""
    if not samples:
        return None
    cols = min(5, len(samples))
    rows = math.ceil(len(samples) / cols)
    fig = _figure(2.2 * cols, 2.5 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, s in zip(axes, samples):
        ax.imshow(s["image"], cmap="gray_r", interpolation="nearest")  # ink dark on white, as printed
        ax.set_title(s["name"], fontsize=10)
        if predictions is not None:
            predicted = predictions[s["label"]]
            ax.text(0.5, -0.08, f"predicted: {predicted}", transform=ax.transAxes, ha="center", va="top",
                    fontsize=8, color="green" if predicted == s["name"] else "red")
    fig.suptitle("one test image per class")
    return fig


def plot_progress(trials, metric, goal):
    """The metric of every trial by trial number, with the best so far; diverged trials are counted in a note."""
    done = [t for t in trials if t.state in ("COMPLETE", "PRUNED") and _finite(t.value)]
    if not done:
        return None
    diverged = _diverged(trials)
    fig = _figure(9, 4.2)
    ax = fig.subplots()
    complete = [t for t in done if t.state == "COMPLETE"]
    pruned = [t for t in done if t.state == "PRUNED"]
    if complete:
        ax.scatter([t.number for t in complete], [t.value for t in complete], s=28, color="#1f77b4",
                   label="trial", zorder=3)
    if pruned:
        ax.scatter([t.number for t in pruned], [t.value for t in pruned], s=28, marker="x", color="0.55",
                   label="pruned (last epoch reported)", zorder=3)
    best, xs, ys = None, [], []
    for t in sorted(complete, key=lambda t: t.number):
        if best is None or (t.value > best if goal == "maximize" else t.value < best):
            best = t.value
        xs.append(t.number)
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="#d62728", linewidth=2, label=f"best {metric} so far")
        top = _best(trials, goal)
        ax.scatter([top.number], [top.value], s=160, marker="*", color="#d62728", zorder=4)
        ax.annotate(f"{top.value:.4f}", (top.number, top.value), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel("trial")
    _integer_ticks(ax, [t.number for t in done])
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} of each trial and the best so far")
    if diverged:  # an infinite loss has no place on the axis: say so rather than drop it silently
        ax.text(0.01, 0.02, f"not shown: {plural(len(diverged), 'diverged trial')} "
                f"({', '.join(str(t.number) for t in diverged[:10])}{', ...' if len(diverged) > 10 else ''})",
                transform=ax.transAxes, fontsize=9, color="#d62728", va="bottom")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return fig


def _axis_values(values):
    """Map one parameter's values to [0, 1]: (positions, tick positions, tick labels)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    distinct = sorted(set(values)) if numeric else sorted(set(map(str, values)))
    if not numeric:
        where = {v: (i / (len(distinct) - 1) if len(distinct) > 1 else 0.5) for i, v in enumerate(distinct)}
        return [where[str(v)] for v in values], list(where.values()), list(where)
    arr = np.asarray(values, dtype=float)
    low, high = float(arr.min()), float(arr.max())
    log = low > 0 and high / low >= 20
    nonzero = np.abs(arr[arr != 0])
    symlog = not log and nonzero.size > 0 and low <= 0 and nonzero.max() / nonzero.min() >= 20
    if log:
        f = np.log10
    elif symlog:  # 0 with values over orders of magnitude (weight decay 0, 0.0005, 0.5): log beyond the smallest
        c = float(nonzero.min())

        def f(x):
            return np.sign(x) * np.log10(1 + np.abs(x) / c)
    else:
        def f(x):
            return x
    lo, hi = f(low), f(high)

    def place(v):
        return 0.5 if hi == lo else float((f(v) - lo) / (hi - lo))

    if len(distinct) <= 8:
        ticks = distinct
    elif symlog:
        ticks = [distinct[i] for i in np.linspace(0, len(distinct) - 1, 5).round().astype(int)]
    else:
        ticks = list(np.geomspace(low, high, 5) if log else np.linspace(low, high, 5))
    return [place(v) for v in arr], [place(v) for v in ticks], [_short(v) for v in ticks]


def _short(v):
    if isinstance(v, (float, np.floating)):
        return "0" if v == 0 else f"{v:.3g}"
    return str(v)


def plot_parallel(trials, names, metric, goal):
    """Parallel coordinates: one vertical axis per parameter and one for the metric; a line per trial."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    done = [t for t in trials if t.state == "COMPLETE" and _finite(t.value) and all(n in t.params for n in names)]
    if len(done) < 2 or not names:
        return None
    columns = list(names) + [metric]
    table = [[t.params[n] for t in done] for n in names] + [[t.value for t in done]]
    placed = [_axis_values(col) for col in table]
    fig = _figure(max(7.0, 1.6 * len(columns) + 2), 5.2)
    ax = fig.subplots()
    values = np.array([t.value for t in done], dtype=float)
    norm = Normalize(values.min(), values.max() if values.max() > values.min() else values.min() + 1e-9)
    cmap = colormaps["viridis"]
    order = np.argsort(values if goal == "maximize" else -values)  # the best drawn last, on top
    x = np.arange(len(columns))
    best = done[int(order[-1])]
    for i in order:
        ys = [placed[c][0][i] for c in range(len(columns))]
        is_best = done[i] is best
        ax.plot(x, ys, color="#d62728" if is_best else cmap(norm(values[i])), linewidth=2.8 if is_best else 1.2,
                alpha=1.0 if is_best else 0.75, zorder=3 if is_best else 2)
    for c, (_, ticks, labels) in enumerate(placed):
        ax.axvline(c, color="0.2", linewidth=1, zorder=1)
        for pos, label in zip(ticks, labels):
            ax.text(c + 0.04, pos, label, fontsize=8, va="center", ha="left",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}, zorder=4)
    ax.set_xticks(x, labels=columns, rotation=20, ha="right", rotation_mode="anchor")
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(columns) - 0.5)
    ax.set_ylim(-0.05, 1.05)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=metric, fraction=0.03, pad=0.02)
    ax.set_title(f"parallel coordinates of {len(done)} trials (best in red)")
    return fig


def plot_importance(importance, correlation):
    """Bars: fANOVA importance of each parameter (when available) and its correlation with the metric."""
    panels = [(d, title) for d, title in ((importance, "importance (fANOVA)"),
                                          (correlation, "correlation with the metric")) if d]
    if not panels:
        return None
    n = max(len(d) for d, _ in panels)
    fig = _figure(5.5 * len(panels), max(2.5, 0.45 * n + 1.5))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (d, title) in zip(axes, panels):
        items = sorted(d.items(), key=lambda kv: abs(kv[1][0] if isinstance(kv[1], tuple) else kv[1]))
        labels = [k for k, _ in items]
        vals = [v[0] if isinstance(v, tuple) else v for _, v in items]
        colors = ["#2ca02c" if v >= 0 else "#d62728" for v in vals]
        ax.barh(labels, vals, color=colors)
        if isinstance(items[0][1], tuple):
            lim = max(1.0, max(abs(v) for v in vals)) * 1.35
            both = min(vals) < 0
            for y, (_, (v, kind)) in enumerate(items):
                text = f"{v:+.2f} ({kind})" if kind == "spearman" else f"{v:.2f} ({kind})"
                if both:  # on the empty side of zero, clear of the bar and of the parameter names
                    ax.text(-0.03 * lim if v >= 0 else 0.03 * lim, y, text, va="center",
                            ha="right" if v >= 0 else "left", fontsize=8)
                else:
                    ax.text(v, y, " " + text, va="center", ha="left", fontsize=8)
            ax.axvline(0, color="0.3", linewidth=0.8)
            ax.set_xlim(-lim if both else 0, lim)
        else:
            for y, v in enumerate(vals):
                ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
            ax.set_xlim(0, max(vals) * 1.25 if max(vals) > 0 else 1)
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    return fig


def plot_loss_comparison(trials, metric):
    """Cross-entropy vs squared error: validation accuracy per epoch, and the metric of each trial by loss."""
    groups = {}
    for t in trials:
        if t.state == "COMPLETE" and t.loss in LOSS_COLORS and _finite(t.value):
            groups.setdefault(t.loss, []).append(t)
    if len(groups) < 2:
        return None
    fig = _figure(12, 4.5)
    left, right = fig.subplots(1, 2)
    lengths = []
    for loss, members in groups.items():
        color = LOSS_COLORS[loss]
        curves = [c for c in (t.val_accuracy_curve() for t in members) if c]
        length = max((len(c) for c in curves), default=0)
        lengths.append(length)
        marker = "o" if length <= 30 else None  # one epoch is one point: a line alone would not show
        for c in curves:
            left.plot(range(1, len(c) + 1), c, color=color, alpha=0.25, linewidth=1, marker=marker, markersize=3)
        if curves:
            padded = np.full((len(curves), length), np.nan)
            for i, c in enumerate(curves):
                padded[i, :len(c)] = c
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(padded, axis=0)
            left.plot(range(1, length + 1), mean, color=color, linewidth=2.5, marker=marker,
                      label=f"{loss} (mean of {len(curves)})")
    left.set_xlabel("epoch")
    _integer_ticks(left, [1, max(lengths)] if max(lengths) else [])
    left.set_ylabel("validation accuracy")
    left.set_title("validation accuracy per epoch")
    left.grid(alpha=0.3)
    if left.get_legend_handles_labels()[0]:
        left.legend()
    names = list(groups)
    data = [[t.value for t in groups[n]] for n in names]
    right.boxplot(data, tick_labels=names, widths=0.5)
    rng = np.random.default_rng(0)
    for i, (n, vals) in enumerate(zip(names, data), start=1):
        right.scatter(i + rng.uniform(-0.12, 0.12, len(vals)), vals, color=LOSS_COLORS[n], s=22, alpha=0.8,
                      zorder=3)
    right.set_ylabel(metric)
    right.set_title(f"{metric} by loss")
    right.grid(axis="y", alpha=0.3)
    fig.suptitle("cross-entropy vs squared error")
    return fig


# -- trials of a sweep or a folder of runs -----------------------------------------------------------------------
@dataclass
class Trial:
    """One trial of a sweep (or one run of a folder of runs)."""

    number: int
    state: str                          # COMPLETE, PRUNED, FAIL or RUNNING
    value: float = None
    params: dict = field(default_factory=dict)
    run_name: str = None
    run_dir: str = None                 # the local run folder, when there is one
    loss: str = None                    # canonical training loss
    intermediate: dict = field(default_factory=dict)   # epoch -> metric reported to the pruner
    metric: str = None
    status: str = None                  # the run's: completed, diverged, pruned, ...

    def val_accuracy_curve(self):
        if self.run_dir:
            rows = _history_rows(self.run_dir)
            if rows and any(r.get("val_accuracy") is not None for r in rows):
                return [np.nan if r.get("val_accuracy") is None else r["val_accuracy"] for r in rows]
        if self.metric == "val_accuracy" and self.intermediate:
            return [self.intermediate[k] for k in sorted(self.intermediate)]
        return []


def _finite(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _diverged(trials):
    """Finished trials whose metric is not finite (the training diverged)."""
    return [t for t in trials if t.state in ("COMPLETE", "PRUNED") and (t.status == "diverged" or (
        t.value is not None and not _finite(t.value)))]


def _best(trials, goal):
    done = [t for t in trials if t.state == "COMPLETE" and _finite(t.value)]
    if not done:
        return None
    return (max if goal == "maximize" else min)(done, key=lambda t: t.value)


def _canonical_loss(name, task="classification"):
    from .outputs import canonical_loss

    if name is None:
        return "cross_entropy" if task == "classification" else "squared_error"
    try:
        return canonical_loss(name)
    except ConfigError:
        return str(name)


def _local_run_dir(path, sweep_dir):
    if not path:
        return None
    if os.path.isdir(path):
        return path
    local = os.path.join(sweep_dir, "trials", os.path.basename(os.path.normpath(path)))
    return local if os.path.isdir(local) else None


def sweep_trials(sweep_dir, storage=None, study_name=None):
    """(trials, info, study, note) of a sweep folder: from its study when the storage can be opened, else from the
    trial folders on this machine."""
    from .sweep import DEFAULT_DB, SWEEP_FILE, TRIAL_FILE

    info = read_json(os.path.join(sweep_dir, SWEEP_FILE)) or {}
    if storage and not (study_name or info.get("study")):
        raise ConfigError(f"--storage needs --study NAME (the study to report){_study_names(storage)}")
    study_name = study_name or info.get("study")
    url = storage
    if url is None:
        recorded = info.get("storage")
        if recorded == DEFAULT_DB or (recorded is None and os.path.exists(os.path.join(sweep_dir, DEFAULT_DB))):
            url = "sqlite:///" + os.path.abspath(os.path.join(sweep_dir, DEFAULT_DB))
        elif recorded and "***" not in recorded:
            url = recorded
    note = ""
    constants = {k: v[0] for k, v in (info.get("parameters") or {}).items() if isinstance(v, list) and len(v) == 1}
    if url and study_name:
        try:
            study = _load_study(url, study_name)
        except FFNNError as exc:
            if storage:  # the user's own --storage: say what is wrong with it, rather than report nothing
                raise
            note = f"the study could not be opened ({exc}); showing the trial folders on this machine"
        else:
            trials = []
            for t in study.get_trials(deepcopy=False):
                run_dir = _local_run_dir(t.user_attrs.get("run_dir"), sweep_dir)
                config = read_json(os.path.join(run_dir, "config.json")) if run_dir else None
                loss = t.params.get("loss", (config or {}).get("loss", constants.get("loss")))
                params = {**t.params, **t.user_attrs.get("rounded_params", {})}  # q_log_uniform_values: as run
                trials.append(Trial(t.number, t.state.name, t.value, params, t.user_attrs.get("run_name"),
                                    run_dir, _canonical_loss(loss), dict(t.intermediate_values),
                                    info.get("metric"), t.user_attrs.get("status")))
            return trials, info, study, note
    elif not note:
        note = ("the study's storage is not known here (pass --storage URL); showing the trial folders on this "
                "machine")
    trials = []
    trials_dir = os.path.join(sweep_dir, "trials")
    for name in sorted(os.listdir(trials_dir)) if os.path.isdir(trials_dir) else []:
        run_dir = os.path.join(trials_dir, name)
        record = read_json(os.path.join(run_dir, TRIAL_FILE))
        if record is None:
            continue
        config = read_json(os.path.join(run_dir, "config.json")) or {}
        trials.append(Trial(record["number"], record["state"], record.get("value"), record.get("params", {}),
                            record.get("run_name"), run_dir, _canonical_loss(config.get("loss")), {},
                            info.get("metric"), record.get("status")))
    return trials, info, None, note


def _load_study(url, study_name):
    try:
        import optuna
    except ImportError:
        raise ConfigError("reading a sweep's study needs optuna: pip install 'ffnn[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = _existing_storage(url)
    try:
        return optuna.load_study(study_name=study_name, storage=store.open())
    except FFNNError:
        raise
    except Exception as exc:
        raise ConfigError(f"no study {study_name!r} in {store.display} ({str(exc).strip().splitlines()[0]})") from None


def _existing_storage(url):
    """The sweep's Storage; a ConfigError when its SQLite or journal file is missing (a report never creates one)."""
    from .sweep import Storage

    store = Storage(url)
    path = store.journal or (store._sqlite_path() if store.dialect == "sqlite" else None)
    if path and not os.path.exists(path):
        raise ConfigError(f"storage {store.display} does not exist")
    return store


def _study_names(url):
    """'; studies in it: a, b' (or why there are none) for an error line; '' when the storage cannot be read."""
    try:
        import optuna

        store = _existing_storage(url)
        names = sorted(optuna.get_all_study_names(store.open()))
    except ImportError:
        return ""
    except FFNNError as exc:
        return f"; {exc}"
    except Exception:
        return ""
    return f"; studies in {store.display}: {', '.join(names)}" if names else f"; {store.display} holds no study"


def folder_trials(folder, notes=None):
    """(trials, metric, goal) of the run folders inside ``folder``; parameters are the settings that differ.

    A run whose config.json cannot be read is left out, with a line in ``notes`` (a list) when given.
    """
    from .runs import CONFIG, SUMMARY

    runs, configs = [], []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if CONFIG in files:
            config = read_json(os.path.join(root, CONFIG))
            if isinstance(config, dict):
                runs.append(root)
                configs.append(config)
            elif notes is not None:
                notes.append(f"{os.path.relpath(root, folder)} left out: its {CONFIG} cannot be read")
            dirs[:] = []
        if os.path.relpath(root, folder).count(os.sep) >= 2:
            dirs[:] = []
    summaries = [read_json(os.path.join(r, SUMMARY)) or {} for r in runs]
    datasets = sorted({os.path.basename(str(c.get("dataset"))) for c in configs})
    if len(datasets) > 1 and notes is not None:  # a ranking across them compares unlike numbers
        notes.append(f"these runs train on {len(datasets)} datasets ({', '.join(datasets)}): their metrics are not "
                     "comparable across them; report one dataset's runs at a time")
    keys = sorted({k for c in configs for k in c if k not in SKIP_KEYS})
    varying = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    if any(s.get("best_val_accuracy") is not None for s in summaries):
        metric, goal, key = "val_accuracy", "maximize", "best_val_accuracy"
    elif any(s.get("test_accuracy") is not None for s in summaries):
        metric, goal, key = "test_accuracy", "maximize", "test_accuracy"
    else:
        metric, goal, key = "val_loss", "minimize", "best_val_loss"
    trials = []
    for i, (run, config, summary) in enumerate(zip(runs, configs, summaries)):
        status = summary.get("status")
        state = "COMPLETE" if status in ("completed", "diverged") else ("FAIL" if status else "RUNNING")
        params = {k: (json.dumps(config.get(k)) if isinstance(config.get(k), (list, dict)) else config.get(k))
                  for k in varying}
        trials.append(Trial(i, state, summary.get(key), params, os.path.relpath(run, folder), run,
                            _canonical_loss(config.get("loss")), {}, metric, status))
    return trials, metric, goal


def importance_and_correlation(trials, names, study=None):
    """({param: fANOVA importance} or {}, {param: (coefficient, "spearman" | "eta")}, note)."""
    done = [t for t in trials if t.state == "COMPLETE" and _finite(t.value)]
    importance, note = {}, ""
    if study is not None and len(done) >= 3:
        try:
            import optuna

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importance = dict(optuna.importance.get_param_importances(study))
        except Exception as exc:  # too few or too uniform trials
            note = f"fANOVA importance unavailable: {str(exc).strip().splitlines()[0] if str(exc) else type(exc)}"
    correlation = {}
    values = np.array([t.value for t in done], dtype=float)
    for name in names:
        column = [t.params.get(name) for t in done]
        if len(done) < 3 or any(v is None for v in column) or len(set(map(str, column))) < 2 or np.ptp(values) == 0:
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column):
            from scipy.stats import spearmanr

            with warnings.catch_warnings():  # a column of equal numbers written differently (1 and 1.0)
                warnings.simplefilter("ignore")
                rho = spearmanr(np.asarray(column, dtype=float), values).statistic
            if math.isfinite(rho):
                correlation[name] = (float(rho), "spearman")
        else:  # correlation ratio: the share of the metric's spread explained by the choice
            groups = {}
            for v, y in zip(map(str, column), values):
                groups.setdefault(v, []).append(y)
            between = sum(len(g) * (np.mean(g) - values.mean()) ** 2 for g in groups.values())
            total = ((values - values.mean()) ** 2).sum()
            correlation[name] = (float(math.sqrt(between / total)), "eta")
    return importance, correlation, note


# -- the HTML page ------------------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:4px;
margin-top:32px}
p.note{color:#8a5a00;background:#fff6e0;padding:6px 10px;border-radius:4px}
figure{margin:12px 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.9em;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f4f4f4}
tr.best td{background:#fdecea;font-weight:600}
"""


class Page:
    """The parts of index.html, in order."""

    def __init__(self, title):
        self.title = title
        self.parts = []

    def heading(self, text):
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text, note=False):
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def image(self, path, caption):
        with open(path, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        self.parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                          f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def table(self, header, rows, highlight=None):
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header) if header else ""
        head = f"<thead><tr>{head}</tr></thead>" if head else ""
        body = []
        for i, row in enumerate(rows):
            cls = ' class="best"' if highlight == i else ""
            body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>")
        self.parts.append(f"<table>{head}<tbody>{''.join(body)}</tbody></table>")

    def render(self):
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}"
                f"</title><style>{CSS}</style></head>\n<body><h1>{html.escape(self.title)}</h1>\n"
                + "\n".join(self.parts) + "\n</body></html>\n")


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return _short(value) if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


# -- reports --------------------------------------------------------------------------------------------------------
@dataclass
class Report:
    """What a report wrote."""

    output_dir: str
    index: str
    figures: list
    notes: list


def make_report(path, output_dir=None, *, storage=None, study=None):
    """Write the report of a run folder, a sweep folder or a folder of runs; returns a :class:`Report`.

    Parameters
    ----------
    path : str
        A run folder (with config.json), a sweep folder (with sweep.json) or a folder holding run folders.
    output_dir : str, optional
        Default ``<path>/report``.
    storage, study : str, optional
        The sweep's storage URL and study name, when sweep.json does not give them (a password is never saved).
    """
    from .runs import CONFIG
    from .sweep import SWEEP_FILE

    _require_matplotlib()
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise ConfigError(f"{path} is not a folder; pass a run folder, a sweep folder or a folder of runs")
    out = os.path.abspath(output_dir or os.path.join(path, REPORT_DIR))
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(path, CONFIG)):
        page, figures, notes = _run_report(path, out)
    elif os.path.exists(os.path.join(path, SWEEP_FILE)) or storage:
        page, figures, notes = _sweep_report(path, out, storage, study)
    else:
        skipped = []
        trials, metric, goal = folder_trials(path, skipped)
        if not trials:
            raise ConfigError(f"{path} holds no run folder (config.json) or sweep (sweep.json)"
                              + (f"; {'; '.join(skipped)}" if skipped else ""))
        page, figures, notes = _collection_report(path, out, trials, metric, goal, skipped)
    index = os.path.join(out, INDEX)
    write_text(index, page.render())
    return Report(out, index, figures, notes)


def _run_figures(run_dir, out, page, prefix="", heading_suffix=""):
    """Curves, confusion matrix and samples of one run into ``page``; returns (figures, notes)."""
    from .config import TrainConfig
    from .runs import CONFIG, MODEL

    figures, notes = [], []
    rows = _history_rows(run_dir)
    fig = plot_curves(rows, os.path.basename(run_dir))
    page.heading("Loss and accuracy" + heading_suffix)
    if fig is not None:
        figures.append(_save(fig, out, prefix + "curves.png"))
        page.image(figures[-1], "training vs validation, per epoch")
    else:
        notes.append("no finished epoch (history.csv is missing or empty)")
        page.text(notes[-1], note=True)
    values = read_json(os.path.join(run_dir, CONFIG))
    try:
        if not isinstance(values, dict):  # the defaults would name another dataset than the model's
            raise ConfigError(f"{os.path.join(run_dir, CONFIG)} cannot be read")
        config = TrainConfig.from_dict(values, source=os.path.join(run_dir, CONFIG))
        dataset, net = _dataset_and_model(config, os.path.join(run_dir, MODEL))
        if dataset.n_features != net.sizes[0]:
            raise ConfigError(f"the model takes {net.sizes[0]} features, {dataset.name} has {dataset.n_features}")
    except FFNNError as exc:
        notes.append(f"confusion matrix and sample images skipped: {exc}")
        page.text(notes[-1], note=True)
        return figures, notes
    if dataset.task != "classification":
        return figures, notes
    from .metrics import confusion_matrix

    predictions = net.predict(dataset.inputs("test"))
    cm = confusion_matrix(dataset.y_test, predictions, len(dataset.class_names))
    accuracy = float(np.trace(cm) / max(cm.sum(), 1))
    page.heading("Confusion matrix" + heading_suffix)
    title = f"{os.path.basename(os.path.normpath(run_dir))}: {dataset.name} test set, accuracy {accuracy:.4f}"
    figures.append(_save(plot_confusion(cm, dataset.class_names, title), out, prefix + "confusion_matrix.png"))
    page.image(figures[-1], f"{dataset.name} test set: {int(cm.sum())} examples, accuracy {accuracy:.4f}; rows are "
                            "true classes, columns predicted ones")
    samples = class_samples(dataset)
    if not samples:
        page.text(f"no sample images: the {dataset.n_features} features of {dataset.name} are not a square image")
    else:
        names = {s["label"]: dataset.class_names[int(predictions[s["index"]])] for s in samples}
        page.heading("One sample per class" + heading_suffix)
        figures.append(_save(plot_samples(samples, names), out, prefix + "samples.png"))
        page.image(figures[-1], "the first test image of each class, with the model's prediction")
    return figures, notes


def _dataset_and_model(config, model_path):
    from . import data
    from .network import Network

    if not os.path.exists(model_path):
        raise ConfigError(f"{model_path} is missing (the run saved no model)")
    dataset = data.load(config.dataset, data_dir=config.data_dir, target=config.target, dtype=config.dtype,
                        download=False)
    return dataset, Network.load(model_path)


def _run_report(run_dir, out):
    from .runs import CONFIG, SUMMARY

    config = read_json(os.path.join(run_dir, CONFIG)) or {}
    summary = read_json(os.path.join(run_dir, SUMMARY)) or {}
    page = Page(f"ffnn run {os.path.basename(run_dir)}")
    hidden = config.get("hidden_sizes") or [config.get("hidden_size")] * int(config.get("num_layers") or 0)
    rows = [("dataset", config.get("dataset")), ("hidden layers", " x ".join(map(str, hidden)) or "none"),
            ("activation", config.get("activation")), ("loss", config.get("loss") or "default for the task"),
            ("optimizer", config.get("optimizer")), ("learning rate", config.get("learning_rate")),
            ("batch size", config.get("batch_size")), ("weight decay", config.get("weight_decay")),
            ("weight init", config.get("weight_init")), ("learning-rate schedule", config.get("lr_schedule")),
            ("dropout", config.get("dropout") or None), ("label smoothing", config.get("label_smoothing") or None),
            ("epochs", f"{summary.get('epochs_completed', '?')} of "
                                                                    f"{config.get('epochs')}"),
            ("status", summary.get("status")), ("best validation accuracy", summary.get("best_val_accuracy")),
            ("test accuracy", summary.get("test_accuracy")), ("test loss", summary.get("test_loss"))]
    page.heading("Run")
    page.table(["setting", "value"], [r for r in rows if r[1] is not None])
    figures, notes = _run_figures(run_dir, out, page)
    return page, figures, notes


def _sweep_report(sweep_dir, out, storage, study_name):
    trials, info, study, note = sweep_trials(sweep_dir, storage, study_name)
    metric = info.get("metric") or "val_accuracy"
    goal = info.get("goal") or "maximize"
    title = f"ffnn sweep {info.get('study') or study_name or os.path.basename(sweep_dir)}"
    return _trials_report(title, out, trials, metric, goal, study, [note] if note else [],
                          method=info.get("method"))


def _collection_report(folder, out, trials, metric, goal, notes=()):
    return _trials_report(f"ffnn runs in {os.path.basename(folder)}", out, trials, metric, goal, None, list(notes))


def _trials_report(title, out, trials, metric, goal, study, notes, method=None):
    page = Page(title)
    for n in notes:
        page.text(n, note=True)
    figures = []
    states = {s: sum(t.state == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    best = _best(trials, goal)
    page.heading("Summary")
    summary = [("trials", len(trials)), ("complete", states["COMPLETE"]), ("pruned", states["PRUNED"]),
               ("failed", states["FAIL"]), ("running", states["RUNNING"]), ("metric", f"{metric} ({goal})")]
    if method:
        summary.insert(0, ("method", method))
    diverged = _diverged(trials)
    if diverged:
        summary.insert(summary.index(("failed", states["FAIL"])), ("diverged", ", ".join(
            f"{t.number} ({t.run_name})" if t.run_name else str(t.number) for t in diverged)))
    if best is not None:
        summary += [("best", f"{best.value:.4f} (trial {best.number}, {best.run_name})")]
    page.table(None, summary)
    names = [n for n in _param_names(trials)]
    fig = plot_progress(trials, metric, goal)
    if fig is not None:
        page.heading(f"Best {metric} over trials")
        figures.append(_save(fig, out, "sweep_progress.png"))
        page.image(figures[-1], f"{metric} of each trial in order; the line is the best so far")
    varying = [n for n in names if len({str(t.params.get(n)) for t in trials if t.state == "COMPLETE"}) > 1]
    fig = plot_parallel(trials, varying, metric, goal)
    if fig is not None:
        page.heading("Parallel coordinates")
        figures.append(_save(fig, out, "parallel_coordinates.png"))
        page.image(figures[-1], "each line is a complete trial, coloured by its metric; the best is red")
    importance, correlation, inote = importance_and_correlation(trials, varying, study)
    fig = plot_importance(importance, correlation)
    page.heading("Parameter importance")
    if inote:
        page.text(inote, note=True)
    if fig is not None:
        figures.append(_save(fig, out, "importance.png"))
        page.image(figures[-1], "fANOVA importance (share of the metric's variance), Spearman correlation for "
                                "numbers, correlation ratio (eta) for choices")
        page.table(["parameter", "importance", "correlation", "mean metric by value"],
                   [(n, importance.get(n), _fmt_corr(correlation.get(n)), _by_value(trials, n))
                    for n in sorted(varying, key=lambda n: -importance.get(n, 0))])
    else:
        page.text("too few complete trials with differing parameters to rank them", note=True)
    fig = plot_loss_comparison(trials, metric)
    if fig is not None:
        page.heading("Cross-entropy vs squared error")
        figures.append(_save(fig, out, "loss_comparison.png"))
        page.image(figures[-1], "thin lines: single trials; thick: the mean per epoch; right: the metric by loss")
    page.heading("Trials")
    ranked = sorted([t for t in trials if _finite(t.value)], key=lambda t: -t.value if goal == "maximize" else t.value)
    ranked += [t for t in trials if not _finite(t.value)]
    shown = ranked[:25]
    page.table(["trial", "state", metric, *names, "run"],
               [(t.number, t.state.lower(), t.value, *[t.params.get(n) for n in names], t.run_name) for t in shown],
               highlight=0 if best is not None and shown and shown[0] is best else None)
    if len(ranked) > len(shown):
        page.text(f"{len(ranked) - len(shown)} more trials not shown")
    if best is not None and best.run_dir:
        more, run_notes = _run_figures(best.run_dir, out, page, prefix="best_",
                                       heading_suffix=f" of the best trial ({best.run_name})")
        figures += more
        notes += run_notes
    elif best is not None:
        page.text(f"the best trial's run folder is not on this machine ({best.run_name})", note=True)
    return page, figures, notes


def _param_names(trials):
    names = []
    for t in trials:
        for k in t.params:
            if k not in names:
                names.append(k)
    return names


def _fmt_corr(c):
    if c is None:
        return None
    value, kind = c
    return f"{value:+.2f} (Spearman)" if kind == "spearman" else f"{value:.2f} (eta)"


def _by_value(trials, name):
    groups = {}
    for t in trials:
        if t.state == "COMPLETE" and _finite(t.value) and name in t.params:
            groups.setdefault(t.params[name], []).append(t.value)
    if len(groups) > 8:
        return f"{len(groups)} distinct values"
    try:
        keys = sorted(groups)
    except TypeError:
        keys = sorted(groups, key=str)
    return ", ".join(f"{_short(k)}: {np.mean(groups[k]):.4f}" for k in keys)


# -- the command -----------------------------------------------------------------------------------------------------
def add_parser(subparsers):
    """Register ``ffnn report``."""
    p = subparsers.add_parser(
        "report", help="figures and an HTML page for a run, a sweep or a folder of runs",
        description="Write PNG figures and one self-contained index.html: curves, confusion matrix and sample "
                    "images for a run; progress, parallel coordinates, importance and loss comparison for a sweep.")
    p.add_argument("path", metavar="RUN_DIR|SWEEP_DIR", help="a run folder, a sweep folder or a folder of runs")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", metavar="DIR",
                   help="where the report goes (default: PATH/report)")
    p.add_argument("--storage", metavar="URL", help="the sweep's storage, when sweep.json cannot give it")
    p.add_argument("--study", metavar="NAME", help="the sweep's study name (default: from sweep.json)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args):
    report = make_report(args.path, args.output_dir, storage=args.storage, study=args.study)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {plural(len(report.figures), 'figure')} and {report.index}")
    return 0
