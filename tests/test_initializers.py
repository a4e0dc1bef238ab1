import numpy as np
import pytest

from ffnn.errors import ConfigError
from ffnn.initializers import INITIALIZERS, get_initializer

NAMES = ["random", "xavier", "he"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fan_in, fan_out", [(3, 5), (1, 1), (784, 10)])
def test_shape_is_fan_out_by_fan_in(name, fan_in, fan_out):
    W = get_initializer(name)(fan_in, fan_out, np.random.default_rng(0))
    assert W.shape == (fan_out, fan_in)
    assert np.all(np.isfinite(W))


@pytest.mark.parametrize("fan_in, fan_out", [(300, 100), (20, 500)])
def test_xavier_is_uniform_within_its_bound(fan_in, fan_out):
    W = get_initializer("xavier")(fan_in, fan_out, np.random.default_rng(1))
    r = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(W).max() <= r
    # Uniform on (-r, r): the extremes get close to the bound, and the std is r / sqrt(3).
    assert np.abs(W).max() > 0.99 * r
    assert W.std() == pytest.approx(r / np.sqrt(3.0), rel=0.03)
    assert abs(W.mean()) < 0.02 * r


def test_he_std_is_sqrt_two_over_fan_in():
    fan_in, fan_out = 200, 300
    W = get_initializer("he")(fan_in, fan_out, np.random.default_rng(2))
    assert W.std() == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.03)
    assert abs(W.mean()) < 0.02 * np.sqrt(2.0 / fan_in)
    # Normal, not uniform: some draws lie beyond 3 standard deviations.
    assert np.abs(W).max() > 3 * np.sqrt(2.0 / fan_in)


def test_he_std_ignores_fan_out():
    a = get_initializer("he")(50, 2000, np.random.default_rng(3)).std()
    b = get_initializer("he")(50, 20, np.random.default_rng(3)).std()
    assert a == pytest.approx(0.2, rel=0.03)
    assert b == pytest.approx(0.2, rel=0.2)


def test_random_std_is_one_hundredth():
    W = get_initializer("random")(400, 150, np.random.default_rng(4))
    assert W.std() == pytest.approx(0.01, rel=0.03)
    assert abs(W.mean()) < 0.001


@pytest.mark.parametrize("name", NAMES)
def test_seeded_reproducible_and_seed_dependent(name):
    init = get_initializer(name)
    a = init(10, 7, np.random.default_rng(42))
    b = init(10, 7, np.random.default_rng(42))
    c = init(10, 7, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("alias, canonical", [("glorot", "xavier"), ("Xavier", "xavier"), ("kaiming", "he"),
                                              ("HE", "he"), ("normal", "random"), ("Random", "random")])
def test_aliases_and_case(alias, canonical):
    assert get_initializer(alias) is INITIALIZERS[canonical]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        get_initializer("orthogonal")
    message = str(info.value)
    assert "orthogonal" in message
    for name in NAMES:
        assert name in message
