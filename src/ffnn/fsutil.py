"""Atomic file writes: a temporary file in the same folder, fsync, then rename over the target.

A failure at any point leaves the previous file (if any) untouched and removes the temporary file. A symbolic link
is followed (the file it points to is replaced, the link stays), and something that is not a regular file, such as
/dev/stdout or a named pipe, is written to directly: it has no previous contents to keep.
"""

import contextlib
import json
import os
import tempfile

from .errors import ConfigError


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
        with open(given, mode.replace("w", "a"), **_text_args(mode)) as f:
            yield f
        return
    folder = os.path.dirname(path)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(20, "not a folder", folder)
    os.makedirs(folder, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    except OSError as exc:  # named after the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, given) from None
    try:
        with os.fdopen(fd, mode, **_text_args(mode)) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _chmod_like(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _text_args(mode):
    return {} if "b" in mode else {"encoding": "utf-8", "newline": ""}


def _stream(given, real):
    # A device, a named pipe, or /dev/stdout and the like (links into /proc/self/fd, which stand for whatever the
    # shell opened, a file to append to, say): written to as they are, not replaced. A regular file under /dev
    # (/dev/shm) is replaced like any other.
    if (os.path.exists(real) and not os.path.isfile(real)) or real.startswith("/proc/"):
        return True
    try:
        target = os.readlink(given)
    except OSError:
        target = ""
    return target.startswith("/proc/") or os.path.realpath(os.path.dirname(given) or ".").startswith("/proc/")


def require_folder(path):
    """A file the user names goes into a folder that exists: a typo must not create folders (atomic_write would)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"{path}: no folder {folder}; create it first, or write elsewhere")


def read_json(path):
    """The value in a JSON file, or None when there is none or it cannot be read."""
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


def _chmod_like(tmp, path):
    # mkstemp creates 0600 files: give the result the permissions of the file it replaces, or those open() would
    # give a new one (0666 less the umask)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def _fsync_dir(folder):
    # Make the rename itself durable; not every platform allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
