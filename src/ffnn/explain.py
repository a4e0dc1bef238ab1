"""``ffnn explain``: the lecture's forward and backward pass for one example, with its numbers.

For one input x (= h_0) with a label l (or a target y) this shows

- the forward pass ``a_k = b_k + W_k h_{k-1}``, ``h_k = g(a_k)``, ``y_hat = O(a_L)`` and the loss;
- the backward pass in the lecture's order: grad_aL, then for k = L..1 grad_Wk = grad_ak h_{k-1}^T,
  grad_bk = grad_ak, grad_h{k-1} = W_k^T grad_ak, grad_a{k-1} = grad_h{k-1} (elementwise) g'(a_{k-1}),
  each followed by its central-difference check;
- the lecture's opening example, dL/dW_111, as the chain rule's factors along a path and as the sum over
  all paths, equal to the entry of grad_W1 that back_propagation computed;
- one gradient-descent step and the loss before and after it.

Every number shown is read from the library: ``Network.forward_propagation`` and its cache (a_k, h_k),
``Network.back_propagation`` and its cache (grad_a, grad_h), the activation registry's g', ``ffnn.gradcheck``
for the central differences and the ``sgd`` optimizer for the step. ``explain`` gathers them into an
:class:`Explanation`; ``render_text`` lays it out for a 100-column terminal and ``render_html`` writes one
self-contained page (MathML equations, an SVG drawing of the network coloured by the gradient of each weight).
"""

import argparse
import html
import itertools
import math
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError, DataError, FFNNError, plural
from .gradcheck import numerical_gradients, relative_error
from .network import Network
from .optimizers import get_optimizer
from .outputs import one_hot

TOLERANCE = 1e-6        # largest relative error a correct float64 gradient is allowed
EPS = 1e-6              # central-difference step
WIDTH = 100             # terminal columns the text layout fits in
MAX_ROWS, MAX_COLS = 12, 10   # larger arrays are summarised
MAX_PATHS = 20000       # the chain-rule section lists the sum over paths up to this many
MAX_TERMS = 4           # terms of a long sum written out before "..."

DERIVATIVES = {  # how each registered activation's g' reads in the lecture's notation
    "logistic": "g'(a) = g(a) (1 - g(a))",
    "tanh": "g'(a) = 1 - g(a)^2",
    "relu": "g'(a) = 1 if a > 0, else 0",
    "identity": "g'(a) = 1",
}


# -- what is shown -------------------------------------------------------------------------------------------
@dataclass
class Term:
    """An operand shown with its numbers; ``value`` is 2-D as displayed ((n, 1) column, (1, n) row)."""

    name: str
    value: np.ndarray


@dataclass
class Check:
    """A central-difference check of one gradient."""

    how: str
    error: float

    @property
    def ok(self):
        return self.error <= TOLERANCE


@dataclass
class Step:
    """One equation: its formula (tokens), the same with numbers (Terms and operators), its check."""

    key: str
    formula: list
    parts: list
    note: str = ""
    check: Check | None = None


@dataclass
class Chain:
    """dL/dW_111 by the chain rule (lecture: the derivative along a path; here the sum over all paths)."""

    factors: list            # [(lecture label, library name, value)] from the loss down to W_111
    path_product: float
    n_paths: int
    path_sum: float | None   # None when there are more than MAX_PATHS paths
    recursion: list          # [(lhs, rhs formula, [factor values or (w, g) pairs], value)]
    backprop: float          # grad_W1[0, 0] from back_propagation


@dataclass
class Explanation:
    """Everything the explain views show, read from the library for one example."""

    net: Network
    x: np.ndarray
    y: np.ndarray            # label array (1,) or targets (1, k), as passed to the library
    context: list            # lines that say where the example comes from
    forward: list
    loss: float
    loss_formula: str
    backward: list
    chain: Chain
    learning_rate: float
    update: list
    loss_after: float
    first_order: float
    grads: dict = field(repr=False)
    cache: object = field(repr=False)

    @property
    def checks(self):
        return [s.check for s in self.backward if s.check is not None]

    @property
    def worst_error(self):
        return max(c.error for c in self.checks)

    @property
    def ok(self):
        return all(c.ok for c in self.checks)


def _col(name, v):
    return Term(name, np.asarray(v, np.float64).reshape(-1, 1))


def _row(name, v):
    return Term(name, np.asarray(v, np.float64).reshape(1, -1))


def _mat(name, M):
    return Term(name, np.asarray(M, np.float64))


# -- computing it with the library ---------------------------------------------------------------------------
def _as_float64(net):
    if net.dtype == np.float64 and net.xp is np:
        return net
    copy = Network(**{**net.config, "dtype": "float64"})
    copy.copy_params_from(net)
    copy.metadata = dict(net.metadata)
    return copy


def _targets(net, y):
    """The library's y for one example: labels (1,) for an integer label, targets (1, k) otherwise."""
    k = net.sizes[-1]
    y = np.asarray(y)
    if y.ndim == 0 and y.dtype.kind in "iu" and net.output_layer.output == "softmax":
        if not 0 <= int(y) < k:
            raise DataError(f"label {int(y)} is out of range; labels lie in 0..{k - 1} for {k} outputs")
        return np.array([int(y)], np.int64)
    y = np.asarray(y, np.float64).reshape(1, -1)
    if y.shape[1] != k:
        raise DataError(f"the target has {y.shape[1]} values; this network has {k} outputs")
    if not np.all(np.isfinite(y)):
        raise DataError("the target contains NaN or infinite values; only finite numbers are allowed")
    return y


def _loss_at(net, X, Y, name, value):
    """The library's loss with parameter array ``name`` temporarily set to ``value``."""
    p = net.params[name]
    old = p.copy()
    cache = net.new_cache(X.shape[0])
    p[...] = value
    try:
        net.forward_propagation(X, cache)
        return net.loss(cache, Y)
    finally:
        p[...] = old


def _numerical_grad_h(net, X, Y, k, eps):
    """Central differences of the loss along h_{k-1}: a_k = b_k + W_k h_{k-1}, so moving h_{k-1} by eps e_j
    moves a_k exactly as moving b_k by eps W_k[:, j] does."""
    b, W = net.b[k].copy(), net.W[k]
    out = np.empty(net.sizes[k - 1])
    for j in range(out.size):
        d = W[:, j]
        out[j] = (_loss_at(net, X, Y, f"b{k}", b + eps * d) - _loss_at(net, X, Y, f"b{k}", b - eps * d)) / (2 * eps)
    return out


