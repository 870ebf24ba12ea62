"""Probes: measurements run on a case after its timed rounds (drift, memory, size...).

This package holds the built-in probes' code, one module each; the registry they are listed in,
:func:`register_probe` and the runner live in :mod:`ptq.run.probing` (the measuring layer, which
imports no probe: each built-in is named by a ``"module:function"`` string, resolved when it
first runs). ``ptq.probes`` keeps the public names a conftest uses.
"""

from __future__ import annotations

from ptq.run.probing import (
    BUILTIN_PROBES,
    CheckFailed,
    Probe,
    list_probes,
    quantize_monitors,
    register_probe,
    run_probes,
)

__all__ = ["BUILTIN_PROBES", "CheckFailed", "Probe", "list_probes", "quantize_monitors", "register_probe", "run_probes"]
