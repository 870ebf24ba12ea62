"""pytest options of the regression gate: save the run or a baseline, compare at session end.

``--ptq-compare`` fails the session on any row that fails the gate (see :mod:`ptq.gate.comparison`):
exit status 1 on a regression or a row not measured / not compared, **6** where no baseline
applies or a case is new without ``--ptq-accept-new`` (pytest's own statuses are 0-5; ``ptq
compare`` says 3). A corrupt baseline or another bad input is a usage error (exit status 4)
naming the file. The run is rebuilt from pytest-benchmark's own hooks with raw samples, so it is
the same JSON ``--benchmark-json`` writes.

Saves are all or nothing: a session that was interrupted (Ctrl-C, SIGTERM), stopped early, had a
failing test or failed the gate saves nothing, since a half-run session would replace good
cases with partial ones. ``--ptq-save-partial`` saves the cases whose tests passed (every
probe completed) even then. A case is written only when its test passed, so a case
interrupted mid-timing never is.
"""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ptq.errors import PtqError, UserError
from ptq.gate.comparison import EXIT_NO_BASELINE, EXIT_OK, EXIT_REGRESSION, Comparison, compare_stored, render
from ptq.gate.judges import select_judges
from ptq.host.cache import atomic_write
from ptq.storage.runs import parse_run, save_baseline, save_run

__all__ = ["GATE", "PYTEST_EXIT", "GateState"]

AUTO = "auto"

#: The comparison's exit code -> the session's exit status.
PYTEST_EXIT = {EXIT_OK: pytest.ExitCode.OK, EXIT_REGRESSION: pytest.ExitCode.TESTS_FAILED, EXIT_NO_BASELINE: 6}

SAVES = ("--ptq-save-baseline", "--ptq-save-run")
#: Options whose value is a file and may swallow the next argument (``nargs='?'``).
PATH_OPTIONS = ("--ptq-compare", "--ptq-save-baseline")


@dataclass
class GateState:
    comparison: Comparison | None = None
    messages: list[str] = field(default_factory=list)
    error: str | None = None
    passed: set[str] = field(default_factory=set)  # node ids whose call phase passed ...
    failed: set[str] = field(default_factory=set)  # ... less those with a failing phase
    interrupted: str | None = None
    sigterm: Any = None  # the handler replaced while saving is wanted