def explain(net, x, y, learning_rate=0.1, context=None, eps=EPS):
    """Run the library's forward and backward pass on one example and gather what the views show.

    Parameters
    ----------
    net : Network
        Explained in float64 (a float32 network is copied to float64 first).
    x : array, shape (n,)
    y : int label, or array of shape (k,) of targets
    learning_rate : float
        eta of the gradient-descent step shown at the end.
    context : list of str, optional
        Lines that say where the example comes from.

    Returns
    -------
    Explanation
    """
    net = _as_float64(net)
    X = np.asarray(x, np.float64).reshape(1, -1)
    Y = _targets(net, y)
    sgd = get_optimizer("sgd", learning_rate)
    y_hat, cache = net.forward_propagation(X)
    loss = net.loss(cache, Y)
    flat = np.empty(net.n_params)                   # the gradient, laid out like theta
    grads = net.back_propagation(cache, Y, out=flat)  # views into flat
    L, act, out = net.L, net.activation, net.output_layer
    a = [None] + [cache.a[k][0].copy() for k in range(1, L + 1)]
    h = [cache.h[k][0].copy() for k in range(L + 1)]
    grad_a = [None] + [cache.grad_a[k][0].copy() for k in range(1, L + 1)]
    grad_h = [None] + [cache.grad_h[k][0].copy() for k in range(1, L)]
    g_prime = [None] + [act.g_prime(cache.a[k], cache.h[k])[0].copy() for k in range(1, L)]
    numeric = {k: v.copy() for k, v in numerical_gradients(net, X, Y, eps).items()}

    forward = []
    for k in range(1, L + 1):
        forward.append(Step(f"a{k}", [f"a{k}", "=", f"b{k}", "+", f"W{k}", f"h{k - 1}"],
                            [_col(f"b{k}", net.b[k]), "+", _mat(f"W{k}", net.W[k]), _col(f"h{k - 1}", h[k - 1]),
                             "=", _col(f"a{k}", a[k])]))
        if k < L:
            forward.append(Step(f"h{k}", [f"h{k}", "=", f"g(a{k})"],
                                [f"{act.name}(", _col(f"a{k}", a[k]), ")", "=", _col(f"h{k}", h[k])]))
    forward.append(Step("y_hat", ["y_hat", "=", f"O(a{L})"],
                        [f"{out.output}(", _col(f"a{L}", a[L]), ")", "=", _col("y_hat", h[L])]))
    loss_formula = _loss_formula(out, Y, h[L], loss)

    backward = [_grad_aL_step(net, Y, h[L], grad_a[L], numeric)]
    for k in range(L, 0, -1):
        backward.append(Step(f"grad_W{k}", [f"grad_W{k}", "=", f"grad_a{k}", f"h{k - 1}^T"],
                             [_col(f"grad_a{k}", grad_a[k]), _row(f"h{k - 1}^T", h[k - 1]), "=",
                              _mat(f"grad_W{k}", grads[f"W{k}"])],
                             check=Check("central difference", relative_error(grads[f"W{k}"], numeric[f"W{k}"]))))
        backward.append(Step(f"grad_b{k}", [f"grad_b{k}", "=", f"grad_a{k}"],
                             [_col(f"grad_b{k}", grads[f"b{k}"])],
                             check=Check("central difference", relative_error(grads[f"b{k}"], numeric[f"b{k}"]))))
        if k > 1:
            num_h = _numerical_grad_h(net, X, Y, k, eps)
            backward.append(Step(
                f"grad_h{k - 1}", [f"grad_h{k - 1}", "=", f"W{k}^T", f"grad_a{k}"],
                [_mat(f"W{k}^T", net.W[k].T), _col(f"grad_a{k}", grad_a[k]), "=",
                 _col(f"grad_h{k - 1}", grad_h[k - 1])],
                check=Check(f"central difference along b{k} + eps W{k}[:, j]", relative_error(grad_h[k - 1], num_h))))
            backward.append(Step(
                f"grad_a{k - 1}", [f"grad_a{k - 1}", "=", f"grad_h{k - 1}", "*", f"g'(a{k - 1})"],
                [_col(f"grad_h{k - 1}", grad_h[k - 1]), "*", _col(f"g'(a{k - 1})", g_prime[k - 1]), "=",
                 _col(f"grad_a{k - 1}", grad_a[k - 1])],
                note=f"* elementwise; {act.name}: {DERIVATIVES.get(act.name, 'from the registry')}",
                check=Check(f"central difference via b{k - 1} (dL/da{k - 1} = dL/db{k - 1})",
                            relative_error(grad_a[k - 1], numeric[f"b{k - 1}"]))))

    chain = _chain(net, h, g_prime, grad_a, grad_h, grads)

    # One step of the library's sgd on a copy: theta <- theta - eta grad.
    after = Network(**net.config)
    after.copy_params_from(net)
    sgd.step({"theta": after.theta}, {"theta": flat})
    _, cache_after = after.forward_propagation(X)
    loss_after = after.loss(cache_after, Y)
    update = [Step(f"W{k}_new", [f"W{k}", "<-", f"W{k}", "-", "eta", f"grad_W{k}"],
                   [_mat(f"W{k}", net.W[k]), f"- {learning_rate:g}", _mat(f"grad_W{k}", grads[f"W{k}"]), "=",
                    _mat(f"W{k} (new)", after.W[k])]) for k in range(1, L + 1)]
    return Explanation(net=net, x=X[0], y=Y, context=list(context or []), forward=forward, loss=loss,
                       loss_formula=loss_formula, backward=backward, chain=chain, learning_rate=learning_rate,
                       update=update, loss_after=loss_after, first_order=-learning_rate * float(flat @ flat),
                       grads=grads, cache=cache)


def _loss_formula(out, Y, y_hat, loss):
    if out.loss_name == "cross_entropy" and Y.ndim == 1:
        l = int(Y[0])
        return f"L = -log y_hat[l] = -log({_fmt(y_hat[l])}) = {_fmt(loss, 6)}"
    if out.loss_name == "cross_entropy":
        return f"L = -sum_j y_j log y_hat_j = {_fmt(loss, 6)}"
    return f"L = sum_j (y_hat_j - y_j)^2 = {_fmt(loss, 6)}"


def _grad_aL_step(net, Y, y_hat, grad_aL, numeric):
    L, out = net.L, net.output_layer
    check = Check(f"central difference via b{L} (dL/da{L} = dL/db{L})", relative_error(grad_aL, numeric[f"b{L}"]))
    target = one_hot(Y, net.sizes[-1], np.float64)[0] if Y.ndim == 1 else Y[0]
    t_name = "e(l)" if Y.ndim == 1 else "y"
    result = _col(f"grad_a{L}", grad_aL)
    if (out.output, out.loss_name) == ("softmax", "cross_entropy"):
        return Step(f"grad_a{L}", [f"grad_a{L}", "=", "-(", t_name, "-", "y_hat", ")"],
                    ["-(", _col(t_name, target), "-", _col("y_hat", y_hat), ")", "=", result],
                    note="softmax + cross-entropy", check=check)
    if out.output == "linear":
        return Step(f"grad_a{L}", [f"grad_a{L}", "=", "2", "(", "y_hat", "-", t_name, ")"],
                    ["2(", _col("y_hat", y_hat), "-", _col(t_name, target), ")", "=", result],
                    note="linear + squared error", check=check)
    return Step(f"grad_a{L}", [f"grad_a{L}", "=", "J^T", "grad_y_hat"],
                ["y_hat =", _col("y_hat", y_hat), f" {t_name} =", _col(t_name, target), f"  grad_a{L} =", result],
                note="softmax + squared error: grad_y_hat = 2 (y_hat - y), J_ij = y_hat_i (delta_ij - y_hat_j)",
                check=check)


def _chain(net, h, g_prime, grad_a, grad_h, grads):
    """dL/dW_111 (W1[0, 0]) along the path through the first unit of every layer, over all paths, and as
    backpropagation's recursion for the first unit of layer 1."""
    L, sizes = net.L, net.sizes
    # From the loss down: dL/da_L1, then da_k1/dh_{k-1}1 = W_k[0, 0] and dh_{k-1}1/da_{k-1}1 = g'(a_{k-1}[0]).
    factors = [(f"dL/da_{L}1", f"grad_a{L}[0]", float(grad_a[L][0]))]
    for k in range(L, 1, -1):
        factors.append((f"da_{k}1/dh_{k - 1}1", f"W{k}[0,0]", float(net.W[k][0, 0])))
        factors.append((f"dh_{k - 1}1/da_{k - 1}1", f"g'(a{k - 1}[0])", float(g_prime[k - 1][0])))
    factors.append(("da_11/dW_111", "h0[0]", float(h[0][0])))
    path_product = math.prod(v for _, _, v in factors)
    n_paths = math.prod(sizes[2:]) if L > 1 else 1
    path_sum = None
    if n_paths <= MAX_PATHS:
        path_sum = 0.0
        for path in itertools.product(*[range(n) for n in sizes[2:]]):
            units = (0,) + path       # the unit of layers 1..L the path passes through
            p = float(h[0][0]) * float(grad_a[L][units[-1]])
            for k in range(2, L + 1):
                p *= float(net.W[k][units[k - 1], units[k - 2]]) * float(g_prime[k - 1][units[k - 2]])
            path_sum += p
    recursion = []
    if L > 1:
        pairs = [(float(net.W[2][j, 0]), float(grad_a[2][j])) for j in range(sizes[2])]
        recursion.append(("grad_h1[0]", "sum_j W2[j,0] grad_a2[j]", pairs, float(grad_h[1][0])))
        recursion.append(("grad_a1[0]", "grad_h1[0] * g'(a1[0])", [float(grad_h[1][0]), float(g_prime[1][0])],
                          float(grad_a[1][0])))
    recursion.append(("dL/dW_111", "grad_a1[0] * h0[0]", [float(grad_a[1][0]), float(h[0][0])],
                      float(grad_a[1][0]) * float(h[0][0])))
    return Chain(factors, path_product, n_paths, path_sum, recursion, float(grads["W1"][0, 0]))


