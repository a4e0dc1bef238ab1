"""Hyperparameter sweeps: a Weights & Biases sweep file, run on Optuna.

The sweep file is wandb's format, so an existing one works unchanged::

    method: bayes                      # grid, random or bayes (Optuna's GridSampler, RandomSampler, TPESampler)
    metric: {name: val_accuracy, goal: maximize}
    parameters:
      num_layers: {values: [3, 4, 5]}
      learning_rate: {min: 0.0001, max: 0.01, distribution: log_uniform_values}
      dataset: {value: fashion_mnist}

Parameter names are the long flags of ``ffnn train`` (hyphens or underscores; the assignment's short names such as
``nhl``, ``sz``, ``w_d`` too). A median pruner stops trials whose per-epoch metric falls below the median of earlier
trials at the same epoch.

Several processes, on one machine or many, share a study through one storage. Each worker claims a trial under a
lock held in the storage itself (a lock file beside a SQLite database or journal file, an advisory lock in
PostgreSQL or MySQL): it counts the finished and running trials, and creates a new one only while that count is
below the requested total. So the study ends with exactly that many finished trials, and grid points are never
run twice. ``--jobs N`` starts N such workers on this machine, in processes of their own (``_run_workers``). A
running trial writes a heartbeat into the storage; one silent for ``STALE_SECONDS`` (its worker was
killed) is marked failed by the next worker that claims a trial, which frees its place (and its grid point).

A sweep folder holds
  sweep.json        the study's name, its storage and the sweep
  study.db          the default SQLite storage
  trials/NNNN-<name>/  one run folder per trial (see :mod:`ffnn.runs`), plus trial.json with its state and value
"""

import argparse
import contextlib
import json
import math
import os
import shlex
import socket
import sys
import threading
import time
import zlib
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from dataclasses import dataclass, field, fields

from .config import TrainConfig, config_key
from .errors import ConfigError, FFNNError, plural, positive_int
from .fsutil import write_text

METHODS = ("grid", "random", "bayes")
# distribution -> the keys a parameter of it takes (besides ``distribution``)
PARAM_KEYS = {"constant": ("value",), "categorical": ("values",), "int_uniform": ("min", "max"),
              "uniform": ("min", "max"), "q_uniform": ("min", "max", "q"), "log_uniform": ("min", "max"),
              "log_uniform_values": ("min", "max"), "q_log_uniform_values": ("min", "max", "q")}
DISTRIBUTIONS = tuple(PARAM_KEYS)
EARLY_TERMINATE_KEYS = ("type", "min_iter", "max_iter", "eta")  # wandb's hyperband, run by Optuna's HyperbandPruner
TOP_LEVEL_KEYS = ("method", "metric", "parameters", "name", "description", "program", "command", "project",
                  "entity", "early_terminate", "run_cap", "controller", "imputed_metric")
# The assignment's short flags and a few common spellings -> TrainConfig fields.
NOT_SWEPT = ("output_dir", "name", "extra")  # set by the sweep itself
WANDB_KEYS = {"wp": "wandb_project", "wandb_project": "wandb_project", "we": "wandb_entity",
              "wandb_entity": "wandb_entity"}
FLOAT_FIELDS = ("learning_rate", "momentum", "beta", "beta1", "beta2", "epsilon", "weight_decay", "val_fraction")
# metric name -> (history column or summary key, where it comes from, default goal)
METRICS = {"val_accuracy": ("val_accuracy", "history", "maximize"),
           "val_loss": ("val_loss", "history", "minimize"),
           "accuracy": ("accuracy", "history", "maximize"),
           "loss": ("loss", "history", "minimize"),
           "test_accuracy": ("test_accuracy", "summary", "maximize"),
           "test_loss": ("test_loss", "summary", "minimize")}
METRIC_ALIASES = {"val_acc": "val_accuracy", "validation_accuracy": "val_accuracy", "valid_accuracy": "val_accuracy",
                  "valid_acc": "val_accuracy", "validation_acc": "val_accuracy", "validation_loss": "val_loss",
                  "valid_loss": "val_loss", "train_accuracy": "accuracy", "train_acc": "accuracy", "acc": "accuracy",
                  "train_loss": "loss", "test_acc": "test_accuracy"}
# Short names for readable run names such as hl_3_sz_64_bs_16_ac_tanh, in this order.
SHORT_NAMES = {"num_layers": "hl", "hidden_size": "sz", "hidden_sizes": "hs", "batch_size": "bs",
               "activation": "ac", "optimizer": "o", "learning_rate": "lr", "weight_decay": "wd",
               "weight_init": "wi", "epochs": "ep", "loss": "l", "output": "out", "momentum": "m", "beta": "b",
               "beta1": "b1", "beta2": "b2", "epsilon": "eps", "val_fraction": "vf", "patience": "p", "seed": "s",
               "dataset": "d", "dtype": "dt", "device": "dev", "target": "t", "data_dir": "dd"}
HEARTBEAT_SECONDS = 30     # how often a running trial says it is alive
STALE_SECONDS = 300        # a running trial silent this long is taken as dead and marked failed
HEARTBEAT_ATTR = "ffnn:heartbeat"
SWEEP_ATTR = "ffnn:sweep"
GRID_ATTR = "ffnn:grid_point"
SWEEP_FILE = "sweep.json"
DEFAULT_DB = "study.db"
TRIALS_DIR = "trials"
TRIAL_FILE = "trial.json"


# -- the sweep file ----------------------------------------------------------------------------------------------
@dataclass
class Param:
    """One entry of ``parameters``: a constant, a list of choices, or a range."""

    key: str                 # the TrainConfig field
    kind: str                # "constant", "categorical", "int" or "float"
    values: list = None      # constant: [value]; categorical: the choices (JSON text for list choices)
    low: float = None
    high: float = None
    log: bool = False
    step: float = None       # q of q_uniform / q_log_uniform_values: values are multiples of it
    encoded: bool = False    # choices are JSON text (lists such as hidden_sizes [[64, 32], [128]])

    def decode(self, value):
        return json.loads(value) if self.encoded else value

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Sweep:
    """A parsed sweep file."""

    method: str
    metric: str                      # a key of METRICS
    goal: str                        # "maximize" or "minimize"
    params: list                     # of Param
    name: str = None
    project: str = None              # wandb project / entity named in the file
    entity: str = None
    run_cap: int = None
    early_terminate: dict = None     # {"type": "hyperband", "min_iter", "max_iter", "eta"}
    source: str = "sweep file"

    @property
    def constants(self):
        return {p.key: p.decode(p.values[0]) for p in self.params if p.kind == "constant"}

    @property
    def swept(self):
        return [p for p in self.params if p.kind != "constant"]

    @property
    def grid_size(self):
        return math.prod(len(p.values) for p in self.swept) if self.method == "grid" else None

    def to_dict(self):
        """What must agree between workers of one study."""
        agreed = {"method": self.method, "metric": self.metric, "goal": self.goal,
                  "params": [p.to_dict() for p in self.params]}
        if self.early_terminate:
            agreed["early_terminate"] = self.early_terminate
        return agreed


