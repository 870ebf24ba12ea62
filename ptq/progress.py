"""Progress of long commands (``ptq ab``, ``gate-quality``, ``diagnose``) as plain lines with
elapsed time and an estimate of what is left: one line per step, never a ``\\r`` rewrite, so a
CI log (which keeps every byte) reads as well as a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

__all__ = ["Progress", "duration", "parse_duration"]


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a log line."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, *, option: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``1h`` or ``1h30m`` (a time budget's value). Anything
    else, zero, negative, NaN or infinite is a :class:`ValueError` naming ``option`` and the form."""
    import math
    import re

    raw = text.strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", raw)
    if not raw or parts is None or not any(parts.groups()):
        raise ValueError(f"{option}={text!r}: give a duration such as 600, 90s, 10m or 1h30m")
    seconds = sum(float(v) * _UNITS[u] for v, u in zip(parts.groups(), "hms", strict=True) if v)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{option}={text!r}: a budget must be a positive duration, e.g. 10m")
    return seconds


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Progress:
    """``total`` steps of similar cost: the time left is the mean step so far times the steps left."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        emit: Callable[[str], None] = _stderr,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.done = label, total, 0
        self._emit, self._clock = emit, clock
        self._started = clock()

    def summary(self) -> str:
        elapsed = self._clock() - self._started
        left = (
            f"about {duration(elapsed / self.done * (self.total - self.done))} left"
            if self.done
            else "time left known after the first step"
        )
        return f"{self.done}/{self.total} done, {duration(elapsed)} elapsed, {left}"

    def step(self, note: str = "", *, steps: int = 1) -> None:
        """``steps`` steps done (one by default): say so, with what they were."""
        self.done += steps
        self._emit(f"{self.label}: {self.summary()}" + (f" ({note})" if note else ""))