# -- numbers -------------------------------------------------------------------------------------------------
def _fmt(v, digits=4):
    """A number to ``digits`` significant digits; -0 is 0."""
    s = f"{float(v):.{digits}g}"
    return "0" if s in ("-0", "0") else s


def _fits(term):
    r, c = term.value.shape
    return r <= MAX_ROWS and c <= MAX_COLS


def _summary(term, width=WIDTH - 2):
    """One line for an array too large to show in full: shape, min/max/mean and a few entries."""
    v = term.value
    r, c = v.shape
    if r == 1 or c == 1:
        name = term.name[:-2] if term.name.endswith("^T") else term.name
        nonzero = np.flatnonzero(v)
        start = int(nonzero[0]) if nonzero.size else 0   # an image's first pixels are often all 0
        entries = v.ravel()[start:start + 6]
        head = f"{name} ({v.size})"
        where = lambda n: f"{name}[{start or ''}:{start + n}]"
    else:
        entries = v[0, :6]
        head = f"{term.name} ({r}x{c})"
        where = lambda n: f"{term.name}[0, :{n}]"
    head += f": min {_fmt(v.min())}, max {_fmt(v.max())}, mean {_fmt(v.mean())}"
    for n in range(entries.size, 0, -1):
        line = f"{head}; {where(n)} = [ {'  '.join(_fmt(e) for e in entries[:n])} ] ..."
        if len(line) <= width:
            break
    return line


# -- text ----------------------------------------------------------------------------------------------------
def _block(M):
    """Lines '[ a  b  c ]' of a matrix, columns right-aligned."""
    cells = [[_fmt(v) for v in row] for row in M]
    widths = [max(len(row[j]) for row in cells) for j in range(M.shape[1])]
    return ["[ " + "  ".join(s.rjust(w) for s, w in zip(row, widths)) + " ]" for row in cells]


def _side_by_side(parts):
    """Blocks and operators laid out on shared lines, each centred on the middle line."""
    blocks = []
    for i, p in enumerate(parts):
        if isinstance(p, Term):
            if i and isinstance(parts[i - 1], Term):
                blocks.append([" "])       # a product: the two factors side by side
            blocks.append(_block(p.value))
        elif p.endswith("("):
            blocks.append([f" {p}"])
        elif p.startswith(")"):
            blocks.append([p])
        else:
            blocks.append([f" {p} "])
    height = max(len(b) for b in blocks)
    mid = (height - 1) // 2
    lines = [""] * height
    for block in blocks:
        width = max(len(s) for s in block)
        top = mid - (len(block) - 1) // 2
        for i in range(height):
            j = i - top
            lines[i] += block[j].ljust(width) if 0 <= j < len(block) else " " * width
    return ["  " + line.rstrip() for line in lines]


def _stacked(parts):
    """Each operand on its own lines: in full when small and narrow enough, summarised otherwise."""
    lines = []
    for p in parts:
        if not isinstance(p, Term):
            continue
        r, c = p.value.shape
        shown = None
        if _fits(p) and (r == 1 or c == 1):
            name = p.name if r == 1 else p.name + "^T"
            shown = [f"  {name} = " + _block(p.value.reshape(1, -1))[0]]
        elif _fits(p):
            rows = _block(p.value)
            indent = "    " if len(rows[0]) + 4 <= WIDTH else "  "
            shown = [f"  {p.name} ="] + [indent + row for row in rows]
        if shown is None or max(map(len, shown)) > WIDTH:
            shown = ["  " + _summary(p)]
        lines += shown
    return lines


def _numbers_text(parts):
    terms = [p for p in parts if isinstance(p, Term)]
    if all(_fits(t) for t in terms):
        lines = _side_by_side(parts)
        if max(len(s) for s in lines) <= WIDTH:
            return lines
    return _stacked(parts)


def _heading(step):
    """The step's formula, and its note on the same line when that fits."""
    text = " ".join(step.formula).replace("-( ", "-(").replace("( ", "(").replace(" )", ")")
    if not step.note:
        return [text]
    if len(text) + len(step.note) + 6 <= WIDTH:
        return [f"{text}    ({step.note})"]
    return [text] + _wrap(f"  ({step.note})", "   ")


def _check_line(check):
    mark = "ok" if check.ok else "FAIL"
    return f"  check: {check.how}: relative error {check.error:.1e}  {mark}"


def _step_text(step):
    if step.key.startswith("grad_b"):
        k = step.key[len("grad_b"):]
        lines = [f"grad_b{k} = grad_a{k} = " + _block(step.parts[0].value.reshape(1, -1))[0] + "^T"]
        if not _fits(step.parts[0]) or len(lines[0]) > WIDTH:
            lines = [f"grad_b{k} = grad_a{k}"] + _stacked(step.parts)
    else:
        lines = _heading(step) + _numbers_text(step.parts)
    if step.check is not None:
        lines.append(_check_line(step.check))
    return lines + [""]


def _chain_text(chain, net):
    L, sizes = net.L, net.sizes
    path = " -> ".join(["x_1", "a_11"] + [s for k in range(1, L) for s in (f"h_{k}1", f"a_{k + 1}1")] + ["L"])
    labels = " * ".join(f for f, _, _ in chain.factors)
    names = " * ".join(n for _, n, _ in chain.factors)
    values = "".join(f"({_fmt(v)})" for _, _, v in chain.factors)
    lines = ["== The lecture's opening example: dL/dW_111 by the chain rule",
             "W_111 = W1[0,0] joins input x_1 to unit 1 of layer 1 (arrays count from 0, the lecture from 1).",
             f"Along the path {path}:"]
    # in the lecture's thin network the path's product is the derivative; here it is one term of a sum
    lhs = "dL/dW_111" if chain.n_paths == 1 else "this path's term of dL/dW_111"
    lines += _wrap(f"  {lhs} = {labels}", "    ")
    lines += _wrap(f"    = {names}", "      ")
    lines += _wrap(f"    = {values} = {_fmt(chain.path_product)}", "      ")
    lines += _paths_sentences(chain, sizes)
    if L > 1:
        lines.append("Backpropagation computes the same sum layer by layer; for the first unit:")
    else:
        lines.append("Backpropagation's grad_W1 = grad_a1 h0^T gives, for its first entry:")
    width = max(len(lhs) + len(rhs) for lhs, rhs, _, _ in chain.recursion) + 5
    for lhs, rhs, numbers, value in chain.recursion:
        if numbers and isinstance(numbers[0], tuple):
            shown = " + ".join(f"({_fmt(w)})({_fmt(g)})" for w, g in numbers[:MAX_TERMS])
            if len(numbers) > MAX_TERMS:
                shown += f" + ... ({len(numbers)} terms)"
        else:
            shown = "".join(f"({_fmt(v)})" for v in numbers)
        line = f"  {(lhs + ' = ' + rhs).ljust(width)}= {shown} = {_fmt(value)}"
        if len(line) > WIDTH:   # the numbers go under the formula, their '=' under its '='
            indent = " " * (3 + len(lhs))
            lines.append(f"  {lhs} = {rhs}")
            line = f"{indent}= {shown} = {_fmt(value)}"
        lines += _wrap(line, indent + "  " if len(line) > WIDTH else "")
    mark = "ok" if math.isclose(chain.recursion[-1][3], chain.backprop, rel_tol=1e-9, abs_tol=1e-15) else "FAIL"
    lines.append(f"  = grad_W1[0,0] from back_propagation: {_fmt(chain.backprop)}  {mark}")
    return lines + [""]


