"""A third party's registrations, reached only through the entry points of test_registration."""

from __future__ import annotations

from ptq.config.sections import Range, Section
from ptq.gate.judges import JUDGES, Judge
from ptq.probes import Probe

__all__ = ["CLASHING_PROBE", "JUDGE", "NOT_A_PROBE", "PROBE", "SECTION", "params"]


def params(prepared, result, options) -> int:
    """A probe a user might add: the model's parameter count."""
    return sum(p.numel() for p in prepared.model.parameters())


PROBE = Probe("params", f"{__name__}:params", "parameter count")
CLASHING_PROBE = Probe("speedup", params)
NOT_A_PROBE = 42
JUDGE = Judge("params", JUDGES[0].extract, JUDGES[0].judge)
SECTION = Section("energy", keys={"max_joules": (int, float)}, bounds={"max_joules": Range(0, why="joules")})
