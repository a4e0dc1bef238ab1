import json
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ffnn
from ffnn import fsutil, io
from ffnn.errors import ModelFileError
from ffnn.optimizers import get_optimizer
from ffnn.training import Trainer

CLASS_NAMES = ["T-shirt/top", "Trouser", "caf\u00e9"]
SCALING = {"offset": [0.5, -1.0, 2.0, 0.0], "scale": [2.0, 3.0, 0.25, 1.0]}


def make_net(dtype="float32", seed=0):
    net = ffnn.Network([4, 6, 5, 3], activation="relu", output="softmax", loss="cross_entropy", init="he",
                       dtype=dtype, seed=seed)
    net.theta[net.n_weights:] = np.random.default_rng(seed + 1).normal(size=net.n_params - net.n_weights)
    net.metadata = {"class_names": CLASS_NAMES, "scaling": SCALING, "dataset": "toy"}
    return net


def header_of(data):
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8:8 + n])


def with_header(data, header):
    """The same tensor bytes behind another header."""
    n, _ = header_of(data)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n:]


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.safetensors"
    make_net().save(path)
    return path


def assert_one_line_error(path, match=None):
    with pytest.raises(ModelFileError) as info:
        ffnn.Network.load(path)
    message = str(info.value)
    assert "\n" not in message and message
    assert os.fspath(path) in message
    if match:
        assert match in message, message
    return message


# -- round trip -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip_is_bit_identical(tmp_path, dtype):
    net = make_net(dtype)
    path = tmp_path / "m.safetensors"
    net.save(path, metadata={"note": "extra"})
    loaded = ffnn.Network.load(path)
    X = np.random.default_rng(5).normal(size=(50, 4)).astype(dtype)
    assert loaded.dtype == net.dtype
    assert loaded.config == net.config
    assert np.array_equal(loaded.theta, net.theta)
    assert np.array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert loaded.metadata == {**net.metadata, "note": "extra"}
    assert loaded.metadata["class_names"] == CLASS_NAMES
    assert loaded.metadata["scaling"] == SCALING


def test_saved_file_is_safetensors_with_our_metadata(model_file):
    from safetensors.numpy import load_file

    tensors = load_file(model_file)
    assert sorted(tensors) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    _, header = header_of(model_file.read_bytes())
    meta = header["__metadata__"]
    assert meta["format"] == "ffnn" and meta["format_version"] == str(io.FORMAT_VERSION)
    assert json.loads(meta["meta"])["config"]["sizes"] == [4, 6, 5, 3]


def test_other_architectures_round_trip(tmp_path):
    for net in (ffnn.Network([3, 2], output="linear", loss="squared_error", seed=0),
                ffnn.Network([5, 7, 2], activation="logistic", output="softmax", loss="squared_error", seed=1,
                             init="random")):
        net.save(tmp_path / "n.safetensors")
        loaded = ffnn.Network.load(tmp_path / "n.safetensors")
        assert loaded.config == net.config
        assert np.array_equal(loaded.theta, net.theta)


# -- damaged and foreign files ----------------------------------------------------------------------------
def test_truncated_file(model_file):
    data = model_file.read_bytes()
    for cut in (len(data) - 1, len(data) - 40, 100, 9, 3):
        model_file.write_bytes(data[:cut])
        assert_one_line_error(model_file)


def test_flipped_byte_in_the_tensor_data(model_file):
    data = bytearray(model_file.read_bytes())
    n, _ = header_of(bytes(data))
    for pos in (8 + n, 8 + n + 37, len(data) - 1):
        damaged = bytearray(data)
        damaged[pos] ^= 0x01
        model_file.write_bytes(bytes(damaged))
        assert_one_line_error(model_file, match="checksum")


