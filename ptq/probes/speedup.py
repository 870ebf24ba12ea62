"""Speedup over fp32 measured interleaved: fp32 and quantized calls alternate, pair by pair.

pytest-benchmark times each case in its own window; on a shared machine two windows of the same
model, seconds apart, differ by more than the effect being measured (docs/notes.md has the case
that showed it). Alternating ABBA pairs cancels that drift (duet benchmarking). The
speedup is the ratio of the two sides' 1st percentiles, the statistic the gate judges latency
by (:mod:`ptq.stats.decide`).

One allocation is one draw, and one window is one draw of the machine's state: where the two
models' tensors landed moved a speedup, and so did re-measuring it in the same process a window
later (docs/methodology.md, "One allocation is one draw" and "Visits: time, not the process").
So the pairs are split over visits spread across the session (:class:`SpeedupVisits`), each a
fresh placement of both models and the inputs (:mod:`ptq.run.placement`); each visit gives one
ratio, and the figure is their median with an order-statistic interval over visits.

And a window is one draw of the memory bandwidth other tenants leave the machine: the speedup of
a model that streams its weights from DRAM moves with it (:mod:`ptq.probes.bandwidth`). With
``--ptq-quiet-extra`` the suite makes more visits, reads a bandwidth meter around each, and keeps
the quietest (off by default: it did not hold five runs' figures closer).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ptq.defaults import DEFAULT_MAX_VISITS, DEFAULT_PAIR_TIME, DEFAULT_QUIET_EXTRA, DEFAULT_RERUN_TARGET
from ptq.probes.bandwidth import BandwidthMeter
from ptq.progress import duration
from ptq.recipes import REFERENCE
from ptq.run.placement import DEFAULT_PLACEMENTS, MODEL_AND_INPUTS, place
from ptq.stats.decide import DEFAULT_LOCATION, location
from ptq.stats.estimate import (
    PlacementEstimate,
    RatioEstimate,
    median_interval,
    paired_quantile_ratio,
    repeat_interval,
    visit_ratio,
)
from ptq.storage.figures import SpeedupFigures

if TYPE_CHECKING:
    from ptq.host.device import Device
    from ptq.run.workbench import PreparedCase, RunOptions
    from ptq.storage.results import CaseResult

__all__ = [
    "DEFAULT_MAX_VISITS",
    "DEFAULT_PAIR_TIME",
    "DEFAULT_QUIET_EXTRA",
    "DEFAULT_RERUN_TARGET",
    "SpeedupVisits",
    "interleaved_speedup",
    "metered",
    "placement_speedup",
    "quietest",
]

MIN_PAIRS = 5
MAX_PAIRS = 400


def time_pairs(
    reference: Callable[[], Any],
    candidate: Callable[[], Any],
    *,
    budget_s: float,
    warmup: int = 3,
    min_pairs: int = MIN_PAIRS,
    max_pairs: int = MAX_PAIRS,
    timer: Callable[[], float] = time.perf_counter,
) -> list[tuple[float, float]]:
    """(reference, candidate) call times, alternated ABBA until ``budget_s`` or ``max_pairs``
    (at least ``min_pairs``), after ``warmup`` untimed pairs. ``timer`` is read around each call:
    on CUDA, the device's synchronising clock (:meth:`ptq.host.device.Device.timer`)."""
    for _ in range(warmup):
        reference()
        candidate()
    ref_t: list[float] = []
    cand_t: list[float] = []
    start = timer()
    i = 0
    while i < max_pairs and (i < min_pairs or timer() - start < budget_s):
        order = ((reference, ref_t), (candidate, cand_t)) if i % 2 == 0 else ((candidate, cand_t), (reference, ref_t))
        for fn, sink in order:
            t0 = timer()
            fn()
            sink.append(timer() - t0)
        i += 1
    return list(zip(ref_t, cand_t, strict=True))


def interleaved_speedup(
    reference: Callable[[], Any],
    candidate: Callable[[], Any],
    *,
    budget_s: float = DEFAULT_PAIR_TIME,
    warmup: int = 3,
    min_pairs: int = MIN_PAIRS,
    max_pairs: int = MAX_PAIRS,
    timer: Callable[[], float] = time.perf_counter,
    statistic: str = DEFAULT_LOCATION,
    pairs: list[tuple[float, float]] | None = None,
) -> RatioEstimate:
    """Alternate reference and candidate calls (ABBA order) until ``budget_s`` or ``max_pairs``;
    the ratio of the sides' ``statistic``. ``pairs``, when given, receives the raw (reference,
    candidate) times."""
    got = time_pairs(
        reference, candidate, budget_s=budget_s, warmup=warmup, min_pairs=min_pairs, max_pairs=max_pairs, timer=timer
    )
    if pairs is not None:
        pairs.extend(got)
    return paired_quantile_ratio([r for r, _ in got], [c for _, c in got], q=location(statistic))


