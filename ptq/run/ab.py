"""Interleaved A/B: baseline code and candidate code benchmarked alternately on one machine.

Two runs taken minutes apart on a shared machine differ by more than a 10% change. ``ptq ab``
runs each side's pytest suite in short sessions alternated ABBA... (memory, size, drift and the
speedup probe, merged per side), then times latency as a duet (:mod:`ptq.run.duet`): one worker
per side, taking turns in ~50 ms windows, so both sides see the same machine states (duet
benchmarking, Bulej et al. 2020), over several placements of every case (fresh allocations in
fresh worker pairs) so one allocation's luck is not a verdict. The verdict is
:func:`ptq.gate.comparison.compare`'s, the same judges as ``ptq compare``. With ``--latency=rounds`` the sessions' own timings are judged
instead, the session as the unit (:func:`ptq.stats.decide.decide_latency_rounds`).
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from ptq.errors import UserError
from ptq.progress import Progress
from ptq.run.duet import DuetPlan, DuetResult, Worker, run_plan
from ptq.run.handoff import HANDOFF_ENV

__all__ = [
    "INSTALLED",
    "SessionFailed",
    "Side",
    "apply_duet",
    "duet_cases",
    "materialize",
    "merge_rounds",
    "refuse_unlike",
    "run_duet",
    "run_rounds",
    "run_side",
    "schedule",
    "set_samples",
    "unlike_keys",
]

#: A side spec meaning "the ptq importable by that side's Python", with no source tree put first.
INSTALLED = "installed"


@dataclass(frozen=True)
class Side:
    label: str  # "A" (baseline) or "B" (candidate)
    spec: str  # what the user named: a git revision, a directory, or "installed"
    tree: Path  # where pytest runs (its benchmarks/ and pyproject)
    python: str = sys.executable
    pythonpath: Path | None = None  # source tree put first on PYTHONPATH, None for INSTALLED
    #: Where its sessions hand their quantized models to its duet workers (:mod:`ptq.run.handoff`).
    handoff: Path | None = None


def materialize(spec: str, *, repo: Path, into: Path, label: str, python: str = sys.executable) -> Side:
    """A side from a spec: an existing directory as is, ``installed``, or a git revision
    exported (``git archive``) into ``into`` so the checkout is left alone."""
    if spec == INSTALLED:
        return Side(label, spec, repo, python, None)
    if Path(spec).is_dir():
        tree = Path(spec).resolve()
        return Side(label, spec, tree, python, tree)
    probe = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise UserError(
            f"{spec!r} is neither a directory nor a git revision of {repo}; "
            "name a commit (HEAD~1, a branch, a tag), a source directory, or 'installed'"
        )
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", probe.stdout.strip()], capture_output=True, check=True
    )
    tree = into / f"{label}-{probe.stdout.strip()[:12]}"
    tree.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return Side(label, spec, tree, python, tree)


def schedule(rounds: int) -> list[tuple[int, str]]:
    """(round, side) in ABBA order: A B, B A, A B... so neither side always runs first."""
    if rounds < 1:
        raise UserError(f"--rounds must be >= 1, got {rounds}")
    return [(r, s) for r in range(rounds) for s in (("A", "B") if r % 2 == 0 else ("B", "A"))]


def run_side(side: Side, out: Path, pytest_args: Sequence[str]) -> Path:
    """One short pytest-benchmark session of one side; its JSON (raw samples) lands at ``out``."""
    env = dict(os.environ)
    env.pop(HANDOFF_ENV, None)
    if side.handoff is not None:
        env[HANDOFF_ENV] = str(side.handoff)
    if side.pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(side.pythonpath), env.get("PYTHONPATH")) if p)
    cmd = [
        side.python,
        "-m",
        "pytest",
        "benchmarks",
        "--benchmark-only",
        f"--benchmark-json={out}",
        "-q",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    done = subprocess.run(cmd, cwd=side.tree, env=env, capture_output=True, text=True, check=False)
    if not out.exists():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        kind = SessionFailed if done.returncode == 1 else UserError  # 1: it collected, and every case failed
        raise kind(f"side {side.label} ({side.spec}) wrote no results (pytest exit {done.returncode}):\n{tail}")
    return out


class SessionFailed(UserError):
    """A side's session collected its cases and every one of them failed: on side B, each case is
    then a failing "not measured" row of the verdict, not a usage error."""


def set_samples(bench: dict[str, Any], data: Sequence[float]) -> None:
    """Put ``data`` (seconds per call) in place of a benchmark's samples and rewrite every summary
    statistic pytest-benchmark derives from them, computed by its own :class:`Stats`, so ``pytest-benchmark
    compare``, github-action-benchmark (``stats.ops``) and ptq's charts read the kept samples, not
    the last session's. Each sample is one call (``iterations`` 1). No samples: every figure NaN
    (rounds, total and ops 0), so no reader takes a stale figure for a measured one."""
    from pytest_benchmark.stats import Stats

    stats = Stats()
    stats.data = [float(x) for x in data]
    if stats.data:
        figures: dict[str, Any] = stats.as_dict()
    else:
        figures = {name: math.nan for name in Stats.fields}
        figures.update(rounds=0, total=0.0, ops=0.0, iqr_outliers=0, stddev_outliers=0, outliers="0;0")
    bench["stats"] = {**figures, "iterations": 1, "data": stats.data}


def _merge_speedup(values: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "method": "median over A/B rounds of interleaved speedups",
        **{k: median(float(v[k]) for v in values) for k in ("ratio", "low", "high")},
        "n": sum(int(v.get("n", 0)) for v in values),
    }


def _merge_memory(merged: dict[str, Any], same: Sequence[Mapping[str, Any]]) -> None:
    """Each step's increment becomes the median of the rounds', with the rounds' figures as its
    ``samples``: the memory judge's allowance is 3x their spread, so a step whose high-water
    mark moves from one process to the next is not flagged for that alone."""
    from ptq.storage.figures import MemoryFigures, read_figures

    for step, figures in (merged.get("metrics", {}).get("memory") or {}).items():
        if not isinstance(figures, dict):
            continue
        found = [read_figures(MemoryFigures, b["extra_info"]) for b in same]
        per_round = [
            s.increment_bytes for s in (getattr(m, step, None) for m in found if m is not None) if s is not None
        ]
        if len(per_round) > 1:
            figures["increment_bytes"] = median(per_round)
            figures["samples"] = per_round


def merge_rounds(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One run from several rounds of one side: raw samples concatenated per case (each
    round's count kept in ``extra_info.ab_round_sizes``, so a judge can take a process as
    its unit), speedups and memory increments pooled as the median of the rounds' (memory
    with their spread), everything else from the last round."""
    if not rounds:
        raise UserError("no rounds to merge")
    merged = json.loads(json.dumps(rounds[-1]))
    for bench in merged["benchmarks"]:
        case = bench.get("extra_info", {}).get("case")
        same = [b for r in rounds for b in r["benchmarks"] if b.get("extra_info", {}).get("case") == case]
        per_round = [list(b.get("stats", {}).get("data", [])) for b in same]
        set_samples(bench, [x for r in per_round for x in r])
        bench.setdefault("extra_info", {})["ab_round_sizes"] = [len(r) for r in per_round]
        speedups = [
            b["extra_info"]["metrics"]["speedup"]
            for b in same
            if isinstance(b["extra_info"].get("metrics", {}).get("speedup"), Mapping)
        ]
        missed = [v["not_measured"] for v in speedups if "ratio" not in v and "not_measured" in v]
        if missed:  # a round without a figure makes the merged figure not measured, never a partial median
            bench["extra_info"]["metrics"]["speedup"] = {"not_measured": "; ".join(missed)}
        elif speedups:
            bench["extra_info"]["metrics"]["speedup"] = _merge_speedup(speedups)
        _merge_memory(bench["extra_info"], same)
    merged["ptq"]["ab_rounds"] = len(rounds)
    return merged


