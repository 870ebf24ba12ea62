"""Duet latency: two code versions' models timed in alternating short windows, one worker each.

Why not a verdict per pytest session: on the shared 2-core reference VM the machine slows down
in episodes of 1-3 s (every case at once, often both vCPUs), covering 10-30% of the time. A
case timed in one contiguous half-second window per process is slowed whole by an episode, so
fresh processes differ by 10-30% and a 10% regression hides among them. Here each side runs
a long-lived worker (``python -m ptq.duet`` with that side's code) holding its prepared
cases; the driver has them take turns, ABBA..., in windows of ~50 ms, case after case, sweep
after sweep. Adjacent windows see the same machine state and each case's samples are spread
over minutes, so the low quantile the gate compares comes from the quiet stretches on both
sides (duet benchmarking, Bulej et al. 2020; Laaber et al. 2019).

One allocation is one draw: where a case's tensors land moved a small conv by 2x, so the
sweeps are split into placements (fresh copies of every model and input, :mod:`ptq.run.placement`)
and worker pairs (fresh processes), and the verdict takes the placement as its unit:
:func:`ptq.stats.decide.decide_latency_placements` over placement k of A against placement k of B.

Protocol: one JSON object per line on stdin, one reply per line on the worker's own stdout
(anything the libraries print goes to stderr). ``prepare`` builds cases; ``place`` puts every
case on a fresh placement; ``time`` times one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ptq.errors import PtqError, UserError
from ptq.progress import Progress, duration
from ptq.project import load_project
from ptq.stats.sequential import CONTINUE, SequentialPlan, decide_look

__all__ = [
    "Blocks",
    "DuetPlan",
    "DuetResult",
    "TimedCases",
    "Worker",
    "busy_wait",
    "default_decide",
    "duet",
    "placement_ratios",
    "prepare_pair",
    "run_plan",
    "run_sequential",
    "serve",
    "time_calls",
    "time_window",
]


@dataclass(frozen=True)
class DuetPlan:
    """How long a duet runs: ``sweeps`` passes over the cases, a ``window_s`` window per side each,
    split into ``placements`` blocks per side, each on a fresh allocation of every case's model
    and inputs (:mod:`ptq.run.placement`), timed by ``workers`` successive worker pairs.

    The placement is the judge's unit (:func:`ptq.stats.decide.decide_latency_placements`): one
    allocation can decide a latency by up to 2x, so a duet that kept one prepared case per
    worker turned a placement difference into a "certain" regression. The same windows are
    split over placements, so sampling them costs no extra timing, only the copies and a
    second worker pair's preparation.
    """

    window_s: float = 0.05
    sweeps: int = 30
    placements: int = 10
    workers: int = 2
    #: ``sequential`` (default): each case placement by placement until its verdict is clear at
    #: one of ``looks`` (:mod:`ptq.stats.sequential`), ``sweeps_per_placement`` sweeps each, a
    #: fresh worker pair every ``worker_placements``; ``fixed``: ``sweeps`` over ``placements``
    #: by ``workers`` pairs for every case. The looks fall where a worker pair ends: a pair's
    #: preparation (building and quantizing every open case: most of a duet's time on the quick
    #: matrix) is never paid for one placement, as looks at 4, 6, 8 with pairs of 5 made a case
    #: that settled at 6 do.
    stopping: str = "sequential"
    looks: tuple[int, ...] = (5, 10, 15, 20)
    sweeps_per_placement: int = 3
    worker_placements: int = 5

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.sweeps < 2:
            raise UserError(
                f"a duet needs --window > 0 and --sweeps >= 2, got --window={self.window_s:g} --sweeps={self.sweeps}"
            )
        if not 2 <= self.placements <= self.sweeps or not 1 <= self.workers <= self.placements:
            raise UserError(
                f"a duet needs 2 <= --placements <= --sweeps and 1 <= --workers <= --placements, got "
                f"--placements={self.placements} --sweeps={self.sweeps} --workers={self.workers}"
            )
        if self.stopping not in STOPPING:
            raise UserError(f"--stopping={self.stopping!r}; valid: {', '.join(STOPPING)}")
        if self.sweeps_per_placement < 1 or self.worker_placements < 1:
            raise UserError(
                f"a sequential duet needs --sweeps-per-placement >= 1 and --worker-placements >= 1, got "
                f"{self.sweeps_per_placement} and {self.worker_placements}"
            )
        SequentialPlan(self.looks)  # the looks are checked before any work

    def blocks(self) -> list[list[int]]:
        """Per worker pair, the sweeps of each of its placements: as even as whole numbers allow."""
        sweeps = _spread(self.sweeps, self.placements)
        per_worker = _spread(self.placements, self.workers)
        starts = [sum(per_worker[:i]) for i in range(self.workers)]
        return [sweeps[s : s + n] for s, n in zip(starts, per_worker, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        if self.stopping == "sequential":
            return {
                "window_s": self.window_s,
                "stopping": self.stopping,
                "looks": list(self.looks),
                "sweeps_per_placement": self.sweeps_per_placement,
                "worker_placements": self.worker_placements,
            }
        return {
            "window_s": self.window_s,
            "sweeps": self.sweeps,
            "placements": self.placements,
            "workers": self.workers,
        }

    @staticmethod
    def add_options(p: argparse.ArgumentParser) -> None:
        """The plan's options: ``ptq ab`` and ``ptq gate-quality`` share them, so the benchmark of the
        gate measures the plan the gate runs."""
        p.add_argument(
            "--window",
            type=float,
            default=DuetPlan.window_s,
            help=f"seconds per duet window (default {DuetPlan.window_s})",
        )
        p.add_argument(
            "--sweeps",
            type=int,
            default=DuetPlan.sweeps,
            help=f"fixed: duet windows per case per side (default {DuetPlan.sweeps})",
        )
        p.add_argument(
            "--placements",
            type=int,
            default=DuetPlan.placements,
            help=f"fixed: fresh allocations of each case per side, the sweeps split among them; the latency "
            f"judge's unit (default {DuetPlan.placements})",
        )
        p.add_argument(
            "--workers",
            type=int,
            default=DuetPlan.workers,
            help=f"fixed: worker processes per side, one after another, the placements split among them "
            f"(default {DuetPlan.workers})",
        )
        p.add_argument(
            "--stopping",
            choices=STOPPING,
            default=DuetPlan.stopping,
            help="sequential (default): each case gets placements until its verdict is clear at one of "
            "--looks, the gate's alpha split over them; fixed: --sweeps over --placements for every "
            "case",
        )
        p.add_argument(
            "--looks",
            type=_looks,
            default=DuetPlan.looks,
            metavar="N,N,...",
            help=f"sequential: the placement counts at which a case may stop (default "
            f"{','.join(map(str, DuetPlan.looks))}; the last is the most a case gets)",
        )
        p.add_argument(
            "--sweeps-per-placement",
            type=int,
            default=DuetPlan.sweeps_per_placement,
            help=f"sequential: windows per case per side on each placement (default {DuetPlan.sweeps_per_placement})",
        )
        p.add_argument(
            "--worker-placements",
            type=int,
            default=DuetPlan.worker_placements,
            help=f"sequential: placements per worker pair before a fresh pair (default {DuetPlan.worker_placements})",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DuetPlan:
        return cls(
            args.window,
            args.sweeps,
            args.placements,
            args.workers,
            args.stopping,
            args.looks,
            args.sweeps_per_placement,
            args.worker_placements,
        )


#: How a duet decides how long each case is timed (:class:`DuetPlan`).
STOPPING = ("sequential", "fixed")
#: What ``ptq gate-quality`` injects on side B: a busy-wait, or real compute (a layer run again).
SLOWDOWN_KINDS = ("spin", "compute")


def _looks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give increasing placement counts, e.g. 4,6,8,12") from None


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def busy_wait(seconds: float, timer: Callable[[], float] = time.perf_counter) -> None:
    """Spin (not sleep: a sleep yields the core and its wake-up jitter is larger than 3%)."""
    end = timer() + seconds
    while timer() < end:
        pass


def time_calls(
    fn: Callable[[], Any],
    budget_s: float,
    *,
    min_rounds: int = 10,
    warmup: int = 3,
    timer: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Untimed warm-up, then one call per sample until ``budget_s`` (pytest-benchmark's way)."""
    for _ in range(warmup):
        fn()
    return _samples(fn, budget_s, min_rounds, timer)