def load_sweep(path):
    """The :class:`Sweep` in a wandb-format YAML file."""
    from .cli import read_config_file

    sweep = parse_sweep(read_config_file(path), source=path)
    if sweep.name is None:
        sweep.name = os.path.splitext(os.path.basename(path))[0]
    return sweep


def parse_sweep(values, source="sweep file"):
    """A :class:`Sweep` from the mapping of a wandb sweep file; ConfigError (what is wrong, what is allowed)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: a sweep file must be a mapping with method, metric and parameters")
    unknown = [k for k in values if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(TOP_LEVEL_KEYS)}")
    method = str(values.get("method", "")).lower()
    if method not in METHODS:
        raise ConfigError(f"{source}: method must be one of {', '.join(METHODS)}; got {values.get('method')!r}")
    metric, goal = _parse_metric(values.get("metric"), source)
    raw = values.get("parameters")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{source}: 'parameters' must map parameter names to {{value | values | min/max}}")
    params, wandb = [], {}
    valid = sorted({f.name for f in fields(TrainConfig)} - set(NOT_SWEPT))
    for name, spec in raw.items():
        key = str(name).replace("-", "_")
        if key.lower() in WANDB_KEYS:
            value = spec.get("value") if isinstance(spec, dict) else None
            if value is None:
                raise ConfigError(f"{source}: parameter {name!r} takes a single 'value'")
            wandb[WANDB_KEYS[key.lower()]] = str(value)
            continue
        key = config_key(key)
        if key in NOT_SWEPT:
            raise ConfigError(f"{source}: parameter {name!r} is set by the sweep itself (use --output-dir)")
        if key not in valid:
            raise ConfigError(f"{source}: unknown parameter {name!r}; valid: {', '.join(valid)}")
        if any(p.key == key for p in params):
            raise ConfigError(f"{source}: parameter {key!r} is given twice")
        params.append(_parse_param(key, name, spec, source))
    run_cap = values.get("run_cap")
    if run_cap is not None and (isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap < 1):
        raise ConfigError(f"{source}: run_cap must be a positive integer; got {run_cap!r}")
    sweep = Sweep(method, metric, goal, params, name=values.get("name"),
                  project=values.get("project") or wandb.get("wandb_project"),
                  entity=values.get("entity") or wandb.get("wandb_entity"), run_cap=run_cap,
                  early_terminate=_parse_early_terminate(values.get("early_terminate"), source), source=source)
    if method == "grid":
        for p in sweep.swept:
            if p.kind == "int":
                p.kind, p.values = "categorical", list(range(p.low, p.high + 1, p.step or 1))
                p.log, p.step = False, None
            elif p.kind == "float" and p.step:  # q_uniform: its multiples of q are a finite set
                low, step = Decimal(str(p.low)), Decimal(str(p.step))
                count = int((Decimal(str(p.high)) - low) / step) + 1
                p.kind, p.values = "categorical", [float(low + i * step) for i in range(count)]
                p.log, p.step = False, None
            if p.kind != "categorical":
                raise ConfigError(f"{source}: method grid needs 'values' (or an int_uniform or q_uniform range) for "
                                  f"every parameter; {p.key!r} is a {p.kind} range")
    if method == "bayes" and "metric" not in values:
        raise ConfigError(f"{source}: method bayes needs a metric: {{name: val_accuracy, goal: maximize}}")
    _check_values(sweep)
    return sweep


def _parse_metric(metric, source):
    if metric is None:
        return "val_accuracy", "maximize"
    if not isinstance(metric, dict) or "name" not in metric:
        raise ConfigError(f"{source}: metric must be a mapping {{name: val_accuracy, goal: maximize}}")
    raw = str(metric["name"])
    name = raw.lower().replace("-", "_").replace("/", "_")
    name = METRIC_ALIASES.get(name, name)
    if name not in METRICS:
        raise ConfigError(f"{source}: unknown metric {raw!r}; valid: {', '.join(list(METRICS) + list(METRIC_ALIASES))}")
    goal = str(metric.get("goal", METRICS[name][2])).lower()
    if goal not in ("maximize", "minimize"):
        raise ConfigError(f"{source}: metric goal must be maximize or minimize; got {metric.get('goal')!r}")
    return name, goal


def _number(key, value, source, name):
    if key in FLOAT_FIELDS and isinstance(value, str):
        try:  # YAML reads 1e-3 as text
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float, str, list, type(None))):
        raise ConfigError(f"{source}: parameter {name!r}: unsupported value {value!r}")
    return value


def _parse_param(key, name, spec, source):
    where = f"{source}: parameter {name!r}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping such as {{values: [...]}} or {{value: ...}}")
    if "parameters" in spec:
        raise ConfigError(f"{where}: nested parameters are not supported; give each parameter at the top level")
    dist = spec.get("distribution")
    if dist is None:
        forms = [k for k in ("value", "values") if k in spec] + (["min/max"] if "min" in spec or "max" in spec else [])
        if len(forms) > 1:
            raise ConfigError(f"{where}: give one of 'value', 'values' or 'min' and 'max', not {' and '.join(forms)}")
        if "value" in spec:
            dist = "constant"
        elif "values" in spec:
            dist = "categorical"
        elif "min" in spec and "max" in spec:
            both_int = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
            dist = "int_uniform" if both_int else "uniform"
        else:
            raise ConfigError(f"{where} needs 'value', 'values' or 'min' and 'max'")
    dist = str(dist)
    if dist not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: distribution {dist!r} is not supported; supported: {', '.join(DISTRIBUTIONS)}")
    allowed = PARAM_KEYS[dist] + ("distribution",)
    unknown = [k for k in spec if k not in allowed]
    if unknown:  # a typo such as 'distibution' must not quietly change what is sampled
        raise ConfigError(f"{where}: key {unknown[0]!r} does not belong to a {dist} parameter; allowed keys: "
                          f"{', '.join(allowed)}")
    if dist == "constant":
        if "value" not in spec:
            raise ConfigError(f"{where}: a constant needs 'value'")
        return Param(key, "constant", [_number(key, spec["value"], source, name)])
    if dist == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: 'values' must be a non-empty list")
        values = [_number(key, v, source, name) for v in values]
        encoded = any(isinstance(v, (list, dict)) for v in values)
        if encoded:
            values = [json.dumps(v) for v in values]
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{where}: 'values' repeats a value")
        return Param(key, "categorical", values, encoded=encoded)
    try:
        low, high = (float(spec[k]) for k in ("min", "max"))  # also text such as 1e-4, which YAML leaves as str
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where}: distribution {dist} needs numeric 'min' and 'max'") from None
    if not low < high:
        raise ConfigError(f"{where}: min must be smaller than max; got {spec['min']!r} and {spec['max']!r}")
    if dist == "int_uniform":
        if low != int(low) or high != int(high):
            raise ConfigError(f"{where}: int_uniform needs integer 'min' and 'max'")
        return Param(key, "int", low=int(low), high=int(high))
    if dist == "uniform":
        return Param(key, "float", low=low, high=high)
    if dist == "log_uniform":  # wandb: min and max are natural logarithms of the bounds
        return Param(key, "float", low=math.exp(low), high=math.exp(high), log=True)
    if dist.startswith("log") or dist.startswith("q_log"):
        if low <= 0:
            raise ConfigError(f"{where}: {dist} needs min > 0; got {spec['min']!r}")
        if dist == "log_uniform_values":
            return Param(key, "float", low=low, high=high, log=True)
    # q_uniform, q_log_uniform_values (wandb): the values are the multiples of q between min and max
    q = spec.get("q", 1)
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not q > 0:
        raise ConfigError(f"{where}: q must be a positive number; got {q!r}")
    integer = all(isinstance(v, int) and not isinstance(v, bool) for v in (spec["min"], spec["max"], q))
    low, high = _multiples(spec["min"], spec["max"], q)
    if low > high:
        raise ConfigError(f"{where}: no multiple of q={q!r} lies between min {spec['min']!r} and max {spec['max']!r}")
    log = dist == "q_log_uniform_values"
    if integer:  # such as batch_size {min: 16, max: 64, q: 16}: integers, not 16.0
        return Param(key, "int", low=int(low), high=int(high), log=log, step=int(q))
    return Param(key, "float", low=float(low), high=float(high), log=log, step=float(q))


def _multiples(low, high, q):
    """The first and last multiple of q in [low, high], in decimal (0.9 stays 0.9, not 0.9000000000000001)."""
    low, high, q = (Decimal(str(v)) for v in (low, high, q))
    return ((low / q).to_integral_value(ROUND_CEILING) * q, (high / q).to_integral_value(ROUND_FLOOR) * q)


def _parse_early_terminate(spec, source):
    """wandb's ``early_terminate: {type: hyperband, min_iter: 3, eta: 3}`` -> a dict for Optuna's HyperbandPruner."""
    if spec is None:
        return None
    where = f"{source}: early_terminate"
    if not isinstance(spec, dict) or str(spec.get("type", "")).lower() != "hyperband":
        raise ConfigError(f"{where} must be {{type: hyperband, min_iter: N}} (hyperband is the only type); got "
                          f"{spec!r}")
    unknown = [k for k in spec if k not in EARLY_TERMINATE_KEYS]
    if unknown:
        raise ConfigError(f"{where}: key {unknown[0]!r} is not supported; allowed keys: "
                          f"{', '.join(EARLY_TERMINATE_KEYS)}")
    result = {"type": "hyperband"}
    for key, default, least in (("min_iter", 1, 1), ("max_iter", None, 2), ("eta", 3, 2)):
        value = spec.get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ConfigError(f"{where}: {key} must be an integer of at least {least}; got {value!r}")
        result[key] = value
    if result["max_iter"] is not None and result["max_iter"] <= result["min_iter"]:
        raise ConfigError(f"{where}: max_iter must be larger than min_iter; got {result['max_iter']} and "
                          f"{result['min_iter']}")
    return result


def _candidates(p):
    """The values a parameter takes (both ends of a range)."""
    values = [p.decode(v) for v in p.values] if p.values is not None else [p.low, p.high]
    return [int(v) for v in values] if p.kind == "int" else values


def _check_values(sweep, base=None, base_source="base settings"):
    """Every choice and both ends of every range must make a valid TrainConfig, over the base settings (typos show
    up now, not later)."""
    base = base or {}
    names = {f.name for f in fields(TrainConfig)}
    unknown = [k for k in base if k not in names]
    if unknown:
        raise ConfigError(f"{base_source}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(names))}")
    settings = {**base, **sweep.constants}
    for p in sweep.params:
        for value in _candidates(p):
            try:
                TrainConfig.from_dict({**settings, p.key: value}, source=sweep.source)
            except ConfigError as exc:
                raise ConfigError(f"{sweep.source}: parameter {p.key!r}, value {value!r}: {exc}") from None


def check_sweep(sweep, base=None, datasets=None, base_source="base settings"):
    """Refuse now what a trial would refuse later, before a study is created or recorded (a corrected rerun must
    not find a study that holds the mistake): the base settings under every value, each dataset (it loads, and
    its task fits the metric), the validation set a val_ metric needs, and one scale for a loss metric.

    Returns the most epochs a trial can run (Hyperband's largest resource).
    """
    base = base or {}
    datasets = {} if datasets is None else datasets
    _check_values(sweep, base, base_source)
    settings = {**base, **sweep.constants}
    config = TrainConfig.from_dict(settings, source=sweep.source)
    swept = {p.key: p for p in sweep.swept}

    def values(key):
        return _candidates(swept[key]) if key in swept else [getattr(config, key)]

    for name in values("dataset"):
        _check_metric(sweep, _dataset(TrainConfig.from_dict({**settings, "dataset": name}, source=sweep.source),
                                      datasets))
    if sweep.metric.startswith("val_") and min(values("val_fraction")) <= 0:
        raise ConfigError(f"{sweep.source}: metric {sweep.metric} needs a validation set, but val_fraction can be 0 "
                          "(none held out); set val_fraction above 0 (such as 0.1) or use metric accuracy or loss")
    if "loss" in swept and sweep.metric.endswith("loss"):  # cross-entropy and squared error are different scales
        raise ConfigError(f"{sweep.source}: metric {sweep.metric} cannot compare the swept losses (each has its own "
                          "scale); use metric val_accuracy (or test_accuracy)")
    if "label_smoothing" in swept and sweep.metric == "loss":  # against smoothed targets: each its own floor
        raise ConfigError(f"{sweep.source}: metric loss is measured against the smoothed targets, whose floor rises "
                          "with label_smoothing, so it cannot compare them; use val_loss or val_accuracy")
    max_epochs = max(values("epochs"))
    terminate = sweep.early_terminate
    if terminate:
        if METRICS[sweep.metric][1] != "history":
            raise ConfigError(f"{sweep.source}: early_terminate needs a per-epoch metric; {sweep.metric} is known only "
                              "at the end (use val_accuracy or val_loss)")
        largest = terminate["max_iter"] or max_epochs
        if terminate["min_iter"] >= largest:
            raise ConfigError(f"{sweep.source}: early_terminate min_iter ({terminate['min_iter']}) must be below the "
                              f"epochs ({largest})")
    return max_epochs


# -- names ------------------------------------------------------------------------------------------------------
def _format_value(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value == 0:
            return "0"
        mantissa, e, exponent = f"{value:.3g}".partition("e")  # 1e+03 -> 1e3, 1e-03 -> 1e-3: no '+' to mangle
        return f"{mantissa}e{int(exponent)}" if e else mantissa
    if isinstance(value, (list, tuple)):
        return "-".join(_format_value(v) for v in value) if value else "none"
    return str(value).lower()


def readable_name(params):
    """A run name such as ``hl_3_sz_64_bs_16_ac_tanh`` from the swept parameters (field name -> value)."""
    order = [k for k in SHORT_NAMES if k in params] + [k for k in params if k not in SHORT_NAMES]
    parts = []
    for key in order:
        parts += [SHORT_NAMES.get(key, key), _format_value(params[key])]
    name = "_".join(parts) or "trial"
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)


# -- storages and the claim lock -------------------------------------------------------------------------------
def _require(module, extra):
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"this command needs {module}: pip install 'ffnn[{extra}]'") from None


def _mask(url):
    """The URL with its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class Storage:
    """Where a study lives, and the lock that makes claiming a trial atomic across workers.

    ``url`` is a database URL (``sqlite:///FILE.db``, ``postgresql://user:password@host/db``,
    ``mysql+pymysql://...``) or ``journal:FILE`` (an Optuna journal file, for a shared filesystem).
    """

    def __init__(self, url):
        url = os.fspath(url)
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        if url.startswith("postgresql://"):
            url = _postgres_driver() + url[len("postgresql"):]
        self.journal = None
        if url.startswith("journal:"):
            path = url[len("journal:"):]
            if path.startswith("//"):
                path = path[2:]
            self.journal = os.path.abspath(os.path.expanduser(path))
        elif "://" not in url and url.lower().endswith((".log", ".journal", ".jsonl")):
            self.journal = os.path.abspath(os.path.expanduser(url))
        elif "://" not in url:
            raise ConfigError(f"storage {url!r} is not a database URL or journal file; use sqlite:///FILE.db, "
                              "postgresql://USER:PASSWORD@HOST/DB, mysql://... or journal:FILE")
        self.url = url
        self.dialect = "journal" if self.journal else url.split("://")[0].split("+")[0].lower()
        if self.dialect == "sqlite" and self._sqlite_path():
            self.url = "sqlite:///" + self._sqlite_path()  # the same file whatever the working folder later
        self.display = f"journal:{self.journal}" if self.journal else _mask(self.url)
        self._lock_engine = None

    def open(self):
        """The Optuna storage (creating tables or the journal file as needed)."""
        import optuna

        self._make_folder()
        if self.journal:
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            return JournalStorage(JournalFileBackend(self.journal))
        if self.dialect == "sqlite":
            kwargs = {"connect_args": {"timeout": 120}}
        else:
            kwargs = {"pool_pre_ping": True}
        try:
            return optuna.storages.RDBStorage(self.url, engine_kwargs=kwargs)
        except ImportError as exc:
            raise ConfigError(f"storage {self.display} needs a database driver ({exc}); for PostgreSQL: pip install "
                              "'psycopg[binary]'") from None
        except Exception as exc:
            raise ConfigError(f"cannot open storage {self.display}: {_first_line(exc)}") from None

    def _make_folder(self):
        """Create the folder of a SQLite or journal file (the lock file beside it needs it first)."""
        path = self.journal or (self._sqlite_path() if self.dialect == "sqlite" else None)
        if path:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the folder of storage {self.display}: {exc.strerror}") from None

    def _sqlite_path(self):
        path = self.url.split("://", 1)[1]
        if not path.startswith("/") or path in ("/", "/:memory:"):
            return None
        return os.path.abspath(path[1:])

    @contextlib.contextmanager
    def lock(self, study_name):
        """Hold the study's claim lock (blocks until free)."""
        self._make_folder()
        if self.journal:
            from optuna.storages.journal import JournalFileSymlinkLock

            lock = JournalFileSymlinkLock(self.journal + ".ffnn")  # works on NFS; a stale lock expires
            lock.acquire()
            try:
                yield
            finally:
                lock.release()
        elif self.dialect == "sqlite" and self._sqlite_path():
            with _file_lock(self._sqlite_path() + ".lock"):
                yield
        elif self.dialect in ("postgresql", "mysql", "mariadb"):
            with self._database_lock(study_name):
                yield
        else:
            yield

    @contextlib.contextmanager
    def _database_lock(self, study_name):
        import sqlalchemy

        if self._lock_engine is None:
            try:
                self._lock_engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
            except ImportError as exc:
                raise ConfigError(f"storage {self.display} needs a database driver ({exc}); for PostgreSQL: pip "
                                  "install 'psycopg[binary]'") from None
        key = zlib.crc32(f"ffnn-sweep:{study_name}".encode())
        try:
            connection = self._lock_engine.connect()
        except Exception as exc:
            raise ConfigError(f"cannot connect to storage {self.display}: {_first_line(exc)}") from None
        with connection:
            if self.dialect == "postgresql":  # released with the session, also when a worker dies
                take, give = "SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"
                args = {"k": key}
            else:
                take, give = "SELECT GET_LOCK(:k, 3600)", "SELECT RELEASE_LOCK(:k)"
                args = {"k": f"ffnn-sweep-{key}"}
            connection.execute(sqlalchemy.text(take), args)
            connection.commit()
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text(give), args)
                connection.commit()


