"""Verified downloads: stream to a temporary file, check SHA-256, then rename into place.

The file at ``dest`` only ever appears complete and verified; an interrupted or corrupt
transfer leaves nothing there (and its temporary file is removed).
"""

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request

from ..errors import ConfigError, DataError
from ..fsutil import atomic_write

_CHUNK = 1 << 16
_HEX64 = re.compile(r"[0-9a-f]{64}")


def download(url, dest, sha256, timeout=30.0, progress=False):
    """Download ``url`` to ``dest`` if its SHA-256 is ``sha256``.

    Parameters
    ----------
    url : str
    dest : str or os.PathLike
        Final path; its folder is created if needed.
    sha256 : str
        Expected hex digest of the whole file.
    timeout : float
        Seconds to wait for the connection and for each read.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    str
        ``dest``.

    Raises
    ------
    DataError
        Network or HTTP failure, short transfer, or checksum mismatch; ``dest`` is untouched.
    """
    dest = os.fspath(dest)
    expected = str(sha256).strip().lower()
    if not _HEX64.fullmatch(expected):
        raise ConfigError(f"sha256 must be 64 hex digits, got {sha256!r}")
    # atomic_write streams into a temporary file beside dest, fsyncs it, and renames it over
    # dest only if the block finishes; any exception removes the temporary file.
    with atomic_write(dest, "wb") as f:
        digest, size = _stream(url, f, timeout, progress, os.path.basename(dest))
        if digest != expected:
            raise DataError(
                f"{url}: SHA-256 mismatch (expected {expected}, got {digest}, {size} bytes); download discarded"
            )
    return dest


def _stream(url, f, timeout, progress, label):
    """Copy the body of ``url`` into ``f``; return (sha256 hex digest, byte count)."""
    h = hashlib.sha256()
    size = 0
    bar = None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=length, unit="B", unit_scale=True, desc=label, leave=False)
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                h.update(chunk)
                size += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise DataError(f"{url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise DataError(f"{url}: {_reason(e.reason)}") from e
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DataError(f"{url}: {_reason(e)}") from e
    finally:
        if bar is not None:
            bar.close()
    if length is not None and size != length:
        raise DataError(f"{url}: transfer interrupted after {size} of {length} bytes")
    return h.hexdigest(), size


def _reason(e):
    if isinstance(e, BaseException):
        text = str(e) or type(e).__name__
        if isinstance(e, http.client.IncompleteRead):
            text = f"transfer interrupted after {len(e.partial)} bytes"
        return text.splitlines()[0]
    return str(e)