GATE = pytest.StashKey[GateState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ptq", "ptq quantization benchmarks")
    group.addoption(
        "--ptq-compare",
        nargs="?",
        const=AUTO,
        default=None,
        metavar="BASELINE",
        help="at session end, judge this run against BASELINE (default: results/baselines/"
        "<fingerprint>.json) and fail the session unless every row passes (exit status 1; "
        "6 without a baseline)",
    )
    group.addoption(
        "--ptq-compare-md",
        default=None,
        metavar="PATH",
        help="also write the comparison as Markdown to PATH (e.g. $GITHUB_STEP_SUMMARY)",
    )
    group.addoption(
        "--ptq-judges",
        default=None,
        metavar="GLOBS",
        help="with --ptq-compare: the judges to run (default: memory, size and drift; two runs' "
        "latencies differ with the host's state, so latency is `ptq ab`'s unless named here)",
    )
    group.addoption(
        "--ptq-accept-new",
        action="store_true",
        default=False,
        help="with --ptq-compare: cases without a baseline figure pass (a run without any baseline still fails)",
    )
    group.addoption(
        "--ptq-save-baseline",
        nargs="?",
        const=AUTO,
        default=None,
        metavar="PATH",
        help="merge this run's cases into the baseline of its fingerprint (or PATH), atomically; "
        "only when the session passed (see --ptq-save-partial)",
    )
    group.addoption(
        "--ptq-save-run",
        action="store_true",
        default=False,
        help="save this run with raw samples as results/runs/<time>-<fingerprint>.json; only when "
        "the session passed (see --ptq-save-partial)",
    )
    group.addoption(
        "--ptq-save-partial",
        action="store_true",
        default=False,
        help="save even when the session failed or was interrupted: only the cases whose tests "
        "passed (default: such a session saves nothing)",
    )


def _check_options(config: pytest.Config) -> None:
    """Refuse what would only fail after every benchmark ran: one line naming the option."""
    for option in PATH_OPTIONS:
        value = config.getoption(option)
        if value in (None, AUTO):
            continue
        path = Path(config.invocation_params.dir, value.split("::")[0])
        if path.suffix == ".py" or "::" in value or path.is_dir():
            raise pytest.UsageError(
                f"{option}={value!r} is a test path, not a baseline file (the option takes the next argument "
                f"as its value); write {option}=PATH.json, or put the test paths first"
            )
    try:
        select_judges(config.getoption("--ptq-judges"), option="--ptq-judges")
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    for option, needs in (
        ("--ptq-save-partial", SAVES),
        ("--ptq-accept-new", ("--ptq-compare",)),
        ("--ptq-judges", ("--ptq-compare",)),
    ):
        if config.getoption(option) and not any(config.getoption(o) for o in needs):
            raise pytest.UsageError(f"{option} needs {' or '.join(needs)}")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_configure(config: pytest.Config) -> None:
    _check_options(config)
    state = config.stash[GATE] = GateState()
    # SIGTERM ends the process at once by default: in the middle of a save, or without the
    # session knowing it was cut short. As an interrupt, it takes the same path as Ctrl-C.
    if (
        any(config.getoption(o) for o in SAVES)
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        state.sigterm = signal.signal(signal.SIGTERM, _terminate)
    config.pluginmanager.register(_Outcomes(state), "ptq-gate-outcomes")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(GATE, None)
    if state is not None and state.sigterm is not None:
        signal.signal(signal.SIGTERM, state.sigterm)


class _Outcomes:
    """Which tests passed and whether the session was interrupted (these hooks get no config)."""

    def __init__(self, state: GateState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.state.failed.add(report.nodeid)
        elif report.when == "call" and report.passed:
            self.state.passed.add(report.nodeid)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.state.interrupted = excinfo.exconly().strip() or excinfo.typename


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    """Mark each benchmark whose test did not pass (``extra_info.test_outcome = "failed"``) in every
    run JSON (``--benchmark-json``, ``--benchmark-save``): its figures are there, but a reader
    (``ptq export``) must know they come from a failing test."""
    state = config.stash.get(GATE, None)
    if state is None:
        return
    done = state.passed - state.failed
    for bench in output_json.get("benchmarks", []):
        if isinstance(bench, dict) and bench.get("fullname") not in done:
            info = bench.get("extra_info")
            if isinstance(info, dict):
                info["test_outcome"] = "failed"


def _wanted(config: pytest.Config) -> bool:
    return any(config.getoption(o) for o in ("--ptq-compare", *SAVES))


def _run_json(config: pytest.Config) -> dict[str, Any] | None:
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or bs.disabled or not bs.benchmarks:
        return None
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    output = config.hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=bs.benchmarks,
        include_data=True,
        machine_info=bs.get_machine_info(),
        commit_info=commit_info,
    )
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=bs.benchmarks, output_json=output)
    return json.loads(json.dumps(output, default=str))


def _complete(data: dict[str, Any], state: GateState) -> int:
    """Keep only the benchmarks whose test passed (timed, every probe run), the last one of a
    test that ran twice (a rerun plugin); how many were left out."""
    done = state.passed - state.failed
    kept = {b.get("fullname"): b for b in data["benchmarks"] if b.get("fullname") in done}
    left_out, data["benchmarks"] = len(data["benchmarks"]) - len(kept), list(kept.values())
    return left_out


def _failure(session: pytest.Session, exitstatus: int, state: GateState) -> str | None:
    """Why this session must not save, or None."""
    if state.interrupted:
        return f"was interrupted ({state.interrupted})"
    stopped = session.shouldfail or session.shouldstop
    if stopped:
        return f"stopped early ({stopped})"
    if session.testsfailed:
        return f"had {session.testsfailed} failing test(s)"
    if exitstatus != pytest.ExitCode.OK:
        return f"ended with exit status {int(exitstatus)}"
    return None


def _gate(config: pytest.Config, state: GateState, data: dict[str, Any], failure: str | None, left_out: int) -> None:
    root = config.rootpath
    current = parse_run(json.loads(json.dumps(data)), "(this session)")
    target = config.getoption("--ptq-compare")
    if target:
        from ptq.config import load_config

        state.comparison = compare_stored(
            root,
            current,
            baseline=None if target == AUTO else target,
            config=load_config(root),
            accept_new=config.getoption("--ptq-accept-new"),
            judges=select_judges(config.getoption("--ptq-judges"), option="--ptq-judges"),
        )
        md = config.getoption("--ptq-compare-md")
        if md:
            text = render(state.comparison, "md").encode()
            atomic_write(md, lambda fh: fh.write(text))
        if failure is None and state.comparison.exit_code != EXIT_OK:
            failure = "failed the regression gate"
    wanted = [o for o in SAVES if config.getoption(o)]
    if not wanted:
        return
    if failure is not None and not config.getoption("--ptq-save-partial"):
        state.messages.append(
            f"ptq: nothing saved ({', '.join(wanted)}): the session {failure}; fix it and rerun, or pass "
            f"--ptq-save-partial to save the {len(current.cases)} case(s) whose tests passed"
        )
        return
    skipped = f"; {left_out} left out: their tests did not pass" if left_out else ""
    if not current.cases:
        state.messages.append(f"ptq: nothing saved: no case passed{skipped}")
        return
    if config.getoption("--ptq-save-run"):
        state.messages.append(f"saved run ({len(current.cases)} case(s){skipped}): {save_run(root, data)}")
    saving = config.getoption("--ptq-save-baseline")
    if saving:
        written = save_baseline(root, data, path=None if saving == AUTO else saving)
        state.messages.append(f"saved baseline ({len(current.cases)} case(s) merged{skipped}): {written}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(GATE, None)
    if state is None or not _wanted(config):
        return
    data = _run_json(config)
    if data is None:
        state.messages.append("ptq gate: no timed benchmark ran (--benchmark-disable?); nothing compared or saved")
        return
    left_out = _complete(data, state)
    try:
        _gate(config, state, data, _failure(session, exitstatus, state), left_out)
    except PtqError as exc:
        state.error = str(exc)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM while comparing or saving: said in one line
        state.error = (
            f"interrupted ({str(exc) or 'Ctrl-C'}) while comparing or saving: every file it was "
            "writing is as it was before (each write is a temporary file renamed into place); "
            "the saves listed above completed; rerun to save the rest"
        )
        session.exitstatus = pytest.ExitCode.INTERRUPTED
        return
    if state.comparison is not None and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = PYTEST_EXIT[state.comparison.exit_code]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(GATE, None)
    if state is None:
        return
    if state.comparison is not None:
        terminalreporter.write_sep(
            "-", "ptq: regression gate (exit status 0 pass, 1 a row failed, 4 bad input, 6 no baseline)"
        )
        terminalreporter.write_line(render(state.comparison, "text"))
    for message in state.messages:
        terminalreporter.write_line(message)
    if state.error:
        terminalreporter.write_line(f"ptq gate: error: {state.error}", red=True)
