"""pytest plugin (entry point ``pytest11: ptq``): the model x recipe matrix as benchmark cases.

Extends pytest-benchmark rather than replacing it: timing, ``--benchmark-*`` options,
saving and comparing stay pytest-benchmark's; ptq adds the cases, untimed warm-up,
per-case ``extra_info``, run provenance in the JSON, and a speedup table.
"""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from ptq.config import Config, load_config
from ptq.defaults import DEFAULT_BUDGET
from ptq.errors import NotApplicable, PtqError, UserError
from ptq.host.device import DEVICE_OPTION, Device, resolve
from ptq.host.env import KEYS, benchmark_threads, environment, fingerprint, key_hash
from ptq.models import WEIGHT_POLICIES
from ptq.plugins import discover
from ptq.plugins._state import STATE, PluginState
from ptq.probes import list_probes
from ptq.probes.speedup import (
    DEFAULT_MAX_VISITS,
    DEFAULT_PAIR_TIME,
    DEFAULT_QUIET_EXTRA,
    DEFAULT_RERUN_TARGET,
    SpeedupVisits,
    metered,
)
from ptq.progress import duration, parse_duration
from ptq.recipes import REFERENCE
from ptq.registry import match_globs
from ptq.render.tables import speedup_table
from ptq.run.known_issues import known_issue
from ptq.run.matrix import MATRICES, Case, default_matrix, select_cases
from ptq.run.placement import DEFAULT_PLACEMENTS
from ptq.run.workbench import PreparedCase, RunOptions, Workbench, run_case
from ptq.storage.results import SCHEMA_VERSION, CaseResult, unpaired_speedups

__all__ = ["STATE", "PluginState"]

#: Feature plugins (``ptq/plugins/*.py``) load with this one.
pytest_plugins = discover()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ptq", "ptq quantization benchmarks")
    group.addoption(
        "--ptq-matrix",
        default=None,
        choices=sorted(MATRICES),
        help="named case matrix (default: 'project', the models your conftest.py registers, where "
        "it registers any; else 'default', ptq's built-in models x the default recipes)",
    )
    group.addoption(
        "--ptq-models",
        default=None,
        metavar="GLOBS",
        help="comma-separated fnmatch globs of model names, e.g. 'resnet*,mobilenet_v2'",
    )
    group.addoption(
        "--ptq-recipes",
        default=None,
        metavar="GLOBS",
        help="comma-separated fnmatch globs of recipe names, e.g. 'fp32,static_*'",
    )
    group.addoption(
        "--ptq-threads",
        type=int,
        default=None,
        help="torch intra-op threads for every case (default: torch's default less one, at least 1: "
        "the spare core keeps OS noise out of the timings, see ptq.host.env.benchmark_threads)",
    )
    group.addoption(
        "--ptq-warmup",
        type=int,
        default=10,
        help="untimed warm-up calls before pytest-benchmark's timed rounds (default 10)",
    )
    group.addoption(
        "--ptq-warmup-time",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="stop warming up after this long, once 2 calls ran (default 1.0)",
    )
    group.addoption(
        "--ptq-weights",
        default="auto",
        choices=WEIGHT_POLICIES,
        help="auto: pretrained when on disk, else seeded random; pretrained: may download; random",
    )
    group.addoption(
        "--ptq-pair-time",
        type=float,
        default=DEFAULT_PAIR_TIME,
        metavar="SECONDS",
        help=f"seconds per case of interleaved fp32/quantized pairs for the speedup "
        f"(default {DEFAULT_PAIR_TIME}; 0 disables)",
    )
    group.addoption(
        "--ptq-placements",
        type=int,
        default=DEFAULT_PLACEMENTS,
        metavar="N",
        help=f"visits the speedup pairs are split over, each a fresh allocation of the case's models and "
        f"inputs; the first during the case's test, the rest in rounds when the session ends; the "
        f"interval is over visits (default {DEFAULT_PLACEMENTS}, at least 2)",
    )
    group.addoption(
        "--ptq-rerun-target",
        type=float,
        default=DEFAULT_RERUN_TARGET,
        metavar="FRACTION",
        help=f"a case whose speedup's rerun interval is wider than median * (1 +- FRACTION) after the "
        f"--ptq-placements visits gets more visits, up to --ptq-max-visits (default "
        f"{DEFAULT_RERUN_TARGET}; 0: none)",
    )
    group.addoption(
        "--ptq-max-visits",
        type=int,
        default=DEFAULT_MAX_VISITS,
        metavar="N",
        help=f"the most speedup visits a case gets for --ptq-rerun-target (default {DEFAULT_MAX_VISITS})",
    )
    group.addoption(
        "--ptq-quiet-extra",
        type=int,
        default=DEFAULT_QUIET_EXTRA,
        metavar="N",
        help=f"on CPU, N more speedup visits in the same --ptq-pair-time, a memory-bandwidth meter read "
        f"around each; the figures come from the --ptq-placements visits it found quietest "
        f"(default {DEFAULT_QUIET_EXTRA}: no meter, every visit counts)",
    )
    group.addoption(
        "--ptq-budget",
        default=DEFAULT_BUDGET,
        metavar="DURATION",
        help=f"wall-clock budget of the session, e.g. 10m, 600 or none (default {DEFAULT_BUDGET}): every "
        f"case is measured and gets its --ptq-placements visits whatever it says; the visits beyond "
        f"them, for --ptq-rerun-target, go to the cases furthest from it while they fit, and a "
        f"case it leaves short says 'budget'",
    )
    group.addoption(
        "--ptq-run-known-issues",
        action="store_true",
        default=False,
        help="run cases listed in ptq.run.known_issues instead of skipping them",
    )
    group.addoption(
        "--ptq-probes", default=None, metavar="GLOBS", help="probes to run after timing (default: all registered)"
    )
    group.addoption(
        DEVICE_OPTION,
        default="cpu",
        metavar="auto|cpu|cuda[:N]",
        help="where models and inputs run (default cpu, what stored baselines were measured on; "
        "auto: the current CUDA device when one is available, else cpu); recorded in the run's keys",
    )


