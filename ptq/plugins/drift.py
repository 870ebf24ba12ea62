"""Drift feature hooks: prints a drift table after the run (the probe is in ptq.probes)."""

from __future__ import annotations

from typing import Any

import pytest

from ptq.probes.drift.report import drift_table


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    from ptq.plugins._state import STATE

    state = config.stash.get(STATE, None)
    rows = [r.to_extra_info() for r in state.results] if state is not None else []
    if not any("drift" in r["metrics"] for r in rows):
        return
    terminalreporter.write_sep("-", "ptq: drift from fp32 on the evaluation split")
    terminalreporter.write_line(drift_table(rows))