def run_rounds(
    a: Side,
    b: Side,
    *,
    rounds: int,
    workdir: Path,
    pytest_args: Sequence[str],
    runner: Callable[[Side, Path, Sequence[str]], Path] = run_side,
    progress: Callable[[str], None] = lambda line: None,
    parallel: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Alternate the two sides ``rounds`` times each; returns the merged (A, B) runs. ``parallel``:
    each round's two sessions run at once, for sessions whose timings nobody judges (the duet's
    ``ptq ab``: they give memory, size and drift, which do not depend on what else runs)."""
    sides = {"A": a, "B": b}
    collected: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    sessions = Progress("sessions", 2 * rounds, emit=progress)
    failed_b: str | None = None

    def one(r: int, label: str) -> Path | None:
        nonlocal failed_b
        try:
            return runner(sides[label], workdir / f"{label}-{r}.json", pytest_args)
        except SessionFailed as exc:
            if label == "A":
                raise
            failed_b = str(exc)
            return None
        finally:
            sessions.done += 1

    order = schedule(rounds)
    batches = [order[i : i + 2] for i in range(0, len(order), 2)] if parallel else [[x] for x in order]
    for batch in batches:
        batch = [(r, label) for r, label in batch if not (label == "B" and failed_b is not None)]
        for r, label in batch:
            progress(f"round {r + 1}/{rounds}: side {label} ({sides[label].spec}); sessions {sessions.summary()}")
        with ThreadPoolExecutor(max_workers=len(batch) or 1) as pool:
            outs = list(pool.map(lambda item: one(*item), batch))
        for (_, label), out in zip(batch, outs, strict=True):
            if out is None:
                continue
            try:
                collected[label].append(json.loads(out.read_text(encoding="utf-8")))
            except json.JSONDecodeError as exc:
                raise UserError(f"{out}: side {label} wrote invalid JSON ({exc.msg})") from None
    merged_a = merge_rounds(collected["A"])
    if failed_b is None:
        return merged_a, merge_rounds(collected["B"])
    # Side B measured nothing: its run is side A's environment (the same Python on this machine)
    # with no case, so every case of A is judged "not measured" on B, with B's session's reason.
    empty_b = {**json.loads(json.dumps(merged_a)), "benchmarks": []}
    empty_b["ptq"]["ab_session_failed"] = failed_b
    return merged_a, empty_b


def unlike_keys(run_a: Mapping[str, Any], run_b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The timing keys (:data:`ptq.host.env.FINGERPRINT_KEYS`) whose values differ between the two
    sides' environments: {key: (A's, B's)}. An A/B of two code versions must differ in none,
    or a thread count or a torch build, not the code, decides the verdict."""
    from ptq.host.env import FINGERPRINT_KEYS

    env_a, env_b = ((r.get("ptq") or {}).get("environment") or {} for r in (run_a, run_b))
    return {k: (env_a.get(k), env_b.get(k)) for k in FINGERPRINT_KEYS if env_a.get(k) != env_b.get(k)}