def test_random_bytes_and_empty_file(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_one_line_error(path)
    path.write_bytes(b"")
    assert_one_line_error(path, match="empty")


def test_missing_file_and_folder(tmp_path):
    assert_one_line_error(tmp_path / "nope.safetensors")
    with pytest.raises(ModelFileError):
        ffnn.Network.load(tmp_path)


def test_foreign_safetensors_file(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"weight": np.ones((2, 3), np.float32)}, path)
    assert_one_line_error(path, match="not an ffnn model file")
    save_file({"W1": np.ones((2, 3), np.float32)}, path, metadata={"format": "pt"})
    assert_one_line_error(path, match="not an ffnn model file")


def test_newer_format_version_is_refused(model_file):
    data = model_file.read_bytes()
    _, header = header_of(data)
    header["__metadata__"]["format_version"] = str(io.FORMAT_VERSION + 1)
    model_file.write_bytes(with_header(data, header))
    message = assert_one_line_error(model_file, match="newer")
    assert "upgrade" in message


def test_altered_metadata_without_tensors_changes(model_file):
    data = model_file.read_bytes()
    _, header = header_of(data)
    header["__metadata__"]["sha256"] = "0" * 64
    model_file.write_bytes(with_header(data, header))
    assert_one_line_error(model_file, match="checksum")


@pytest.mark.parametrize("change", ["wrong shape", "missing tensor", "bad activation", "no config",
                                    "meta not json", "meta a list", "bad version"])
def test_inconsistent_files_are_refused(tmp_path, change):
    net = make_net()
    tensors = dict(net.params)
    meta = {"config": net.config, "metadata": net.metadata}
    path = tmp_path / "m.safetensors"
    if change == "wrong shape":
        tensors["W2"] = np.zeros((6, 5), np.float32)
    elif change == "missing tensor":
        del tensors["b3"]
    elif change == "bad activation":
        meta["config"] = {**net.config, "activation": "swish"}
    elif change == "no config":
        del meta["config"]
    io.write_file(path, tensors, meta)
    if change in ("meta not json", "meta a list", "bad version"):
        data = path.read_bytes()
        _, header = header_of(data)
        key, value = {"meta not json": ("meta", "{not json"), "meta a list": ("meta", "[1, 2]"),
                      "bad version": ("format_version", "one")}[change]
        header["__metadata__"][key] = value
        path.write_bytes(with_header(data, header))
    assert_one_line_error(path, match="damaged")


@pytest.mark.parametrize("change", ["metadata a list", "metadata a string", "offsets infinite"])
def test_crafted_files_are_model_file_errors(tmp_path, change):
    net = make_net()
    path = tmp_path / "m.safetensors"
    metadata = {"metadata a list": [1, 2], "metadata a string": "abc"}.get(change, {})
    io.write_file(path, dict(net.params), {"config": net.config, "metadata": metadata})
    if change == "offsets infinite":
        data = path.read_bytes()
        _, header = header_of(data)
        header["W1"]["data_offsets"] = [0, float("inf")]
        path.write_bytes(with_header(data, header))
    with pytest.raises(ModelFileError):
        ffnn.Network.load(path)


# -- fuzzing ----------------------------------------------------------------------------------------------
_VALID = {}


def valid_bytes():
    if not _VALID:
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            make_net().save(os.path.join(d, "m.safetensors"))
            with open(os.path.join(d, "m.safetensors"), "rb") as f:
                _VALID["data"] = f.read()
        _VALID["n"] = header_of(_VALID["data"])[0]
    return _VALID["data"], _VALID["n"]