def _postgres_driver():
    """``postgresql+psycopg`` or ``postgresql+psycopg2``, whichever is installed (SQLAlchemy's default differs
    between versions)."""
    import importlib.util

    for module, dialect in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return dialect
    raise ConfigError("a postgresql:// storage needs a PostgreSQL driver: pip install 'psycopg[binary]' (or "
                      "psycopg2-binary)")


@contextlib.contextmanager
def _file_lock(path):
    try:
        import fcntl
    except ImportError:  # not POSIX
        from optuna.storages.journal import JournalFileOpenLock

        lock = JournalFileOpenLock(path)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- the study --------------------------------------------------------------------------------------------------
def make_sampler(sweep, seed=None):
    """Optuna's sampler for the sweep's method."""
    import optuna

    if sweep.method == "grid":
        return GridSampler({p.key: p.values for p in sweep.swept})
    if sweep.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _grid_sampler_class():
    import itertools

    import numpy as np
    import optuna

    class Grid(optuna.samplers.BaseSampler):
        """Every point of the grid once, in a fixed shuffled order shared by all workers.

        A trial takes the first point that no complete, pruned or running trial holds, so the point of a failed
        trial is run again (Optuna's GridSampler counts failed points as visited). Called under the claim lock.
        """

        def __init__(self, space, seed=0):
            self.names = sorted(space)
            self.points = list(itertools.product(*(space[n] for n in self.names)))
            order = np.random.default_rng(seed).permutation(len(self.points))  # spread out when N < grid size
            self.points = [self.points[i] for i in order]

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def before_trial(self, study, trial):
            if GRID_ATTR in trial.system_attrs:
                return
            taken = _grid_taken(study, exclude=trial.number)
            free = [i for i in range(len(self.points)) if i not in taken]
            if trial.number in free or not free:  # no free point only without a claim lock: repeat one
                point = trial.number % len(self.points)
            else:
                point = free[0]
            study._storage.set_trial_system_attr(trial._trial_id, GRID_ATTR, point)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.points[trial.system_attrs[GRID_ATTR]][self.names.index(param_name)]

    return Grid


