"""Measurement defaults that command-line options show, in a module that imports nothing heavy:
``ptq --help`` builds every command's options without importing torch."""

from __future__ import annotations

__all__ = ["DEFAULT_BUDGET", "DEFAULT_MAX_VISITS", "DEFAULT_PAIR_TIME", "DEFAULT_QUIET_EXTRA", "DEFAULT_RERUN_TARGET"]

#: Seconds of interleaved fp32/quantized pairs per case (``--ptq-pair-time``, :mod:`ptq.probes.speedup`).
DEFAULT_PAIR_TIME = 1.5

#: Visits per case beyond ``--ptq-placements``, made in the same budget, so that the figures can come
#: from the visits a memory-bandwidth meter found quietest (``--ptq-quiet-extra``,
#: :mod:`ptq.probes.bandwidth`). Off by default: with 6 (half the visits kept), five runs held their
#: speedups no closer than without it (docs/methodology.md, "Memory bandwidth").
DEFAULT_QUIET_EXTRA = 0

#: A case whose speedup's rerun interval is wider than its median +-4% after the scheduled visits
#: gets more, up to ``DEFAULT_MAX_VISITS`` (``--ptq-rerun-target``, ``--ptq-max-visits``). 4%: an
#: interval that narrow keeps five runs' figures within about 5% of each other (max/min).
DEFAULT_RERUN_TARGET = 0.04
DEFAULT_MAX_VISITS = 18

#: The session's wall-clock budget (``--ptq-budget``): the speedup visits beyond each case's
#: scheduled ones, made for ``--ptq-rerun-target``, stop where the next would end past it. Ten
#: minutes: a pull request's main job is a verdict in about that, not the better part of an hour;
#: a case it leaves short of the target says "budget" in its row and record.
DEFAULT_BUDGET = "10m"
