import html
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from ffnn import Network
from ffnn.explain import (WIDTH, add_parser, build_example, explain, explain_html, explain_text, main_for_tests,
                          render_html, render_text)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("FFNN_UPDATE_GOLDEN") == "1"
NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]\d+)?"


def run(capsys, argv):
    code = main_for_tests(argv)
    out, err = capsys.readouterr()
    return code, out, err


def args_for(argv):
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["explain", *argv])


def half_unit(s):
    """Half a unit in the last printed digit of the number ``s``: how far the value may lie from it."""
    mantissa, _, exponent = s.partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals) * (1 + 1e-9)


def assert_shown(strings, expected, what):
    expected = np.asarray(expected, np.float64)
    assert len(strings) == expected.size, (what, strings, expected)
    for s, v in zip(strings, expected.ravel()):
        assert abs(float(s) - v) <= half_unit(s), (what, s, v)


def blocks(text, heading):
    """The bracketed operands under ``heading``, left to right: one list of rows (lists of str) each."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    by_column = {}
    for line in lines[start + 1:]:
        if not line.strip() or line.startswith("  check:"):
            break
        for m in re.finditer(r"\[([^\]]*)\]", line):
            by_column.setdefault(m.start(), []).append(m.group(1).split())
    return [by_column[c] for c in sorted(by_column)]


def normalised(text):
    # Relative errors of about 1e-10 are round-off, which differs between CPUs; everything else must match.
    return re.sub(r"relative error \S+", "relative error <e>", text)


def check_golden(name, text):
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing; run with FFNN_UPDATE_GOLDEN=1 to write it"
    assert normalised(text) == normalised(path.read_text(encoding="utf-8"))


# -- the command's text ---------------------------------------------------------------------------------------
def test_golden_default(capsys):
    code, out, err = run(capsys, [])
    assert code == 0 and err == ""
    check_golden("explain_default.txt", out)


def test_golden_regression(capsys):
    code, out, _ = run(capsys, ["--sizes", "4", "3", "2", "-a", "tanh", "--output", "linear", "--seed", "3"])
    assert code == 0
    assert "grad_a2 = 2 (y_hat - y)" in out
    check_golden("explain_regression.txt", out)


@pytest.fixture(scope="module")
def default_case():
    net, x, y, _ = build_example(args_for([]))
    expected_net = Network([3, 3, 3, 2], "logistic", "softmax", "cross_entropy", "xavier", "float64",
                           seed=np.random.default_rng(0))
    assert np.array_equal(net.theta, expected_net.theta)
    text = render_text(explain(net, x, y, learning_rate=0.1))
    X, Y = x.reshape(1, -1), np.array([y])
    _, cache = net.forward_propagation(X)
    grads = net.back_propagation(cache, Y)
    return net, X, Y, text, cache, grads


def test_forward_numbers_are_the_library_values(default_case):
    net, X, Y, text, cache, _ = default_case
    assert_shown(re.search(r"h0 = x = \[([^\]]*)\]", text).group(1).split(), X[0], "x")
    for k in (1, 2, 3):
        b, W, h, a = blocks(text, f"a{k} = b{k} + W{k} h{k - 1}")
        assert_shown(sum(b, []), net.b[k], f"b{k}")
        assert_shown(sum(W, []), net.W[k], f"W{k}")
        assert_shown(sum(h, []), cache.h[k - 1][0], f"h{k - 1}")
        assert_shown(sum(a, []), cache.a[k][0], f"a{k}")
    for k in (1, 2):
        a, h = blocks(text, f"h{k} = g(a{k})")
        assert_shown(sum(a, []), cache.a[k][0], f"a{k}")
        assert_shown(sum(h, []), cache.h[k][0], f"h{k}")
    a, y_hat = blocks(text, "y_hat = O(a3)")
    assert_shown(sum(y_hat, []), cache.h[3][0], "y_hat")
    loss = re.search(rf"L = -log y_hat\[l\] = -log\(({NUMBER})\) = ({NUMBER})", text)
    assert_shown([loss.group(1)], [cache.h[3][0, int(Y[0])]], "y_hat_l")
    assert_shown([loss.group(2)], [net.loss(cache, Y)], "loss")


def test_backward_numbers_are_the_library_values(default_case):
    net, X, Y, text, cache, grads = default_case
    e, y_hat, grad_aL = blocks(text, "grad_a3 = -(e(l) - y_hat)")
    assert_shown(sum(e, []), np.eye(2)[int(Y[0])], "e(l)")
    assert_shown(sum(y_hat, []), cache.h[3][0], "y_hat")
    assert_shown(sum(grad_aL, []), cache.h[3][0] - np.eye(2)[int(Y[0])], "grad_a3")
    for k in (3, 2, 1):
        grad_a, h_T, grad_W = blocks(text, f"grad_W{k} = grad_a{k} h{k - 1}^T")
        assert_shown(sum(grad_a, []), cache.grad_a[k][0], f"grad_a{k}")
        assert_shown(sum(h_T, []), cache.h[k - 1][0], f"h{k - 1}^T")
        assert len(grad_W) == net.sizes[k]
        assert_shown(sum(grad_W, []), grads[f"W{k}"], f"grad_W{k}")
        line = re.search(rf"grad_b{k} = grad_a{k} = \[([^\]]*)\]\^T", text).group(1)
        assert_shown(line.split(), grads[f"b{k}"], f"grad_b{k}")
    for k in (3, 2):
        W_T, grad_a, grad_h = blocks(text, f"grad_h{k - 1} = W{k}^T grad_a{k}")
        assert_shown(sum(W_T, []), net.W[k].T, f"W{k}^T")
        assert_shown(sum(grad_a, []), cache.grad_a[k][0], f"grad_a{k}")
        assert_shown(sum(grad_h, []), cache.grad_h[k - 1][0], f"grad_h{k - 1}")
        grad_h, g_prime, grad_a = blocks(text, f"grad_a{k - 1} = grad_h{k - 1} * g'(a{k - 1})")
        h = cache.h[k - 1][0]
        assert_shown(sum(grad_h, []), cache.grad_h[k - 1][0], f"grad_h{k - 1}")
        assert_shown(sum(g_prime, []), h * (1 - h), f"g'(a{k - 1})")  # logistic' = h (1 - h)
        assert_shown(sum(grad_a, []), cache.grad_a[k - 1][0], f"grad_a{k - 1}")


def test_every_gradient_has_a_passing_central_difference_check(default_case):
    text = default_case[3]
    checks = re.findall(rf"  check: (.*): relative error ({NUMBER})  (ok|FAIL)", text)
    assert len(checks) == 1 + 3 * 2 + 2 * 2     # grad_a3; grad_W, grad_b for 3 layers; grad_h, grad_a for 2
    assert all(mark == "ok" and float(err) < 1e-6 for _, err, mark in checks)
    assert re.search(r"largest relative error \S+ over 11 gradients .*  ok$", text.rstrip())


def test_chain_rule_example_equals_backprop(default_case):
    net, X, Y, text, cache, grads = default_case
    h0 = X[0]
    gp = [None] + [cache.h[k][0] * (1 - cache.h[k][0]) for k in (1, 2)]
    factors = [cache.grad_a[3][0, 0], net.W[3][0, 0], gp[2][0], net.W[2][0, 0], gp[1][0], h0[0]]
    line = next(s for s in text.splitlines() if s.startswith("    = (") and "grad" not in s)
    shown = re.findall(rf"\(({NUMBER})\)", line)
    assert_shown(shown, factors, "path factors")
    assert_shown([line.rsplit("= ", 1)[1]], [np.prod(factors)], "path product")
    # The sum over every path x_1 -> a_11 -> a_2j -> a_3i -> L, re-derived here, is the backprop entry.
    total = sum(h0[0] * gp[1][0] * net.W[2][j, 0] * gp[2][j] * net.W[3][i, j] * cache.grad_a[3][0, i]
                for j in range(3) for i in range(2))
    assert total == pytest.approx(grads["W1"][0, 0], rel=1e-12)
    assert_shown([re.search(rf"sum over the 6 paths = ({NUMBER})", text).group(1)], [total], "path sum")
    final = re.search(rf"= grad_W1\[0,0\] from back_propagation: ({NUMBER})  (ok|FAIL)", text)
    assert final.group(2) == "ok"
    assert_shown([final.group(1)], [grads["W1"][0, 0]], "grad_W1[0,0]")
    rec = re.search(rf"grad_a1\[0\] = grad_h1\[0\] \* g'\(a1\[0\]\) += \(({NUMBER})\)\(({NUMBER})\) = ({NUMBER})", text)
    assert_shown(rec.groups(), [cache.grad_h[1][0, 0], gp[1][0], cache.grad_a[1][0, 0]], "grad_a1[0]")


def test_gradient_descent_step_numbers(default_case):
    net, X, Y, text, cache, grads = default_case
    W, grad, W_new = blocks(text, "W3 <- W3 - eta grad_W3")
    assert_shown(sum(W, []), net.W[3], "W3")
    assert_shown(sum(grad, []), grads["W3"], "grad_W3")
    assert_shown(sum(W_new, []), net.W[3] - 0.1 * grads["W3"], "W3 (new)")
    after = Network(net.sizes, "logistic", "softmax", "cross_entropy", dtype="float64")
    for key in net.params:
        after.params[key][...] = net.params[key] - 0.1 * grads[key]
    _, cache_after = after.forward_propagation(X)
    before = re.search(rf"loss before  ({NUMBER})", text).group(1)
    later = re.search(rf"loss after   ({NUMBER})", text).group(1)
    assert_shown([before, later], [net.loss(cache, Y), after.loss(cache_after, Y)], "losses")
    assert float(later) < float(before)


@pytest.mark.parametrize("argv", [
    [],
    ["--sizes", "5", "5", "5", "4", "-a", "tanh"],
    ["--sizes", "20", "12", "11", "3", "-a", "relu", "--seed", "2"],
    ["--sizes", "3", "2", "--output", "softmax", "--loss", "squared_error"],
    ["--sizes", "3", "1", "-a", "identity", "--output", "linear", "--loss", "squared_error"],
])
def test_fits_100_columns_and_checks_pass(capsys, argv):
    code, out, err = run(capsys, argv)
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= WIDTH
    assert "FAIL" not in out
    assert "central differences: largest relative error" in out


def test_dataset_example_is_summarised(capsys):
    from ffnn.data import load

    code, out, err = run(capsys, ["--dataset", "digits", "--example", "7", "--sizes", "4"])
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= WIDTH
    assert out.startswith("ffnn explain: sizes 64 4 10,")
    ds = load("digits", dtype="float64")
    assert "example 7 of digits" in out and f"label l = {ds.y_test[7]}" in out
    net, x, _, _ = build_example(args_for(["--dataset", "digits", "--example", "7", "--sizes", "4"]))
    assert np.array_equal(x, ds.X_test[7])
    m = re.search(rf"  W1 \(4x64\): min ({NUMBER}), max ({NUMBER}), mean ({NUMBER}); W1\[0, :\d\] = \[([^\]]*)\]",
                  out)
    assert m, out
    W1 = net.W[1]
    assert_shown(m.groups()[:3], [W1.min(), W1.max(), W1.mean()], "W1 summary")
    first = m.group(4).split()
    assert_shown(first, W1[0, :len(first)], "W1 first entries")
    assert "FAIL" not in out


def test_regression_dataset_uses_linear_output(capsys):
    code, out, _ = run(capsys, ["--dataset", "diabetes", "--sizes", "2", "--example", "1"])
    assert code == 0
    assert "O = linear, loss squared-error" in out and "grad_a2 = 2 (y_hat - y)" in out


@pytest.mark.parametrize("example", [5, 8])
def test_regression_targets_are_standardised_as_for_training(capsys, example):
    # raw diabetes targets reach 346: their squared errors are so large that the checks would fail on rounding
    import ffnn

    code, out, _ = run(capsys, ["--dataset", "diabetes", "--example", str(example)])
    assert code == 0 and "FAIL" not in out
    y = ffnn.datasets.load("diabetes", dtype="float64")
    expected = (y.y_test[example] - y.y_train.mean()) / y.y_train.std()
    line = next(line for line in out.splitlines() if line.startswith("target y = ["))
    assert line.endswith("(standardised as for training)")
    assert float(line.split("[")[1].split("]")[0]) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize("argv, message", [
    (["--example", "3"], "--example takes an example of a dataset; pass --dataset too"),
    (["--dataset", "iris", "--example", "30"], "--example 30 is out of range; iris has 30 test examples (0..29)"),
    (["--activation", "swish"], "unknown activation 'swish'"),
    (["--output", "linear", "--loss", "cross_entropy"], "cannot be trained with loss"),
    (["--learning-rate", "0"], "--learning-rate must be a positive number"),
])
def test_errors_are_one_line(capsys, argv, message):
    code, out, err = run(capsys, argv)
    assert code == 1 and out == ""
    assert err.startswith("ffnn: error: ") and message in err and err.count("\n") == 1


def test_explain_accepts_float32_networks_and_targets():
    net = Network([2, 3, 2], "tanh", "softmax", "squared_error", dtype="float32", seed=1)
    text = explain_text(net, [0.5, -1.0], np.array([0.2, 0.8]), learning_rate=0.5)
    assert "grad_a2 = J^T grad_y_hat" in text and "eta = 0.5" in text and "FAIL" not in text
    with pytest.raises(ValueError, match="the target has 3 values"):
        explain(net, [0.5, -1.0], np.array([0.2, 0.8, 0.0]))
    with pytest.raises(ValueError, match="label 5 is out of range"):
        explain(Network([2, 2], dtype="float64", seed=0), [0.5, -1.0], np.int64(5))


# -- the HTML page -------------------------------------------------------------------------------------------
def mtables(section):
    return [[[html.unescape(v).replace("\u2212", "-") for v in re.findall(r"<mn>([^<]*)</mn>", row)]
             for row in re.findall(r"<mtr>(.*?)</mtr>", table)]
            for table in re.findall(r'<mtable class="m">(.*?)</mtable>', section)]


def section(page, key):
    return re.search(rf'<section class="step" id="step-{re.escape(key)}">(.*?)</section>', page, re.S).group(1)


def test_html_is_self_contained_and_shows_the_same_numbers(default_case):
    net, X, Y, text, cache, grads = default_case
    page = explain_html(net, X[0], Y[0], learning_rate=0.1)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    fetches = re.sub(r'xmlns="[^"]*"', "", page)  # a namespace name is not fetched
    for forbidden in ("<script", "<link", "src=", "href=", "http://", "https://", "@import", "url(http"):
        assert forbidden not in fetches
    assert page.count("<math") > 20 and "<mfrac>" in page
    grad_a, h_T, grad_W = mtables(section(page, "grad_W2"))
    for shown, value in ((grad_a, cache.grad_a[2][0]), (h_T, cache.h[1][0]), (grad_W, grads["W2"])):
        assert_shown(sum(shown, []), value, "html grad_W2")
    b, W, h, a = mtables(section(page, "a1"))
    assert_shown(sum(W, []), net.W[1], "html W1")
    # The text and the page show the same strings.
    for line in blocks(text, "grad_h1 = W2^T grad_a2")[-1]:
        assert f"<mn>{line[0].replace('-', '&#x2212;')}</mn>" in section(page, "grad_h1")
    assert "check ok" in section(page, "grad_W2")


def test_svg_colours_every_weight_by_its_gradient(default_case):
    net, X, Y, *_ = default_case
    expl = explain(net, X[0], Y[0])
    page = render_html(expl)
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    edges = re.findall(r'<line [^>]*stroke="(rgb\(\d+,\d+,\d+\))"[^>]*><title>W(\d)\[(\d+),(\d+)\] = '
                       rf'({NUMBER}), grad = ({NUMBER})</title>', svg)
    assert len(edges) == 3 * 3 + 3 * 3 + 2 * 3
    for colour, k, i, j, w, g in edges:
        assert_shown([w, g], [net.W[int(k)][int(i), int(j)], expl.grads[f"W{k}"][int(i), int(j)]], "edge")
        r, _, b = map(int, re.findall(r"\d+", colour))
        if float(g) > 0:
            assert r >= b
        elif float(g) < 0:
            assert b >= r
    assert len({c for c, *_ in edges}) > 5
    assert svg.count("<circle") == 3 + 3 + 3 + 2


def test_html_flag_writes_the_page(capsys, tmp_path):
    target = tmp_path / "explain.html"
    code, out, err = run(capsys, ["--html", str(target)])
    assert code == 0 and err.rstrip().endswith(f"wrote {target}")  # stdout is the text alone
    assert "<svg" in target.read_text(encoding="utf-8")


def test_large_layers_are_summarised_in_html():
    net = Network([30, 12, 3], "relu", dtype="float64", seed=4)
    x = np.random.default_rng(4).normal(size=30)
    page = explain_html(net, x, np.int64(2))
    assert '<p class="summary">W1 (12x30): min' in page
    assert "21 more" in page and "3 more" in page  # units past the first nine are not drawn


def body_text(page):
    """The page's words outside tags, SVG and style: what a reader sees as prose or ASCII notation."""
    page = re.sub(r"<(style|svg)\b.*?</\1>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def default_page(default_case):
    net, X, Y, *_ = default_case
    return explain_html(net, X[0], Y[0], learning_rate=0.1)


def test_parentheses_around_matrices_are_as_tall_as_the_matrices(default_case, default_page):
    # logistic( ... ), softmax( ... ), -( ... ) and 2( ... ) group their matrices in one mrow drawn by CSS
    numbers = lambda key: re.search(r'<div class="numbers">(.*?)</div>', section(default_page, key), re.S).group(1)
    for key, head in (("h1", "<mi>logistic</mi>"), ("y_hat", "<mi>softmax</mi>"), ("grad_a3", "<mo>&#x2212;</mo>")):
        group = re.search(rf'{re.escape(head)}<mrow class="paren">(.*?)</mrow><mo>=</mo>', numbers(key))
        assert group, (key, numbers(key))
        assert group.group(1).count('<mtable class="m">') == (2 if key == "grad_a3" else 1)
    assert not re.search(r"<mo>[()]</mo>", numbers("h1") + numbers("grad_a3"))  # no one-line-tall glyphs
    css = re.search(r"mrow\.paren \{([^}]*)\}", default_page)
    assert css and "border-left" in css.group(1) and "border-right" in css.group(1)
    net = Network([3, 2], "logistic", "linear", "squared_error", dtype="float64", seed=0)
    page = explain_html(net, [0.5, -1.0, 2.0], np.array([0.2, 0.8]))
    assert re.search(r'<mn>2</mn><mrow class="paren"><mtable class="m">', section(page, "grad_a1"))


def test_page_has_no_ascii_notation(default_page):
    words = body_text(default_page)
    for ascii_notation in ("grad_", "y_hat", "dL/d", "h_ki", "sum_j", "W_111", "eps ", "-log", "(*", "* elementwise",
                           "g'(", "h0[", "W1[0"):
        assert ascii_notation not in words, ascii_notation


def test_loss_line_is_mathml(default_case, default_page):
    net, X, Y, text, cache, _ = default_case
    loss = re.search(r'<div class="loss" id="loss">(<math>.*?</math>)</div>', default_page, re.S).group(1)
    assert "<mi>&#x2112;</mi><mo>=</mo><mo>&#x2212;</mo><mi>log</mi>" in loss
    shown = re.findall(r"<mn>([^<]*)</mn>", loss)
    assert_shown(shown, [cache.h[3][0, int(Y[0])], net.loss(cache, Y)], "html loss")
    assert tuple(shown) == re.search(rf"-log\(({NUMBER})\) = ({NUMBER})", text).groups()  # the text's strings
    regression = Network([3, 2], "tanh", "linear", "squared_error", dtype="float64", seed=0)
    page = explain_html(regression, [0.5, -1.0, 2.0], np.array([0.2, 0.8]))
    loss = re.search(r'<div class="loss" id="loss">(.*?)</div>', page, re.S).group(1)
    assert "<mo>&#x2211;</mo>" in loss and "<msup>" in loss


def test_chain_recursion_is_one_aligned_table(default_case, default_page):
    net, X, Y, text, cache, grads = default_case
    chain = re.search(r'<section class="chain" id="chain">(.*?)</section>', default_page, re.S).group(1)
    table = re.search(r'<mtable class="eqs"[^>]*>(.*?)</mtable>', chain, re.S).group(1)
    rows = re.findall(r"<mtr>(.*?)</mtr>", table)
    assert len(rows) == 3
    for row, value in zip(rows, (cache.grad_h[1][0, 0], cache.grad_a[1][0, 0], grads["W1"][0, 0])):
        lhs, rhs, numbers = re.findall(r"<mtd>(.*?)</mtd>", row)
        assert "<mfrac>" in lhs and rhs.startswith("<mo>=</mo>") and numbers.startswith("<mo>=</mo>")
        last = html.unescape(re.findall(r"<mn>([^<]*)</mn>", numbers)[-1]).replace("\u2212", "-")
        assert_shown([last], [value], "recursion")
    assert "<munder><mo>&#x2211;</mo><mi>j</mi></munder>" in rows[0]
    assert chain.count("<math") >= 6  # the prose's W_111, x_1, h_ki, k+1, dL/dW_111, 3 x 2 = 6 too


def test_elementwise_note_shows_the_formulas_operator(default_page):
    for key in ("grad_a2", "grad_a1"):
        step = section(default_page, key)
        formula = re.search(r'<div class="formula">(.*?)</div>', step, re.S).group(1)
        note = re.search(r'<span class="note">(.*?)</span>', formula, re.S).group(1)
        assert "<mo>&#x2299;</mo>" in formula.replace(note, "") and "<mo>&#x2299;</mo></math> elementwise" in note
        assert "*" not in note and "<msup><mi>g</mi><mo>&#x2032;</mo></msup>" in note


def test_bias_update_is_on_the_page(default_page):
    line = re.search(r'<p class="step" id="step-b_new">(.*?)</p>', default_page, re.S).group(1)
    assert ("<msub><mi>b</mi><mi>k</mi></msub><mo>&#x2190;</mo><msub><mi>b</mi><mi>k</mi></msub><mo>&#x2212;</mo>"
            "<mo>&#x3B7;</mo><mrow><msub><mo>&#x2207;</mo><msub><mi>b</mi><mi>k</mi></msub></msub>") in line
    assert "likewise" in line and "<mn>3</mn>" in line  # k = 1, ..., L with L = 3
    assert default_page.index("step-W3_new") < default_page.index("step-b_new") < default_page.index('id="step"')


@pytest.mark.parametrize("argv", [[], ["--output", "linear", "-l", "squared_error"], ["--sizes", "4", "5", "3", "2"]])
def test_svg_unit_labels_have_the_texts_digits_and_fit_their_circles(capsys, argv):
    from ffnn.explain import _fmt

    def width(label):  # at the SVG's 10px: digits about 6.4px wide in DejaVu Sans, '-' and '.' about 3.6px
        return sum(3.6 if c in "-." else 6.4 for c in label)

    net, x, y, _ = build_example(args_for(argv))
    expl = explain(net, x, y)
    svg = re.search(r"<svg.*?</svg>", render_html(expl), re.S).group(0)
    circles = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="(\d+)"', svg)
    labels = re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="middle" class="value">([^<]*)</text>', svg)
    values = [expl.cache.h[k][0, i] for k in range(net.L + 1) for i in range(net.sizes[k])]
    assert labels == [_fmt(v, 4) for v in values]
    assert any(len(s.lstrip("-").replace(".", "").lstrip("0")) == 4 for s in labels)  # 4 digits, not 2
    r = int(circles[0][2])
    assert all(int(c[2]) == r for c in circles) and r >= max(map(width, labels)) / 2 + 2
    by_column = {}
    for cx, cy, _ in circles:
        by_column.setdefault(cx, []).append(float(cy))
    for ys in by_column.values():
        assert min(np.diff(ys)) >= 2 * r + 4  # circles of one layer do not touch


# -- a real browser --------------------------------------------------------------------------------------------
def read_png(path):
    """(width, height, pixels (height, width, channels) uint8) of an 8-bit, non-interlaced PNG."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    assert depth == 8 and interlace == 0 and colour in (2, 6)
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            cur = row
        elif kind == 1:   # Sub: a running sum per channel
            cur = np.cumsum(row.reshape(width, channels), axis=0).ravel() & 255
        elif kind == 2:   # Up
            cur = (row + prev) & 255
        else:             # Average or Paeth: each byte depends on the one to its left
            cur = np.zeros(stride, np.int32)
            r, p = row.tolist(), prev.tolist()
            c = [0] * stride
            for i in range(stride):
                left = c[i - channels] if i >= channels else 0
                if kind == 3:
                    c[i] = (r[i] + (left + p[i]) // 2) & 255
                else:
                    up_left = p[i - channels] if i >= channels else 0
                    est = left + p[i] - up_left
                    da, db, dc = abs(est - left), abs(est - p[i]), abs(est - up_left)
                    pred = left if da <= db and da <= dc else (p[i] if db <= dc else up_left)
                    c[i] = (r[i] + pred) & 255
            cur = np.array(c, np.int32)
        out[y] = cur
        prev = cur
    return width, height, out.reshape(height, width, channels)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_page_renders_in_headless_chromium(tmp_path, default_case):
    net, X, Y, *_ = default_case
    page = tmp_path / "explain.html"
    page.write_text(explain_html(net, X[0], Y[0]), encoding="utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
                    page.as_uri()], cwd=tmp_path, capture_output=True, timeout=180)
    assert shot.exists() and shot.stat().st_size > 20_000
    width, height, pixels = read_png(shot)
    assert (width, height) == (1200, 2000)
    rgb = pixels[..., :3].astype(int)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50
    dark = (rgb.sum(axis=2) < 200).mean()
    assert 0.002 < dark < 0.5                                  # text was drawn, on a light page
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    blue = (rgb[..., 2] > 150) & (rgb[..., 0] < 90)
    assert red.sum() > 100 and blue.sum() > 100              # the SVG's gradient colours
