"""The ``ffnn`` command: train, evaluate, predict, gradcheck, explain, sweep, report.

``ffnn train`` takes the course assignment's flags verbatim (``-nhl 3 -sz 128 -a ReLU -o nadam ...``), a YAML
config file with the same keys (flags on the command line win), and ``--resume RUN_DIR``.
Every error is one line on stderr and a non-zero exit; ``--debug`` shows the traceback instead.
"""

import argparse
import csv
import io
import os
import sys

import numpy as np

from . import __version__
from .errors import ConfigError, DataError, FFNNError, plural

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add_train_flags(p):
    S = argparse.SUPPRESS  # only flags actually given reach the config, so config files can fill the rest
    add = p.add_argument
    add("--config", metavar="FILE.yaml", help="YAML file with the same keys as the long flags; flags win")
    add("--resume", metavar="RUN_DIR", help="continue an interrupted or finished run (optionally with --epochs N)")
    add("-d", "--dataset", default=S,
        help="fashion_mnist (default), mnist, digits, iris, wine, breast_cancer, diabetes, or a .csv/.npz file")
    add("-e", "--epochs", type=int, default=S, help="passes over the training data (default 20)")
    add("-b", "--batch_size", "--batch-size", dest="batch_size", type=int, default=S,
        help="examples per step (default 64)")
    add("-l", "--loss", default=S, metavar="{cross_entropy,mean_squared_error}",
        help="default: cross_entropy for classes, squared error for regression")
    add("-o", "--optimizer", default=S, metavar="{sgd,momentum,nag,rmsprop,adam,nadam}", help="default adam")
    add("-lr", "--learning_rate", "--learning-rate", dest="learning_rate", type=float, default=S,
        help="default 1e-3")
    add("-m", "--momentum", type=float, default=S, help="momentum and nag (default 0.9)")
    add("-beta", "--beta", type=float, default=S, help="rmsprop (default 0.9)")
    add("-beta1", "--beta1", type=float, default=S, help="adam and nadam (default 0.9)")
    add("-beta2", "--beta2", type=float, default=S, help="adam and nadam (default 0.999)")
    add("-eps", "--epsilon", type=float, default=S, help="rmsprop, adam, nadam (default 1e-8)")
    add("-w_d", "--weight_decay", "--weight-decay", dest="weight_decay", type=float, default=S,
        help="L2 weight decay (default 0)")
    add("-w_i", "--weight_init", "--weight-init", dest="weight_init", default=S, metavar="{random,Xavier,he}",
        help="default Xavier")
    add("-nhl", "--num_layers", "--num-layers", dest="num_layers", type=int, default=S,
        help="hidden layers (default 2)")
    add("-sz", "--hidden_size", "--hidden-size", dest="hidden_size", type=int, default=S,
        help="neurons per hidden layer (default 128)")
    add("--hidden-sizes", "--hidden_sizes", dest="hidden_sizes", type=int, nargs="*", default=S, metavar="N",
        help="explicit hidden widths, e.g. --hidden-sizes 256 128 (overrides -nhl/-sz)")
    add("-a", "--activation", default=S, metavar="{identity,sigmoid,tanh,ReLU}", help="default tanh")
    add("--output", default=S, metavar="{softmax,linear}", help="default: softmax for classes, linear otherwise")
    add("--dropout", type=float, default=S, help="drop probability of hidden units while training (default 0)")
    add("--lr-schedule", "--lr_schedule", dest="lr_schedule", default=S,
        metavar="{constant,step,exponential,cosine,plateau}", help="learning-rate schedule (default cosine)")
    add("--lr-gamma", "--lr_gamma", dest="lr_gamma", type=float, default=S, help="decay factor of the schedule")
    add("--lr-step-size", "--lr_step_size", dest="lr_step_size", type=int, default=S,
        help="step schedule: epochs between decays")
    add("--lr-min-factor", "--lr_min_factor", dest="lr_min_factor", type=float, default=S,
        help="cosine/plateau: lowest learning rate as a fraction of the initial one")
    add("--label-smoothing", "--label_smoothing", dest="label_smoothing", type=float, default=S,
        help="label smoothing of the cross-entropy targets (default 0)")
    add("--decoupled-weight-decay", "--decoupled_weight_decay", dest="decoupled_weight_decay",
        action="store_true", default=S, help="AdamW-style weight decay instead of an L2 gradient")
    add("--val-fraction", "--val_fraction", dest="val_fraction", type=float, default=S,
        help="share of the training data held out for validation (default 0.1)")
    add("--patience", type=int, default=S, help="early stopping patience in epochs (default: off)")
    add("--seed", type=int, default=S, help="random seed (default 0)")
    add("--data-dir", "--data_dir", dest="data_dir", default=S, help="folder with the dataset files")
    add("--target", type=_targets, default=S,
        help="target column of a CSV dataset (several: comma-separated, for regression)")
    add("--output-dir", "--output_dir", dest="output_dir", default=S, help="where run folders go (default runs)")
    add("--name", default=S, help="run folder name (default: built from the settings)")
    add("--dtype", default=S, metavar="{float32,float64}", help="default float32")
    add("--device", default=S, metavar="{cpu,cuda}", help="default cpu")
    add("-wp", "--wandb_project", "--wandb-project", dest="wandb_project", default=None,
        help="log to this Weights & Biases project (needs ffnn[wandb])")
    add("-we", "--wandb_entity", "--wandb-entity", dest="wandb_entity", default=None,
        help="Weights & Biases entity")
    add("-q", "--quiet", action="store_true", help="no progress bar or per-epoch lines")


