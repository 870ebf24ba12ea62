"""``ptq ab A B [--rounds N] [--pytest-args ARGS]``: interleaved A/B of two code versions.

A and B are git revisions (exported with ``git archive``), source directories, or
``installed`` (with ``--python-a`` / ``--python-b`` naming two environments). Latency is timed
as a duet of one worker per side (``--latency=duet``, the default; see :mod:`ptq.run.duet`). Exit codes as
``ptq compare``: 0 pass, 1 a regression of B against A or a row not measured / not compared,
2 usage error or bad input, 3 no baseline (A measured nothing, or B has cases A lacks without ``--accept-new``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from ptq.cli import command
from ptq.cli.compare import FORMAT_HELP, GATE_EXIT_CODES, select_judges
from ptq.config import load_config
from ptq.defaults import DEFAULT_BUDGET
from ptq.errors import UserError
from ptq.gate.comparison import FORMATS, compare, render
from ptq.gate.judges import list_judges
from ptq.host.cache import atomic_write
from ptq.progress import duration, parse_duration
from ptq.run.ab import materialize, refuse_unlike, run_duet, run_rounds
from ptq.run.duet import DuetPlan
from ptq.storage.runs import parse_run


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="baseline: git revision, source directory, or 'installed'")
    p.add_argument("b", help="candidate: git revision, source directory, or 'installed'")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="pytest sessions per side, alternated ABBA (default 2 with the duet, each round's two "
        "sessions at once: they give memory, size and drift, and two per side give the spread "
        "the memory judge allows; the duet's windows give latency; 6 with --latency=rounds, "
        "judged per session on the fastest 4 of each side's 6, one session at a time)",
    )
    p.add_argument(
        "--latency",
        choices=("duet", "rounds"),
        default="duet",
        help="duet (default): after the sessions, one worker per side times every case in alternating "
        "windows; rounds: judge the sessions' own timings (for code without ptq.duet)",
    )
    DuetPlan.add_options(p)
    p.add_argument(
        "--budget",
        default=None,
        metavar="DURATION",
        help=f"wall-clock budget of the whole A/B, e.g. 10m or 600, or none (default {DEFAULT_BUDGET}): once "
        "every case has had its first look, the duet begins no placement the last ones' cost says would "
        "end past it; cases still open are judged at the placements they got, and their rows say so",
    )
    p.add_argument(
        "--judges",
        default=None,
        metavar="GLOBS",
        help="judges to run, as ptq compare's --judges (default: all; with the duet all but speedup, "
        "which the duet's direct A/B of every case supersedes)",
    )
    p.add_argument(
        "--compare-installs",
        action="store_true",
        help="judge sides whose environments differ (threads, torch build, CPU...): for comparing two "
        "installs on purpose; without it such sides are refused (exit 2) naming the keys",
    )
    p.add_argument("--python-a", default=sys.executable, help="Python running side A (default: this one)")
    p.add_argument("--python-b", default=sys.executable, help="Python running side B (default: this one)")
    p.add_argument("--format", choices=sorted(FORMATS), default="text", help=FORMAT_HELP)
    p.add_argument("--save", action="store_true", help="keep the merged runs as results/ab/<time>-{a,b}.json")
    p.add_argument("--root", default=".", help="the git repository (default: .)")
    p.add_argument(
        "--accept-new",
        action="store_true",
        help="cases B has and A lacks pass (default: they fail, exit 3, as in ptq compare)",
    )
    p.add_argument(
        "--pytest-args",
        default="",
        metavar="ARGS",
        help="passed to every pytest session (one shell-quoted string), "
        "e.g. --pytest-args=\"--ptq-models='micro_*' --benchmark-max-time=0.2\"",
    )


def _gate_settings(config: Any, run: Mapping[str, Any]) -> Callable[[str], Mapping[str, Any]]:
    """Per case id, its ``[tool.ptq.gate]`` settings (model / recipe scopes resolved)."""
    from ptq.gate.judges import DEFAULTS

    names = {b["extra_info"]["case"]: b["extra_info"] for b in run["benchmarks"] if b.get("extra_info", {}).get("case")}
    return lambda case: config.resolve(
        "gate",
        model=str(names.get(case, {}).get("model", "")),
        recipe=str(names.get(case, {}).get("recipe", "")),
        defaults=DEFAULTS,
    )


#: What a session of a duet A/B measures: memory, size and drift (every probe but the speedup
#: visits, which the duet's direct A/B of each case supersedes), and just enough pytest-benchmark
#: rounds to list the cases it timed; the duet's windows are the latency the gate judges.
#: The probes come first, so a user's ``--ptq-probes`` wins; the timing options last, after the
#: user's: a session's pytest-benchmark rounds are never judged with the duet, so a workflow's
#: ``--benchmark-max-time=0.5`` would only add half a second a case to every session.
DUET_SESSION = ("--ptq-probes=lm,deployment,drift,memory,size",)
DUET_SESSION_TIMING = (
    "--benchmark-max-time=0.02",
    "--benchmark-min-rounds=5",
    "--ptq-warmup=3",
    "--ptq-warmup-time=0.2",
)


@command("ab", _args, "interleaved A/B of two code versions, judged as ptq compare judges", exit_codes=GATE_EXIT_CODES)
def _ab(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve()
    try:
        extra = shlex.split(args.pytest_args)
    except ValueError as exc:
        raise UserError(
            f"--pytest-args={args.pytest_args!r}: {exc}; close every quote "
            "(one shell-quoted string, e.g. --pytest-args=\"--ptq-models='micro_*'\")"
        ) from None
    judges = select_judges(args.judges) if args.judges else None
    if judges is None and args.latency == "duet":
        # Each session's speedup CI covers its own pairs, not the spread between sessions: an A/A
        # on the quick matrix flagged lstm_classifier-ort_dynamic_int8 at 2.89x vs 2.71x that way.
        judges = [j for j in list_judges() if j != "speedup"]
    duet_plan = DuetPlan.from_args(args) if args.latency == "duet" else None  # checked before any work
    deadline = None
    sequential = duet_plan is not None and duet_plan.stopping == "sequential"
    if args.budget is not None and not sequential:
        raise UserError(
            "--budget needs the sequential duet (the default --latency=duet --stopping=sequential): "
            "the other plans time every case to their end"
        )
    budget_text = args.budget if args.budget is not None else (DEFAULT_BUDGET if sequential else "none")
    if budget_text.strip().lower() not in ("none", "off"):
        try:
            deadline = time.monotonic() + parse_duration(budget_text, option="--budget")
        except ValueError as exc:
            raise UserError(str(exc)) from None
    config = load_config(root)  # a bad [tool.ptq] is said before the sessions, not after them
    with tempfile.TemporaryDirectory(prefix="ptq-ab-") as tmp:
        work = Path(tmp)
        a = materialize(args.a, repo=root, into=work, label="A", python=args.python_a)
        b = materialize(args.b, repo=root, into=work, label="B", python=args.python_b)
        if duet_plan is not None:  # each side's sessions hand their quantized models to its workers
            a, b = replace(a, handoff=work / "prepared-A"), replace(b, handoff=work / "prepared-B")
        rounds = args.rounds if args.rounds is not None else (2 if duet_plan else 6)
        progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        session = [*DUET_SESSION, *extra, *DUET_SESSION_TIMING] if duet_plan else extra
        run_a, run_b = run_rounds(
            a, b, rounds=rounds, workdir=work, pytest_args=session, progress=progress, parallel=duet_plan is not None
        )
        refuse_unlike(run_a, run_b, installs=args.compare_installs)
        if duet_plan is not None:
            gate = _gate_settings(config, run_a)
            if deadline is not None:
                progress(
                    f"ptq ab: {duration(max(0.0, deadline - time.monotonic()))} of the --budget left for the duet "
                    f"(every case gets its first look, {duet_plan.looks[0]} placements, whatever is left)"
                )
            for note in run_duet(a, b, run_a, run_b, plan=duet_plan, progress=progress, gate=gate, deadline=deadline):
                print(f"note: {note}", file=sys.stderr)
        if run_b["ptq"].get("ab_session_failed"):
            print(f"note: {run_b['ptq']['ab_session_failed']}", file=sys.stderr)
    if args.save:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for label, data in (("a", run_a), ("b", run_b)):
            text = json.dumps(data, indent=1).encode()

            def write(fh: IO[bytes], t: bytes = text) -> None:
                fh.write(t)

            print(f"saved: {atomic_write(root / 'results' / 'ab' / f'{stamp}-{label}.json', write)}")
    result = compare(
        parse_run(run_a, f"A: {args.a}"),
        parse_run(run_b, f"B: {args.b}"),
        config=config,
        judges=judges,
        same_machine=True,
        accept_new=args.accept_new,
    )
    print(render(result, args.format).rstrip("\n"))
    return result.exit_code
