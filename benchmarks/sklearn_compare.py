"""FFNNClassifier / FFNNRegressor against scikit-learn's MLPClassifier / MLPRegressor, both at their defaults.

Both get the same hidden layer, (100,), and the same Pipeline(StandardScaler(), estimator), and are scored by the
same 5-fold cross-validation (scikit-learn's ``cv=5``: stratified folds for the classifiers) on digits,
breast_cancer and wine (accuracy) and diabetes (R^2), repeated over several random states. For each random state
the two libraries run back to back, so that machine noise hits both alike, with BLAS limited to one thread (the
networks are small: more threads only add contention). Printed: mean ± standard deviation of the test scores over
every fold and random state, mean seconds per fit, and the ratio of fit times ffnn / scikit-learn.

The targets: ffnn's defaults score at least as well as scikit-learn's on every dataset and fit in at most half the
time; the last column says whether each was met.

    python benchmarks/sklearn_compare.py               # 5 random states (about a minute)
    python benchmarks/sklearn_compare.py --seeds 1     # a quick look
"""

import argparse
import platform
import sys
import warnings

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_validate
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import ffnn
from ffnn.estimators import FFNNClassifier, FFNNRegressor

DATASETS = [  # (name, loader, metric)
    ("digits", load_digits, "accuracy"),
    ("breast_cancer", load_breast_cancer, "accuracy"),
    ("wine", load_wine, "accuracy"),
    ("diabetes", load_diabetes, "R^2"),
]
HIDDEN = (100,)


def estimators(regression, seed):
    """(ffnn, scikit-learn) estimators at their defaults with the same hidden layer."""
    if regression:
        return (FFNNRegressor(hidden_layer_sizes=HIDDEN, random_state=seed),
                MLPRegressor(hidden_layer_sizes=HIDDEN, random_state=seed))
    return (FFNNClassifier(hidden_layer_sizes=HIDDEN, random_state=seed),
            MLPClassifier(hidden_layer_sizes=HIDDEN, random_state=seed))


def compare(X, y, regression, seeds, folds):
    """{"ffnn": (scores, fit_seconds), "sklearn": (...)} over every fold of every random state."""
    results = {"ffnn": ([], []), "sklearn": ([], [])}
    for seed in seeds:
        for name, est in zip(("ffnn", "sklearn"), estimators(regression, seed)):
            cv = cross_validate(make_pipeline(StandardScaler(), est), X, y, cv=folds)
            results[name][0].extend(cv["test_score"])
            results[name][1].extend(cv["fit_time"])
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="random states to repeat the CV with (default 5)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both libraries (default 1)")
    args = parser.parse_args(argv)
    seeds = range(args.seeds)
    print(f"ffnn {ffnn.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
          f"Python {platform.python_version()}, {platform.machine()}; hidden {HIDDEN}, {args.folds}-fold CV x "
          f"{args.seeds} random states, {args.threads} BLAS thread(s)")
    header = (f"{'dataset':<14} {'metric':<9} {'ffnn':>15} {'scikit-learn':>15} {'ffnn s/fit':>11} "
              f"{'sklearn s/fit':>14} {'time ratio':>11}  targets")
    print(header)
    print("-" * len(header))
    all_met = True
    with threadpool_limits(args.threads), warnings.catch_warnings():
        # scikit-learn's MLP warns on every fit that stops at max_iter; its defaults are what is compared.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, loader, metric in DATASETS:
            X, y = loader(return_X_y=True)
            r = compare(X, y, metric == "R^2", seeds, args.folds)
            (fs, ft), (ss, st) = r["ffnn"], r["sklearn"]
            ratio = np.mean(ft) / np.mean(st)
            score_ok, time_ok = np.mean(fs) >= np.mean(ss), ratio <= 0.5
            all_met &= score_ok and time_ok
            verdict = f"score {'met' if score_ok else 'MISSED'}, time {'met' if time_ok else 'MISSED'}"
            print(f"{name:<14} {metric:<9} {np.mean(fs):>8.4f} ±{np.std(fs):.4f} {np.mean(ss):>8.4f} "
                  f"±{np.std(ss):.4f} {np.mean(ft):>11.3f} {np.mean(st):>14.3f} {ratio:>11.2f}  {verdict}", flush=True)
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