TRAIN_KEYS = ("dataset", "epochs", "batch_size", "loss", "optimizer", "learning_rate", "momentum", "beta",
              "beta1", "beta2", "epsilon", "weight_decay", "weight_init", "num_layers", "hidden_size",
              "hidden_sizes", "activation", "output", "val_fraction", "patience", "seed", "data_dir", "target",
              "output_dir", "name", "dtype", "device", "dropout", "lr_schedule", "lr_gamma", "lr_step_size",
              "lr_min_factor", "label_smoothing", "decoupled_weight_decay")


RESUME_KEYS = ("epochs", "device", "data_dir")  # what may change when a run goes on: not its math

CORE_COMMANDS = ("train", "evaluate", "predict", "gradcheck")


def build_parser(all_commands=True):
    """The ``ffnn`` argument parser; ``all_commands=False`` leaves out explain, sweep and report, whose modules
    cost memory and start-up time that the core commands do not need."""
    parser = _Parser(prog="ffnn", description="Feedforward neural networks with hand-written backpropagation.")
    parser.add_argument("--version", action="version", version=f"ffnn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("train", help="train a network (default: Fashion-MNIST)",
                       description="Train a network and save the run (config, history, model, summary).")
    _add_train_flags(p)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="loss, accuracy and confusion matrix of a saved model")
    p.add_argument("model", help="model file (or a run folder)")
    p.add_argument("-d", "--dataset", help="default: the dataset the model was trained on")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir")
    p.add_argument("--target", type=_targets, help="target column(s) of a CSV file (default: the model's)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predictions for the rows of a CSV file")
    p.add_argument("model", help="model file (or a run folder)")
    p.add_argument("input", help="CSV of raw features (a header row is optional)")
    p.add_argument("-o", "--output", help="output CSV (default: standard output)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("gradcheck", help="check back_propagation against central differences",
                       description="Compare back_propagation's gradients, in float64, with central differences of "
                                   "the loss on a random network and batch; exit non-zero above the tolerance.")
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 4, 3, 3], help="layer sizes (default 5 4 3 3)")
    p.add_argument("-a", "--activation", default="tanh", help="hidden activation (default tanh)")
    p.add_argument("--output", default="softmax", help="softmax or linear (default softmax)")
    p.add_argument("-l", "--loss", default="cross_entropy", help="cross_entropy or squared_error (default "
                                                                 "cross_entropy)")
    p.add_argument("--batch", type=int, default=7, help="examples in the batch (default 7)")
    p.add_argument("--seed", type=int, default=0, help="seed of the network and the batch (default 0)")
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest allowed relative error (default 1e-6)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=cmd_gradcheck)

    if all_commands:
        from .explain import add_parser as add_explain_parser
        add_explain_parser(sub)
        from .report import add_parser as add_report_parser
        from .sweep import add_parser as add_sweep_parser
        add_sweep_parser(sub)
        add_report_parser(sub)
    return parser


