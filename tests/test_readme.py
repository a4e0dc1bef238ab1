"""The README's code examples run as written."""

import re
from pathlib import Path

import numpy as np

from ffnn import Network
from ffnn import optimizers

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_eve_example_adds_a_working_optimizer(monkeypatch):
    (block,) = [b for b in python_blocks() if "class Eve" in b]
    monkeypatch.setattr(optimizers, "OPTIMIZERS", dict(optimizers.OPTIMIZERS))
    namespace = {}
    exec(block, namespace)
    eve = optimizers.get_optimizer("eve", 0.01, damping=0.5)
    assert type(eve).__name__ == "Eve"
    net = Network([4, 8, 3], seed=0)
    X = np.random.default_rng(0).normal(size=(90, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    before = net.evaluate(X, y)["loss"]
    net.fit(X, y, epochs=20, batch_size=16, optimizer=eve, verbose=0, seed=0)
    assert net.evaluate(X, y)["loss"] < 0.7 * before


def test_readme_names_the_test_command_that_ci_runs():
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[test]" && python -m pytest' in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -q -e ".[test' in ci and "python -m pytest" in ci


def test_the_scikit_learn_example_runs(tmp_path, monkeypatch):
    (block,) = [b for b in python_blocks() if "FFNNClassifier" in b and "GridSearchCV" in b]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(block, namespace)
    assert (tmp_path / "digits.joblib").exists()
    assert namespace["search"].best_score_ > 0.9
    assert len(namespace["clf"].validation_loss_curve_) == namespace["clf"].n_iter_


def test_the_python_api_example_runs_on_a_small_dataset(monkeypatch, tmp_path):
    (block,) = [b for b in python_blocks() if "ffnn.datasets.load(\"fashion_mnist\")" in b]
    import ffnn

    digits = ffnn.datasets.load("digits")
    monkeypatch.setattr(ffnn.datasets, "load", lambda name, **kw: digits)
    monkeypatch.chdir(tmp_path)
    block = block.replace("[784, 128, 128, 10]", "[64, 32, 10]").replace("epochs=10", "epochs=2")
    namespace = {}
    exec(block, namespace)
    assert set(namespace["grads"]) == {"W1", "W2", "b1", "b2"}
    assert (tmp_path / "model.safetensors").exists()
