"""Duet latency: two code versions' models timed in alternating short windows, one worker each.

Why not a verdict per pytest session: on the shared 2-core reference VM the machine slows down
in episodes of 1-3 s (every case at once, often both vCPUs), covering 10-30% of the time. A
case timed in one contiguous half-second window per process is slowed whole by an episode, so
fresh processes differ by 10-30% and a 10% regression hides among them. Here each side runs
one long-lived worker (``python -m ptq.duet`` with that side's code) holding its prepared
cases; the driver has them take turns, ABBA..., in windows of ~50 ms, case after case, sweep
after sweep. Adjacent windows see the same machine state and each case's samples are spread
over minutes, so the low quantile the gate compares comes from the quiet stretches on both
sides (duet benchmarking, Bulej et al. 2020; Laaber et al. 2019). The verdict is the one
in-process interleaving already uses: :func:`ptq.gate.decide_latency` on the pooled samples.

Protocol: one JSON object per line on stdin, one reply per line on the worker's own stdout
(anything the libraries print goes to stderr). ``prepare`` builds cases; ``time`` times one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ptq.errors import PtqError, UserError

__all__ = ["DuetPlan", "TimedCases", "Worker", "busy_wait", "duet", "serve", "time_calls"]


@dataclass(frozen=True)
class DuetPlan:
    """How long a duet runs: ``sweeps`` passes over the cases, a ``window_s`` window per side each."""

    window_s: float = 0.05
    sweeps: int = 30

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.sweeps < 2:
            raise UserError(f"a duet needs --window > 0 and --sweeps >= 2, got --window={self.window_s:g} "
                            f"--sweeps={self.sweeps}")

    @staticmethod
    def add_options(p: argparse.ArgumentParser) -> None:
        """``--window`` and ``--sweeps``: ``ptq ab`` and ``ptq gate-quality`` share them, so the
        benchmark of the gate measures the plan the gate runs."""
        p.add_argument("--window", type=float, default=DuetPlan.window_s,
                       help=f"seconds per duet window (default {DuetPlan.window_s})")
        p.add_argument("--sweeps", type=int, default=DuetPlan.sweeps,
                       help=f"duet windows per case per side (default {DuetPlan.sweeps})")


def busy_wait(seconds: float, timer: Callable[[], float] = time.perf_counter) -> None:
    """Spin (not sleep: a sleep yields the core and its wake-up jitter is larger than 3%)."""
    end = timer() + seconds
    while timer() < end:
        pass


def time_calls(fn: Callable[[], Any], budget_s: float, *, min_rounds: int = 10, warmup: int = 3,
               timer: Callable[[], float] = time.perf_counter) -> list[float]:
    """Untimed warm-up, then one call per sample until ``budget_s`` (pytest-benchmark's way)."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    start = timer()
    while len(out) < min_rounds or timer() - start < budget_s:
        t0 = timer()
        fn()
        out.append(timer() - t0)
    return out


# -- the worker (runs with one side's code) ------------------------------------------------


class TimedCases:
    """Prepared cases as calls, each with its median call time (sizes an injected slowdown): the
    worker's state, and what ``ptq gate-quality`` builds its targets from."""

    def __init__(self) -> None:
        self.calls: dict[str, Callable[[], Any]] = {}
        self.medians: dict[str, float] = {}

    def prepare(self, cases: Sequence[str], *, threads: int, weights: str, calibrate_s: float = 0.05) -> dict[str, Any]:
        import torch

        from ptq.matrix import Case
        from ptq.runner import RunOptions, Workbench

        torch.set_num_threads(threads)
        bench = Workbench(RunOptions(threads=threads, weights=weights))
        failed: dict[str, str] = {}
        for spec in cases:
            model, _, recipe = spec.rpartition("-")
            try:
                prepared = bench.prepare(Case(model, recipe))
            except Exception as exc:  # a case that cannot build here is reported, the rest go on
                failed[spec] = str(exc) if isinstance(exc, PtqError) else f"{type(exc).__name__}: {exc}"
                continue

            def call(m=prepared.model, x=prepared.inputs) -> Any:
                with torch.inference_mode():
                    return m(*x)

            samples = time_calls(call, calibrate_s, warmup=10)
            self.calls[spec], self.medians[spec] = call, sorted(samples)[len(samples) // 2]
        return {"ready": sorted(self.calls), "failed": failed}

    def time(self, case: str, budget_s: float, slow: float = 0.0) -> dict[str, Any]:
        if case not in self.calls:
            return {"error": f"case {case!r} was not prepared"}
        call = self.calls[case]
        if slow > 0:  # only ptq gate-quality asks for this: an injected slowdown
            extra, plain = slow * self.medians[case], call

            def call() -> Any:
                result = plain()
                busy_wait(extra)
                return result

        return {"samples": time_calls(call, budget_s)}


def _replies(lines: Iterator[str], cases: TimedCases) -> Iterator[dict[str, Any]]:
    for line in lines:
        msg = json.loads(line)
        op = msg.get("op")
        if op == "prepare":
            yield cases.prepare(msg["cases"], threads=int(msg["threads"]), weights=msg.get("weights", "auto"))
        elif op == "time":
            yield cases.time(msg["case"], float(msg["budget_s"]), float(msg.get("slow", 0.0)))
        else:
            yield {"error": f"unknown op {op!r}"}


def serve(stdin: IO[str] = sys.stdin) -> None:
    """The worker's loop. Replies go to the original stdout; fd 1 is pointed at stderr first, so
    a library that prints (from Python or C) cannot corrupt the protocol."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for reply in _replies(iter(stdin.readline, ""), TimedCases()):
        out.write(json.dumps(reply) + "\n")
        out.flush()


# -- the driver ---------------------------------------------------------------------------


class Worker:
    """One side's worker process: ``python -m ptq.duet`` with that side's code first on the path."""

    def __init__(self, label: str, *, python: str = sys.executable, pythonpath: Path | None = None,
                 cwd: Path | None = None) -> None:
        self.label = label
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        if pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH")) if p)
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._proc = subprocess.Popen([python, "-m", "ptq.duet"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log, text=True, cwd=cwd, env=env)

    def ask(self, message: Mapping[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self._proc.wait(timeout=30)
            self._log.seek(0)
            tail = "\n".join(self._log.read().strip().splitlines()[-10:])
            hint = (" (that code has no duet worker, ptq.duet: run ptq ab with --latency=rounds)"
                    if "No module named ptq.duet" in tail else "")
            raise UserError(f"side {self.label}'s duet worker exited (code {self._proc.returncode}){hint}:\n{tail}")
        reply = json.loads(line)
        if "error" in reply:
            raise UserError(f"side {self.label}'s duet worker: {reply['error']}")
        return reply

    def prepare(self, cases: Sequence[str], *, threads: int, weights: str = "auto") -> dict[str, Any]:
        return self.ask({"op": "prepare", "cases": list(cases), "threads": threads, "weights": weights})

    def time(self, case: str, budget_s: float, slow: float = 0.0) -> list[float]:
        return self.ask({"op": "time", "case": case, "budget_s": budget_s, "slow": slow})["samples"]

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Slot = tuple[str, float]  # (case, the slowdown side B's worker injects: 0 but in ptq gate-quality)


def duet(a: Worker, b: Worker, cases: Sequence[str], plan: DuetPlan, *,
         slowdowns: Mapping[str, Sequence[float]] | None = None,
         progress: Callable[[str], None] = lambda line: None) -> dict[str, dict[Slot, list[float]]]:
    """{"A": {(case, slowdown): samples}, "B": {...}}: every slot timed ``plan.sweeps`` times per
    side, the two sides' windows adjacent and their order alternating (AB, BA, ...). A case has
    one slot, (case, 0.0), unless ``slowdowns`` gives it several (side B slowed by each)."""
    slots = [(c, f) for c in cases for f in (slowdowns or {}).get(c, (0.0,))]
    out: dict[str, dict[Slot, list[float]]] = {w.label: {s: [] for s in slots} for w in (a, b)}
    for sweep in range(plan.sweeps):
        for i, (case, slow) in enumerate(slots):
            for worker in ((a, b) if (sweep + i) % 2 == 0 else (b, a)):
                got = worker.time(case, plan.window_s, slow=slow) if worker is b else worker.time(case, plan.window_s)
                out[worker.label][(case, slow)].extend(got)
        progress(f"duet sweep {sweep + 1}/{plan.sweeps}")
    return out


if __name__ == "__main__":
    serve()
