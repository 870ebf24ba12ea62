"""Measurement defaults that command-line options show, in a module that imports nothing heavy:
``ptq --help`` builds every command's options without importing torch."""

from __future__ import annotations

__all__ = ["DEFAULT_PAIR_TIME"]

#: Seconds of interleaved fp32/quantized pairs per case (``--ptq-pair-time``, :mod:`ptq.probes.speedup`).
DEFAULT_PAIR_TIME = 1.5