def _paths_sentences(chain, sizes):
    """What the path product is to the whole derivative (plain text lines)."""
    if len(sizes) == 2:
        return ["With no hidden layer there is one path, so the product is the whole derivative."]
    if chain.n_paths == 1:
        return ["Every layer after the first has one unit, as in the lecture's thin network: there is one path,",
                "so the product is the whole derivative."]
    widths = " x ".join(str(n) for n in sizes[2:]) + f" = {chain.n_paths}" if len(sizes) > 3 else str(chain.n_paths)
    total = (f"  sum over the {chain.n_paths} paths = {_fmt(chain.path_sum)}" if chain.path_sum is not None
             else f"  ({chain.n_paths} paths: too many to add up one by one here)")
    return ["In a thin network (one unit per layer) that product is the whole derivative. Here every h_ki",
            f"feeds each unit of layer k+1, so dL/dW_111 sums such products over all {widths} paths:", total]


def _wrap(line, indent):
    """Break a long line at spaces so that it fits WIDTH columns."""
    out = []
    while len(line) > WIDTH:
        cut = line.rfind(" ", len(indent) + 1, WIDTH)
        if cut <= len(indent):
            break
        out.append(line[:cut])
        line = indent + line[cut + 1:]
    return out + [line]


def render_text(expl):
    """The explanation laid out for a 100-column terminal."""
    net = expl.net
    act, out = net.activation, net.output_layer
    loss_name = out.loss_name.replace("_", "-")
    lines = [f"ffnn explain: sizes {' '.join(map(str, net.sizes))}, g = {act.name}, O = {out.output}, "
             f"loss {loss_name}, float64"]
    lines += [w for c in expl.context for w in _wrap(c, "  ")] + [""]
    lines += ["== Forward pass: a_k = b_k + W_k h_(k-1), h_k = g(a_k), y_hat = O(a_L)", ""]
    x_line = "h0 = x = " + _block(expl.x.reshape(1, -1))[0] + "^T"
    lines += [x_line if expl.x.size <= MAX_ROWS and len(x_line) <= WIDTH else "h0 = x", ""]
    for step in expl.forward:
        lines += _heading(step) + _numbers_text(step.parts) + [""]
    lines += [expl.loss_formula, ""]
    lines += ["== Backward pass, in the lecture's order (each gradient is of the loss L of this example)", ""]
    for step in expl.backward:
        lines += _step_text(step)
    lines += _chain_text(expl.chain, net)
    lines += [f"== One gradient-descent step: theta <- theta - eta grad_theta, eta = {expl.learning_rate:g}", ""]
    for step in expl.update:
        lines += _heading(step)
        side = _side_by_side(step.parts) if all(_fits(t) for t in step.parts if isinstance(t, Term)) else []
        # W_k and grad_Wk are shown above; when the three do not fit side by side, only the new W_k is.
        lines += (side if side and max(map(len, side)) <= WIDTH else _stacked(step.parts[-1:])) + [""]
    lines.append("  (b_k <- b_k - eta grad_bk likewise)")
    lines.append(f"  loss before  {_fmt(expl.loss, 6)}")
    lines.append(f"  loss after   {_fmt(expl.loss_after, 6)}   change {_fmt(expl.loss_after - expl.loss)}; "
                 f"first-order estimate -eta ||grad||^2 = {_fmt(expl.first_order)}")
    lines.append("")
    verdict = "ok" if expl.ok else "FAIL"
    lines.append(f"central differences: largest relative error {expl.worst_error:.1e} over {len(expl.checks)} "
                 f"gradients (tolerance {TOLERANCE:.0e})  {verdict}")
    return "\n".join(lines) + "\n"


# -- HTML ----------------------------------------------------------------------------------------------------
_SYMBOL = re.compile(r"^(grad_)?(y_hat|[A-Za-z])(\d*|_[a-z])(\^T)?$")
_FUNCTION = re.compile(r"^([A-Za-z]+'?)\((.+)\)$")


def _mn(v, digits=4):
    return f"<mn>{_fmt(v, digits).replace('-', '&#x2212;')}</mn>"


# Fixed pieces of notation the HTML views share: L (script), y_hat, a partial derivative, a subscripted name.
_LOSS = "<mi>&#x2112;</mi>"
_Y_HAT = "<mover accent='true'><mi>y</mi><mo>&#x5E;</mo></mover>"


def _sub(base, index):
    """MathML for base_index: 'W', '2j1' -> W_{2j1} (a letter index is an identifier, digits a number)."""
    index = f"<mn>{index}</mn>" if index.isdigit() else f"<mi>{index}</mi>" if len(index) == 1 else \
        "<mrow>" + "".join(f"<mn>{c}</mn>" if c.isdigit() else f"<mi>{c}</mi>" for c in index) + "</mrow>"
    base = base if base.startswith("<") else f"<mi>{base}</mi>"
    return f"<msub>{base}{index}</msub>"


def _d(top, bottom, inline=False):
    """MathML for the partial derivative d top / d bottom (both already MathML); inline: with a slash."""
    if inline:
        return f"<mrow><mo>&#x2202;</mo>{top}<mo lspace='0' rspace='0'>/</mo><mo>&#x2202;</mo>{bottom}</mrow>"
    return f"<mfrac><mrow><mo>&#x2202;</mo>{top}</mrow><mrow><mo>&#x2202;</mo>{bottom}</mrow></mfrac>"


def _symbol(name):
    """MathML for a name in the text's notation: W2, h1^T, grad_a2, y_hat, g'(a1), e(l)."""
    m = _SYMBOL.match(name)
    if m:
        grad, base, index, transpose = m.groups()
        core = "<mover accent='true'><mi>y</mi><mo>&#x5E;</mo></mover>" if base == "y_hat" else f"<mi>{base}</mi>"
        if index:
            core = _sub(core, index.lstrip("_"))
        if grad:
            core = f"<mrow><msub><mo>&#x2207;</mo>{core}</msub><mi>&#x2112;</mi></mrow>"
        if transpose:
            core = f"<msup>{core}<mi>T</mi></msup>"
        return core
    m = _FUNCTION.match(name)
    if m:
        fn, arg = m.groups()
        head = f"<msup><mi>{fn[:-1]}</mi><mo>&#x2032;</mo></msup>" if fn.endswith("'") else f"<mi>{fn}</mi>"
        return f"<mrow>{head}<mo>(</mo>{_symbol(arg)}<mo>)</mo></mrow>"
    if name.endswith(" (new)"):
        return f"<mrow>{_symbol(name[:-6])}<mtext>&#x2009;(new)</mtext></mrow>"
    return f"<mi>{html.escape(name)}</mi>"


def _operator(op):
    op = op.strip()
    mapping = {"*": "&#x2299;", "-": "&#x2212;", "-(": "&#x2212;(", "eta": "&#x3B7;", "<-": "&#x2190;"}
    if op in mapping:
        return f"<mo>{mapping[op]}</mo>"
    m = re.match(r"^([A-Za-z]+)\($", op)
    if m:
        return f"<mi>{m.group(1)}</mi><mo>(</mo>"
    m = re.match(r"^- ([0-9.e+-]+)$", op)
    if m:
        return f"<mo>&#x2212;</mo><mn>{m.group(1)}</mn>"
    m = re.match(r"^(\d+)\($", op)
    if m:
        return f"<mn>{m.group(1)}</mn><mo>(</mo>"
    m = re.match(r"^(\S+) =$", op)
    if m:
        return f"<mspace width='1em'/>{_symbol(m.group(1))}<mo>=</mo>"
    return f"<mo>{html.escape(op)}</mo>"


