import copy
import pickle
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import ffnn
from ffnn import threads
from ffnn.errors import TrainingDiverged
from ffnn.optimizers import get_optimizer
from ffnn.threads import ThreadChoice
from ffnn.training import Trainer


def blas_threads():
    return [lib.num_threads for lib in threads._blas_libraries()]


pytestmark = pytest.mark.skipif(not threads._blas_libraries(),
                                reason="threadpoolctl finds no BLAS whose threads it can set")


def images(n=512, seed=0):
    """Rows of 784 features, as many as Fashion-MNIST's: the first layer's product has the long inner dimension
    that OpenBLAS splits differently on one thread than on several."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)


def train(epochs=2, batch=128, optimizer="adam", seed=0, n=512, hidden=128):
    X, y = images(n)
    net = ffnn.Network([784, hidden, hidden, 10], activation="tanh", seed=seed)
    trainer = Trainer(net, get_optimizer(optimizer, 1e-3), epochs=epochs, batch_size=batch, seed=seed, verbose=0)
    trainer.fit(X, y)
    return trainer


@pytest.fixture
def alternating(monkeypatch):
    """Every batch is a timed block, and every other block tries the other thread count."""
    monkeypatch.setattr(threads, "BLOCK_SECONDS", 0.0)
    monkeypatch.setattr(threads, "FIRST_PROBE", 1)
    monkeypatch.setattr(threads, "LAST_PROBE", 1)
    monkeypatch.delenv("FFNN_FIXED_THREADS", raising=False)


def test_a_run_switching_thread_counts_is_bit_identical_to_a_fixed_one(alternating, monkeypatch):
    with threadpool_limits(2, user_api="blas"):
        switching = train(epochs=3)
        monkeypatch.setenv("FFNN_FIXED_THREADS", "1")
        fixed = train(epochs=3)
    choice = switching._threads
    assert choice.enabled and min(choice.blocks) >= 3  # both counts really ran, several times
    assert not fixed._threads.enabled
    np.testing.assert_array_equal(switching.net.theta, fixed.net.theta)
    assert switching.history["loss"] == fixed.history["loss"]


def openblas():
    """numpy's BLAS is OpenBLAS with the kernels the chunk sizes were measured on (AVX-512, 'SkylakeX')."""
    return any(lib.internal_api == "openblas" and lib.architecture == "SkylakeX" for lib in threads._blas_libraries())


@pytest.mark.parametrize("inner", [threads.INNER, {4: 10_000, 8: 10_000}])
def test_products_whose_bits_depend_on_the_thread_count_are_found_and_run_on_all_threads(alternating, monkeypatch,
                                                                                       inner):
    # Without the check, the products the check finds would run on one thread; where this BLAS has such products
    # the weights then differ from a fixed run, which shows that the test above would notice a missing check.
    # With the inner dimension in chunks OpenBLAS has none; without (inner 10,000), the first layer's product is one.
    monkeypatch.setattr(threads, "INNER", inner)
    found, check = [], ThreadChoice._bits_vary
    monkeypatch.setattr(ThreadChoice, "_bits_vary", lambda self, A, B, out: found.append(check(self, A, B, out))
                        or found[-1])
    with threadpool_limits(2, user_api="blas"):
        checked = train()
        monkeypatch.setattr(ThreadChoice, "_bits_vary", lambda self, A, B, out: False)
        unchecked = train()
        monkeypatch.setenv("FFNN_FIXED_THREADS", "1")
        fixed = train()
    assert found and not all(found)  # each product was looked at; most give the same bits either way
    if openblas():
        assert any(found) == (inner[4] > 784)
    np.testing.assert_array_equal(checked.net.theta, fixed.net.theta)
    if any(found):
        assert not np.array_equal(unchecked.net.theta, fixed.net.theta)
    else:
        np.testing.assert_array_equal(unchecked.net.theta, fixed.net.theta)


def test_the_blas_thread_count_and_the_products_are_restored_after_a_run_and_after_an_error(alternating,
                                                                                          monkeypatch):
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        trainer = train(epochs=1)
        assert trainer._threads.blocks[1] > 0 and blas_threads() == before
        assert trainer._threads.caches == [] and not trainer._threads.varies  # the workspaces are let go
        # The BLAS's own count stays preferred (MARGIN 1: one thread never takes over), so blocks alternate: batch 1
        # (not timed) and 2 on two threads, 3 on one, 4 on two, 5 on one, which diverges.
        monkeypatch.setattr(threads, "MARGIN", 1.0)
        X, y = images(256)
        net = ffnn.Network([784, 64, 10], seed=0)
        losses = iter([1.0] * 4 + [float("nan")])
        ran_on = []
        net.loss = lambda cache, y, check=True: ran_on.append(blas_threads()) or next(losses)
        with pytest.raises(TrainingDiverged, match="batch 5"):
            Trainer(net, get_optimizer("sgd", 0.1), epochs=3, batch_size=32, seed=0, verbose=0).fit(X, y)
        assert ran_on[-1] == [1] * len(before)  # the error came on one thread...
        assert blas_threads() == before          # ...and the BLAS has its threads back
        # inside the block the workspaces' products are the choice's own while it runs one thread, and theirs after
        choice, caches = ThreadChoice(net), [net.new_cache(32), net.new_cache(7)]
        products = [cache.matmul for cache in caches]
        choice.start_run()
        choice.preferred = True
        with choice.over(caches):
            assert blas_threads() == [1] * len(before)
            assert all(cache.matmul == choice.matmul for cache in caches)
        assert [cache.matmul for cache in caches] == products and blas_threads() == before