def refuse_unlike(run_a: Mapping[str, Any], run_b: Mapping[str, Any], *, installs: bool) -> None:
    """Raise naming the differing timing keys, unless ``installs`` (the user compares two
    environments on purpose: ``--compare-installs``)."""
    differ = unlike_keys(run_a, run_b)
    if differ and not installs:
        listed = "; ".join(f"{k}: A {a!r}, B {b!r}" for k, (a, b) in differ.items())
        raise UserError(
            f"the two sides ran in different environments ({listed}): their timings would compare "
            "those, not the code. Make them match (e.g. the same --ptq-threads via --pytest-args), "
            "or pass --compare-installs to compare two installs on purpose"
        )


def duet_cases(run_a: Mapping[str, Any], run_b: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(case, threads) of the cases both sides timed, in side A's order: what the duet re-times."""

    def timed(run: Mapping[str, Any]) -> dict[str, int]:
        return {
            b["extra_info"]["case"]: int(b["extra_info"].get("threads") or 1)
            for b in run["benchmarks"]
            if b.get("extra_info", {}).get("case") and len(b.get("stats", {}).get("data") or ()) >= 5
        }

    a, b = timed(run_a), timed(run_b)
    return [(case, threads) for case, threads in a.items() if b.get(case) == threads]


def apply_duet(
    run: dict[str, Any],
    blocks: Mapping[str, Sequence[Sequence[float]]],
    plan: DuetPlan,
    unmeasured: Mapping[str, str] | None = None,
    placed: Mapping[str, Sequence[str]] | None = None,
    sequential: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Put a side's duet samples in place of its sessions' timings: one pool per case, split by
    placement (``extra_info.ab_placement_sizes``: the judge's unit), with what its placements
    re-allocated (``ab_placement_kinds``: the distinct kinds, model+inputs or inputs only, from
    ``placed``). A case the duet could not time loses its session timings too, with the reason
    (``ab_latency_why``): its latency is "not measured", never judged from the sessions'
    one-allocation figures. Every summary statistic follows the samples (:func:`set_samples`).
    ``sequential``: per case, where a sequential duet stopped it and the alpha it spent per look
    (``ab_sequential``; the judge tests at that alpha)."""
    for bench in run["benchmarks"]:
        info = bench.setdefault("extra_info", {})
        case = info.get("case")
        if case in blocks:
            set_samples(bench, [x for block in blocks[case] for x in block])
            info.pop("ab_round_sizes", None)
            info["ab_placement_sizes"] = [len(block) for block in blocks[case]]
            info["ab_placement_kinds"] = sorted(set((placed or {}).get(case, ())))
            info["ab_latency"] = "duet"
            if sequential is not None and case in sequential:
                info["ab_sequential"] = dict(sequential[case])
        elif unmeasured is not None and case in unmeasured:
            set_samples(bench, [])
            info.pop("ab_round_sizes", None)
            info["ab_latency"] = "not measured"
            info["ab_latency_why"] = unmeasured[case]
    run["ptq"]["ab_latency"] = {
        "method": "duet",
        **plan.to_dict(),
        "cases": sorted(blocks),
        "not_measured": dict(sorted((unmeasured or {}).items())),
    }


def run_duet(
    a: Side,
    b: Side,
    run_a: dict[str, Any],
    run_b: dict[str, Any],
    *,
    plan: DuetPlan,
    worker: Callable[..., Worker] = Worker,
    progress: Callable[[str], None] = lambda line: None,
    gate: Callable[[str], Mapping[str, Any]] | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Time every case both sessions timed as a duet (:func:`ptq.run.duet.run_plan`: worker pairs
    one after another, placements within each) and put the samples into ``run_a`` / ``run_b``.
    Returns notes on cases the duet could not time (their latency is then not measured).
    ``gate``: per case, its ``[tool.ptq.gate]`` settings; a sequential duet stops each case by the
    threshold, alpha and statistic its judge will use (default: the gate's defaults). ``deadline``
    (:func:`time.monotonic`): a sequential duet begins no placement it would end past."""
    from ptq.config.sections import GATE_DEFAULTS as DEFAULTS
    from ptq.stats.decide import location
    from ptq.stats.sequential import SequentialPlan, decide_look

    def settings(case: str) -> Mapping[str, Any]:
        return gate(case) if gate is not None else DEFAULTS

    def decide(slot: tuple[str, float], ratios: Sequence[float]) -> str:
        s = settings(slot[0])
        return decide_look(ratios, SequentialPlan(plan.looks, s["alpha"], s["latency_threshold"]))

    by_threads: dict[int, list[str]] = {}
    for case, threads in duet_cases(run_a, run_b):
        by_threads.setdefault(threads, []).append(case)
    weights = str(run_a.get("ptq", {}).get("weights_policy") or "auto")
    sides = {"A": a, "B": b}
    got: dict[str, dict[str, list[list[float]]]] = {"A": {}, "B": {}}
    kinds: dict[str, dict[str, list[str]]] = {"A": {}, "B": {}}
    failed: dict[str, str] = {}
    stopped: dict[str, dict[str, Any]] = {}
    for threads, cases in by_threads.items():
        quantile = location(str(settings(cases[0])["latency_statistic"]))
        result: DuetResult = run_plan(
            plan,
            cases,
            threads=threads,
            weights=weights,
            progress=progress,
            decide=decide,
            q=quantile,
            deadline=deadline,
            clock=clock,
            new_worker=lambda label: worker(
                label,
                python=sides[label].python,
                pythonpath=sides[label].pythonpath,
                cwd=sides[label].tree,
                handoff=sides[label].handoff,
            ),
        )
        failed.update(result.failed)
        for label, slots in result.blocks.items():
            got[label].update({case: b for (case, _), b in slots.items()})
            kinds[label].update(result.placed.get(label, {}))
        for (case, _), (answer, n) in result.stopped.items():
            s = settings(case)
            looked = SequentialPlan(plan.looks, s["alpha"], s["latency_threshold"])
            stopped[case] = {**looked.to_dict(), "stopped": answer, "placements": n}
            if answer == "budget":  # its last test spends the alpha of the looks the budget took away
                stopped[case]["alpha_look"] = looked.alpha - looked.alpha_look * sum(1 for x in plan.looks if x <= n)
    for label, data in (("A", run_a), ("B", run_b)):
        apply_duet(data, got[label], plan, failed, kinds[label], stopped)
    return [
        f"{c}: latency not measured (a duet worker could not prepare it: {why})" for c, why in sorted(failed.items())
    ]