#: Visits per case: each one a fresh placement of both models and the inputs, timed in its own
#: window of ``budget / visits`` seconds (``--ptq-placements``).
DEFAULT_VISITS = DEFAULT_PLACEMENTS


@dataclass
class _Visited:
    """One case's speedup in progress: its models, and the samples of the visits made so far."""

    reference: Any
    candidate: Any
    inputs: tuple[Any, ...]
    outputs: tuple[Any, Any]
    seed: int
    on_done: Callable[[PlacementEstimate, dict[str, Any]], None]
    on_error: Callable[[str], None] | None = None
    timer: Callable[[], float] = time.perf_counter
    meter: Callable[[], float] | None = None  # the memory bandwidth's meter, read before and after each visit
    error: str = ""  # why its visits stopped, when one raised
    ref_blocks: list[list[float]] = field(default_factory=list)
    cand_blocks: list[list[float]] = field(default_factory=list)
    readings: list[float] = field(default_factory=list)  # per visit: the mean of the meter's two readings
    kinds: set[str] = field(default_factory=set)
    spent: list[float] = field(default_factory=list)  # per visit: its wall-clock seconds, placement included
    cut: bool = False  # the session's budget ended its visits short of the rerun target
    clock: Callable[[], float] = time.monotonic  # what ``spent`` is read on: the budget's clock

    @property
    def visit_cost(self) -> float:
        """Seconds a further visit is expected to take: the median of those made."""
        return float(np.median(self.spent)) if self.spent else 0.0

    def visit(self, window_s: float) -> None:
        began = self.clock()
        try:
            self._visit(window_s)
        finally:
            self.spent.append(self.clock() - began)

    def _visit(self, window_s: float) -> None:
        k = len(self.ref_blocks)
        # A model whose copy computed the same once is copied alike again: only the first visit
        # checks the copy's outputs (a call of a 135M-parameter LM is a second per side).
        checked = k > 0 and self.kinds == {MODEL_AND_INPUTS}
        ref, cand = (
            place(m, self.inputs, seed=self.seed + 2 * k + i, reference_output=None if checked else out)
            for i, (m, out) in enumerate(((self.reference, self.outputs[0]), (self.candidate, self.outputs[1])))
        )
        self.kinds.update(p.kind + (f" ({p.why})" if p.why else "") for p in (ref, cand))
        before = self.meter() if self.meter is not None else None
        pairs = time_pairs(ref.call, cand.call, budget_s=window_s, warmup=1, min_pairs=2, timer=self.timer)
        if self.meter is not None and before is not None:
            self.readings.append((before + self.meter()) / 2)
        self.ref_blocks.append([r for r, _ in pairs])
        self.cand_blocks.append([c for _, c in pairs])

    def kept(self, extra: int) -> list[int]:
        """The visits that count: all, or with a meter all but the ``extra`` it found busiest."""
        if not self.readings:
            return list(range(len(self.ref_blocks)))
        return quietest(self.readings, len(self.readings) - extra)

    def half_width(self, extra: int, q: float) -> float:
        """The rerun interval's larger half, relative to the median, over the visits that count."""
        ratios = [
            float(np.quantile(self.ref_blocks[i], q) / np.quantile(self.cand_blocks[i], q)) for i in self.kept(extra)
        ]
        low, high, _ = repeat_interval(ratios)
        mid = float(np.median(ratios))
        return max(high / mid - 1, 1 - low / mid)


def quietest(readings: list[float], keep: int) -> list[int]:
    """Indices, in visit order, of the ``keep`` visits with the lowest meter readings (the earlier
    visit first among equal readings)."""
    if keep > len(readings):
        raise ValueError(f"cannot keep {keep} of {len(readings)} visits")
    return sorted(sorted(range(len(readings)), key=lambda i: (readings[i], i))[:keep])