def load_bytes(tmp_path, data):
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(data)
    return ffnn.Network.load(path)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.one_of(
    st.binary(max_size=600),
    # a plausible length prefix followed by junk
    st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=300)).map(lambda t: struct.pack("<Q", t[0]) + t[1]),
    st.tuples(st.integers(0, 300), st.binary(max_size=300)).map(lambda t: struct.pack("<Q", t[0]) + t[1]),
))
def test_random_bytes_always_raise_model_file_error(tmp_path, data):
    with pytest.raises(ModelFileError):
        load_bytes(tmp_path, data)


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))
def test_mutated_tensor_bytes_always_raise_model_file_error(tmp_path, edits):
    data, n = valid_bytes()
    damaged = bytearray(data)
    start = 8 + n
    for where, xor in edits:
        damaged[start + int(where * (len(data) - start))] ^= xor
    if bytes(damaged) == data:  # two edits cancelled out
        return
    with pytest.raises(ModelFileError):
        load_bytes(tmp_path, bytes(damaged))


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.floats(0, 1, exclude_max=True)))
def test_mutated_files_raise_model_file_error_or_load_the_same_parameters(tmp_path, edits, cut):
    data, _ = valid_bytes()
    damaged = bytearray(data)
    for where, xor in edits:
        damaged[int(where * len(data))] ^= xor
    if cut is not None:
        damaged = damaged[:int(cut * len(data))]
    try:
        net = load_bytes(tmp_path, bytes(damaged))
    except ModelFileError as exc:
        assert "\n" not in str(exc)
        return
    # a change that only touched the header's text (say, a class name) may still load: never other weights
    original = make_net()
    for key, value in original.params.items():
        assert np.array_equal(net.params[key], value)


# -- checkpoints ------------------------------------------------------------------------------------------
def blobs(n=60):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    return rng.normal(0, 3, size=(3, 4))[y] + rng.normal(0, 0.3, size=(n, 4)), y


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "sgd"])
def test_checkpoint_round_trip_restores_optimizer_and_trainer(tmp_path, optimizer):
    X, y = blobs()
    net = make_net()
    trainer = Trainer(net, get_optimizer(optimizer, 0.01), epochs=3, batch_size=16, patience=5, seed=4,
                      verbose=0)
    trainer.fit(X, y)
    path = tmp_path / "checkpoint.safetensors"
    io.save_checkpoint(path, net, trainer, extra={"run": "x"})

    net2, state, extra = io.load_checkpoint(path)
    assert extra == {"run": "x"}
    assert np.array_equal(net2.theta, net.theta) and net2.metadata == net.metadata
    trainer2 = Trainer(net2, get_optimizer(optimizer, 0.5), epochs=3, batch_size=16, patience=5, seed=99,
                       verbose=0)
    trainer2.load_state_dict(state)
    assert trainer2.epoch == 3
    assert trainer2.history.rows == trainer.history.rows
    assert trainer2.best_loss == trainer.best_loss and trainer2.wait == trainer.wait
    assert np.array_equal(trainer2.best_theta, trainer.best_theta)
    assert trainer2.rng.bit_generator.state == trainer.rng.bit_generator.state
    opt, opt2 = trainer.optimizer, trainer2.optimizer
    assert opt2.t == opt.t and opt2.learning_rate == opt.learning_rate
    assert sorted(opt2.state) == sorted(opt.state)
    assert (len(opt.state) > 0) == (optimizer != "sgd")
    for key in opt.state:
        assert np.array_equal(opt2.state[key], opt.state[key])

    # and the two continue identically
    trainer.epochs = trainer2.epochs = 5
    trainer.fit(X, y)
    trainer2.fit(X, y)
    assert np.array_equal(net.theta, net2.theta)


def test_model_file_is_not_a_checkpoint(model_file):
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        io.load_checkpoint(model_file)


def test_checkpoint_loads_as_a_model(tmp_path):
    X, y = blobs()
    net = make_net()
    trainer = Trainer(net, get_optimizer("adam", 0.01), epochs=1, batch_size=16, seed=0, verbose=0)
    trainer.fit(X, y)
    io.save_checkpoint(tmp_path / "c.safetensors", net, trainer)
    assert np.array_equal(ffnn.Network.load(tmp_path / "c.safetensors").theta, net.theta)


# -- atomicity --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch, target):
    path = tmp_path / "model.safetensors"
    old = make_net(seed=0)
    old.save(path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, target, fail)
    with pytest.raises(OSError):
        make_net(seed=1).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]
    assert np.array_equal(ffnn.Network.load(path).theta, old.theta)