def GridSampler(space, seed=0):
    """A sampler that runs each point of ``space`` (name -> list of values) once across all workers."""
    return _grid_sampler_class()(space, seed)


def make_pruner(sweep, prune=True, max_epochs=None):
    """Optuna's pruner: the file's early_terminate (Hyperband over epochs), else a median pruner; none without prune."""
    import optuna

    terminate = sweep.early_terminate
    if not prune:
        return optuna.pruners.NopPruner()
    if terminate:
        return optuna.pruners.HyperbandPruner(min_resource=terminate["min_iter"],
                                              max_resource=terminate["max_iter"] or max_epochs or "auto",
                                              reduction_factor=terminate["eta"])
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)


def open_study(sweep, storage, study_name, seed=None, prune=True, base=None, max_epochs=None):
    """Create or load the study (under the claim lock, so concurrent workers create it once).

    The sweep and the base settings (all but data_dir, which may differ between machines) are recorded in the
    study; a worker with a different sweep is refused. ``max_epochs`` is Hyperband's largest resource.
    """
    import optuna

    sampler = make_sampler(sweep, seed)
    pruner = make_pruner(sweep, prune, max_epochs)
    with storage.lock(study_name):
        backend = storage.open()
        try:
            study = optuna.create_study(study_name=study_name, storage=backend, sampler=sampler, pruner=pruner,
                                        direction=sweep.goal, load_if_exists=True)
        except Exception as exc:
            if isinstance(exc, FFNNError):
                raise
            raise ConfigError(f"cannot open study {study_name!r} in {storage.display}: {_first_line(exc)}") from None
        recorded = study.user_attrs.get(SWEEP_ATTR)
        base = {k: v for k, v in (base or {}).items() if k != "data_dir"}
        mine = json.loads(json.dumps({**sweep.to_dict(), "base": base}))
        if recorded is None:
            if study.trials:
                raise ConfigError(f"study {study_name!r} in {storage.display} was not made by ffnn sweep; use "
                                  "another --study name")
            study.set_user_attr(SWEEP_ATTR, mine)
        elif recorded != mine:
            raise ConfigError(f"study {study_name!r} in {storage.display} runs a different sweep or settings; use "
                              "another --study name (or the same sweep file and options)")
    return study