def main(argv=None):
    """Entry point of the ``ffnn`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # The only top-level options (--debug, --version, --help) take no value, so the first other word is the command.
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(all_commands=command not in CORE_COMMANDS).parse_args(argv)
    try:
        return args.func(args) or 0
    except FFNNError as exc:
        if args.debug:
            raise
        print(f"ffnn: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("ffnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `ffnn evaluate ... | head`: the reader has gone, which is not an error
        _silence_stdout()
        return 0
    except OSError as exc:
        if args.debug:
            raise
        print(f"ffnn: error: {exc.strerror or exc}{': ' + exc.filename if exc.filename else ''}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError as exc:  # NumPy's, or CuPy's OutOfMemoryError on a GPU
        if args.debug:
            raise
        reason = str(exc).splitlines()[0] if str(exc) else "MemoryError"
        print(f"ffnn: error: out of memory ({reason}); use a smaller batch size or network, or another device",
              file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: one line, and the way to see more
        if args.debug:
            raise
        print(f"ffnn: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_ERROR


def _silence_stdout():
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print_while_read(*args, **kwargs):
    """print, until the reader of standard output goes away (``ffnn train | head``): training goes on, unheard."""
    try:
        print(*args, **kwargs)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


# -- train ---------------------------------------------------------------------------------------------------
def read_config_file(path):
    """The mapping in a YAML (or JSON) config file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys to values")
    return values


def train_config(args):
    """TrainConfig from defaults <- config file <- flags given on the command line."""
    from .config import TrainConfig, config_key

    values = read_config_file(args.config) if args.config else {}
    source = args.config or "command line"
    # a run's config.json works as a config file: what the sweep or run that wrote it recorded is not a setting
    values = {config_key(k): v for k, v in values.items() if config_key(k) != "extra"}
    for key in ("wandb_project", "wandb_entity"):  # options of the command, not of the training: flags win
        value = values.pop(key, None)
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    values.update({k: getattr(args, k) for k in TRAIN_KEYS if hasattr(args, k)})
    return TrainConfig.from_dict(values, source=source)


def cmd_train(args):
    from . import runs

    verbose = 0 if args.quiet else 1
    callbacks = []
    if args.resume:
        given = [k for k in TRAIN_KEYS if hasattr(args, k) and k not in RESUME_KEYS]
        if given or args.config:
            raise ConfigError(f"--resume continues a run with its own settings; only "
                              f"{', '.join('--' + k.replace('_', '-') for k in RESUME_KEYS)} may be given "
                              f"(got {', '.join('--' + k for k in given) or '--config'})")
        config = runs.load_run_config(args.resume)
        for key in RESUME_KEYS:
            if hasattr(args, key):
                setattr(config, key, getattr(args, key))
        config.validate()
        run_dir = args.resume
    else:
        config = train_config(args)
        run_dir = None
    if args.wandb_project:
        from .wandb_logging import make_logger
        callbacks.append(make_logger(args.wandb_project, args.wandb_entity, config))
    callbacks = [c for c in callbacks if c is not None]
    result = runs.train(config, run_dir=run_dir, resume=bool(args.resume), callbacks=callbacks, verbose=verbose,
                        log=_print_while_read)
    for callback in callbacks:
        getattr(callback, "finish", lambda result: None)(result)
    s = result.summary
    if result.status == "completed":
        acc = f", test accuracy {s['test_accuracy']:.4f}" if s["test_accuracy"] is not None else ""
        rmse = f", test RMSE {s['test_rmse']:.4g}" if s.get("test_rmse") is not None else ""
        print(f"test loss {s['test_loss']:.4f}{acc}{rmse}; {plural(s['epochs_completed'], 'epoch')} in "
              f"{s['seconds']:.1f}s")
        print(f"saved to {result.run_dir}")
        return 0
    print(f"ffnn: {result.message}", file=sys.stderr)
    if result.status == "interrupted":
        return EXIT_INTERRUPTED
    print(f"ffnn: the last good weights are in {os.path.join(result.run_dir, runs.MODEL)}", file=sys.stderr)
    return EXIT_ERROR


# -- evaluate and predict --------------------------------------------------------------------------------------
def _model_path(path):
    from .runs import MODEL

    return os.path.join(path, MODEL) if os.path.isdir(path) else path


