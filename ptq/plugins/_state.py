"""The pytest session's ptq state, kept in ``config.stash[STATE]``: ``ptq.pytest_plugin`` makes it,
the feature plugins beside this module read it (here, below both, so neither imports the other's module)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from ptq.run.workbench import RunOptions, Workbench
from ptq.storage.results import CaseResult

__all__ = ["STATE", "PluginState"]


@dataclass
class PluginState:
    options: RunOptions
    matrix: str | None  # None until collection: then the default (:func:`ptq.run.matrix.default_matrix`)
    models: str | None
    recipes: str | None
    results: list[CaseResult] = field(default_factory=list)
    workbench: Workbench | None = None
    selection_error: str | None = None
    #: When the session began (time.monotonic) and its --ptq-budget in seconds (None: no budget).
    started: float = field(default_factory=time.monotonic)
    budget_s: float | None = None
    #: The ptq cases collected and those run so far, for the progress lines.
    total_cases: int = 0
    done_cases: int = 0
    #: Whether collection made ptq cases (then the config's model and recipe names are checked).
    collected_cases: bool = False
    #: Each recorded case's ``benchmark.extra_info``: refreshed once the speedup visits are made.
    extra_infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Why each case ptq skipped was skipped (its id leads the reason), for the terminal summary.
    skipped: list[str] = field(default_factory=list)


STATE = pytest.StashKey[PluginState]()