@dataclass(frozen=True)
class Bound:
    """A numeric option's limits, checked before any work: one line naming option, value and limit.
    A float option must also be finite: ``nan`` passes no comparison, so a NaN would slip past any
    limit (a NaN --ptq-rerun-target once turned the reruns off without a word), and ``inf`` is no
    number of seconds or fraction."""

    option: str
    minimum: float
    why: str

    def check(self, config: pytest.Config) -> None:
        value = config.getoption(self.option)
        if value is None:
            return
        finite = not isinstance(value, float) or math.isfinite(value)
        if not finite or value < self.minimum:
            number = "" if finite else "a finite number "
            raise pytest.UsageError(f"{self.option}={value}: must be {number}>= {self.minimum:g} ({self.why})")


#: Every numeric option of ptq's (``int``/``float`` typed), each checked here when pytest configures,
#: before any case is collected; tests/test_options.py checks that none is missing.
BOUNDS = (
    Bound("--ptq-threads", 1, "torch intra-op threads; omit it for the default"),
    Bound("--ptq-warmup", 0, "untimed calls before timing"),
    Bound("--ptq-warmup-time", 0, "seconds of warm-up"),
    Bound("--ptq-placements", 2, "an interval over placements needs two"),
    Bound("--ptq-pair-time", 0, "0 disables the speedup pairs"),
    Bound("--ptq-quiet-extra", 0, "0 makes no extra visits"),
    Bound("--ptq-rerun-target", 0, "0 adds no visits"),
    Bound("--ptq-max-visits", 2, "the visits a case may get in all"),
)