def cmd_evaluate(args):
    from . import data
    from .data import Scaling
    from .metrics import confusion_matrix, format_confusion
    from .network import Network
    from .runs import standard_targets, rmse

    net = Network.load(_model_path(args.model))
    meta = net.metadata
    name = args.dataset or meta.get("dataset")
    if not name:
        raise ConfigError("the model does not record its dataset; pass --dataset")
    saved_target = meta.get("target") if str(name).lower().endswith(".csv") else None  # only a CSV has columns
    if args.target and saved_target and len(np.atleast_1d(args.target)) != len(np.atleast_1d(saved_target)):
        raise ConfigError(f"the model predicts {', '.join(np.atleast_1d(saved_target))}; --target names "
                          f"{', '.join(np.atleast_1d(args.target))}")
    ds = data.load(name, data_dir=args.data_dir or meta.get("data_dir"), target=args.target or saved_target,
                   dtype=net.dtype.name, task=meta.get("task"))
    X_test, y_test = _as_trained(net, ds)
    target = Scaling.saved(meta, "target_scaling")
    result = net.evaluate(X_test, standard_targets(y_test, target))
    print(f"dataset {ds.name}: {len(y_test)} test examples")
    if target is not None:
        print(f"loss {result['loss']:.4f} (of standardised targets); RMSE {rmse(net, X_test, y_test, target):.4g}")
    else:
        print(f"loss {result['loss']:.4f}")
    if "accuracy" in result:
        print(f"accuracy {result['accuracy']:.4f}")
        cm = confusion_matrix(y_test, net.predict(X_test), net.sizes[-1])
        print(format_confusion(cm, meta.get("class_names") or ds.class_names))
    return 0


def _as_trained(net, ds):
    """The test split of ``ds`` as ``net`` saw its training data: its features (taken by name when both know their
    names) scaled by the model's own scaling, and labels numbered by the model's class names (a new file has its
    own of all three)."""
    from .data import Scaling

    meta = net.metadata
    X, y, own = ds.inputs("test"), ds.y_test, ds.scaling
    # "scaling": None is a model that takes features as they are (an estimator's); no key, an older file
    saved = Scaling.saved(meta, "scaling")
    as_given = "scaling" in meta and meta["scaling"] is None
    names, file_names = meta.get("feature_names"), ds.feature_names
    columns = _columns_by_name(file_names, names, ds.name) if names and file_names else None
    if columns is None and X.shape[1] != net.sizes[0]:
        raise DataError(f"{ds.name} has {X.shape[1]} features; this model takes {net.sizes[0]}")
    if columns is not None or (own is not None and (as_given or (saved is not None and not saved.same_as(own)))):
        raw = own.inverse_transform(ds.X_test) if own is not None else np.asarray(ds.X_test, np.float64)
        if columns is not None:
            raw = raw[:, columns]
        X = (saved.transform(raw) if saved is not None else raw).astype(net.dtype)
    names = meta.get("class_names")
    if names and ds.class_names and list(ds.class_names) != list(names):
        unknown = [c for c in ds.class_names if c not in names]
        if unknown:
            raise DataError(f"{ds.name}: classes {', '.join(map(repr, unknown))} are not among the model's "
                            f"({', '.join(map(repr, names))})")
        y = np.asarray([names.index(c) for c in ds.class_names], np.int64)[y]
    return X, y


def _columns_by_name(have, want, source):
    """Indices into the columns ``have`` that give the columns ``want`` in order (None when they already are);
    a one-line DataError naming the missing and unknown ones when they are not the same names."""
    have, want = list(have), list(want)
    if have == want:
        return None
    missing = [c for c in want if c not in have]
    extra = [c for c in have if c not in want]
    if missing or extra:
        parts = ([f"no column {', '.join(map(repr, missing))}"] if missing else []) + \
            ([f"unknown column {', '.join(map(repr, extra))}"] if extra else [])
        raise DataError(f"{source}: {'; '.join(parts)}; the model's features are {', '.join(want)}")
    return [have.index(c) for c in want]


def _targets(text):
    """--target: one column, or several separated by commas."""
    names = [t.strip() for t in text.split(",")]
    return names if len(names) > 1 else names[0]


