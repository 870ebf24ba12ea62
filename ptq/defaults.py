"""Measurement defaults that command-line options show, in a module that imports nothing heavy:
``ptq --help`` builds every command's options without importing torch."""

from __future__ import annotations

__all__ = ["DEFAULT_PAIR_TIME", "DEFAULT_QUIET_EXTRA"]

#: Seconds of interleaved fp32/quantized pairs per case (``--ptq-pair-time``, :mod:`ptq.probes.speedup`).
DEFAULT_PAIR_TIME = 1.5

#: Visits per case beyond ``--ptq-placements``, made in the same budget, so that the figures can come
#: from the visits a memory-bandwidth meter found quietest (``--ptq-quiet-extra``,
#: :mod:`ptq.probes.bandwidth`). 6: half the visits kept.
DEFAULT_QUIET_EXTRA = 6