def pytest_configure(config: pytest.Config) -> None:
    for bound in BOUNDS:
        bound.check(config)
    probes = config.getoption("--ptq-probes")
    if probes is not None:  # a blank value would run every probe, a typo none: both silently
        option, valid = f"--ptq-probes={probes!r}", list_probes()
        globs = [g.strip() for g in probes.split(",") if g.strip()]
        if not globs:
            raise pytest.UsageError(
                f"{option} is blank; give comma-separated globs of probe names "
                f"({', '.join(valid)}), or drop the option to run every probe"
            )
        for glob in (g for g in globs if not match_globs(valid, g)):
            close = difflib.get_close_matches(glob, valid, n=3)
            nearest = f"nearest: {', '.join(close)}; " if close else ""
            raise pytest.UsageError(
                f"{option}: {glob!r} matches no registered probe; {nearest}valid: {', '.join(valid)}"
            )
    device = _resolve_device(config)
    threads = config.getoption("--ptq-threads") or benchmark_threads()
    warmup = config.getoption("--ptq-warmup")
    made = config.getoption("--ptq-placements") + config.getoption("--ptq-quiet-extra")
    visit_cap = config.getoption("--ptq-max-visits")
    if visit_cap < made:
        raise pytest.UsageError(
            f"--ptq-max-visits={visit_cap}: must be >= the visits made ({made}: --ptq-placements "
            f"+ --ptq-quiet-extra); raise it or lower those"
        )
    config.stash[STATE] = PluginState(
        options=RunOptions(
            warmup=warmup,
            warmup_time=config.getoption("--ptq-warmup-time"),
            threads=threads,
            weights=config.getoption("--ptq-weights"),
            probes=config.getoption("--ptq-probes"),
            pair_budget_s=config.getoption("--ptq-pair-time"),
            placements=config.getoption("--ptq-placements"),
            quiet_extra=config.getoption("--ptq-quiet-extra"),
            rerun_target=config.getoption("--ptq-rerun-target"),
            max_visits=visit_cap,
            config=_load_config(config),
            speedup_visits=SpeedupVisits(
                budget_s=config.getoption("--ptq-pair-time"),
                visits=config.getoption("--ptq-placements"),
                timer=device.timer(),
                target=config.getoption("--ptq-rerun-target"),
                max_visits=visit_cap,
                **metered(device, config.getoption("--ptq-quiet-extra")),
            ),
            device=device,
        ),
        matrix=config.getoption("--ptq-matrix"),
        models=config.getoption("--ptq-models"),
        recipes=config.getoption("--ptq-recipes"),
        budget_s=_budget(config),
    )


def _budget(config: pytest.Config) -> float | None:
    text = str(config.getoption("--ptq-budget"))
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return parse_duration(text, option="--ptq-budget")
    except ValueError as exc:
        raise pytest.UsageError(f"{exc}, or none") from None


def _resolve_device(config: pytest.Config) -> Device:
    """``--ptq-device`` resolved once, before any case: a CUDA device that is not there is one line."""
    try:
        return resolve(config.getoption(DEVICE_OPTION))
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None


def _load_config(config: pytest.Config) -> Config:
    try:
        return load_config(config.rootpath)
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ptq_case" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash[STATE]
    if state.matrix is None:  # every conftest is loaded by now: whether the project registers models is known
        state.matrix = "default" if state.models is not None else default_matrix()
    state.collected_cases = True
    try:
        cases = select_cases(state.matrix, state.models, state.recipes)
    except UserError as exc:
        state.selection_error, cases = str(exc), []  # reported once collection ends
    metafunc.parametrize("ptq_case", [pytest.param(c, id=c.id) for c in cases])


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[STATE]
    if state.selection_error:
        raise pytest.UsageError(state.selection_error)
    if state.collected_cases:  # every conftest that registers models is loaded by now
        from ptq.config import check_names
        from ptq.models import list_models
        from ptq.recipes import list_recipes

        try:
            check_names(state.options.config, models=list_models(), recipes=list_recipes())
        except UserError as exc:
            raise pytest.UsageError(str(exc)) from None
    state.total_cases = sum(1 for item in session.items if "ptq_case" in getattr(item, "fixturenames", ()))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    narrowed = "".join(f", {o}={v}" for o, v in (("--ptq-models", state.models), ("--ptq-recipes", state.recipes)) if v)
    if state.total_cases and reporter is not None and not _visits(state, session.config):
        reporter.write_line(f"ptq: {state.total_cases} case(s) of matrix {state.matrix!r}{narrowed}")
    elif state.total_cases and reporter is not None:
        budget = (
            f"--ptq-budget {duration(state.budget_s)}: the visits beyond each case's "
            f"{state.options.placements} stop when it is spent"
            if state.budget_s
            else "no --ptq-budget"
        )
        reporter.write_line(
            f"ptq: {state.total_cases} case(s) of matrix {state.matrix!r}{narrowed}, then their speedup visits; {budget}"
        )


