"""The fastest path per model (``ptq.fastest``) in the terminal and in the run JSON
(``ptq.fastest``), computed once at the end of the session; the torch paths it picks are profiled
with the session's thread count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import torch

from ptq.plugins._state import STATE
from ptq.probes.fastest import fastest_paths, fastest_table, top_operators
from ptq.recipes import get_recipe
from ptq.run.matrix import Case
from ptq.run.workbench import Workbench

SUMMARY = pytest.StashKey[list[dict[str, Any]]]()


def _profiler(workbench: Workbench, threads: int):
    def profile(model: str, recipe: str) -> Sequence[Mapping[str, Any]]:
        prepared = workbench.prepare(Case(model, recipe))  # cached: nothing is quantized again
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return top_operators(prepared.model, prepared.inputs)
        except Exception as exc:  # recorded in the summary, never silently dropped
            return [
                {"op": f"profile failed: {type(exc).__name__}: {exc}"[:200], "self_ms_per_call": None, "share": 0.0}
            ]
        finally:
            torch.set_num_threads(previous)

    return profile


def _summary(config: pytest.Config) -> list[dict[str, Any]]:
    if SUMMARY not in config.stash:
        state = config.stash.get(STATE, None)
        results = state.results if state else []
        profile = _profiler(state.workbench, state.options.threads) if state and state.workbench else None
        found = fastest_paths(results, lambda r: get_recipe(r).precision(), profile)
        config.stash[SUMMARY] = [s.to_dict() for s in found]
    return config.stash[SUMMARY]


@pytest.hookimpl(optionalhook=True, trylast=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    if "ptq" in output_json:
        output_json["ptq"]["fastest"] = _summary(config)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    summary = _summary(config)
    if summary:
        terminalreporter.write_sep(
            "-", "ptq: fastest in-tolerance path per model and stack (paired speedup over eager fp32)"
        )
        terminalreporter.write_line(fastest_table(summary))