class SpeedupVisits:
    """Times each added case's speedup over its fp32 model in ``visits`` windows, a fresh
    placement of both models and the inputs each (:mod:`ptq.run.placement`), ``budget_s`` split among
    them. :meth:`add` makes a case's first visit at once; :meth:`finish` makes the rest in rounds
    over every added case, so a case's visits lie as far apart as the session allows.

    With a ``target`` (``--ptq-rerun-target``), a case whose rerun interval is wider than
    ``median * (1 +- target)`` after those rounds gets more visits, round by round, until it is
    not or it has ``max_visits``: the noisy cases get the time, the steady ones are done at once.
    At a fixed 6 visits, the cases that missed five runs' agreement were the ones whose visits
    spread most (docs/methodology.md, "Visits until precise").

    With a ``meter`` (:class:`ptq.probes.bandwidth.BandwidthMeter`), ``extra`` more visits are made
    in the same budget and the figures come from the ``visits`` visits the meter found quietest:
    the speedup on the machine's memory system with the least contention the session saw, not an
    average over whatever the neighbours did during it.

    Why rounds: a speedup re-measured in one process moved by 2% (CV) from one 1.5 s window to
    the next, while windows 25 s apart were uncorrelated; placements timed side by side within one
    window shared its machine state, so an interval over them was too narrow to cover the next
    run's figure. Visits apart in time are independent draws of placement and state, the unit the
    interval is over (:func:`ptq.stats.estimate.visit_ratio`: median, order-statistic interval).
    """

    def __init__(
        self,
        *,
        budget_s: float,
        visits: int = DEFAULT_VISITS,
        statistic: str = DEFAULT_LOCATION,
        timer: Callable[[], float] = time.perf_counter,
        meter: Callable[[], float] | None = None,
        extra: int = 0,
        target: float = 0.0,
        max_visits: int | None = None,
        session_meter: BandwidthMeter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if visits < 2:
            raise ValueError(f"an interval over visits needs >= 2 visits, got {visits}")
        if target < 0 or (max_visits is not None and max_visits < visits + extra):
            raise ValueError(
                f"a rerun target must be >= 0 (got {target}) and max visits >= the visits made "
                f"({visits + extra}, got {max_visits})"
            )
        self.target, self.max_visits = target, max_visits if max_visits is not None else visits + extra
        if extra < 0 or (extra and meter is None):
            raise ValueError(f"extra visits ({extra}) need a meter to choose the quietest by, and cannot be negative")
        self.window_s, self.visits, self.extra, self.statistic = budget_s / (visits + extra), visits, extra, statistic
        self.timer = timer  # the device's clock (ptq.host.device.Device.timer): synchronising on CUDA
        self.meter = meter
        self.clock = clock  # wall-clock seconds, for each visit's cost and the session's budget
        #: Read before each case's first visit and before each round: the memory bandwidth the
        #: session's speedups were taken under, stored with the run (:meth:`bandwidth`).
        self.session_meter = session_meter
        self.session_readings: list[float] = []
        self._open: list[_Visited] = []
        self._threads: int | None = None  # torch's threads when the first case was added

    def add(
        self,
        reference: Any,
        candidate: Any,
        inputs: tuple[Any, ...],
        *,
        seed: int = 0,
        on_done: Callable[[PlacementEstimate, dict[str, Any]], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Time the case's first visit now; ``on_done(estimate, latency)`` once its last is made.
        A later visit that raises stops that case alone: ``on_error(why)`` is called instead (without
        it, :meth:`finish` raises once every other case is done), so one case cannot sink a session."""
        with torch.inference_mode():
            outputs = (reference(*inputs), candidate(*inputs))
        case = _Visited(
            reference,
            candidate,
            tuple(inputs),
            outputs,
            seed,
            on_done,
            on_error,
            self.timer,
            self.meter,
            clock=self.clock,
        )
        if self._threads is None:
            self._threads = torch.get_num_threads()
        elif torch.get_num_threads() != self._threads:
            raise ValueError(
                f"speedup visits were added at {self._threads} torch thread(s) and now at "
                f"{torch.get_num_threads()}: one session's visits share one thread count"
            )
        self._read_session_meter()
        case.visit(self.window_s)
        self._open.append(case)

    def _read_session_meter(self) -> None:
        if self.session_meter is not None:
            self.session_readings.append(self.session_meter.read())

    def bandwidth(self) -> dict[str, Any] | None:
        """The session's memory bandwidth over its visits (GB/s: median, lowest, highest reading),
        or None without a session meter or readings. Two runs' speedups of a model that streams
        its weights from DRAM differ when this does (docs/methodology.md, "Memory bandwidth")."""
        if self.session_meter is None or not self.session_readings:
            return None
        gbps = sorted(self.session_meter.gigabytes_per_second(r) for r in self.session_readings)
        return {
            "method": f"fastest of {self.session_meter.copies} copies of {self.session_meter.nbytes >> 20} MiB, "
            "read before each case's first visit and each round of visits",
            "reads": len(gbps),
            "median_gbps": float(np.median(gbps)),
            "low_gbps": gbps[0],
            "high_gbps": gbps[-1],
        }

    def __len__(self) -> int:
        return len(self._open)

    def _visit(self, case: _Visited) -> None:
        if not case.error:
            try:
                case.visit(self.window_s)
            except Exception as exc:  # reported as this case's outcome
                case.error = f"visit {len(case.ref_blocks) + 1} raised {type(exc).__name__}: {exc}"

    def finish(self, progress: Callable[[str], None] | None = None, *, deadline: float | None = None) -> None:
        """The remaining visits, round by round (every other round in reverse order, so no case is
        always visited first), then each case's ``on_done``. ``progress(line)`` is called before each
        round, with the time it is expected to take.

        ``deadline`` (a reading of the visits' ``clock``, ``--ptq-budget``): the scheduled visits are made whatever
        it says (they are the least an interval over visits is worth having); the visits beyond
        them, for ``target``, go to the cases furthest from it first, each only while its expected
        cost still fits before the deadline. A case the budget leaves short of the target says so
        in its ``precision`` (``stopped``: ``budget``)."""
        cases, self._open = self._open, []
        say = progress if progress is not None else (lambda line: None)
        # The cases were timed at the session's thread count; by the end of a pytest session its
        # fixtures have restored torch's default (2 threads on the 2-core VM, where the remaining
        # visits then ran 2-7x slower and erratic). The visits run at the count they started at.
        before = torch.get_num_threads()
        if self._threads is not None:
            torch.set_num_threads(self._threads)
        try:
            scheduled = self.visits + self.extra
            for turn in range(1, scheduled):
                cost = sum(c.visit_cost for c in cases if not c.error)
                say(
                    f"speedup visits, round {turn + 1}/{scheduled} over {len(cases)} case(s), about {duration(cost)} "
                    f"a round, {duration(cost * (scheduled - turn))} for the scheduled rounds"
                    + (f"; {duration(max(0.0, deadline - self.clock()))} of the --ptq-budget left" if deadline else "")
                )
                self._read_session_meter()
                for case in cases if turn % 2 == 0 else reversed(cases):
                    self._visit(case)
            q = location(self.statistic)
            made = scheduled
            while self.target > 0 and made < self.max_visits:
                wanting = sorted(
                    (c for c in cases if not c.error and not c.cut and c.half_width(self.extra, q) > self.target),
                    key=lambda c: -c.half_width(self.extra, q),
                )
                if deadline is not None:
                    room = deadline - self.clock()
                    for case in wanting:
                        fits = case.visit_cost <= room
                        room -= case.visit_cost if fits else 0.0
                        case.cut = not fits
                    wanting = [c for c in wanting if not c.cut]
                if not wanting:
                    break
                made += 1
                cost = sum(c.visit_cost for c in wanting)
                say(
                    f"speedup visits, round {made} (at most {self.max_visits}) over the {len(wanting)} case(s) whose "
                    f"rerun interval is wider than +-{self.target:.0%}, about {duration(cost)}"
                    + (f"; {duration(max(0.0, deadline - self.clock()))} of the --ptq-budget left" if deadline else "")
                )
                self._read_session_meter()
                for case in wanting:
                    self._visit(case)
            short = [c for c in cases if c.cut]
            if short:
                say(
                    f"speedup visits: the --ptq-budget left {len(short)} case(s) short of +-{self.target:.0%} "
                    f"(their rows say 'budget')"
                )
        finally:
            torch.set_num_threads(before)
        best = min((r for case in cases for r in case.readings), default=None)  # the session's quietest reading
        unreported = []
        for case in cases:
            if case.error:
                if case.on_error is None:
                    unreported.append(case.error)
                else:
                    case.on_error(case.error)
                continue
            kept = case.kept(self.extra)
            est = visit_ratio([case.ref_blocks[i] for i in kept], [case.cand_blocks[i] for i in kept], q=q)
            per = [float(np.quantile(case.cand_blocks[i], q)) for i in kept]
            mid, low, high, _ = median_interval(per)
            again_low, again_high, again_level = repeat_interval(per)
            latency = {
                "statistic": self.statistic,
                "ms": mid * 1e3,
                "low_ms": low * 1e3,
                "high_ms": high * 1e3,
                "repeat": {"low_ms": again_low * 1e3, "high_ms": again_high * 1e3, "level": again_level},
                "per_placement_ms": [x * 1e3 for x in per],
                "spread": max(per) / min(per) - 1,
                "placed": sorted(case.kinds),
            }
            if case.readings and best is not None:
                latency["bandwidth"] = _bandwidth_record(case, kept, best, q)
            if self.target > 0:
                width = case.half_width(self.extra, q)
                reached = width <= self.target
                latency["precision"] = {
                    "target": self.target,
                    "half_width": width,
                    "reached": reached,
                    "visits": len(case.ref_blocks),
                    "max_visits": self.max_visits,
                    "stopped": "target" if reached else "budget" if case.cut else "max_visits",
                }
            case.on_done(est, latency)
        if unreported:
            raise RuntimeError("speedup visits failed: " + "; ".join(unreported))


def metered(device: Device, extra: int, *, session: bool = True) -> dict[str, Any]:
    """:class:`SpeedupVisits` keywords for a memory-bandwidth meter on ``device``, read each round
    (``session_meter``, for a session whose run stores it), and for ``extra`` metered visits: on CPU
    only (a GPU model's kernels stream device memory, which a host copy does not measure). One
    meter serves both."""
    if device.is_cuda or not (session or extra):
        return {}
    meter = BandwidthMeter()
    return {**({"session_meter": meter} if session else {}), **({"meter": meter.read, "extra": extra} if extra else {})}


def _bandwidth_record(case: _Visited, kept: list[int], best: float, q: float) -> dict[str, Any]:
    """Which visits were kept and how contended each was: the meter's reading over the session's
    quietest, and every visit's ratio (kept or not), so a reader can see what the choice changed."""
    ratios = [
        float(np.quantile(r, q) / np.quantile(c, q)) for r, c in zip(case.ref_blocks, case.cand_blocks, strict=True)
    ]
    return {
        "meter_ms": [x * 1e3 for x in case.readings],
        "session_best_ms": best * 1e3,
        "kept": kept,
        "kept_excess": max(case.readings[i] for i in kept) / best - 1,
        "ratio_per_visit": ratios,
    }


def placement_speedup(
    reference: Any,
    candidate: Any,
    inputs: tuple[Any, ...],
    *,
    budget_s: float,
    placements: int,
    statistic: str = DEFAULT_LOCATION,
    seed: int = 0,
) -> tuple[PlacementEstimate, dict[str, Any]]:
    """One case's speedup over ``placements`` visits made back to back (:class:`SpeedupVisits`
    with that case alone): the estimate and the candidate's per-visit latency."""
    got: list[tuple[PlacementEstimate, dict[str, Any]]] = []
    visits = SpeedupVisits(budget_s=budget_s, visits=placements, statistic=statistic)
    visits.add(reference, candidate, inputs, seed=seed, on_done=lambda est, latency: got.append((est, latency)))
    visits.finish()
    return got[0]


def _speedup_probe(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> dict[str, Any] | None:
    """fp32 itself is timed too, against a second placement of itself: its ratio is the A/A
    spread between visits. With the session's :class:`SpeedupVisits` (``options.speedup_visits``)
    the figures land in ``result`` when the session finishes its rounds; without, at once."""
    if options.pair_budget_s <= 0:
        return None

    def done(est: PlacementEstimate, latency: dict[str, Any]) -> None:
        if prepared.recipe.name != REFERENCE:
            result.speedup_vs_fp32 = est.ratio
        bandwidth, precision = latency.pop("bandwidth", None), latency.pop("precision", None)
        chosen = (
            f"the {est.n} of {len(bandwidth['meter_ms'])} visits a memory-bandwidth meter found quietest"
            if bandwidth
            else f"{est.n} visits"
        )
        result.metrics["speedup"] = SpeedupFigures.from_dict(
            {  # checked against the schema as it is written
                "method": f"interleaved ABBA pairs in {chosen} spread over the session, a fresh placement each: "
                f"per visit {DEFAULT_LOCATION} of fp32 calls / {DEFAULT_LOCATION} of the case's calls; median "
                f"over visits, order-statistic interval (coverage in 'level')",
                **est.to_dict(),
                "latency_placements": latency,
                **({"bandwidth": bandwidth} if bandwidth else {}),
                **({"precision": precision} if precision else {}),
            }
        ).to_dict()

    visits = options.speedup_visits
    own = visits is None
    if own:
        visits = SpeedupVisits(
            budget_s=options.pair_budget_s,
            visits=options.placements,
            timer=options.device.timer(),
            target=options.rerun_target,
            max_visits=options.max_visits,
            **metered(options.device, options.quiet_extra, session=False),
        )  # nothing stores it

    def failed(why: str) -> None:  # no figure, and the comparison says "not measured", never "ok"
        result.metrics["speedup"] = {"not_measured": f"{prepared.case.id}: {why}"}

    visits.add(
        prepared.built.model,
        prepared.model,
        prepared.inputs,
        seed=zlib.crc32(prepared.case.id.encode()),
        on_done=done,
        on_error=failed,
    )
    if own:
        visits.finish()
    return None
