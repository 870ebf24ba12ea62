"""pytest options of the regression gate: save the run or a baseline, compare at session end.

``--ptq-compare`` fails the session (exit status 1) on a regression; a corrupt baseline or
another bad input is a usage error (exit status 4) naming the file. The run is rebuilt from
pytest-benchmark's own hooks with raw samples, so it is the same JSON ``--benchmark-json`` writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from ptq.cache import atomic_write
from ptq.comparison import Comparison, compare, render
from ptq.errors import PtqError
from ptq.runs import Run, baseline_path, load_run, parse_run, save_baseline, save_run

__all__ = ["GATE", "GateState"]

AUTO = "auto"


@dataclass
class GateState:
    comparison: Comparison | None = None
    messages: list[str] = field(default_factory=list)
    error: str | None = None


GATE = pytest.StashKey[GateState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ptq", "ptq quantization benchmarks")
    group.addoption("--ptq-compare", nargs="?", const=AUTO, default=None, metavar="BASELINE",
                    help="at session end, judge this run against BASELINE (default: results/baselines/"
                         "<fingerprint>.json) and fail the session on a regression")
    group.addoption("--ptq-compare-md", default=None, metavar="PATH",
                    help="also write the comparison as Markdown to PATH (e.g. $GITHUB_STEP_SUMMARY)")
    group.addoption("--ptq-save-baseline", nargs="?", const=AUTO, default=None, metavar="PATH",
                    help="merge this run's cases into the baseline of its fingerprint (or PATH), atomically")
    group.addoption("--ptq-save-run", action="store_true", default=False,
                    help="save this run with raw samples as results/runs/<time>-<fingerprint>.json")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[GATE] = GateState()


def _wanted(config: pytest.Config) -> bool:
    return any(config.getoption(o) for o in ("--ptq-compare", "--ptq-save-baseline", "--ptq-save-run"))


def _run_json(config: pytest.Config) -> dict[str, Any] | None:
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or bs.disabled or not bs.benchmarks:
        return None
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    output = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=bs.benchmarks, include_data=True,
        machine_info=bs.get_machine_info(), commit_info=commit_info,
    )
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=bs.benchmarks, output_json=output)
    return json.loads(json.dumps(output, default=str))


def _gate(config: pytest.Config, state: GateState, data: dict[str, Any]) -> None:
    root = config.rootpath
    current = parse_run(json.loads(json.dumps(data)), "(this session)")
    target = config.getoption("--ptq-compare")
    if target:
        if target == AUTO:
            own = baseline_path(root, current.fingerprint)
            baseline = load_run(own) if own.exists() else Run(f"{own} (none yet)", current.fingerprint, current.environment, {})
        else:
            baseline = load_run(target)
        from ptq.config import load_config

        state.comparison = compare(baseline, current, config=load_config(root))
        md = config.getoption("--ptq-compare-md")
        if md:
            text = render(state.comparison, "md").encode()
            atomic_write(md, lambda fh: fh.write(text))
    if config.getoption("--ptq-save-run"):
        state.messages.append(f"saved run: {save_run(root, data)}")
    saving = config.getoption("--ptq-save-baseline")
    if saving:
        written = save_baseline(root, data, path=None if saving == AUTO else saving)
        state.messages.append(f"saved baseline ({len(current.cases)} case(s) merged): {written}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(GATE, None)
    if state is None or not _wanted(config):
        return
    data = _run_json(config)
    if data is None:
        state.messages.append("ptq gate: no timed benchmark ran (--benchmark-disable?); nothing compared or saved")
        return
    try:
        _gate(config, state, data)
    except PtqError as exc:
        state.error = str(exc)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    if state.comparison is not None and state.comparison.regressions and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(GATE, None)
    if state is None:
        return
    if state.comparison is not None:
        terminalreporter.write_sep("-", "ptq: regression gate (0 ok, 1 regression, 4 bad input)")
        terminalreporter.write_line(render(state.comparison, "text"))
    for message in state.messages:
        terminalreporter.write_line(message)
    if state.error:
        terminalreporter.write_line(f"ptq gate: error: {state.error}", red=True)