def _samples(fn: Callable[[], Any], budget_s: float, least: int, timer: Callable[[], float]) -> list[float]:
    """One call per sample until ``budget_s`` has passed and at least ``least`` were taken."""
    out: list[float] = []
    start = timer()
    while len(out) < least or timer() - start < budget_s:
        t0 = timer()
        fn()
        out.append(timer() - t0)
    return out


#: A duet window's least samples and most warm-up calls (:func:`time_window`).
WINDOW_MIN_SAMPLES = 3
WINDOW_WARMUP = 3


def time_window(
    fn: Callable[[], Any], budget_s: float, *, timer: Callable[[], float] = time.perf_counter
) -> list[float]:
    """One duet window: up to :data:`WINDOW_WARMUP` untimed calls, stopping once they took half of
    ``budget_s`` (at least one), then samples until ``budget_s``, at least :data:`WINDOW_MIN_SAMPLES`.

    Why not :func:`time_calls`' fixed 3 + 10 calls: on a model of 60 ms a call (the quick matrix's
    LSTM classifier at batch 64) that made every "50 ms" window 13 calls, about 0.8 s, and such
    cases took most of a duet's time. One call of that length warms the caches a window needs; the
    placement's statistic is a low quantile over its windows, and the verdict's test over
    placements counts whatever spread fewer samples leave."""
    start = timer()
    for done in range(WINDOW_WARMUP):
        fn()
        if done + 1 < WINDOW_WARMUP and timer() - start >= budget_s / 2:
            break
    return _samples(fn, budget_s, WINDOW_MIN_SAMPLES, timer)


