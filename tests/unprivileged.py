"""Commands run as a user whom file permissions bind: the tests of paths ptq cannot read or write.

Root reads and writes whatever the mode bits say, so run as root a "read-only directory" test would
test nothing; there the command runs as ``nobody`` (``setpriv``), in a workspace that user may
use. Elsewhere it runs as the user running the tests. Where neither can be had, the test is skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


def _setpriv() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot run the command as a user that permissions bind")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A fresh directory the command's user may write in (removed afterwards, modes restored)."""
    top = Path(tempfile.mkdtemp(prefix="ptq-perm-"))
    try:
        for parent in top.parents:  # the unprivileged user must reach it
            if os.geteuid() == 0 and not os.stat(parent).st_mode & stat.S_IXOTH:
                pytest.skip(f"{parent} is not traversable by other users: no workspace for an unprivileged user")
        top.chmod(0o777)
        (top / "home").mkdir(mode=0o777)
        (top / "home").chmod(0o777)
        (top / "project").mkdir()
        (top / "project").chmod(0o777)
        yield top / "project"
    finally:
        for path in (top, *top.rglob("*")):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o777)
        shutil.rmtree(top, ignore_errors=True)


def run(argv: Sequence[str | Path], cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    """``argv`` in ``cwd`` (a :func:`workspace`'s project) as the unprivileged user, with a home,
    cache and temporary directory of its own beside the project."""
    home = cwd.parent / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        HOME=str(home),
        PTQ_CACHE_DIR=str(home / "ptq"),
        XDG_CACHE_HOME=str(home / "cache"),
        TMPDIR=str(home),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        [*_setpriv(), *map(str, argv)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs
    )


def ptq(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``ptq ARGS`` as :func:`run` runs it."""
    return run([sys.executable, "-m", "ptq.cli", *args], cwd)


def read_only(path: Path) -> Path:
    """``path`` (a directory) made read-only for its users: r-x, no w."""
    path.chmod(0o555)
    return path


def tree(root: Path) -> dict[str, object]:
    """Every file under ``root`` with its bytes (directories: None; a file this process may not
    read: its size and modification time), for before/after comparisons."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        try:
            out[str(path.relative_to(root))] = None if path.is_dir() else path.read_bytes()
        except PermissionError:
            info = path.stat()
            out[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return out