def _formula_mathml(tokens):
    return "".join(f"<mn>{t}</mn>" if t.isdigit() else _symbol(t) if _SYMBOL.match(t) or _FUNCTION.match(t)
                   else _operator(t) for t in tokens)


def _matrix_mathml(M):
    # The brackets are drawn by CSS (class "m"): stretched bracket glyphs would need a math font installed.
    rows = "".join("<mtr>" + "".join(f"<mtd>{_mn(v)}</mtd>" for v in row) + "</mtr>" for row in M)
    return f'<mtable class="m">{rows}</mtable>'


def _opener(op):
    """MathML for what precedes the parenthesis of 'logistic(', '-(' or '2(', or None for other operators."""
    m = re.match(r"^\s*(-|\d+|[A-Za-z]+)\($", op)
    if m is None:
        return None
    head = m.group(1)
    return "<mo>&#x2212;</mo>" if head == "-" else f"<mn>{head}</mn>" if head.isdigit() else f"<mi>{head}</mi>"


def _parts_mathml(parts):
    """The numbers of a step; a parenthesised group is one mrow whose parentheses (drawn by CSS, class
    "paren", like the matrices' brackets) are as tall as the matrices inside."""
    out, summaries = [], []
    for i, p in enumerate(parts):
        if isinstance(p, Term):
            if i and isinstance(parts[i - 1], Term):
                out.append("<mspace width='0.25em'/>")
            if _fits(p):
                out.append(_matrix_mathml(p.value))
            else:
                out.append(_symbol(p.name))
                summaries.append(_summary(p))
        elif _opener(p) is not None:
            out.append(f'{_opener(p)}<mrow class="paren">')
        elif p.strip() == ")":
            out.append("</mrow>")
        else:
            out.append(_operator(p))
    return "".join(out), summaries


def _math(inner, block=True):
    display = ' display="block"' if block else ""
    return f'<math{display}>{inner}</math>'


_G = "<mi>g</mi>"
_G_PRIME = "<msup><mi>g</mi><mo>&#x2032;</mo></msup>"
_GA = f"{_G}<mo>(</mo><mi>a</mi><mo>)</mo>"
DERIVATIVES_MATHML = {  # DERIVATIVES for the page
    "logistic": f"{_G_PRIME}<mo>(</mo><mi>a</mi><mo>)</mo><mo>=</mo>{_GA}<mo>(</mo><mn>1</mn><mo>&#x2212;</mo>{_GA}"
                "<mo>)</mo>",
    "tanh": f"{_G_PRIME}<mo>(</mo><mi>a</mi><mo>)</mo><mo>=</mo><mn>1</mn><mo>&#x2212;</mo><msup><mi>g</mi><mn>2</mn>"
            "</msup><mo>(</mo><mi>a</mi><mo>)</mo>",
    "relu": f"{_G_PRIME}<mo>(</mo><mi>a</mi><mo>)</mo><mo>=</mo><mn>1</mn><mtext>&#xA0;if&#xA0;</mtext><mi>a</mi>"
            "<mo>&gt;</mo><mn>0</mn><mo>,</mo><mtext>&#xA0;else&#xA0;</mtext><mn>0</mn>",
    "identity": f"{_G_PRIME}<mo>(</mo><mi>a</mi><mo>)</mo><mo>=</mo><mn>1</mn>",
}
_JACOBIAN_NOTE = (  # softmax + squared error, as the text's note says it
    f"<msub><mo>&#x2207;</mo>{_Y_HAT}</msub>{_LOSS}<mo>=</mo><mn>2</mn><mo>(</mo>{_Y_HAT}<mo>&#x2212;</mo><mi>y</mi>"
    f"<mo>)</mo><mo>,</mo><mspace width='0.5em'/>{_sub('J', 'ij')}<mo>=</mo>{_sub(_Y_HAT, 'i')}<mo>(</mo>"
    f"{_sub('&#x3B4;', 'ij')}<mo>&#x2212;</mo>{_sub(_Y_HAT, 'j')}<mo>)</mo>")


def _note_html(note):
    """A step's note for the page: the text's ASCII formulas in MathML, '*' as the formula's ⊙."""
    m = re.match(r"^\* elementwise; (\w+): (.*)$", note)
    if m:
        name, ascii_formula = m.groups()
        formula = (_math(DERIVATIVES_MATHML[name], block=False) if name in DERIVATIVES_MATHML
                   else html.escape(ascii_formula))
        return f"{_math('<mo>&#x2299;</mo>', block=False)} elementwise; {html.escape(name)}: {formula}"
    head, colon, _ = note.partition(": grad_y_hat = ")
    if colon:
        return f"{html.escape(head)}: {_math(_JACOBIAN_NOTE, block=False)}"
    return html.escape(note)


def _how_html(how):
    """A check's description for the page: 'b3', 'eps W3[:, j]', 'dL/da2 = dL/db2' in MathML."""
    def along(m):
        k = m.group(1)
        return _inline(f"{_sub('b', k)}<mo>+</mo><mi>&#x3B5;</mi>{_sub('W', k)}<mo>[</mo><mo>:</mo><mo>,</mo>"
                       "<mi>j</mi><mo>]</mo>")

    how = html.escape(how)
    how = re.sub(r"dL/da(\d+) = dL/db(\d+)",
                 lambda m: _inline(f"{_symbol('grad_a' + m.group(1))}<mo>=</mo>{_symbol('grad_b' + m.group(2))}"), how)
    how = re.sub(r"\bb(\d+) \+ eps W\1\[:, j\]", along, how)
    return re.sub(r"\bb(\d+)\b", lambda m: _inline(_sub("b", m.group(1))), how)


def _step_html(step):
    numbers, summaries = _parts_mathml(step.parts)
    formula = _formula_mathml(step.formula)
    note = f' <span class="note">({_note_html(step.note)})</span>' if step.note else ""
    out = [f'<section class="step" id="step-{html.escape(step.key)}">',
           f'<div class="formula">{_math(formula, block=False)}{note}</div>',
           f'<div class="numbers">{_math(numbers)}</div>']
    out += [f'<p class="summary">{html.escape(s)}</p>' for s in summaries]
    if step.check is not None:
        cls, mark = ("ok", "&#x2713;") if step.check.ok else ("fail", "&#x2717; FAIL")
        out.append(f'<p class="check {cls}">check: {_how_html(step.check.how)}: relative error '
                   f'{step.check.error:.1e} {mark}</p>')
    out.append("</section>")
    return "\n".join(out)


def _colour(g, scale):
    """Red for a positive gradient, blue for a negative one, grey for none; full colour at |g| = scale."""
    t = 0.0 if scale == 0 else min(1.0, abs(g) / scale)
    end = (200, 30, 30) if g > 0 else (30, 80, 200)
    rgb = [round(220 + (e - 220) * t) for e in end]
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def _shown_units(n, limit=10):
    return list(range(n)) if n <= limit else list(range(limit - 1))


def _label_width(label):
    """An upper bound on the width in pixels of a unit label at the SVG's 10px font (DejaVu Sans, wider than
    most: digits and 'e' 0.64 em, '+' 0.84 em, '-' and '.' under 0.37 em)."""
    return sum({".": 3.7, "-": 3.7, "+": 8.4}.get(c, 6.4) for c in label)