def read_feature_csv(path, n_features, target=None, feature_names=None):
    """Rows of numbers from a CSV file. A header is optional; with one, a column named ``target`` is dropped, and
    when the model knows its ``feature_names`` the columns are taken by name, in the model's order."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]  # (line number, cells)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error):
        raise DataError(f"{path}: not a text CSV file") from None
    keep = None
    names = [str(n).strip() for n in feature_names] if feature_names else None
    first = [c.strip() for c in rows[0][1]] if rows else []
    if first and (not any(_is_number(c) or not c for c in first) or (names and set(names) <= set(first))):
        header = [c.strip() for c in rows.pop(0)[1]]  # a header, even of numbers ("2019") when they name features
        targets = [target] if isinstance(target, str) else list(target or [])
        keep = [i for i, c in enumerate(header) if c not in targets]
        if names:
            columns = _columns_by_name([header[i] for i in keep], names, path)
            keep = keep if columns is None else [keep[i] for i in columns]
        width = len(header)
    X = []
    for line, row in rows:
        cells = [row[i] for i in keep if i < len(row)] if keep is not None else row
        if len(cells) != n_features or (keep is not None and len(row) != width):
            count = len(row) if keep is not None else len(cells)
            raise DataError(f"{path}, line {line}: {count} values; the model expects {n_features} features"
                            + (f" and the header has {width} columns" if keep is not None else ""))
        try:
            X.append([float(c) for c in cells])
        except ValueError:
            raise DataError(f"{path}, line {line}: a value is missing or not a number") from None
    if not X:
        raise DataError(f"{path}: no rows to predict")
    X = np.asarray(X)
    if not np.all(np.isfinite(X)):
        raise DataError(f"{path}: contains NaN or infinite values; only finite numbers are allowed")
    return X


def _is_number(cell):
    try:
        float(cell)
        return True
    except ValueError:
        return False


def cmd_predict(args):
    from .data import Scaling
    from .fsutil import require_folder, write_text
    from .network import Network

    net = Network.load(_model_path(args.model))
    meta = net.metadata
    X = read_feature_csv(args.input, net.sizes[0], meta.get("target"), meta.get("feature_names"))
    if meta.get("scaling"):
        scaling = Scaling.from_dict(meta["scaling"])
        if scaling.n_features is None and float(scaling.scale) > 1 and X.min() >= 0 and X.max() <= 1:
            print(f"ffnn: note: {args.input} holds values in [0, 1], but this model takes raw values, which it "
                  f"divides by {float(scaling.scale):g}; pass the values as stored (0..255 for images)",
                  file=sys.stderr)
        X = scaling.transform(X)
    y_hat = net.predict_proba(X.astype(net.dtype))
    target = Scaling.saved(meta, "target_scaling")
    if target is not None:  # outputs in the targets' own units
        y_hat = target.inverse_transform(y_hat)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if net.output_layer.output == "softmax":
        names = meta.get("class_names") or [str(i) for i in range(net.sizes[-1])]
        writer.writerow(["prediction"] + [f"p_{n}" for n in names])
        for row in y_hat:
            writer.writerow([names[int(row.argmax())]] + [f"{p:.6g}" for p in row])
    else:
        target = meta.get("target")
        names = target if isinstance(target, list) and len(target) == y_hat.shape[1] else \
            [f"y_hat_{j}" for j in range(y_hat.shape[1])]
        writer.writerow(names if y_hat.shape[1] > 1 else ["prediction"])
        for row in y_hat:
            writer.writerow([f"{v:.8g}" for v in row])
    if args.output:
        require_folder(args.output)
        write_text(args.output, out.getvalue())
        # on stderr: the output may be standard output itself (-o /dev/stdout)
        print(f"ffnn: wrote {plural(len(y_hat), 'prediction')} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(out.getvalue())
    return 0


# -- gradcheck -------------------------------------------------------------------------------------------------
def cmd_gradcheck(args):
    from .gradcheck import check_gradients, random_problem

    if args.batch < 1:
        raise ConfigError(f"--batch must be a positive integer; got {args.batch}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer; got {args.seed}")
    if not 0 < args.tolerance < 1:  # NaN fails this too
        raise ConfigError(f"--tolerance must be a relative error between 0 and 1; got {args.tolerance}")
    net, X, y = random_problem(args.sizes, args.activation, args.output, args.loss, args.batch, args.seed)
    errors = check_gradients(net, X, y)
    print(f"{net!r}, batch {args.batch}: relative error ||backprop - central difference|| / (||.|| + ||.||)")
    worst = 0.0
    for name, err in errors.items():
        ok = err <= args.tolerance
        worst = max(worst, err)
        print(f"  {name:>4} {tuple(net.params[name].shape)!s:>10}  {err:.2e}  {'ok' if ok else 'FAIL'}")
    verdict = "passed" if worst <= args.tolerance else "FAILED"
    print(f"{verdict}: largest relative error {worst:.2e} (tolerance {args.tolerance:.0e})")
    return 0 if worst <= args.tolerance else EXIT_ERROR