def test_after_a_run_other_threads_can_set_the_blas_thread_count_again(alternating):
    def seen_by_a_thread():
        seen = []

        def work():
            with threadpool_limits(1, user_api="blas"):
                seen.append(blas_threads())

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        return seen[0]

    # no threadpool_limits around the run here: while one is open in the main thread, that thread rightly keeps
    # control of OpenBLAS
    if max(blas_threads()) < 2:
        pytest.skip("the BLAS runs one thread here: there is no choice to make")
    assert seen_by_a_thread() == [1] * len(blas_threads())
    assert train(epochs=1)._threads.blocks[1] > 0
    assert seen_by_a_thread() == [1] * len(blas_threads())


def test_a_trainer_still_copies_and_pickles_after_a_run(alternating):
    with threadpool_limits(2, user_api="blas"):
        trainer = train(epochs=1)
    assert trainer._threads.blocks[1] > 0
    copied = copy.deepcopy(trainer)
    np.testing.assert_array_equal(copied.net.theta, trainer.net.theta)
    assert pickle.loads(pickle.dumps(trainer)).epoch == 1


def test_products_of_workspaces_that_share_an_output_are_each_looked_at(alternating, monkeypatch):
    # The full batches and the last, shorter one write their gradients into the same arrays, with inner dimensions
    # (the batch) of different lengths: each product is checked, not only the first one into an output.
    monkeypatch.setattr(threads, "INNER", {4: 10_000, 8: 10_000})  # no chunks: some products may then vary
    checked, check = [], ThreadChoice._bits_vary
    monkeypatch.setattr(ThreadChoice, "_bits_vary",
                        lambda self, A, B, out: checked.append((A.shape, B.shape)) or check(self, A, B, out))
    rng = np.random.default_rng(0)
    X, y = rng.random((512 * 3 + 400, 128)), rng.integers(0, 10, 512 * 3 + 400)
    thetas = []
    with threadpool_limits(2, user_api="blas"):
        for fixed in (False, True):
            if fixed:
                monkeypatch.setenv("FFNN_FIXED_THREADS", "1")
            net = ffnn.Network([128, 128, 10], seed=0, dtype="float64")
            Trainer(net, get_optimizer("sgd", 0.1), epochs=2, batch_size=512, seed=0, verbose=0).fit(X, y)
            thetas.append(net.theta)
    assert ((128, 400), (400, 128)) in checked and ((128, 512), (512, 128)) in checked
    np.testing.assert_array_equal(*thetas)


def test_each_workspace_calls_numpy_directly_unless_an_inner_dimension_is_long():
    for sizes, batch, dtype, chunked in [([4, 8, 3], 16, "float32", False), ([400, 400, 10], 400, "float32", False),
                                          ([784, 128, 10], 64, "float32", True), ([20, 10], 401, "float32", True),
                                          ([384, 10], 32, "float64", False), ([385, 10], 32, "float64", True)]:
        product = ffnn.Network(sizes, seed=0, dtype=dtype).new_cache(batch).matmul
        assert (product is not np.matmul) == chunked
        assert not chunked or product.func is threads.matmul


def test_no_choice_without_several_blas_threads_outside_the_main_thread_or_when_turned_off(alternating,
                                                                                         monkeypatch):
    monkeypatch.setenv("FFNN_FIXED_THREADS", "0")  # 0 leaves it on
    with threadpool_limits(2, user_api="blas"):
        assert train(epochs=1)._threads.enabled
    monkeypatch.setenv("FFNN_FIXED_THREADS", "yes")
    with threadpool_limits(2, user_api="blas"):
        assert not train(epochs=1)._threads.enabled
    monkeypatch.delenv("FFNN_FIXED_THREADS")
    with threadpool_limits(1, user_api="blas"):
        assert not train(epochs=1)._threads.enabled
    with threadpool_limits(2, user_api="blas"):
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault("trainer", train(epochs=1)))
        worker.start()
        worker.join()
        assert not result["trainer"]._threads.enabled and result["trainer"].epoch == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 784, 128), (3, 1001, 5), (7, 400, 2), (5, 401, 3)])
