import os

import pytest

from ffnn import fsutil
from ffnn.fsutil import atomic_write, write_bytes, write_text


def test_atomic_write_creates_and_replaces(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    with atomic_write(path, "w") as f:
        f.write("first\n")
    assert path.read_text() == "first\n"
    with atomic_write(path, "w") as f:
        f.write("second\n")
        assert path.read_text() == "first\n"  # not visible before the block ends
    assert path.read_text() == "second\n"
    assert os.listdir(path.parent) == ["f.txt"]


class Boom(Exception):
    pass


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_failure_inside_the_block_keeps_old_content_and_removes_temp(tmp_path, exc):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(exc):
        with atomic_write(path) as f:
            f.write(b"new, half written")
            raise exc()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_failure_inside_the_block_creates_nothing_when_there_was_no_file(tmp_path):
    with pytest.raises(Boom):
        with atomic_write(tmp_path / "new.txt", "w") as f:
            f.write("x")
            raise Boom()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_failure_while_committing_keeps_old_content(tmp_path, monkeypatch, target):
    path = tmp_path / "f.txt"
    write_text(path, "old")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, target, fail)
    with pytest.raises(OSError):
        write_text(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_write_bytes_and_text(tmp_path):
    write_bytes(tmp_path / "b", b"\x00\xff")
    assert (tmp_path / "b").read_bytes() == b"\x00\xff"
    write_text(tmp_path / "t", "caf\u00e9\nline\r\n")
    assert (tmp_path / "t").read_bytes() == "caf\u00e9\nline\r\n".encode("utf-8")


def test_a_regular_file_under_dev_is_replaced_not_appended(tmp_path):
    import os

    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        return
    path = f"/dev/shm/ffnn-test-{os.getpid()}.txt"
    try:
        fsutil.write_text(path, "first\n")
        fsutil.write_text(path, "second\n")
        assert open(path).read() == "second\n"
    finally:
        os.unlink(path)


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "private.txt"
    fsutil.write_text(path, "one")
    os.chmod(path, 0o600)
    fsutil.write_text(path, "two")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and path.read_text() == "two"
