import math

import numpy as np
import pytest

from ffnn import Network
from ffnn.errors import ConfigError
from ffnn.optimizers import get_optimizer
from ffnn.schedules import get_schedule
from ffnn.training import Trainer


def test_each_schedule_follows_its_formula():
    assert [get_schedule("constant").rate(t) for t in range(3)] == [1.0, 1.0, 1.0]
    step = get_schedule("step", step_size=2, gamma=0.5)
    assert [step.rate(t) for t in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    exp = get_schedule("exponential", gamma=0.9)
    assert [exp.rate(t) for t in range(3)] == pytest.approx([1, 0.9, 0.81])
    cos = get_schedule("cosine", epochs=4, min_factor=0.1)
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    assert [cos.rate(t) for t in range(5)] == pytest.approx(expected)
    assert cos.rate(0) == 1.0 and cos.rate(4) == pytest.approx(0.1)


def test_plateau_decays_after_patience_epochs_without_improvement_and_keeps_state():
    plateau = get_schedule("plateau", gamma=0.5, patience=2, min_factor=0.2)
    for loss in [1.0, 0.9, 0.95, 0.95]:          # two epochs without a new best
        plateau.observe(loss)
    assert plateau.rate(4) == 0.5
    for loss in [0.95, 0.95, 0.95, 0.95]:
        plateau.observe(loss)
    assert plateau.rate(8) == 0.2                # 0.125 is below the floor
    copy = get_schedule("plateau", gamma=0.5, patience=2, min_factor=0.2)
    copy.load_state_dict(plateau.state_dict())
    assert copy.rate(0) == plateau.rate(0) and copy.best == plateau.best


def test_unknown_schedule_and_bad_gamma_are_refused():
    with pytest.raises(ConfigError, match="cosine"):
        get_schedule("linear-warmup")
    with pytest.raises(ConfigError, match="lr_gamma"):
        get_schedule("step", gamma=1.5)


def _problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    return X, y


def test_the_trainer_sets_each_epochs_learning_rate_from_the_schedule():
    X, y = _problem()
    net = Network([5, 6, 3], seed=0)
    trainer = Trainer(net, get_optimizer("sgd", 0.1), epochs=4, batch_size=8, seed=0, verbose=0,
                      schedule=get_schedule("step", step_size=1, gamma=0.5))
    history = trainer.fit(X, y)
    assert history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_decoupled_weight_decay_shrinks_weights_after_the_step():
    X, y = _problem()
    plain, decayed = Network([5, 6, 3], seed=0), Network([5, 6, 3], seed=0)
    lr, wd = 0.1, 0.3
    Trainer(plain, get_optimizer("sgd", lr), epochs=1, batch_size=40, seed=0, verbose=0).fit(X, y)
    Trainer(decayed, get_optimizer("sgd", lr), epochs=1, batch_size=40, seed=0, verbose=0, weight_decay=wd,
            decoupled_weight_decay=True).fit(X, y)
    W = slice(0, plain.n_weights)
    np.testing.assert_allclose(decayed.theta[W], plain.theta[W] * (1 - lr * wd), rtol=1e-6)
    np.testing.assert_array_equal(decayed.theta[plain.n_weights:], plain.theta[plain.n_weights:])  # biases


def test_label_smoothing_trains_against_the_smoothed_targets():
    X, y = _problem()
    s, k = 0.2, 3
    smoothed = np.full((len(y), k), s / k, np.float32)
    smoothed[np.arange(len(y)), y] += 1 - s
    a, b = Network([5, 6, 3], seed=0), Network([5, 6, 3], seed=0)
    Trainer(a, get_optimizer("sgd", 0.5), epochs=1, batch_size=40, seed=0, verbose=0,
            label_smoothing=s).fit(X, y)
    Trainer(b, get_optimizer("sgd", 0.5), epochs=1, batch_size=40, seed=0, verbose=0).fit(X, smoothed)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigError, match="label_smoothing"):
        Trainer(Network([5, 3], output="linear", loss="squared_error"), get_optimizer("sgd", 0.1), epochs=1,
                batch_size=8, label_smoothing=0.1)