def test_matmul_sums_the_inner_dimension_in_chunks_of_at_most_inner_terms(shape, dtype):
    m, K, n = shape
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((m, K)).astype(dtype), rng.standard_normal((K, n)).astype(dtype)
    out, scratch = np.empty((m, n), dtype), {}
    threads.matmul(A, B, out, scratch)
    most = threads.INNER[np.dtype(dtype).itemsize]
    parts = -(-K // most)
    size = -(-K // parts)
    assert size <= most
    expected = A[:, :size] @ B[:size]
    for start in range(size, K, size):
        expected += A[:, start:start + size] @ B[start:start + size]
    np.testing.assert_array_equal(out, expected)  # the same calls in the same order: the same bits
    np.testing.assert_allclose(out, A @ B, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-3)
    assert len(scratch) == (parts > 1)
    column_major = threads.matmul(np.asfortranarray(A), B, np.empty_like(out), scratch)  # as H^T is in grad_W
    np.testing.assert_allclose(column_major, out, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_first_layers_product_in_chunks_has_the_same_bits_on_one_thread_as_on_two(dtype):
    if not openblas():
        pytest.skip("the chunk sizes were measured on OpenBLAS's AVX-512 kernels")
    rng = np.random.default_rng(1)
    for m in (32, 64, 256, 1024):
        X, W = rng.random((m, 784)).astype(dtype), rng.standard_normal((784, 128)).astype(dtype)
        results = []
        for n in (1, 2):
            with threadpool_limits(n, user_api="blas"):
                results.append(threads.matmul(X, W, np.empty((m, 128), dtype), {}))
        np.testing.assert_array_equal(*results)


class Timings:
    """A ThreadChoice fed with made-up block times: which setting runs next after each."""

    def __init__(self):
        self.choice = ThreadChoice(ffnn.Network([2, 2], seed=0))
        self.choice._use = lambda one: setattr(self.choice, "one", one)

    def block(self, per_row):
        c = self.choice
        c._observe(per_row)
        c._use(c.preferred if c.countdown > 0 else not c.preferred)
        return "one" if c.one else "many"


def test_the_faster_setting_takes_over_and_a_losing_one_is_tried_as_rarely_as_its_loss_asks():
    t = Timings()
    assert [t.block(1.0) for _ in range(threads.FIRST_PROBE)] == ["many"] * (threads.FIRST_PROBE - 1) + ["one"]
    assert t.block(0.5) == "one"  # one thread was faster: it takes over
    assert t.choice.preferred
    runs = [t.block(0.5) for _ in range(threads.FIRST_PROBE)]
    assert runs[-1] == "many"
    assert t.block(0.6) == "one"  # the try with many threads lost, by 20%
    # the next try waits until such tries cost at most PROBE_COST of the time
    wait = int((0.6 / 0.5 - 1) / threads.PROBE_COST)
    assert wait > 2 * threads.FIRST_PROBE
    runs = [t.block(0.5) for _ in range(wait)]
    assert runs == ["one"] * (wait - 1) + ["many"]
    assert t.block(5.0) == "one"  # a loss of 900%: the wait is capped
    runs = [t.block(0.5) for _ in range(threads.LAST_PROBE)]
    assert runs == ["one"] * (threads.LAST_PROBE - 1) + ["many"]


def test_a_change_in_the_speed_of_the_setting_in_use_tries_the_other_at_once():
    t = Timings()
    for _ in range(threads.FIRST_PROBE - 1):
        t.block(1.0)
    assert t.block(1.0) == "one" and t.block(1.5) == "many"  # the try lost: many threads stay
    assert [t.block(1.1) for _ in range(3)] == ["many"] * 3  # within the factor CHANGE: no try
    assert t.block(2.0) == "one"  # far slower than when last compared: the other count is tried next
    assert t.block(0.9) == "one" and t.choice.preferred
    assert [t.block(0.9) for _ in range(3)] == ["one"] * 3
    assert t.block(0.5) == "many"  # and far faster: the machine changed back, perhaps
    assert t.block(0.4) == "many" and not t.choice.preferred


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_with_openblas_a_run_has_the_same_bits_on_one_thread_as_on_two(monkeypatch, dtype):
    if not openblas():
        pytest.skip("the chunk sizes were measured on OpenBLAS's AVX-512 kernels")
    monkeypatch.setenv("FFNN_FIXED_THREADS", "1")
    X, y = images(1024)
    thetas = []
    for n in (1, 2):
        with threadpool_limits(n, user_api="blas"):
            net = ffnn.Network([784, 128, 10], seed=0, dtype=dtype)
            Trainer(net, get_optimizer("adam", 1e-3), epochs=1, batch_size=512, seed=0, verbose=0).fit(X, y)
            thetas.append(net.theta)
    np.testing.assert_array_equal(*thetas)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_estimators_loss_curve_has_the_same_bits_with_and_without_the_choice(alternating, monkeypatch):
    # its weighted loss sums over a batch of 12,000: a BLAS dot would split that among threads
    from ffnn.estimators import FFNNClassifier

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12000 * 4, 20)), rng.integers(0, 3, 12000 * 4)
    fitted = []
    with threadpool_limits(2, user_api="blas"):
        for fixed in (False, True):
            if fixed:
                monkeypatch.setenv("FFNN_FIXED_THREADS", "1")
            fitted.append(FFNNClassifier((16,), batch_size=12000, max_iter=3, random_state=0).fit(X, y))
    assert fitted[0].loss_curve_ == fitted[1].loss_curve_
    np.testing.assert_array_equal(fitted[0].network_.theta, fitted[1].network_.theta)
