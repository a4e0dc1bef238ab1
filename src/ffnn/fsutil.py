"""Atomic file writes: a temporary file in the same folder, fsync, then rename over the target.

A failure at any point leaves the previous file (if any) untouched and removes the temporary file. A symbolic link
is followed (the file it points to is replaced, the link stays), and something that is not a regular file, such as
/dev/stdout or a named pipe, is written to directly: it has no previous contents to keep.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically.

    Usage: ``with atomic_write(p, "w") as f: f.write(...)``.
    """
    given = os.fspath(path)
    path = os.path.realpath(given)
    if os.path.isdir(path):
        raise IsADirectoryError(21, "is a folder, not a file", given)
    if _stream(given, path):  # appended to: /dev/stdout may stand for a file the shell opened to append to
        with open(given, mode.replace("w", "a"), **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
        return
    folder = os.path.dirname(path)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(20, "not a folder", folder)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _chmod_like_new_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _stream(given, real):
    # /dev/stdout and the like, a named pipe, a device: written to as they are, not replaced
    return given.startswith("/dev/") or real.startswith(("/proc/", "/dev/")) or \
        (os.path.exists(real) and not os.path.isfile(real))


def read_json(path):
    """The value in a JSON file, or None when there is none or it cannot be read."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def _chmod_like_new_file(tmp):
    # mkstemp creates 0600 files; give the result the permissions open() would have (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _fsync_dir(folder):
    # Make the rename itself durable; not every platform allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
