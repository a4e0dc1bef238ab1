"""Gradient-descent update rules: theta <- theta - eta * (something built from the gradients).

Optimizers know nothing about networks: ``step(params, grads)`` updates a dict of named arrays in place and
keeps its own state (velocities, moments) keyed by the same names. The training loop passes one entry, the flat
parameter vector, so each rule below is a handful of vectorised calls over every parameter at once. Every update
writes into preallocated arrays: nothing is allocated per step after the first.

Adding a rule is one small class with an ``update`` method and one line in ``OPTIMIZERS``.

Fused kernels: where ffnn's compiled extension is built (see :mod:`ffnn.kernels`), each built-in rule also has a
``fused`` method that does its whole update in one pass over the parameters instead of a dozen. It performs the
same float operations in the same order as ``update``, so the parameters are bit-identical either way (a test
checks it); ``update`` is the reference and the fallback. On a GPU (CuPy arrays) each built-in rule runs as one
CUDA kernel of :mod:`ffnn.cuda` with the same operations; Adam's and Nadam's read the step count from the device.
"""

import functools
import math
import numbers

import numpy as np

from . import cuda, kernels
from .arrays import staggered_zeros_like
from .errors import ConfigError, unknown_name


DECAY_RATES = ("momentum", "beta", "beta1", "beta2")  # the built-in rules' averaging rates, each in [0, 1)