def _trial_states():
    from optuna.trial import TrialState

    return TrialState


def _fail_stale(study, now):
    TrialState = _trial_states()
    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.system_attrs.get(HEARTBEAT_ATTR)
        if beat is None and t.datetime_start is not None:
            beat = t.datetime_start.timestamp()
        if beat is not None and now - beat > STALE_SECONDS:
            with contextlib.suppress(Exception):  # another worker may have failed it first
                storage.set_trial_system_attr(t._trial_id, "ffnn:stale", True)
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)


def count_trials(study):
    """(finished, running, failed): finished = complete + pruned."""
    TrialState = _trial_states()
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    failed = sum(t.state == TrialState.FAIL for t in trials)
    return finished, running, failed


def _grid_taken(study, exclude=None):
    """Grid points held by complete, pruned or running trials."""
    TrialState = _trial_states()
    return {t.system_attrs.get(GRID_ATTR) for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) and t.number != exclude} - {None}


def claim_trial(study, sweep, storage, study_name, n_trials):
    """A new trial with its parameters suggested, or None when the study has (or is running) ``n_trials``."""
    with storage.lock(study_name):
        _fail_stale(study, time.time())
        finished, running, _ = count_trials(study)
        if finished + running >= n_trials:
            return None
        if sweep.method == "grid" and len(_grid_taken(study)) >= sweep.grid_size:
            return None
        trial = study.ask()
        try:
            study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
            params = suggest(trial, sweep)
        except BaseException:  # interrupted, say: the trial goes back rather than stay running
            with contextlib.suppress(Exception):
                study.tell(trial, state=_trial_states().FAIL)
            raise
    return trial, params


def suggest(trial, sweep):
    """The trial's value of every swept parameter (field name -> decoded value)."""
    params, rounded = {}, {}
    for p in sweep.swept:
        if p.kind == "categorical":
            value = p.decode(trial.suggest_categorical(p.key, p.values))
        elif p.log and p.step:  # q_log_uniform_values: log-uniform, rounded to a multiple of q (Optuna has no such)
            k = round(trial.suggest_float(p.key, p.low, p.high, log=True) / p.step)
            value = k * p.step if p.kind == "int" else float(Decimal(k) * Decimal(str(p.step)))  # 0.3, not 0.300..04
            rounded[p.key] = value
        elif p.kind == "int":
            value = trial.suggest_int(p.key, p.low, p.high, step=p.step or 1)
        else:
            value = trial.suggest_float(p.key, p.low, p.high, log=p.log, step=p.step)
        params[p.key] = value
    if rounded:  # what the trial ran, for reports that read the study
        trial.set_user_attr("rounded_params", rounded)
    return params


@contextlib.contextmanager
def heartbeat(study, trial_id, interval=HEARTBEAT_SECONDS):
    """Record a heartbeat for the trial every ``interval`` seconds while the block runs."""
    stop = threading.Event()

    def beat():
        while not stop.wait(interval):
            with contextlib.suppress(Exception):
                study._storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    thread = threading.Thread(target=beat, name=f"ffnn-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Pruning:
    """Trainer callback: report the metric after every epoch; stop the run when the pruner says so."""

    def __init__(self, trial, column):
        self.trial, self.column, self.pruned = trial, column, False

    def on_epoch_end(self, trainer, row):
        value = row.get(self.column)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), row["epoch"])
        if row["epoch"] < trainer.epochs and self.trial.should_prune():  # after the last epoch there is nothing to save
            self.pruned = True
            trainer.stop_training = True


def metric_value(sweep, result):
    """The trial's objective: the best epoch for validation metrics, the last for training ones, the test result."""
    column, where, _ = METRICS[sweep.metric]
    if where == "summary":
        value = result.summary.get(column)
    else:
        values = [v for v in result.trainer.history[column] if v is not None and math.isfinite(v)]
        if not values:
            value = None
        elif column.startswith("val_"):
            value = max(values) if sweep.goal == "maximize" else min(values)
        else:
            value = values[-1]
    if value is None or not math.isfinite(value):  # diverged before any finite result: the worst value
        value = 0.0 if sweep.metric.endswith("accuracy") and sweep.goal == "maximize" else (
            -math.inf if sweep.goal == "maximize" else math.inf)
    return float(value)


class Interrupted(FFNNError):
    """Ctrl-C during a trial: the trial was given back."""


# -- running a sweep --------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    study_name: str
    storage: str
    output_dir: str
    finished: int
    ran: list = field(default_factory=list)      # trial numbers this worker ran
    best: dict = None                            # number, value, params, run_name of the best trial


