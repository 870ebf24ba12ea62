"""Where ptq keeps what it makes once (trained weights), and atomic file writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "cache_dir"]


def cache_dir() -> Path:
    """``$PTQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/ptq``, else ``~/.cache/ptq``."""
    root = os.environ.get("PTQ_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "ptq")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Write through ``write(fileobj)`` to a temporary file beside ``path``, then rename.

    A crash mid-write leaves the old file intact; readers never see half a file. The file gets
    the mode a plain ``open`` would give it (``0o666`` less the umask), not ``mkstemp``'s 0600.
    The temporary file is removed on any exception (Ctrl-C included); only a kill -9 leaves
    one, named ``.<name>.*.tmp`` (ignored by git under ``results/``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