class Optimizer:
    """Base class. ``hyperparameters`` lists the keyword arguments a rule accepts, with their defaults."""

    hyperparameters = {}

    def __init__(self, learning_rate=1e-3, **kwargs):
        unknown = set(kwargs) - set(self.hyperparameters)
        if unknown:
            raise ConfigError(f"{self.name} does not take {', '.join(sorted(unknown))}; "
                              f"it takes learning_rate, {', '.join(self.hyperparameters) or 'nothing else'}")
        self.learning_rate = learning_rate
        for key, default in self.hyperparameters.items():
            value = kwargs.get(key, default)
            number = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
            if key == "epsilon":
                ok, allowed = number and value > 0, "a number > 0"
            elif key in DECAY_RATES:
                ok, allowed = number and 0 <= value < 1, "a number in [0, 1)"
            else:  # a hyperparameter of a rule added by a user: any finite number
                ok, allowed = number, "a finite number"
            if not ok:
                raise ConfigError(f"{self.name}: {key} must be {allowed}; got {value!r}")
            setattr(self, key, float(value))
        self.t = 0          # steps taken (Adam's bias correction uses it)
        self.state = {}     # "<slot>.<name>" -> array, saved in checkpoints
        self._scratch = {}  # per-name workspace, not state

    name = "optimizer"

    def step(self, params, grads):
        """Update every array of ``params`` in place from the matching array of ``grads``."""
        self.t += 1
        # Python floats, so that NumPy rounds them to the parameters' precision as the kernels do (a NumPy float64
        # here, say from a schedule, would make NumPy compute in float64 instead).
        self.learning_rate = float(self.learning_rate)
        for name in self.hyperparameters:
            setattr(self, name, float(getattr(self, name)))
        for key, theta in params.items():
            grad = grads[key]
            if type(theta) is not np.ndarray and cuda.is_array(theta):  # on a GPU: its kernel, if it has one
                if not (_own_kernel(type(self)) and cuda.optimizer_step(self, key, theta, grad)):
                    self.update(key, theta, grad)
                continue
            fusable = kernels.ENABLED and _own_kernel(type(self)) and _fusable(theta, grad)
            if not (fusable and self.fused(key, theta, grad)):
                self.update(key, theta, grad)

    def update(self, key, theta, grad):
        raise NotImplementedError

    def fused(self, key, theta, grad):
        """The same update as one compiled pass; returns False when this rule has no kernel."""
        return False

    def slot(self, slot, key, like):
        """State array ``slot`` for parameter ``key``, zeros on first use."""
        name = f"{slot}.{key}"
        if name not in self.state:
            self.state[name] = staggered_zeros_like(like)
        return self.state[name]

    def scratch(self, key, like, i=0):
        name = (key, i)
        if name not in self._scratch:
            self._scratch[name] = np.empty_like(like)
        return self._scratch[name]

    def state_dict(self):
        """Hyperparameters, step count and state arrays (copies), enough to resume exactly."""
        return {"name": self.name, "t": self.t, "learning_rate": self.learning_rate,
                "hyperparameters": {k: getattr(self, k) for k in self.hyperparameters},
                "arrays": {k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state):
        self.t = int(state["t"])
        self.learning_rate = float(state["learning_rate"])
        for k, v in state.get("hyperparameters", {}).items():
            setattr(self, k, float(v))
        for k, v in state["arrays"].items():
            if k not in self.state:
                self.state[k] = staggered_zeros_like(v)
            self.state[k][...] = v

    def __repr__(self):
        hp = ", ".join(f"{k}={getattr(self, k)}" for k in self.hyperparameters)
        return f"{type(self).__name__}(learning_rate={self.learning_rate}{', ' if hp else ''}{hp})"


class SGD(Optimizer):
    """theta <- theta - eta grad"""

    name = "sgd"

    def update(self, key, theta, grad):
        step = np.multiply(grad, self.learning_rate, out=self.scratch(key, theta))
        theta -= step

    def fused(self, key, theta, grad):
        kernels.compiled.sgd(theta, grad, self.learning_rate)
        return True


class Momentum(Optimizer):
    """u_t = beta u_{t-1} + eta grad;  theta <- theta - u_t   (momentum-based gradient descent)"""

    name = "momentum"
    hyperparameters = {"momentum": 0.9}

    def update(self, key, theta, grad):
        u = self.slot("u", key, theta)
        u *= self.momentum
        u += np.multiply(grad, self.learning_rate, out=self.scratch(key, theta))
        theta -= u

    def fused(self, key, theta, grad):
        kernels.compiled.momentum(theta, grad, self.slot("u", key, theta), self.momentum, self.learning_rate)
        return True


class NAG(Optimizer):
    """Nesterov accelerated gradient: u_t = beta u_{t-1} + eta grad(theta - beta u_{t-1}); theta <- theta - u_t.

    Stored as the look-ahead point theta~ = theta - beta u (where the gradient is evaluated), the same rule reads
    u_t = beta u_{t-1} + eta grad(theta~);  theta~ <- theta~ - (beta u_t + eta grad(theta~)),
    so one gradient per step suffices.
    """

    name = "nag"
    hyperparameters = {"momentum": 0.9}

    def update(self, key, theta, grad):
        u = self.slot("u", key, theta)
        step = np.multiply(grad, self.learning_rate, out=self.scratch(key, theta))
        u *= self.momentum
        u += step
        theta -= step
        theta -= np.multiply(u, self.momentum, out=step)

    def fused(self, key, theta, grad):
        kernels.compiled.nag(theta, grad, self.slot("u", key, theta), self.momentum, self.learning_rate)
        return True


class RMSprop(Optimizer):
    """v_t = beta v_{t-1} + (1 - beta) grad^2;  theta <- theta - eta grad / (sqrt(v_t) + eps)"""

    name = "rmsprop"
    hyperparameters = {"beta": 0.9, "epsilon": 1e-8}

    def update(self, key, theta, grad):
        v = self.slot("v", key, theta)
        tmp = self.scratch(key, theta)
        v *= self.beta
        v += np.multiply(np.square(grad, out=tmp), 1 - self.beta, out=tmp)
        np.sqrt(v, out=tmp)
        tmp += self.epsilon
        np.divide(grad, tmp, out=tmp)
        tmp *= self.learning_rate
        theta -= tmp

    def fused(self, key, theta, grad):
        kernels.compiled.rmsprop(theta, grad, self.slot("v", key, theta), self.beta, 1 - self.beta, self.epsilon,
                         self.learning_rate)
        return True


class Adam(Optimizer):
    """m_t = beta1 m + (1 - beta1) grad;  v_t = beta2 v + (1 - beta2) grad^2;
    m_hat = m_t / (1 - beta1^t);  v_hat = v_t / (1 - beta2^t);  theta <- theta - eta m_hat / (sqrt(v_hat) + eps)
    """

    name = "adam"
    hyperparameters = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}

    def moments(self, key, theta, grad):
        """Update m and v in place and return them with the two bias corrections."""
        m, v = self.slot("m", key, theta), self.slot("v", key, theta)
        tmp = self.scratch(key, theta)
        m *= self.beta1
        m += np.multiply(grad, 1 - self.beta1, out=tmp)
        v *= self.beta2
        np.square(grad, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        return m, v, 1 - self.beta1 ** self.t, 1 - self.beta2 ** self.t

    def denominator(self, key, theta, v, c2):
        # sqrt(v_hat) + eps, written into a workspace
        den = self.scratch(key, theta, 1)
        np.sqrt(v, out=den)
        den *= 1 / math.sqrt(c2)
        den += self.epsilon
        return den

    def update(self, key, theta, grad):
        m, v, c1, c2 = self.moments(key, theta, grad)
        den = self.denominator(key, theta, v, c2)
        np.divide(m, den, out=den)
        den *= self.learning_rate / c1
        theta -= den

    def fused_moments(self, key, theta):
        """The arguments the Adam and Nadam kernels share: theta's moments, then the scalars of ``moments`` and
        ``denominator``."""
        c2 = 1 - self.beta2 ** self.t
        return (self.slot("m", key, theta), self.slot("v", key, theta), self.beta1, 1 - self.beta1, self.beta2,
                1 - self.beta2, 1 / math.sqrt(c2), self.epsilon)

    def fused(self, key, theta, grad):
        c1 = 1 - self.beta1 ** self.t
        kernels.compiled.adam(theta, grad, *self.fused_moments(key, theta), self.learning_rate / c1)
        return True


class Nadam(Adam):
    """Adam with a Nesterov look-ahead on the first moment:
    theta <- theta - eta / (sqrt(v_hat) + eps) * (beta1 m_hat + (1 - beta1) grad / (1 - beta1^t))
    """

    name = "nadam"

    def update(self, key, theta, grad):
        m, v, c1, c2 = self.moments(key, theta, grad)
        den = self.denominator(key, theta, v, c2)
        num = np.multiply(m, self.beta1 / c1, out=self.scratch(key, theta))
        num += np.multiply(grad, (1 - self.beta1) / c1, out=self.scratch(key, theta, 2))
        np.divide(num, den, out=num)
        num *= self.learning_rate
        theta -= num

    def fused(self, key, theta, grad):
        c1 = 1 - self.beta1 ** self.t
        kernels.compiled.nadam(theta, grad, *self.fused_moments(key, theta), self.beta1 / c1, (1 - self.beta1) / c1,
                       self.learning_rate)
        return True


RULE_STEPS = ("update", "moments", "denominator")  # what a subclass may rewrite of a rule (see Adam)


@functools.cache
def _own_kernel(cls):
    # The kernel is that of the nearest class defining ``fused``; a subclass below it that rewrites any step of the
    # rule (``update``, or Adam's ``moments`` or ``denominator``) must not inherit it.
    for klass in cls.__mro__:
        if "fused" in vars(klass):
            return True
        if any(step in vars(klass) for step in RULE_STEPS):
            return False
    return False


def _fusable(theta, grad):
    # The kernels take contiguous NumPy arrays of float32 or float64 (the training loop's flat vectors).
    return (type(theta) is np.ndarray and type(grad) is np.ndarray and theta.dtype == grad.dtype
            and theta.dtype in (np.float32, np.float64) and theta.flags.c_contiguous and grad.flags.c_contiguous
            and theta.flags.writeable and grad.flags.writeable and theta.shape == grad.shape)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, NAG, RMSprop, Adam, Nadam)}


def get_optimizer(name, learning_rate=1e-3, **hyperparameters):
    """An optimizer instance by name; hyperparameters it does not take are an error."""
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    if not (isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool)
            and np.isfinite(learning_rate) and learning_rate > 0):
        raise ConfigError(f"learning_rate must be a positive number; got {learning_rate!r}")
    return OPTIMIZERS[key](learning_rate=float(learning_rate), **hyperparameters)