def run_sweep(sweep, n_trials=None, *, storage=None, study_name=None, output_dir=None, base=None, seed=None,
              prune=True, wandb_project=None, wandb_entity=None, verbose=1, log=print, base_source="base settings",
              jobs=1):
    """Run trials of a study until it has ``n_trials`` finished ones (complete or pruned), in any number of workers.

    Parameters
    ----------
    sweep : Sweep
    n_trials : int, optional
        The study's total of finished trials (default: the sweep's run_cap, or the grid's size).
    storage : str, optional
        Database URL or ``journal:FILE``; default a SQLite file ``study.db`` in ``output_dir``.
    study_name : str, optional
        Default: the sweep's name (or its file name).
    output_dir : str, optional
        The sweep folder; default ``sweeps/<study name>``.
    base : dict, optional
        Training settings under the sweep's parameters (a config file's keys); the sweep's values win.
    seed : int, optional
        Seed of the random and TPE samplers (give each worker its own).
    prune : bool
        Stop unpromising trials early (median pruner on the per-epoch metric, or the file's Hyperband).
    base_source : str
        What ``base`` came from, for error messages (the --config file).
    jobs : int
        Worker processes on this machine (see :func:`_run_workers`); worker i samples with ``seed + i``.

    Returns
    -------
    SweepResult
    """
    _require("optuna", "sweep")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_name = study_name or sweep.name or "sweep"
    output_dir = os.path.abspath(output_dir or os.path.join("sweeps", study_name))
    if n_trials is None:
        n_trials = sweep.run_cap or sweep.grid_size
        if n_trials is None:
            raise ConfigError("give the number of trials: --trials N (or run_cap in the sweep file)")
    n_trials, jobs = positive_int("--trials", n_trials), positive_int("--jobs", jobs)
    if sweep.method == "grid" and n_trials > sweep.grid_size:
        log(f"the grid has {sweep.grid_size} points; the study stops there")
        n_trials = sweep.grid_size
    base = {str(k).replace("-", "_"): v for k, v in (base or {}).items()}
    for key in NOT_SWEPT:
        base.pop(key, None)
    datasets = {}
    max_epochs = check_sweep(sweep, base, datasets, base_source)  # nothing is created or recorded before this
    store = Storage(storage or f"sqlite:///{os.path.join(output_dir, DEFAULT_DB)}")
    os.makedirs(output_dir, exist_ok=True)
    study = open_study(sweep, store, study_name, seed=seed, prune=prune, base=base, max_epochs=max_epochs)
    _write_sweep_json(output_dir, sweep, store, study_name, storage is None)
    project = wandb_project or sweep.project
    entity = wandb_entity or sweep.entity
    if project:
        from .wandb_logging import wandb_available

        if not wandb_available():
            project = None
    finished = count_trials(study)[0]
    jobs = min(jobs, max(1, n_trials - finished))  # more workers than trials left would only load the data
    if jobs > 1 and store.dialect == "sqlite" and not store._sqlite_path():
        raise ConfigError(f"storage {store.display} lives in one process and cannot be shared by --jobs {jobs} "
                          "workers; use a SQLite file (the default) or a journal file")
    threads = max(1, _cores() // jobs)
    if verbose:
        log(f"study {study_name!r} in {store.display}: {finished} of {plural(n_trials, 'trial')} finished; "
            f"runs go to {os.path.join(output_dir, TRIALS_DIR)}"
            + (f"; {jobs} workers, {plural(threads, 'thread')} each" if jobs > 1 else ""))
    work = {"sweep": sweep, "n_trials": n_trials, "storage": f"journal:{store.journal}" if store.journal else store.url,
            "study_name": study_name, "output_dir": output_dir, "base": base, "seed": seed, "prune": prune,
            "max_epochs": max_epochs, "project": project, "entity": entity, "verbose": verbose}
    if jobs > 1:
        datasets.clear()  # the workers load their own
        ran = _run_workers(jobs, threads, work, log)
    else:
        from .runs import on_sigint

        stop = _Stop()
        with on_sigint(stop.request, stop.abort):
            ran = _claims(study, store, datasets, log=log, stop=stop, **work)
    finished = count_trials(study)[0]
    best = _best(study)
    if verbose:
        line = f"study {study_name!r}: {plural(finished, 'trial')} finished ({len(ran)} here)"
        diverged = [t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") == "diverged"]
        if diverged:  # their metric is the worst value, not a result: say so
            line += f"; {len(diverged)} diverged (trial {', '.join(map(str, diverged))})"
        if best:
            line += f"; best {sweep.metric} {best['value']:.4f} (trial {best['number']}, {best['run_name']})"
        log(line)
        if best and best.get("run_dir") and os.path.isfile(os.path.join(best["run_dir"], "config.json")):
            config_path = shlex.quote(os.path.join(best["run_dir"], "config.json"))
            log(f"train the best settings again: ffnn train --config {config_path} --output-dir runs --name best")
    return SweepResult(study_name, store.display, output_dir, finished, ran, best)


def _claims(study, store, datasets, *, sweep, n_trials, study_name, output_dir, base, project, entity, verbose,
            log, stop, **_):
    """Claim and run trials until the study has enough, or ``stop`` is requested; the numbers of those this process
    ran (Interrupted when stopped)."""
    ran = []
    while not stop.requested:
        claimed = claim_trial(study, sweep, store, study_name, n_trials)
        if claimed is None:
            return ran
        trial, params = claimed
        if stop.requested:  # asked while claiming: the trial goes back before it starts
            with contextlib.suppress(Exception):
                study.tell(trial, state=_trial_states().FAIL)
            raise Interrupted(f"interrupted: trial {trial.number} was given back; run the same command again to "
                              "continue the study")
        _run_trial(study, trial, params, sweep, base, output_dir, datasets, project, entity, verbose, log, stop)
        ran.append(trial.number)
    if count_trials(study)[0] >= n_trials:  # asked when there was nothing left to do
        return ran
    raise Interrupted("interrupted: run the same command again to continue the study")


class _Stop:
    """A request to stop a process's trials: the running one after its current batch (it is given back), and no
    other is claimed. A Trainer callback, so that it knows the running trial's trainer; ``request`` may be called
    from any thread."""

    def __init__(self):
        self.requested = False
        self.training = False      # a trial's training is running (set by _run_trial)
        self.aborted = False       # abort() has interrupted it
        self.abort_asked = False   # a worker was told to abort (see _worker)
        self.trainer = None

    def on_epoch_begin(self, trainer):
        self.trainer = trainer
        if self.requested:
            trainer.stop_requested = True

    def request(self):
        self.requested = True
        trainer = self.trainer
        if trainer is not None:
            trainer.stop_requested = True

    def abort(self):
        """Stop at once, in the main thread: a KeyboardInterrupt, once, while a trial trains (which then gives it
        back); anywhere else (claiming a trial, giving one back) the stop already asked for is as quick."""
        self.request()
        if self.training and not self.aborted:
            self.aborted = True
            raise KeyboardInterrupt


def _cores():
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_workers(jobs, threads, work, log):
    """Run the study's trials in ``jobs`` worker processes on this machine, each with ``threads`` BLAS threads; the
    numbers of the trials they ran.

    Each worker claims trials as any other worker of the study does, and runs its BLAS on an equal share of the
    cores: one training on each core, rather than each training on all of them in turn, keeps every core busy
    through the parts of a step that run on one (a trial's numbers do not depend on its thread count). Their log
    lines come here. The workers take no Ctrl-C of their own: this process tells them through a pipe each to stop
    after the current batch and give its trial back (a second Ctrl-C: at once). When one worker fails, the others
    are stopped in the same way and its error is raised here; when this process ends, its workers stop too.
    """
    import multiprocessing
    import multiprocessing.connection
    import signal

    from .runs import STOPPING

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or connections carried over
    previous = signal.getsignal(signal.SIGINT) if _main_thread() else None
    # from the main thread, with a handler that can be put back, and not started with Ctrl-C ignored (in the
    # background)
    handle = previous not in (None, signal.SIG_IGN)
    workers, controls = {}, {}  # receiving end of each worker's messages -> its process; process -> its control
    stops = [0]

    def stop_workers(what="stop"):
        for process, control in controls.items():
            if process.is_alive():
                with contextlib.suppress(OSError):
                    control.send(what)

    def on_sigint(signum, frame):  # as runs.on_sigint, for the workers
        stops[0] += 1
        if stops[0] == 1:
            print(f"\n{STOPPING}", file=sys.stderr)
        stop_workers("stop" if stops[0] == 1 else "abort")

    # The workers start with Ctrl-C ignored, which they inherit through their start-up (see _worker); meanwhile it
    # is also held back here, and taken once the handler is in place (where the system keeps a blocked signal
    # that is ignored).
    hold = handle and hasattr(signal, "pthread_sigmask")
    if hold:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    if handle:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            for i in range(jobs):
                receive, send = context.Pipe(duplex=False)
                listen, control = context.Pipe(duplex=False)
                seed = None if work["seed"] is None else work["seed"] + i
                process = context.Process(target=_worker, args=(send, listen, threads, {**work, "seed": seed}),
                                          name=f"ffnn-sweep-{i + 1}", daemon=True)
                process.start()
                send.close()
                listen.close()
                workers[receive], controls[process] = process, control
        finally:
            if handle:
                signal.signal(signal.SIGINT, on_sigint)
            if hold:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        ran, error, interrupted = [], None, False
        while workers:
            for receive in multiprocessing.connection.wait(list(workers)):
                process = workers[receive]
                try:
                    kind, value = receive.recv()
                except EOFError:  # ended without a word
                    process.join()
                    kind, value = "error", (FFNNError(
                        f"sweep worker {process.name} ended without a result (exit code {process.exitcode}); "
                        "a trial it was running counts as failed once silent for a while: run the same "
                        "command again to continue the study"), None)
                if kind == "log":
                    log(value)
                    continue
                del workers[receive]
                if kind == "done":
                    ran += value
                elif kind == "interrupted":
                    interrupted = True
                elif error is None:
                    error = value
                    stop_workers()  # the others give their trials back
        if error is not None:
            exc, remote = error
            if remote:
                raise exc from _RemoteTraceback(remote)
            raise exc
        if interrupted:
            raise Interrupted("interrupted: the workers' trials were given back; run the same command again to "
                              "continue the study")
        return sorted(ran)
    except BaseException:  # whatever stopped this process (its output closed, say) stops the workers too
        stop_workers()
        raise
    finally:
        while workers:  # stopping: what they still say is not read, only let through
            for receive in multiprocessing.connection.wait(list(workers)):
                try:
                    receive.recv()
                except (EOFError, OSError):
                    del workers[receive]
        for process, control in controls.items():
            process.join()
            control.close()
        if handle:  # only now: a Ctrl-C until the workers have ended is passed on to them
            signal.signal(signal.SIGINT, previous)


def _main_thread():
    return threading.current_thread() is threading.main_thread()


class _RemoteTraceback(Exception):
    """A worker's traceback, as the cause of the error it raised (shown with --debug)."""

    def __str__(self):
        return self.args[0]


def _worker(send, listen, threads, work):
    """One worker process of :func:`_run_workers`: the claim loop with ``threads`` BLAS threads. Its log lines, and at
    the end what it ran or why it stopped, go back through ``send``; ``listen`` brings "stop" and "abort", and its
    end (the process that started this one is gone) stops it as "stop" does."""
    import _thread
    import pickle
    import signal
    import traceback

    stop = _Stop()

    def on_sigint(signum, frame):  # a terminal's Ctrl-C also reaches the starting process, which passes it on
        if stop.abort_asked:  # interrupt_main below
            stop.abort()

    signal.signal(signal.SIGINT, on_sigint)
    for name in ("SIGTERM", "SIGHUP"):  # the terminal closed, or `timeout`: stop after the batch, give the trial back
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda signum, frame: stop.request())
    if hasattr(signal, "pthread_sigmask"):  # in case the start-up passed on the block of _run_workers
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def listener():
        try:
            while True:
                if listen.recv() == "abort":
                    stop.abort_asked = True
                    _thread.interrupt_main()
                stop.request()
        except (EOFError, OSError):  # the starting process is gone
            stop.request()

    threading.Thread(target=listener, name="ffnn-sweep-control", daemon=True).start()

    def tell(message):
        with contextlib.suppress(OSError):  # the starting process is gone
            send.send(message)

    try:
        import numpy  # noqa: F401 (the BLAS is loaded, so that threadpoolctl finds it)
        import optuna
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        optuna.logging.set_verbosity(optuna.logging.WARNING)

        def log(line):
            send.send(("log", line))

        store = Storage(work["storage"])
        study = open_study(work["sweep"], store, work["study_name"], seed=work["seed"], prune=work["prune"],
                           base=work["base"], max_epochs=work["max_epochs"])
        ran = _claims(study, store, {}, log=log, stop=stop, **work)
    except (Interrupted, KeyboardInterrupt):
        tell(("interrupted", None))
    except BaseException as exc:  # noqa: BLE001 (every error goes to the process that started this one)
        remote = None if isinstance(exc, FFNNError) else traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:  # noqa: BLE001
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        tell(("error", (exc, remote)))
    else:
        tell(("done", ran))
    finally:
        send.close()


def _best(study):
    try:
        t = study.best_trial
    except ValueError:
        return None
    return {"number": t.number, "value": t.value, "params": dict(t.params),
            "run_name": t.user_attrs.get("run_name"), "run_dir": t.user_attrs.get("run_dir")}


def _write_sweep_json(output_dir, sweep, store, study_name, default_storage):
    info = {"study": study_name, "storage": DEFAULT_DB if default_storage else store.display,
            "method": sweep.method, "metric": sweep.metric, "goal": sweep.goal, "source": sweep.source,
            "parameters": {p.key: ([p.decode(v) for v in p.values] if p.values is not None else
                                   {"min": p.low, "max": p.high, "log": p.log, "q": p.step}) for p in sweep.params}}
    write_text(os.path.join(output_dir, SWEEP_FILE), json.dumps(info, indent=2) + "\n")


def _run_dir(output_dir, number, name):
    base = os.path.join(output_dir, TRIALS_DIR, f"{number:04d}-{name}")
    path, i = base, 1
    while os.path.exists(path):
        i += 1
        path = f"{base}-{i}"
    return path


def _dataset(config, cache):
    from . import runs

    key = (config.dataset, config.data_dir, config.target, config.dtype)
    if key not in cache:
        cache[key] = runs.load_dataset(config)
    return cache[key]


def _check_metric(sweep, dataset):
    if dataset.task != "classification" and sweep.metric.endswith("accuracy"):
        raise ConfigError(f"metric {sweep.metric} needs a classification dataset; {dataset.name!r} is a "
                          "regression task (use val_loss)")


def _run_trial(study, trial, params, sweep, base, output_dir, datasets, project, entity, verbose, log, stop):
    from optuna.trial import TrialState

    from . import runs

    name = readable_name(params)
    run_dir = _run_dir(output_dir, trial.number, name)
    logger = None
    try:
        config = TrainConfig.from_dict({**base, **sweep.constants, **params}, source=sweep.source)
        config.name, config.output_dir = name, os.path.dirname(run_dir)
        config.extra = {**config.extra, "study": study.study_name, "trial": trial.number}
        dataset = _dataset(config, datasets)
        _check_metric(sweep, dataset)
        worker = f"{socket.gethostname()}:{os.getpid()}"
        for key, value in (("run_name", name), ("run_dir", run_dir), ("worker", worker)):
            trial.set_user_attr(key, value)
        pruning = Pruning(trial, METRICS[sweep.metric][0] if METRICS[sweep.metric][1] == "history" else None)
        callbacks = [pruning, stop]  # stop: the running trial's Ctrl-C (see run_sweep and _worker)
        if project:
            from .wandb_logging import make_logger

            logger = make_logger(project, entity, config, name=name, group=study.study_name,
                                 extra_config={"trial": trial.number, "study": study.study_name})
            callbacks.append(logger)
        with heartbeat(study, trial._trial_id):
            stop.training = True
            try:
                result = runs.train(config, run_dir=run_dir, callbacks=[c for c in callbacks if c], verbose=0,
                                    dataset=dataset, handle_sigint=False, log=log)
            finally:
                stop.training, stop.trainer = False, None
        if logger is not None:
            logger.finish(result, dataset=dataset)
    except BaseException:
        with contextlib.suppress(Exception):
            study.tell(trial, state=TrialState.FAIL)
        if logger is not None:
            with contextlib.suppress(Exception):
                logger.abort()
        raise
    if result.status == "interrupted":
        with contextlib.suppress(Exception):
            study.tell(trial, state=TrialState.FAIL)
        raise Interrupted(f"interrupted: trial {trial.number} was given back; run the same command again to "
                          "continue the study")
    s = result.summary
    for key in ("test_accuracy", "test_loss", "epochs_completed", "seconds"):
        trial.set_user_attr(key, s.get(key))
    trial.set_user_attr("status", "pruned" if pruning.pruned else result.status)
    value = metric_value(sweep, result)
    state = TrialState.PRUNED if pruning.pruned else TrialState.COMPLETE
    try:
        if state == TrialState.PRUNED:
            study.tell(trial, state=state)
        else:
            study.tell(trial, value)
    except Exception as exc:  # marked failed by another worker that took this one for dead
        log(f"trial {trial.number}: its result could not be recorded ({_first_line(exc)})")
        state = TrialState.FAIL
    record = {"study": study.study_name, "number": trial.number, "state": state.name, "metric": sweep.metric,
              "value": value, "params": params, "run_name": name, "status": trial.user_attrs.get("status",
                                                                                                 result.status)}
    write_text(os.path.join(run_dir, TRIAL_FILE), json.dumps(record, indent=2) + "\n")
    if verbose:
        tag = {"PRUNED": "pruned", "FAIL": "lost"}.get(state.name, result.status)
        epochs = plural(s["epochs_completed"], "epoch")
        log(f"trial {trial.number:>3} {name}: {sweep.metric} {value:.4f} ({tag}, {epochs}, {s['seconds']:.1f}s)")


# -- the command --------------------------------------------------------------------------------------------------
def add_parser(subparsers):
    """Register ``ffnn sweep``."""
    p = subparsers.add_parser(
        "sweep", help="run a hyperparameter sweep (a wandb sweep file) on Optuna",
        description="Run trials of a wandb-format sweep on Optuna until the study has N finished trials. "
                    "Start the same command on several machines with one --storage to share the work.")
    p.add_argument("sweep_file", metavar="SWEEP.yaml", help="wandb sweep file: method, metric, parameters")
    p.add_argument("--trials", "-n", type=int, metavar="N",
                   help="total finished trials of the study (default: run_cap, or the grid's size)")
    p.add_argument("--storage", metavar="URL",
                   help="sqlite:///FILE.db, postgresql://USER:PASSWORD@HOST/DB or journal:FILE (default: "
                        "study.db in the output folder)")
    p.add_argument("--study", metavar="NAME", help="study name (default: the sweep's name or file name)")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", metavar="DIR",
                   help="sweep folder (default sweeps/<study>)")
    p.add_argument("--config", metavar="FILE.yaml", help="training settings under the sweep's parameters")
    p.add_argument("-d", "--dataset", help="dataset for every trial (instead of the sweep's)")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", help="folder with the dataset files")
    p.add_argument("--seed", type=int, help="seed of the random and bayes samplers (one per worker; --jobs worker i adds i)")
    p.add_argument("--no-prune", dest="prune", action="store_false", help="never stop a trial early")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="worker processes on this machine, each with an equal share of its cores (default 1)")
    p.add_argument("-wp", "--wandb_project", "--wandb-project", dest="wandb_project",
                   help="log every trial to this Weights & Biases project (needs ffnn[wandb])")
    p.add_argument("-we", "--wandb_entity", "--wandb-entity", dest="wandb_entity", help="Weights & Biases entity")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per trial")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=cmd_sweep)
    return p