def _visits(state: PluginState, config: pytest.Config) -> bool:
    """Whether the session makes speedup visits after its cases: timing on, and the speedup probe selected."""
    return (
        state.options.pair_budget_s > 0
        and not config.getoption("benchmark_disable", False)
        and "speedup" in list_probes(state.options.probes)
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """After each ptq case, now and then, a progress line with the time the cases have left."""
    yield
    state = item.config.stash.get(STATE, None)
    if state is None or not state.total_cases or "ptq_case" not in getattr(item, "fixturenames", ()):
        return
    state.done_cases += 1
    every = max(1, state.total_cases // 10)
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or (state.done_cases % every and state.done_cases != state.total_cases):
        return
    elapsed = time.monotonic() - state.started
    left = elapsed / state.done_cases * (state.total_cases - state.done_cases)
    visits = _visits(state, item.config)
    reporter.write_line(
        f"ptq: {state.done_cases}/{state.total_cases} cases, {duration(elapsed)} elapsed, about "
        f"{duration(left)} left"
        + (" before the speedup visits" if visits else "")
        + (f" (--ptq-budget {duration(state.budget_s)})" if state.budget_s and visits else "")
    )


@pytest.fixture(scope="session")
def ptq_workbench(pytestconfig: pytest.Config):
    """The session's model cache, with torch's thread count fixed for the whole session."""
    state = pytestconfig.stash[STATE]
    previous = torch.get_num_threads()
    torch.set_num_threads(state.options.threads)
    torch.manual_seed(0)
    state.workbench = Workbench(state.options)
    try:
        yield state.workbench
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def ptq_prepared(ptq_case: Case, ptq_workbench: Workbench, pytestconfig: pytest.Config) -> PreparedCase:
    """The case's quantized model, built once per session; skipped when the recipe cannot apply."""
    skipped = pytestconfig.stash[STATE].skipped
    issue = known_issue(ptq_case)
    if issue is not None and not pytestconfig.getoption("--ptq-run-known-issues"):
        skipped.append(f"{ptq_case.id}: known issue: {issue.reason} (run it with --ptq-run-known-issues)")
        pytest.skip(skipped[-1])
    try:
        return ptq_workbench.prepare(ptq_case)
    except NotApplicable as exc:
        why, failed = str(exc), None
    except PtqError as exc:
        why, failed = None, str(exc)
    # Outside the except blocks, so the report is one line, not a chained traceback.
    if why is not None:
        skipped.append(f"{ptq_case.id}: {why}")
        pytest.skip(skipped[-1])
    pytest.fail(f"{ptq_case.id}: {failed}", pytrace=False)


@pytest.fixture
def ptq_bench(benchmark: Any, ptq_prepared: PreparedCase, pytestconfig: pytest.Config) -> Callable[[], CaseResult]:
    """Call it to time the case (warm-up excluded), run its probes and record the result."""
    state = pytestconfig.stash[STATE]

    def run() -> CaseResult:
        benchmark.group = ptq_prepared.case.model
        result, failures = run_case(benchmark, ptq_prepared, state.options)
        benchmark.extra_info.update(result.to_extra_info())
        state.extra_infos[result.case] = benchmark.extra_info
        state.results.append(result)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)
        return result

    return run


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    """Make every case's remaining speedup visits before anything reads or saves the results
    (pytest-benchmark writes its JSON in its own wrapper of this hook, inside this one)."""
    state = session.config.stash.get(STATE, None)
    visits = state.options.speedup_visits if state is not None else None
    if state is not None and visits is not None and len(visits) and exitstatus != pytest.ExitCode.INTERRUPTED:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")

        def progress(line: str) -> None:
            if reporter is not None:
                reporter.write_line(f"ptq: {line}")

        if reporter is not None:
            reporter.write_line("")  # ends the line pytest's last progress figure ("[100%]") is left on
        started = time.monotonic()
        visits.finish(progress, deadline=state.started + state.budget_s if state.budget_s else None)
        if reporter is not None:
            reporter.write_line(f"ptq: speedup visits done in {duration(time.monotonic() - started)}")
            reporter.write_line(f"ptq: {_where_time_went(state.results, time.monotonic() - started)}")
            bandwidth = visits.bandwidth()
            if bandwidth is not None:
                reporter.write_line(
                    f"ptq: memory bandwidth during the visits: median {bandwidth['median_gbps']:.1f} GB/s "
                    f"({bandwidth['low_gbps']:.1f}-{bandwidth['high_gbps']:.1f}, {bandwidth['reads']} reads); "
                    "compare speedups across runs only where it matches"
                )
        for r in state.results:
            info = state.extra_infos.get(r.case)
            if info is not None:
                info.update(r.to_extra_info())
    yield


def _where_time_went(results: list[CaseResult], visits_s: float) -> str:
    """The session's time per step, summed over its cases, costliest first: what to cut or cache."""
    steps: dict[str, float] = {"quantize": sum(r.quantize_seconds for r in results), "later speedup visits": visits_s}
    for r in results:
        for name, seconds in r.phase_seconds.items():
            steps[name] = steps.get(name, 0.0) + seconds
    shown = ", ".join(f"{name} {duration(s)}" for name, s in sorted(steps.items(), key=lambda kv: -kv[1]) if s >= 0.5)
    return f"time per step over {len(results)} case(s): {shown}"


def _fill_unpaired(state: PluginState) -> None:
    ratios = unpaired_speedups(state.results, REFERENCE)
    for r in state.results:
        r.speedup_unpaired = ratios.get(r.case)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    state = config.stash.get(STATE, None)
    env = environment(state.options.threads if state else None, state.options.device if state else None)
    machine_info["ptq"] = {"environment": env, "fingerprint": fingerprint(env)}


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    _fill_unpaired(state)
    unpaired = {r.case: r.speedup_unpaired for r in state.results}
    for bench in output_json.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if info.get("case") in unpaired:
            info["speedup_unpaired"] = unpaired[info["case"]]
    env = environment(state.options.threads, state.options.device)
    output_json["ptq"] = {
        "schema_version": SCHEMA_VERSION,
        "environment": env,
        "fingerprint": fingerprint(env),
        "keys": {kind: key_hash(env, kind) for kind in KEYS},
        "matrix": state.matrix,
        "models": state.models,
        "recipes": state.recipes,
        "warmup": state.options.warmup,
        "weights_policy": state.options.weights,
    }
    visits = state.options.speedup_visits
    bandwidth = visits.bandwidth() if visits is not None else None
    if bandwidth is not None:  # not part of the environment: it is a state of the machine, not a key
        output_json["ptq"]["memory_bandwidth"] = bandwidth


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if any(r.latency for r in state.results):
        _fill_unpaired(state)
        terminalreporter.write_sep("-", "ptq: speedup over fp32, same session, warm-up excluded")
        terminalreporter.write_line(speedup_table(state.results))
    # pytest lists skip reasons only with -rs (or -ra); a case skipped for its model or machine
    # is an answer the user asked for, so ptq lists its own unless pytest's list already will.
    if state.skipped and "s" not in getattr(terminalreporter, "reportchars", ""):
        terminalreporter.write_sep("-", f"ptq: {len(state.skipped)} case(s) skipped (-rs: pytest's own list)")
        for reason in state.skipped:
            terminalreporter.write_line(reason)
