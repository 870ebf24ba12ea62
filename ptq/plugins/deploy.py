"""Deployment forms and peers: the speedup over each model's best fp32 form, in the JSON
(``extra_info["speedup_vs_best_fp32"]``) and in a terminal table."""

from __future__ import annotations

from typing import Any

import pytest

from ptq.plugins._state import STATE
from ptq.probes.best_fp32 import best_fp32_speedups
from ptq.recipes import get_recipe
from ptq.render.tables import format_table


def _is_float(recipe: str) -> bool:
    return not get_recipe(recipe).quantizes()


def _speedups(config: pytest.Config) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    state = config.stash.get(STATE, None)
    if state is None:
        return [], {}
    return state.results, best_fp32_speedups(state.results, _is_float)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    _, found = _speedups(config)
    for bench in output_json.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if info.get("case") in found:
            info["speedup_vs_best_fp32"] = found[info["case"]]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results, found = _speedups(config)
    if not found:
        return
    rows = []
    for r in results:
        if r.case not in found:
            continue
        s = found[r.case]
        deploy = r.metrics.get("deployment", {})
        rows.append(
            [
                r.model,
                r.recipe,
                r.stack,
                deploy.get("form", "-"),
                f"{r.latency.median * 1e3:.3f}",
                f"{r.speedup_vs_fp32:.2f}x" if r.speedup_vs_fp32 else "-",
                f"{s['ratio']:.2f}x" + (f" [{s['low']:.2f}, {s['high']:.2f}]" if s.get("low") is not None else ""),
                s["best_form"],
                f"{deploy['deploy_seconds']:.1f}" if "deploy_seconds" in deploy else "-",
            ]
        )
    terminalreporter.write_sep("-", "ptq: speedup over eager fp32 and over the fastest fp32 form (same run)")
    terminalreporter.write_line(
        format_table(
            [
                "model",
                "recipe",
                "stack",
                "form",
                "median ms",
                "vs eager fp32",
                "vs best fp32",
                "best fp32 form",
                "compile s",
            ],
            rows,
        )
    )