def cmd_sweep(args):
    from .cli import EXIT_INTERRUPTED, read_config_file

    sweep = load_sweep(args.sweep_file)
    base = {config_key(k): v for k, v in (read_config_file(args.config) if args.config else {}).items()}
    overrides = {k: getattr(args, k) for k in ("dataset", "data_dir") if getattr(args, k, None) is not None}
    for key in overrides:
        if any(p.key == key for p in sweep.swept):
            raise ConfigError(f"--{key.replace('_', '-')} conflicts with the sweep's parameter {key!r}")
        sweep.params = [p for p in sweep.params if p.key != key]
    overridden = [k for k in base if any(p.key == k for p in sweep.params)]
    if overridden and not args.quiet:
        print(f"ffnn: note: the sweep's own {', '.join(overridden)} override{'s' if len(overridden) == 1 else ''} "
              f"{args.config}'s", file=sys.stderr)
    base.update(overrides)
    try:
        run_sweep(sweep, args.trials, storage=args.storage, study_name=args.study, output_dir=args.output_dir,
                  base=base, seed=args.seed, prune=args.prune, wandb_project=args.wandb_project,
                  wandb_entity=args.wandb_entity, verbose=0 if args.quiet else 1,
                  base_source=args.config or "command line", jobs=args.jobs)
    except Interrupted as exc:
        print(f"ffnn: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def main(argv=None):
    """``python -m ffnn.sweep SWEEP.yaml ...``: the same as ``ffnn sweep``."""
    from .cli import main as ffnn_main

    return ffnn_main(["sweep", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