# -- the worker (runs with one side's code) ------------------------------------------------


class TimedCases:
    """Prepared cases as calls, each with its median call time (sizes an injected slowdown): the
    worker's state, and what ``ptq gate-quality`` builds its targets from. ``place`` swaps every
    case for a fresh placement (a copy of its model and inputs); until then the prepared ones run."""

    def __init__(self) -> None:
        self.calls: dict[str, Callable[[], Any]] = {}
        self.medians: dict[str, float] = {}
        #: Per case, a fast call: the 5th percentile of the calibration (the least call under 20 samples).
        #: An injected slowdown is sized by it, as the gate compares a low quantile: sized by the
        #: median, gate-quality's "5%" measured +7.9% at the gate's statistic, and its catch rates flattered.
        self.fastest: dict[str, float] = {}
        self._originals: dict[str, tuple[Any, tuple[Any, ...], Any]] = {}  # model, inputs, output
        self._work: dict[tuple[str, float], Callable[[], None]] = {}  # injected real compute, calibrated once
        self.handed_off = 0  # cases loaded from the side's sessions (ptq.run.handoff), not prepared here

    def prepare(self, cases: Sequence[str], *, threads: int, weights: str, calibrate_s: float = 0.05) -> dict[str, Any]:
        import torch

        from ptq.run.handoff import load_prepared
        from ptq.run.matrix import Case
        from ptq.run.workbench import RunOptions, Workbench

        torch.set_num_threads(threads)
        try:  # the worker runs in its side's tree: the models and recipes its conftest registers
            load_project(Path.cwd())
        except PtqError as exc:
            return {"ready": [], "failed": dict.fromkeys(cases, str(exc))}
        bench = Workbench(RunOptions(threads=threads, weights=weights), probed=False)
        failed: dict[str, str] = {}
        began, self.handed_off = time.perf_counter(), 0
        for spec in cases:
            handed = load_prepared(spec, weights=weights, threads=threads)  # what this side's session quantized
            if handed is not None:
                self.handed_off += 1
                model_, inputs = handed
            else:
                model, _, recipe = spec.rpartition("-")
                try:
                    prepared = bench.prepare(Case(model, recipe))
                except Exception as exc:  # a case that cannot build here is reported, the rest go on
                    failed[spec] = str(exc) if isinstance(exc, PtqError) else f"{type(exc).__name__}: {exc}"
                    continue
                model_, inputs = prepared.model, prepared.inputs

            def call(m=model_, x=inputs) -> Any:
                with torch.inference_mode():
                    return m(*x)

            self._originals[spec] = (model_, inputs, call())
            samples = time_calls(call, calibrate_s, warmup=10)
            ordered = sorted(samples)
            self.calls[spec], self.medians[spec] = call, ordered[len(ordered) // 2]
            self.fastest[spec] = ordered[len(ordered) // 20]
        return {
            "ready": sorted(self.calls),
            "failed": failed,
            "handed_off": self.handed_off,
            "cases_s": time.perf_counter() - began,  # the cases alone, without starting Python and imports
        }

    def place(self, seed: int, cases: Sequence[str] | None = None) -> dict[str, Any]:
        """Every prepared case (or those of ``cases``) on a fresh placement (the previous one freed
        first); what each got."""
        from ptq.run.placement import place

        kinds: dict[str, str] = {}
        for i, spec in enumerate(sorted(self._originals)):
            if cases is not None and spec not in cases:
                continue
            del self.calls[spec]  # the bound call holds the previous placement: free it before the next
            model, inputs, output = self._originals[spec]
            placed = place(model, inputs, seed=seed * 10_007 + i, reference_output=output)
            self.calls[spec] = placed.call
            kinds[spec] = placed.kind + (f" ({placed.why})" if placed.why else "")
        return {"placed": kinds}

    def time(self, case: str, budget_s: float, slow: float = 0.0, kind: str = "spin") -> dict[str, Any]:
        if case not in self.calls:
            return {"error": f"case {case!r} was not prepared"}
        if kind not in SLOWDOWN_KINDS:
            return {"error": f"unknown slowdown kind {kind!r}; valid: {', '.join(SLOWDOWN_KINDS)}"}
        call = self.calls[case]
        if slow > 0:  # only ptq gate-quality asks for this: an injected slowdown
            extra = slow * self.fastest[case]
            work = self._more_work(case, extra) if kind == "compute" else (lambda: busy_wait(extra))
            plain = call

            def call() -> Any:
                result = plain()
                work()
                return result

        return {"samples": time_window(call, budget_s)}

    def _more_work(self, case: str, seconds: float) -> Callable[[], None]:
        """Real compute worth ``seconds`` a call: the case's first Linear / Conv / LSTM / GRU layer run
        again on its own input, as many times as that takes, where one run costs at most half of
        ``seconds``; else (a one-layer model, whose layer is the whole call; an ONNX Runtime or
        OpenVINO peer) a small matmul repeated. Unlike a busy-wait it uses the caches, the memory
        bandwidth and the vector units, so it moves with them. (A first version ran the layer at
        least once: on one-layer micro models a "5%" slowdown measured +92%.)"""
        key = (case, round(seconds, 12))
        if key not in self._work:
            import torch

            generator = torch.Generator().manual_seed(0)
            a = torch.randn(32, 32, generator=generator)

            def matmul() -> Any:
                return torch.mm(a, a)

            unit: Callable[[], Any] = matmul
            per = math.inf
            layer = self._layer_call(case)
            for candidate in ([layer] if layer is not None else []) + [matmul]:
                with torch.inference_mode():
                    samples = time_calls(candidate, 0.05, warmup=3)
                unit, per = candidate, sorted(samples)[len(samples) // 2]
                if per <= seconds / 2:  # fine enough to add up to the fraction; else a smaller unit
                    break
            reps = max(1, round(seconds / per))

            def work(unit: Callable[[], Any] = unit, reps: int = reps) -> None:
                with torch.inference_mode():
                    for _ in range(reps):
                        unit()

            self._work[key] = work
        return self._work[key]

    def _layer_call(self, case: str) -> Callable[[], Any] | None:
        import torch

        model, inputs, _ = self._originals[case]
        if not isinstance(model, torch.nn.Module):
            return None
        layers = [
            m
            for m in model.modules()
            if not list(m.children()) and any(k in type(m).__name__ for k in ("Linear", "Conv", "LSTM", "GRU"))
        ]
        if not layers:
            return None
        seen: list[tuple[Any, ...]] = []
        hook = layers[0].register_forward_pre_hook(lambda module, args: seen.append(args))
        try:
            with torch.inference_mode():
                model(*inputs)
        finally:
            hook.remove()
        if not seen:
            return None
        layer, args = layers[0], seen[0]
        return lambda: layer(*args)


def _replies(lines: Iterator[str], cases: TimedCases) -> Iterator[dict[str, Any]]:
    for line in lines:
        msg = json.loads(line)
        op = msg.get("op")
        if op == "prepare":
            yield cases.prepare(msg["cases"], threads=int(msg["threads"]), weights=msg.get("weights", "auto"))
        elif op == "place":
            yield cases.place(int(msg["seed"]), msg.get("cases"))
        elif op == "time":
            kind = {"kind": msg["kind"]} if "kind" in msg else {}  # only gate-quality's real-compute slowdowns
            yield cases.time(msg["case"], float(msg["budget_s"]), float(msg.get("slow", 0.0)), **kind)
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

    def __init__(
        self,
        label: str,
        *,
        python: str = sys.executable,
        pythonpath: Path | None = None,
        cwd: Path | None = None,
        handoff: Path | None = None,
    ) -> None:
        from ptq.run.handoff import HANDOFF_ENV

        self.label = label
        self.handed_off = 0  # of the cases it last prepared, those its side's sessions handed off
        self.cases_s = math.nan  # seconds its last preparation spent on the cases (nan: its code does not say)
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        env.pop(HANDOFF_ENV, None)
        if handoff is not None:  # where its side's sessions left their quantized models (ptq.run.handoff)
            env[HANDOFF_ENV] = str(handoff)
        if pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH")) if p)
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._proc = subprocess.Popen(
            [python, "-m", "ptq.duet"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=cwd,
            env=env,
        )

    def ask(self, message: Mapping[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def send(self, message: Mapping[str, Any]) -> None:
        """Ask without waiting for the reply (:meth:`receive` reads it): two workers can prepare at once."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker is gone: receive() says why

    def receive(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        try:
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self._proc.wait(timeout=30)
            self._log.seek(0)
            tail = "\n".join(self._log.read().strip().splitlines()[-10:])
            hint = (
                " (that code has no duet worker, ptq.duet: run ptq ab with --latency=rounds)"
                if "No module named ptq.duet" in tail
                else ""
            )
            raise UserError(f"side {self.label}'s duet worker exited (code {self._proc.returncode}){hint}:\n{tail}")
        reply = json.loads(line)
        if "error" in reply:
            raise UserError(f"side {self.label}'s duet worker: {reply['error']}")
        return reply

    def prepare(self, cases: Sequence[str], *, threads: int, weights: str = "auto") -> dict[str, Any]:
        return self.ask(self.prepare_message(cases, threads=threads, weights=weights))

    @staticmethod
    def prepare_message(cases: Sequence[str], *, threads: int, weights: str = "auto") -> dict[str, Any]:
        return {"op": "prepare", "cases": list(cases), "threads": threads, "weights": weights}

    def place(self, seed: int, cases: Sequence[str] | None = None) -> dict[str, str]:
        message: dict[str, Any] = {"op": "place", "seed": seed}
        if cases is not None:
            message["cases"] = list(cases)
        return self.ask(message)["placed"]

    def time(self, case: str, budget_s: float, slow: float = 0.0, kind: str = "spin") -> list[float]:
        message: dict[str, Any] = {"op": "time", "case": case, "budget_s": budget_s, "slow": slow}
        if kind != "spin":
            message["kind"] = kind
        return self.ask(message)["samples"]

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


def prepare_pair(a: Worker, b: Worker, cases: Sequence[str], *, threads: int, weights: str) -> dict[str, str]:
    """Both workers build their cases at once ({case: why} of those either could not): building and
    quantizing is not timed, and each worker runs one torch thread, so on two cores the pair
    prepares in the time of one."""
    for w in (a, b):
        w.send(Worker.prepare_message(cases, threads=threads, weights=weights))
    failed: dict[str, str] = {}
    for w in (a, b):
        reply = w.receive()
        w.handed_off = int(reply.get("handed_off", 0))  # a worker of code before ptq.run.handoff says none
        w.cases_s = float(reply.get("cases_s", math.nan))
        for case, why in reply["failed"].items():
            failed.setdefault(case, f"side {w.label}: {why}")
    return failed


Slot = tuple[str, float]  # (case, the slowdown side B's worker injects: 0 but in ptq gate-quality)
#: Per side label, per slot, the samples of each placement in order (placement k of A beside k of B).
Blocks = dict[str, dict[Slot, list[list[float]]]]


@dataclass(frozen=True)
class DuetResult:
    """What a duet timed: the ``blocks`` of the cases every worker prepared, {case: why} for
    those ``failed`` (left out of every block), and per side label, per case, what each
    placement re-allocated, in placement order (``placed``: "model+inputs", or "inputs" with
    why the model could not be copied, :mod:`ptq.run.placement`), so a run records which it got."""

    blocks: Blocks
    failed: dict[str, str] = field(default_factory=dict)
    placed: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: A sequential duet: per slot, where it stopped (the look's answer, placements it got).
    stopped: dict[Slot, tuple[str, int]] = field(default_factory=dict)


def duet(
    a: Worker,
    b: Worker,
    cases: Sequence[str],
    sweeps: Sequence[int],
    *,
    window_s: float,
    first_placement: int = 0,
    slowdowns: Mapping[str, Sequence[float]] | None = None,
    slots: Sequence[Slot] | None = None,
    slow_kind: str = "spin",
    progress: Callable[[str], None] = lambda line: None,
) -> DuetResult:
    """One worker pair's share of a duet: for each entry of ``sweeps``, both workers place every
    case afresh (seeded by the placement's number and side), then each slot is timed that many
    sweeps, the two sides' windows adjacent and their order alternating (AB, BA, ...). A case has
    one slot, (case, 0.0), unless ``slowdowns`` gives it several (side B slowed by each);
    ``slots``, where given, are the only ones timed and placed (a sequential duet's open ones)."""
    if slots is None:
        slots = [(c, f) for c in cases for f in (slowdowns or {}).get(c, (0.0,))]
        only = None
    else:
        only = sorted({c for c, _ in slots})
    out: Blocks = {w.label: {s: [] for s in slots} for w in (a, b)}
    placed: dict[str, dict[str, list[str]]] = {w.label: {} for w in (a, b)}
    for k, count in enumerate(sweeps):
        placement = first_placement + k
        for side, worker in enumerate((a, b)):
            for case, kind in worker.place(2 * placement + side, only).items():
                placed[worker.label].setdefault(case, []).append(kind)
            for s in slots:
                out[worker.label][s].append([])
        for sweep in range(count):
            for i, (case, slow) in enumerate(slots):
                for worker in (a, b) if (sweep + i) % 2 == 0 else (b, a):
                    got = (
                        worker.time(case, window_s, slow=slow, kind=slow_kind)
                        if worker is b and slow
                        else worker.time(case, window_s)
                    )
                    out[worker.label][(case, slow)][-1].extend(got)
            progress(f"placement {placement + 1}, sweep {sweep + 1}/{count}")
    return DuetResult(out, placed=placed)


#: Per slot, the per-placement ratios (B over A) so far -> the look's answer (:func:`ptq.stats.sequential.decide_look`).
Decide = Callable[[Slot, Sequence[float]], str]


def placement_ratios(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], q: float = 0.01) -> list[float]:
    """Per placement, the ``q``-quantile of side B's samples over side A's (> 1: B slower)."""
    import numpy as np

    return [float(np.quantile(y, q) / np.quantile(x, q)) for x, y in zip(a, b, strict=True) if len(x) and len(y)]


def default_decide(plan: DuetPlan, *, alpha: float = 0.01, threshold: float = 0.05) -> Decide:
    """The gate's defaults (``[tool.ptq.gate]``: alpha 0.01, a 5% threshold, the 1st percentile) for every slot."""
    seq = SequentialPlan(plan.looks, alpha, threshold)
    return lambda slot, ratios: decide_look(ratios, seq)


def run_plan(
    plan: DuetPlan,
    cases: Sequence[str],
    *,
    new_worker: Callable[[str], Worker],
    threads: int,
    weights: str = "auto",
    slowdowns: Mapping[str, Sequence[float]] | None = None,
    progress: Callable[[str], None] = lambda line: None,
    decide: Decide | None = None,
    q: float = 0.01,
    slow_kind: str = "spin",
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DuetResult:
    """The whole duet: sequential (:func:`run_sequential`, ``decide`` says when a slot stops; a
    ``deadline`` on :func:`time.monotonic`, where given, stops it early) or ``plan.workers`` fresh
    worker pairs, one after another, each preparing ``cases`` and timing its share of the placements,
    their results joined in order."""
    if plan.stopping == "sequential":
        return run_sequential(
            plan,
            cases,
            new_worker=new_worker,
            threads=threads,
            weights=weights,
            slowdowns=slowdowns,
            progress=progress,
            decide=decide or default_decide(plan),
            q=q,
            slow_kind=slow_kind,
            deadline=deadline,
            clock=clock,
        )
    if deadline is not None:
        raise UserError("--budget needs --stopping=sequential: a fixed plan times every case alike, to its end")
    out: Blocks = {"A": {}, "B": {}}
    placed: dict[str, dict[str, list[str]]] = {"A": {}, "B": {}}
    failed: dict[str, str] = {}
    done = 0
    sweeps_done = Progress("duet sweeps", sum(sum(s) for s in plan.blocks()), emit=progress)
    for pair, sweeps in enumerate(plan.blocks()):
        a, b = new_worker("A"), new_worker("B")
        try:
            progress(f"duet: worker pair {pair + 1}/{plan.workers} preparing {len(cases)} cases")
            for case, why in prepare_pair(a, b, cases, threads=threads, weights=weights).items():
                failed.setdefault(case, why)
            ready = [c for c in cases if c not in failed]
            got = duet(
                a,
                b,
                ready,
                sweeps,
                window_s=plan.window_s,
                first_placement=done,
                slowdowns=slowdowns,
                slow_kind=slow_kind,
                progress=sweeps_done.step,
            )
        finally:
            a.close()
            b.close()
        for label, slots in got.blocks.items():
            for slot, blocks in slots.items():
                out[label].setdefault(slot, []).extend(blocks)
            for case, kinds in got.placed[label].items():
                placed[label].setdefault(case, []).extend(kinds)
        done += len(sweeps)
    for label, side in out.items():  # a case one later worker could not prepare is dropped from every block
        for slot in [s for s in side if s[0] in failed]:
            del side[slot]
        placed[label] = {c: kinds for c, kinds in placed[label].items() if c not in failed}
    return DuetResult(out, failed, placed)


@dataclass(frozen=True)
class PairCost:
    """A worker pair's preparation: ``fixed`` seconds to start two Pythons and import their code,
    then ``per_case`` seconds a case (loading or quantizing it, and calibrating its call), the
    slower worker's. Split by the workers' own count of the second (``cases_s``); a worker whose
    code does not report it puts it all on the cases."""

    fixed: float
    per_case: float

    @staticmethod
    def of(total: float, cases: int, a: Worker, b: Worker) -> PairCost:
        reported = [w.cases_s for w in (a, b) if math.isfinite(w.cases_s) and 0 <= w.cases_s <= total]
        on_cases = max(reported) if len(reported) == 2 else total
        return PairCost(total - on_cases, on_cases / max(1, cases))

    def seconds(self, cases: int) -> float:
        return self.fixed + self.per_case * cases

    def describe(self, cases: int, a: Worker, b: Worker) -> str:
        loaded = f"A {a.handed_off}/{cases}, B {b.handed_off}/{cases}"
        return (
            f"{duration(self.seconds(cases))}: {duration(self.fixed)} starting Python and importing, "
            f"{duration(self.per_case * cases)} for {cases} case(s); loaded from the sessions' hand-off: {loaded}"
            + (
                " (the rest quantized again in the workers: a model that does not pickle, such as torchao's, or none "
                "handed off)"
                if min(a.handed_off, b.handed_off) < cases
                else ""
            )
        )


def _time_left(plan: DuetPlan, k: int, open_slots: int, per_slot: float, pair_cost: PairCost | None) -> str:
    """After placement ``k``: the time to the next look, where open cases may stop, and the most the
    duet can still take (every open case to the last look, a fresh pair every ``worker_placements``).
    Cases stop at looks, so no single figure between the two is honest."""
    if not open_slots:
        return ""
    pair = pair_cost.seconds(open_slots) if pair_cost is not None else 0.0

    def cost(upto: int) -> float:  # the placements from k to ``upto``, and the fresh pairs among them
        pairs = sum(1 for p in range(k, upto) if p % plan.worker_placements == 0)
        return (upto - k) * per_slot * open_slots + pairs * pair

    look = next(n for n in plan.looks if n > k)
    return f"; about {duration(cost(look))} to the look at {look} placements, at most {duration(cost(plan.looks[-1]))} in all"


def run_sequential(
    plan: DuetPlan,
    cases: Sequence[str],
    *,
    new_worker: Callable[[str], Worker],
    threads: int,
    weights: str,
    slowdowns: Mapping[str, Sequence[float]] | None,
    progress: Callable[[str], None],
    decide: Decide,
    q: float = 0.01,
    slow_kind: str = "spin",
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DuetResult:
    """Placement after placement, only the slots still open: after each, every open slot's
    per-placement ratios go to ``decide``; a slot stops at its first answer other than
    :data:`~ptq.stats.sequential.CONTINUE` (at the last look it always has one). A fresh worker
    pair every ``plan.worker_placements`` placements, preparing only the cases still open.

    ``deadline`` (a ``clock`` reading, ``ptq ab --budget``): no placement, and no worker pair, is
    begun that the cost of the last ones says would end past it; the slots still open then stop
    as ``budget``, and the verdict tests them at the placements they got with the per-look alpha
    (a look short of the plan's spends no more alpha than the looks it replaces)."""
    open_slots = [(c, f) for c in cases for f in (slowdowns or {}).get(c, (0.0,))]
    out: Blocks = {"A": {s: [] for s in open_slots}, "B": {s: [] for s in open_slots}}
    placed: dict[str, dict[str, list[str]]] = {"A": {}, "B": {}}
    failed: dict[str, str] = {}
    stopped: dict[Slot, tuple[str, int]] = {}
    most = plan.looks[-1]
    started = clock()
    per_slot: list[float] = []  # seconds per slot-placement, each placement's
    pair_cost: PairCost | None = None  # what the last pair's preparation says the next one costs

    def out_of_time(cost: float, what: str) -> bool:
        """Past the budget? Never before the first look: every case gets a verdict (a test over
        the first look's placements), whatever the budget; the budget trims only the later looks."""
        if deadline is None or k < plan.looks[0] or clock() + cost <= deadline:
            return False
        for slot in open_slots:
            stopped[slot] = ("budget", k)
        named = ", ".join(dict.fromkeys(c for c, _ in open_slots))
        progress(
            f"duet: the budget ends before {what} could (about {cost:.0f}s); {len(open_slots)} case(s) "
            f"judged at the {k} placement(s) they got: {named}"
        )
        return True

    k = 0
    while open_slots and k < most:
        needed = list(dict.fromkeys(c for c, _ in open_slots))
        if (
            pair_cost is not None
            and per_slot
            and out_of_time(
                pair_cost.seconds(len(needed)) + sorted(per_slot)[len(per_slot) // 2] * len(open_slots),
                "a fresh worker pair's preparation and first placement",
            )
        ):
            break
        a, b = new_worker("A"), new_worker("B")
        try:
            progress(f"duet: worker pair {k // plan.worker_placements + 1} preparing {len(needed)} case(s)")
            began = clock()
            for case, why in prepare_pair(a, b, needed, threads=threads, weights=weights).items():
                failed.setdefault(case, why)
            pair_cost = PairCost.of(clock() - began, len(needed), a, b)
            progress(f"duet: worker pair ready; {pair_cost.describe(len(needed), a, b)}")
            open_slots = [s for s in open_slots if s[0] not in failed]
            for _ in range(plan.worker_placements):
                if not open_slots or k >= most:
                    break
                if per_slot and out_of_time(
                    sorted(per_slot)[len(per_slot) // 2] * len(open_slots), "another placement"
                ):
                    open_slots = []
                    break
                began = clock()
                got = duet(
                    a,
                    b,
                    [],
                    [plan.sweeps_per_placement],
                    window_s=plan.window_s,
                    first_placement=k,
                    slots=open_slots,
                    slow_kind=slow_kind,
                )
                per_slot.append((clock() - began) / len(open_slots))
                k += 1
                for label in ("A", "B"):
                    for slot, blocks in got.blocks[label].items():
                        out[label][slot].extend(blocks)
                    for case, kinds in got.placed[label].items():
                        placed[label].setdefault(case, []).extend(kinds)
                for slot in list(open_slots):
                    answer = decide(slot, placement_ratios(out["A"][slot], out["B"][slot], q))
                    if answer != CONTINUE:
                        stopped[slot] = (answer, k)
                        open_slots.remove(slot)
                progress(
                    f"duet: placement {k}: {len(open_slots)} of {len(out['A'])} case(s) still open, "
                    f"{duration(clock() - started)} elapsed"
                    + _time_left(plan, k, len(open_slots), statistics.median(per_slot), pair_cost)
                )
        finally:
            a.close()
            b.close()
    for label in ("A", "B"):
        for slot in [s for s in out[label] if s[0] in failed]:
            del out[label][slot]
        placed[label] = {c: kinds for c, kinds in placed[label].items() if c not in failed}
    return DuetResult(out, failed, placed, stopped)