def test_failed_write_mid_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    make_net(seed=0).save(path)
    before = path.read_bytes()
    real_atomic_write = fsutil.atomic_write

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            raise OSError(5, "Input/output error")

    import contextlib

    @contextlib.contextmanager
    def broken(path, mode="wb"):
        with real_atomic_write(path, mode) as f:
            yield HalfWriter(f)

    monkeypatch.setattr(fsutil, "atomic_write", broken)
    with pytest.raises(OSError):
        make_net(seed=1).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_numpy_values_in_metadata_are_saved_as_json_values(tmp_path):
    import ffnn

    net = ffnn.Network([4, 3], seed=0)
    net.metadata["class_names"] = np.array(["setosa", "versicolor", "virginica"])
    net.save(tmp_path / "m.safetensors", metadata={"n": np.int64(3), "rate": np.float32(0.5),
                                                   "counts": {np.int64(0): 5}})
    meta = ffnn.Network.load(tmp_path / "m.safetensors").metadata
    assert meta["class_names"] == ["setosa", "versicolor", "virginica"] and meta["n"] == 3 and meta["rate"] == 0.5
    assert meta["counts"] == {"0": 5}
    with pytest.raises(TypeError, match="metadata values must be numbers, strings, lists or mappings; got object"):
        net.save(tmp_path / "bad.safetensors", metadata={"x": object()})
    assert not (tmp_path / "bad.safetensors").exists()


@pytest.mark.parametrize("edit", [('"relu"', '"tanh"'), ("Trouser", "Sandals"), ("0.25", "0.75")])
def test_edited_settings_are_refused_by_the_checksum(tmp_path, edit):
    # the activation of the architecture, a class name, a feature scale: each would change every prediction
    net = make_net()
    path = tmp_path / "m.safetensors"
    net.save(path)
    data = path.read_bytes()
    n, header = header_of(data)
    meta = header["__metadata__"]["meta"]
    old, new = edit
    assert old in meta
    header["__metadata__"]["meta"] = meta.replace(old, new, 1)
    path.write_bytes(with_header(data, header))
    assert_one_line_error(path, match="do not match their checksum")


def test_format_1_files_still_load(tmp_path):
    from safetensors.numpy import save_file

    net = make_net()
    tensors = {k: np.ascontiguousarray(v) for k, v in net.params.items()}
    meta = json.dumps({"config": net.config, "metadata": net.metadata}, sort_keys=True)
    path = tmp_path / "old.safetensors"
    save_file(tensors, path, metadata={"format": "ffnn", "format_version": "1", "sha256": io._digest(tensors),
                                       "meta": meta})
    loaded = ffnn.Network.load(path)
    np.testing.assert_array_equal(loaded.theta, net.theta)
    assert loaded.metadata["class_names"] == CLASS_NAMES


def test_a_huge_architecture_is_refused_before_it_is_allocated(tmp_path):
    import resource

    net = make_net()
    path = tmp_path / "m.safetensors"
    io.write_file(path, dict(net.params), {"config": {**net.config, "sizes": [4, 100_000, 100_000, 3]},
                                           "metadata": {}})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert_one_line_error(path, match="W1 has shape (6, 4), expected (100000, 4)")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: no 40 GB network


def test_deeply_nested_or_endless_input_is_a_model_file_error(tmp_path):
    path = tmp_path / "deep.safetensors"
    raw = b"[" * 200_000
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert_one_line_error(path, match="unreadable header")
    with pytest.raises(ModelFileError, match="not a model file"):
        ffnn.Network.load("/dev/zero")  # read no further than its header says


def test_parameters_of_another_type_than_the_architecture_are_refused(tmp_path):
    net = make_net()
    path = tmp_path / "m.safetensors"
    io.write_file(path, {k: v.astype(np.float64) for k, v in net.params.items()},
                  {"config": net.config, "metadata": {}})
    assert_one_line_error(path, match="parameters of type float64, its architecture says float32")
