"""Where ptq keeps what it makes once (trained weights), and atomic file writes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "cache_dir", "remove_stale_temporaries"]


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


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM, whose default ends the process on the spot, raises KeyboardInterrupt for the
    write's duration (as Ctrl-C does), so the temporary file is removed and the caller says so.
    Only from the main thread, and only where SIGTERM still has its default action."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _temporaries(path: Path) -> list[Path]:
    """``path``'s temporary files, ``.<name>.*.tmp`` beside it (``mkstemp``'s names)."""
    prefix = f".{path.name}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [
        path.parent / n
        for n in names
        if n.startswith(prefix) and n.endswith(".tmp") and len(n) > len(prefix) + len(".tmp")
    ]


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files a killed write of ``path`` left (``kill -9``, a power cut); the ones removed.

    A writer holds an exclusive ``flock`` on its temporary file until it is renamed into place,
    and the kernel drops the lock when its process dies however it dies: a temporary file whose
    lock can be taken has no live writer. One another process is writing now is left alone.
    """
    removed = []
    for tmp in _temporaries(Path(path)):
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue  # gone already, a link, or not ours to read
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            with contextlib.suppress(FileNotFoundError):
                if os.stat(tmp, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    tmp.unlink()
                    removed.append(tmp)
        finally:
            os.close(fd)
    return removed


def _locked_temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path``, open and ``flock``-ed. Retried where a cleaner removed
    it between its creation and the lock (it then held the lock first and saw no writer)."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Write through ``write(fileobj)`` to a temporary file beside ``path``, then rename.

    The one way ptq writes a file. A crash mid-write leaves the old file intact; readers never
    see half a file. A new file gets the mode a plain ``open`` would give it (``0o666`` less the
    umask, not ``mkstemp``'s 0600); an existing one keeps its own, and a symbolic link is followed
    (its target is replaced, the link stays). The temporary file, ``.<name>.*.tmp``, is removed on
    any exception (Ctrl-C included; SIGTERM is turned into KeyboardInterrupt meanwhile, so it is
    too); only a ``kill -9`` leaves one, and the next write of the same path removes it
    (:func:`remove_stale_temporaries`). Returns ``path`` as given.
    """
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    remove_stale_temporaries(target)
    with _sigterm_interrupts():
        fd, tmp = _locked_temporary(target)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
                os.fchmod(fh.fileno(), mode)
                os.replace(tmp, target)  # before close: the lock is held until the name is the target's
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return given