def network_svg(expl):
    """The network as an SVG drawing; each edge W_k[i, j] coloured by its gradient grad_Wk[i, j]."""
    net, grads, cache = expl.net, expl.grads, expl.cache
    sizes, L = net.sizes, net.L
    scale = max(float(np.abs(grads[f"W{k}"]).max()) for k in range(1, L + 1))
    units = [_shown_units(n) for n in sizes]
    rows = max(len(u) + (1 if len(u) < n else 0) for u, n in zip(units, sizes))
    # Unit labels show h to the text's 4 digits; every circle is wide enough for the longest of them.
    labels = {(k, i): _fmt(cache.h[k][0, i]) for k in range(L + 1) for i in units[k]}
    r = max(16, math.ceil(max(map(_label_width, labels.values())) / 2) + 4)
    dx, dy = 190, max(54, 2 * r + 14)
    width, height = 120 + dx * L + 120, 90 + dy * rows + 64  # the scale bar and its caption below
    xs = [100 + dx * k for k in range(L + 1)]

    def y_of(k, i):
        count = len(units[k]) + (1 if len(units[k]) < sizes[k] else 0)
        return 70 + dy * (rows - count) / 2 + dy * i + dy / 2

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="the network, edges coloured by gradient">']
    for k in range(1, L + 1):
        G, W = grads[f"W{k}"], net.W[k]
        for i in units[k]:
            for j in units[k - 1]:
                g = float(G[i, j])
                w = 1 + 3 * (abs(g) / scale if scale else 0)
                out.append(f'<line x1="{xs[k - 1] + r}" y1="{y_of(k - 1, j):.1f}" x2="{xs[k] - r}" '
                           f'y2="{y_of(k, i):.1f}" stroke="{_colour(g, scale)}" stroke-width="{w:.2f}">'
                           f'<title>W{k}[{i},{j}] = {_fmt(W[i, j])}, grad = {_fmt(g)}</title></line>')
    for k in range(L + 1):
        h_k = f'h<tspan baseline-shift="sub" font-size="10px">{k}</tspan>'
        label = f"input {h_k}" if k == 0 else ("output &#x177;" if k == L else f"layer {k} {h_k}")
        out.append(f'<text x="{xs[k]}" y="30" text-anchor="middle" class="layer">{label}</text>')
        out.append(f'<text x="{xs[k]}" y="48" text-anchor="middle" class="size">{plural(sizes[k], "unit")}</text>')
        values = cache.h[k][0]
        for i in units[k]:
            y = y_of(k, i)
            tip = f"h{k}[{i}] = {_fmt(values[i])}"
            if k > 0:
                tip += f", a{k}[{i}] = {_fmt(cache.a[k][0, i])}, grad_a{k}[{i}] = {_fmt(cache.grad_a[k][0, i])}"
            out.append(f'<circle cx="{xs[k]}" cy="{y:.1f}" r="{r}" class="unit"><title>{tip}</title></circle>')
            out.append(f'<text x="{xs[k]}" y="{y + 4:.1f}" text-anchor="middle" class="value">'
                       f'{labels[k, i]}</text>')
        if len(units[k]) < sizes[k]:
            out.append(f'<text x="{xs[k]}" y="{y_of(k, len(units[k])) + 6:.1f}" text-anchor="middle" '
                       f'class="more">&#x22EE; {sizes[k] - len(units[k])} more</text>')
    ly = height - 42
    out.append(f'<defs><linearGradient id="scale"><stop offset="0" stop-color="{_colour(-1, 1)}"/>'
               f'<stop offset="0.5" stop-color="{_colour(0, 1)}"/><stop offset="1" stop-color="{_colour(1, 1)}"/>'
               f'</linearGradient></defs>')
    out.append(f'<rect x="100" y="{ly}" width="240" height="12" fill="url(#scale)"/>')
    out.append(f'<text x="96" y="{ly + 11}" text-anchor="end" class="size">{_fmt(-scale, 3)}</text>')
    out.append(f'<text x="344" y="{ly + 11}" class="size">{_fmt(scale, 3)}</text>')
    out.append(f'<text x="100" y="{ly + 28}" class="size">grad_W: one colour scale for every layer</text>')
    out.append("</svg>")
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #1b1b1b; background: #fff; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
.context { color: #444; margin: 0.2em 0; }
.step { margin: 0.9em 0; padding: 0.4em 0.8em; border-left: 3px solid #dde; }
.formula { font-size: 1.15em; }
.note { color: #666; font-size: 0.85em; }
.numbers { overflow-x: auto; overflow-y: hidden; padding: 0.2em 0; }
math { font-size: 1.05em; }
mtable.m { padding: 0.05em 0.2em; margin: 0 0.15em; border-left: 1.5px solid #222; border-right: 1.5px solid #222;
           background: linear-gradient(#222, #222) left top / 5px 1.5px no-repeat,
                       linear-gradient(#222, #222) left bottom / 5px 1.5px no-repeat,
                       linear-gradient(#222, #222) right top / 5px 1.5px no-repeat,
                       linear-gradient(#222, #222) right bottom / 5px 1.5px no-repeat; }
mtd { text-align: right; text-align: -webkit-right; padding: 0.12em 0.4em; }
.legend { font-size: 0.85em; color: #444; margin-top: 0; }
.summary { font-family: ui-monospace, monospace; font-size: 0.85em; color: #333; margin: 0.2em 0; }
.check { font-size: 0.9em; margin: 0.2em 0; }
.check.ok { color: #176617; }
.check.fail { color: #b00020; font-weight: bold; }
.chain p, .step p { margin: 0.3em 0; }
svg .unit { fill: #fff; stroke: #333; stroke-width: 1.5; }
svg .value { font-size: 10px; fill: #222; }
svg .layer { font-size: 14px; font-weight: bold; fill: #222; }
svg .size, svg .more { font-size: 12px; fill: #555; }
table.loss td { padding: 0.1em 0.8em 0.1em 0; }
/* Parentheses as tall as the matrices inside, drawn like their brackets: a stretched glyph needs a math font. */
mrow.paren { border-left: 1.5px solid #222; border-right: 1.5px solid #222; border-radius: 0.6em / 50%;
             padding: 0.1em 0.3em; margin: 0 0.15em; }
mtable.eqs mtd { text-align: left; text-align: -webkit-left; padding: 0.3em 0 0.3em 0.25em; }
mtable.eqs mtd:first-child { text-align: right; text-align: -webkit-right; }
div.loss { margin: 0.9em 0; }
"""


def _loss_mathml(expl):
    """The loss line (the text's ``loss_formula``) in MathML."""
    out, Y = expl.net.output_layer, expl.y
    value = f"<mo>=</mo>{_mn(expl.loss, 6)}"
    log = "<mi>log</mi><mo>&#x2061;</mo>"
    if out.loss_name == "cross_entropy" and Y.ndim == 1:
        y_hat_l = float(expl.cache.h[expl.net.L][0, int(Y[0])])
        return (f"{_LOSS}<mo>=</mo><mo>&#x2212;</mo>{log}{_sub(_Y_HAT, 'l')}<mo>=</mo><mo>&#x2212;</mo>{log}<mo>(</mo>"
                f"{_mn(y_hat_l)}<mo>)</mo>{value}")
    sum_j = "<munder><mo>&#x2211;</mo><mi>j</mi></munder>"
    if out.loss_name == "cross_entropy":
        return f"{_LOSS}<mo>=</mo><mo>&#x2212;</mo>{sum_j}{_sub('y', 'j')}{log}{_sub(_Y_HAT, 'j')}{value}"
    return (f"{_LOSS}<mo>=</mo>{sum_j}<msup><mrow><mo>(</mo>{_sub(_Y_HAT, 'j')}<mo>&#x2212;</mo>{_sub('y', 'j')}"
            f"<mo>)</mo></mrow><mn>2</mn></msup>{value}")


_TIMES = "<mo>&#x2062;</mo>"   # invisible times: a product written by juxtaposition, as in the lecture
_RECURSION_MATHML = {  # the chain's recursion lines (lhs, rhs) in the lecture's notation, counting from 1
    "grad_h1[0]": (_d(_LOSS, _sub("h", "11")), "<munder><mo>&#x2211;</mo><mi>j</mi></munder>" + _sub("W", "2j1")
                   + _TIMES + _d(_LOSS, _sub("a", "2j"))),
    "grad_a1[0]": (_d(_LOSS, _sub("a", "11")), _d(_LOSS, _sub("h", "11")) + _TIMES + _G_PRIME + "<mo>(</mo>"
                   + _sub("a", "11") + "<mo>)</mo>"),
    "dL/dW_111": (_d(_LOSS, _sub("W", "111")), _d(_LOSS, _sub("a", "11")) + _TIMES + _sub("h", "01")),
}


def _inline(inner):
    return _math(inner, block=False)


def _paths_html(chain, sizes):
    """_paths_sentences for the page: (paragraph, the sum over paths or None)."""
    if len(sizes) == 2:
        return "With no hidden layer there is one path, so the product is the whole derivative.", None
    if chain.n_paths == 1:
        return ("Every layer after the first has one unit, as in the lecture's thin network: there is one path, "
                "so the product is the whole derivative.", None)
    count = "<mo>&#xD7;</mo>".join(f"<mn>{n}</mn>" for n in sizes[2:])
    count += f"<mo>=</mo><mn>{chain.n_paths}</mn>" if len(sizes) > 3 else ""
    text = ("In a thin network (one unit per layer) that product is the whole derivative. Here every "
            f"{_inline(_sub('h', 'ki'))} feeds each unit of layer {_inline('<mi>k</mi><mo>+</mo><mn>1</mn>')}, so "
            f"{_inline(_d(_LOSS, _sub('W', '111'), inline=True))} sums such products over all {_inline(count)} paths:")
    total = (f"sum over the {chain.n_paths} paths = {_fmt(chain.path_sum)}" if chain.path_sum is not None
             else f"({chain.n_paths} paths: too many to add up one by one here)")
    return text, total


def _chain_html(chain, net):
    L = net.L
    lecture = "<mo>&#x22C5;</mo>".join(_d(_partial(top), _partial(bottom))
                                       for top, bottom in (label[1:].split("/d") for label, _, _ in chain.factors))
    numbers = "<mo>&#x22C5;</mo>".join(f"<mo>(</mo>{_mn(v)}<mo>)</mo>" for _, _, v in chain.factors)
    derivative = _d(_LOSS, _sub("W", "111"))
    if chain.n_paths > 1:  # one term of the sum over paths, not the whole derivative
        derivative = f"<mtext>this path&#x2019;s term of&#x2009;</mtext>{derivative}"
    entry = "<mo>[</mo><mn>0</mn><mo>,</mo><mn>0</mn><mo>]</mo>"
    out = ['<section class="chain" id="chain">',
           f"<p>{_inline(_sub('W', '111') + '<mo>=</mo>' + _sub('W', '1') + entry)} joins input "
           f"{_inline(_sub('x', '1'))} to unit 1 of layer 1 (arrays count from 0, the lecture from 1). "
           "Along the path through the first unit of every layer, the chain rule's factors are</p>",
           _math(f"{derivative}<mo>=</mo>{lecture}<mo>=</mo>{numbers}<mo>=</mo>{_mn(chain.path_product)}")]
    text, total = _paths_html(chain, net.sizes)
    out.append(f"<p>{text}</p>")
    if total is not None:
        out.append(f'<p class="paths"><b>{html.escape(total)}</b></p>')
    out.append("<p>Backpropagation computes the same sum layer by layer; for the first unit:</p>" if L > 1 else
               f"<p>Backpropagation's {_inline(_formula_mathml(['grad_W1', '=', 'grad_a1', 'h0^T']))} gives, "
               "for its first entry:</p>")
    rows = []
    for lhs, rhs, numbers, value in chain.recursion:
        if numbers and isinstance(numbers[0], tuple):
            terms = "<mo>+</mo>".join(f"<mo>(</mo>{_mn(w)}<mo>)</mo><mo>(</mo>{_mn(g)}<mo>)</mo>"
                                      for w, g in numbers[:MAX_TERMS])
            if len(numbers) > MAX_TERMS:
                terms += f"<mo>+</mo><mo>&#x2026;</mo><mtext>&#x2009;({len(numbers)} terms)</mtext>"
        else:
            terms = "".join(f"<mo>(</mo>{_mn(v)}<mo>)</mo>" for v in numbers)
        lhs_m, rhs_m = _RECURSION_MATHML[lhs]
        rows.append(f"<mtr><mtd>{lhs_m}</mtd><mtd><mo>=</mo>{rhs_m}</mtd>"
                    f"<mtd><mo>=</mo>{terms}<mo>=</mo>{_mn(value)}</mtd></mtr>")
    # one table, so that the lines' '=' align as in the text
    table = '<mtable class="eqs" displaystyle="true">' + "".join(rows) + "</mtable>"
    out.append(f'<div class="numbers">{_math(table)}</div>')
    ok = math.isclose(chain.recursion[-1][3], chain.backprop, rel_tol=1e-9, abs_tol=1e-15)
    out.append(f'<p class="check {"ok" if ok else "fail"}">= {_inline(_symbol("grad_W1") + entry)} from '
               f'back_propagation: {_fmt(chain.backprop)} {"&#x2713;" if ok else "&#x2717; FAIL"}</p>')
    out.append("</section>")
    return "\n".join(out)


def _partial(name):
    """MathML for a_31, h_21, W_111, L in a partial derivative."""
    if name == "L":
        return _LOSS
    return _sub(*name.split("_"))


def render_html(expl):
    """One self-contained page: inline CSS, inline SVG, MathML; no scripts and nothing fetched."""
    net = expl.net
    act, out = net.activation, net.output_layer
    loss_name = out.loss_name.replace("_", "-")
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             "<title>ffnn explain: backpropagation for one example</title>", f"<style>{_CSS}</style>", "</head>",
             "<body>", "<h1>Backpropagation for one example</h1>",
             f'<p class="context">sizes {" ".join(map(str, net.sizes))}; g = {act.name}, O = {out.output}, '
             f"loss {loss_name}; float64</p>"]
    parts += [f'<p class="context">{html.escape(c)}</p>' for c in expl.context]
    parts += ["<h2>The network</h2>", network_svg(expl),
              '<p class="legend">Each edge is a weight W<sub>k</sub>[i, j], coloured by its gradient: red where it '
              "is positive (the step lowers the weight), blue where it is negative, grey near zero; the thicker, "
              "the larger. Each unit shows its h value; hover over an edge or a unit for its numbers.</p>"]
    parts += ["<h2>Forward pass</h2>",
              _math("<msub><mi>a</mi><mi>k</mi></msub><mo>=</mo><msub><mi>b</mi><mi>k</mi></msub><mo>+</mo>"
                    "<msub><mi>W</mi><mi>k</mi></msub><msub><mi>h</mi><mrow><mi>k</mi><mo>&#x2212;</mo><mn>1</mn>"
                    "</mrow></msub><mo>,</mo><mspace width='1em'/><msub><mi>h</mi><mi>k</mi></msub><mo>=</mo>"
                    "<mi>g</mi><mo>(</mo><msub><mi>a</mi><mi>k</mi></msub><mo>)</mo><mo>,</mo><mspace width='1em'/>"
                    "<mover accent='true'><mi>y</mi><mo>&#x5E;</mo></mover><mo>=</mo><mi>O</mi><mo>(</mo>"
                    "<msub><mi>a</mi><mi>L</mi></msub><mo>)</mo>")]
    parts += [_step_html(s) for s in expl.forward]
    parts.append(f'<div class="loss" id="loss">{_math(_loss_mathml(expl), block=False)}</div>')
    parts += ["<h2>Backward pass, in the lecture's order</h2>"]
    parts += [_step_html(s) for s in expl.backward]
    parts += ["<h2>The lecture's opening example: the chain rule for W<sub>111</sub></h2>",
              _chain_html(expl.chain, net)]
    parts += [f"<h2>One gradient-descent step, &#x3B7; = {expl.learning_rate:g}</h2>",
              _math(f"<mi>&#x3B8;</mi><mo>&#x2190;</mo><mi>&#x3B8;</mi><mo>&#x2212;</mo><mi>&#x3B7;</mi>"
                    f"<msub><mo>&#x2207;</mo><mi>&#x3B8;</mi></msub>{_LOSS}")]
    parts += [_step_html(s) for s in expl.update]
    # the text's "(b_k <- b_k - eta grad_bk likewise)"
    parts.append('<p class="step" id="step-b_new">'
                 + _inline(_formula_mathml(["b_k", "<-", "b_k", "-", "eta", "grad_b_k"]))
                 + " likewise, for "
                 + _inline(f"<mi>k</mi><mo>=</mo><mn>1</mn><mo>,</mo><mo>&#x2026;</mo><mo>,</mo><mn>{net.L}</mn>")
                 + "</p>")
    parts.append('<table class="loss" id="step">'
                 f"<tr><td>loss before</td><td>{_fmt(expl.loss, 6)}</td></tr>"
                 f"<tr><td>loss after</td><td>{_fmt(expl.loss_after, 6)}</td></tr>"
                 f"<tr><td>change</td><td>{_fmt(expl.loss_after - expl.loss)} (first-order estimate "
                 f"&#x2212;&#x3B7;&#x2016;&#x2207;&#x2112;&#x2016;&#xB2; = {_fmt(expl.first_order)})</td></tr>"
                 "</table>")
    verdict = ("ok", "&#x2713;") if expl.ok else ("fail", "&#x2717; FAIL")
    parts.append(f'<p class="check {verdict[0]}">central differences: largest relative error '
                 f"{expl.worst_error:.1e} over {len(expl.checks)} gradients (tolerance {TOLERANCE:.0e}) "
                 f"{verdict[1]}</p>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def explain_text(net, x, y, **kwargs):
    """``render_text(explain(net, x, y, ...))``."""
    return render_text(explain(net, x, y, **kwargs))


def explain_html(net, x, y, **kwargs):
    """``render_html(explain(net, x, y, ...))``."""
    return render_html(explain(net, x, y, **kwargs))


# -- the command ---------------------------------------------------------------------------------------------
DEFAULT_SIZES = [3, 3, 3, 2]


def add_parser(subparsers):
    """Register ``ffnn explain`` on the command's subparsers."""
    p = subparsers.add_parser(
        "explain", help="the forward and backward pass for one example, with its numbers",
        description="Show the lecture's forward pass, backpropagation (with central-difference checks), the "
                    "chain rule for W_111 and one gradient-descent step, for one example.")
    p.add_argument("--sizes", type=int, nargs="*", metavar="N",
                   help="layer sizes n n_1 ... k (default 3 3 3 2); with --dataset only the hidden widths "
                        "(default 3 3), since the inputs and outputs come from the dataset")
    p.add_argument("-a", "--activation", default="logistic", help="hidden activation g (default logistic)")
    p.add_argument("--output", help="output function O: softmax or linear (default: softmax for classes, "
                                    "linear for regression)")
    p.add_argument("-l", "--loss", help="cross_entropy or squared_error (default: cross_entropy with softmax, "
                                        "squared_error with linear)")
    p.add_argument("-w_i", "--init", default="xavier", help="initial weights: random, xavier, he (default xavier)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and of the random example (default 0)")
    p.add_argument("-d", "--dataset", help="take the example from this dataset's test split (see ffnn train)")
    p.add_argument("--example", type=int, metavar="N", help="index of the test example (default 0; needs --dataset)")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", help="folder with the dataset files")
    p.add_argument("-lr", "--learning-rate", "--learning_rate", dest="learning_rate", type=float, default=0.1,
                   help="eta of the gradient-descent step (default 0.1)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page (MathML, SVG) to FILE")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=cmd_explain)
    return p


def build_example(args):
    """(net, x, y, context) for the command's arguments."""
    if not (isinstance(args.learning_rate, float) and math.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise ConfigError(f"--learning-rate must be a positive number; got {args.learning_rate}")
    rng = np.random.default_rng(args.seed)
    if args.dataset is None:
        if args.example is not None:
            raise ConfigError("--example takes an example of a dataset; pass --dataset too")
        sizes = args.sizes or DEFAULT_SIZES
        output, loss = _output_and_loss(args, "classification")
        net = Network(sizes, args.activation, output, loss, args.init, "float64", seed=rng)
        x = np.round(rng.normal(size=net.sizes[0]), 2)
        if net.output_layer.output == "softmax":  # a class: its target e(l) is one a softmax can approach
            y = np.int64(rng.integers(net.sizes[-1]))
            what = f"label l = {int(y)}"
        else:
            y = np.round(rng.normal(size=net.sizes[-1]), 2)
            what = "target y = [ " + "  ".join(_fmt(v) for v in y) + " ]"
        context = [f"a random example (seed {args.seed}): x rounded to 2 decimals, {what}",
                   f"untrained network: {net.init} weights, zero biases"]
        return net, x, y, context
    from .data import load

    ds = load(args.dataset, data_dir=args.data_dir, dtype="float64")
    n_test = ds.X_test.shape[0]
    index = 0 if args.example is None else args.example
    if not 0 <= index < n_test:
        raise ConfigError(f"--example {index} is out of range; {ds.name} has {n_test} test examples (0..{n_test - 1})")
    hidden = args.sizes if args.sizes is not None else DEFAULT_SIZES[1:-1]
    output, loss = _output_and_loss(args, ds.task)
    net = Network([ds.n_features, *hidden, ds.n_outputs], args.activation, output, loss, args.init, "float64",
                  seed=rng)
    x, y = ds.X_test[index], ds.y_test[index]
    if ds.task == "classification":
        y = np.int64(y)
        what = f"label l = {int(y)}" + (f" ({ds.class_names[int(y)]})" if ds.class_names else "")
    else:  # standardised with the training split's mean and std, as ffnn train does
        from .runs import standard_targets, target_scaling

        y = np.atleast_1d(np.asarray(standard_targets(np.asarray(y, np.float64), target_scaling(ds.y_train)),
                                     np.float64))
        what = "target y = [ " + "  ".join(_fmt(v) for v in y[:6]) + (" ..." if y.size > 6 else "") + " ]" + \
            " (standardised as for training)"
    context = [f"example {index} of {ds.name} (test split, {n_test} examples; features scaled as for training)",
               what, f"untrained network: {net.init} weights (seed {args.seed}), zero biases"]
    return net, x, y, context


def _output_and_loss(args, task):
    output = args.output or ("softmax" if task == "classification" else "linear")
    if args.loss:
        return output, args.loss
    return output, ("cross_entropy" if str(output).lower() == "softmax" else "squared_error")


def cmd_explain(args):
    from .fsutil import require_folder, write_text

    net, x, y, context = build_example(args)
    expl = explain(net, x, y, learning_rate=args.learning_rate, context=context)
    sys.stdout.write(render_text(expl))
    if args.html:
        require_folder(args.html)
        write_text(args.html, render_html(expl))
        print(f"ffnn: wrote {args.html}", file=sys.stderr)  # standard output holds the text alone
    return 0 if expl.ok else 1


def main_for_tests(argv):
    """Run ``ffnn explain ARGV`` as the command would; returns the exit status."""
    from .cli import _Parser

    parser = _Parser(prog="ffnn")
    parser.add_argument("--debug", action="store_true")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    add_parser(sub)
    args = parser.parse_args(["explain", *argv])
    try:
        return args.func(args)
    except FFNNError as exc:
        if args.debug:
            raise
        print(f"ffnn: error: {exc}", file=sys.stderr)
        return 1
