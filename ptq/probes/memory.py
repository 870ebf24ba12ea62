"""Peak memory of a step (one inference, one quantization) measured with memray.

memray intercepts ``malloc``/``mmap`` in every loaded library, so torch's native tensor
buffers count, not only Python objects (``tracemalloc`` sees none of them). A step's
*increment* is memray's high-water mark: the most bytes the step had allocated and not yet
freed at any one moment. Its *peak* adds the process's resident memory just before the step.

memray allows one tracker per process and each costs ~0.2-0.5 s to start and stop (it patches
symbols in every loaded library, and libtorch is big), so a case pays for two: the
quantization is tracked while the Workbench quantizes it (no second quantization), and one
inference call is tracked by the ``memory`` probe after the timed rounds.

memray sees host memory only. On CUDA (``--ptq-device``) each step also records the device's peak
allocated (bytes held by tensors) and reserved (bytes the caching allocator took from the driver)
bytes, from torch's counters reset before the step.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ptq.config.sections import MEMORY, MEMORY_LIMIT_KEYS, parse_size
from ptq.errors import PtqError
from ptq.host.device import CPU, Device
from ptq.probes import CheckFailed
from ptq.recipes import REFERENCE
from ptq.registry import match_globs
from ptq.storage.figures import MemoryFigures
from ptq.text import format_bytes

if TYPE_CHECKING:
    from ptq.run.matrix import Case
    from ptq.run.workbench import PreparedCase, RunOptions
    from ptq.storage.results import CaseResult

__all__ = [
    "MARKER_LIMITS",
    "PROBE",
    "Site",
    "StepMemory",
    "Tracking",
    "check_budget",
    "device_peaks",
    "format_bytes",
    "parse_size",
    "process_rss",
    "track",
]

#: The probe's name: its figures land in ``extra_info["metrics"]["memory"]``.
PROBE = "memory"
#: Steps a case measures, with their budget key in ``[tool.ptq.memory]`` (:mod:`ptq.config.sections`).
LIMIT_KEYS = MEMORY_LIMIT_KEYS
SECTION = MEMORY

#: Budgets from a ``@pytest.mark.ptq_memory_limit(...)`` on the running test (set by ptq.plugins.memory).
MARKER_LIMITS: contextvars.ContextVar[Mapping[str, int | str] | None] = contextvars.ContextVar(
    "ptq_memory_limits", default=None
)

#: Python frames read per allocation site, enough to reach the model's own ``forward``.
MAX_FRAMES = 30


def process_rss() -> int:
    """Resident set size of this process now, in bytes (Linux ``/proc/self/statm``)."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        raise PtqError(
            f"the memory probe reads /proc/self/statm, which {sys.platform} lacks; "
            "run on Linux or leave the probe out with --ptq-probes"
        )
    return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Site:
    """Where memory live at the step's peak was allocated (innermost Python frame)."""

    bytes: int
    allocations: int
    where: str


@dataclass(frozen=True)
class StepMemory:
    """One tracked step. ``peak_bytes`` = resident memory before it + its increment."""

    baseline_bytes: int
    increment_bytes: int
    top_sites: tuple[Site, ...] = ()
    #: On CUDA: the device's peak bytes held by tensors, and held by the caching allocator.
    device_peak_allocated_bytes: int | None = None
    device_peak_reserved_bytes: int | None = None

    @property
    def peak_bytes(self) -> int:
        return self.baseline_bytes + self.increment_bytes

    def to_dict(self) -> dict[str, Any]:
        device = {
            k: v
            for k in ("device_peak_allocated_bytes", "device_peak_reserved_bytes")
            if (v := getattr(self, k)) is not None
        }
        return {
            "peak_bytes": self.peak_bytes,
            "increment_bytes": self.increment_bytes,
            "baseline_bytes": self.baseline_bytes,
            "top_sites": [asdict(s) for s in self.top_sites],
            **device,
        }


@contextlib.contextmanager
def device_peaks(device: Device) -> Iterator[Tracking]:
    """:func:`track` the block's host memory and, on CUDA, the device's peaks (reset on entry)."""
    device.reset_peak()
    with track() as tracking:
        yield tracking
        device.synchronize()  # the block's queued kernels allocate before the peaks are read
    if tracking.memory is not None:
        tracking.memory = replace(
            tracking.memory,
            device_peak_allocated_bytes=device.peak_allocated(),
            device_peak_reserved_bytes=device.peak_reserved(),
        )


@dataclass
class Tracking:
    """What :func:`track` yields; ``memory`` is filled when the block exits."""

    memory: StepMemory | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _frame(frame: tuple[str, str, int]) -> str:
    function, filename, line = frame
    marker = f"{os.sep}site-packages{os.sep}"
    short = filename.split(marker, 1)[1] if marker in filename else filename
    return f"{function} at {short}:{line}"


def _site(frames: list[tuple[str, str, int]]) -> str:
    """The innermost Python frame, and the innermost one outside torch (the model's own line)."""
    if not frames:
        return "(no Python frame: allocated by a native thread)"
    inner = _frame(frames[0])
    for frame in frames:
        where = _frame(frame)
        if not where.split(" at ", 1)[1].startswith(("torch/", f"torch{os.sep}")):
            return inner if where == inner else f"{inner} (from {where})"
    return inner


def _top_sites(reader: Any, top: int) -> tuple[Site, ...]:
    by_site: dict[str, list[int]] = {}
    for record in reader.get_high_watermark_allocation_records(merge_threads=True):
        where = _site(record.stack_trace(max_stacks=MAX_FRAMES))
        sums = by_site.setdefault(where, [0, 0])
        sums[0] += record.size
        sums[1] += record.n_allocations
    ranked = sorted(by_site.items(), key=lambda kv: -kv[1][0])[:top]
    return tuple(Site(size, count, where) for where, (size, count) in ranked)


@contextlib.contextmanager
def track(*, top: int = 3) -> Iterator[Tracking]:
    """Track the block with memray; on exit ``tracking.memory`` holds its :class:`StepMemory`.

    The capture file lives in a temporary directory removed on exit. ``top`` allocation sites
    at the high-water mark are kept for budget messages.
    """
    import memray

    tracking = Tracking()
    with tempfile.TemporaryDirectory(prefix="ptq-memray-") as tmp:
        path = os.path.join(tmp, "step.bin")
        tracker = memray.Tracker(
            path,
            native_traces=False,  # native frames are not needed to *count* native allocations
            follow_fork=False,
            memory_interval_ms=1000,  # RSS samples are unused; the baseline is read directly
            file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS,
        )
        baseline = process_rss()
        try:
            tracker.__enter__()
        except RuntimeError as exc:
            raise PtqError(
                f"memray cannot start ({exc}); another tracker is active in this process "
                "(pytest --memray?): drop it, or leave ptq's memory probe out with --ptq-probes"
            ) from None
        try:
            yield tracking
        finally:
            tracker.__exit__(*sys.exc_info())
        with memray.FileReader(path) as reader:
            meta = reader.metadata
            tracking.memory = StepMemory(
                baseline_bytes=baseline,
                increment_bytes=meta.peak_memory,
                top_sites=_top_sites(reader, top) if top else (),
            )


def enabled(options: RunOptions) -> bool:
    """Whether the run's ``--ptq-probes`` selection includes this probe."""
    return options.probes is None or bool(match_globs([PROBE], options.probes))


def limits_for(case: Case, options: RunOptions) -> dict[str, int]:
    """Budget bytes per step: config (case > recipe > model > top) overridden by a marker."""
    resolved = dict(options.config.resolve(PROBE, model=case.model, recipe=case.recipe))
    resolved.update(MARKER_LIMITS.get() or {})
    out = {}
    for step, key in LIMIT_KEYS.items():
        if key in resolved:
            out[step] = parse_size(resolved[key], what=f"{case.id}: memory {key}")
    return out


def check_budget(case_id: str, step: str, memory: StepMemory, limit: int) -> str | None:
    """The failure message when the step's increment exceeds ``limit``, else None."""
    if memory.increment_bytes <= limit:
        return None
    sites = "; ".join(
        f"{format_bytes(s.bytes)} in {s.allocations} allocation(s) by {s.where}" for s in memory.top_sites
    )
    return (
        f"{case_id}: {step} allocated {format_bytes(memory.increment_bytes)} at its peak "
        f"(process peak {format_bytes(memory.peak_bytes)}), over its {format_bytes(limit)} budget "
        f"({LIMIT_KEYS[step]}); largest allocation sites at the peak: {sites or 'none recorded'}"
    )


@contextlib.contextmanager
def quantize_monitor(case: Case, options: RunOptions) -> Iterator[dict[str, Any]]:
    """Tracks the Workbench's own quantization of a case (see ``ptq.run.workbench.QUANTIZE_MONITORS``)."""
    found: dict[str, Any] = {}
    if case.recipe == REFERENCE or not enabled(options):  # fp32 has no quantization step
        yield found
        return
    with device_peaks(options.device) as tracking:
        yield found
    found["memory"] = tracking.memory


def measure_inference(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], device: Device = CPU) -> StepMemory:
    """One tracked call of an already warmed-up model (first calls pay one-time packing)."""
    with torch.inference_mode(), device_peaks(device) as tracking:
        model(*inputs)
    if tracking.memory is None:  # pragma: no cover - track() always fills it on a clean exit
        raise PtqError("memray returned no capture for the inference step")
    return tracking.memory


def step_figures(inference: StepMemory, quantize: StepMemory | None) -> dict[str, Any]:
    return {
        "method": "memray high-water mark of the step (native + Python allocations); peak = RSS before + increment",
        "inference": inference.to_dict(),
        "quantize": quantize.to_dict() if quantize is not None else None,
    }


def _warm(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], rounds: int) -> None:
    with torch.inference_mode():
        for _ in range(rounds):
            model(*inputs)


def _probe(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> MemoryFigures:
    _warm(prepared.model, prepared.inputs, 1)  # the timed rounds already ran; one call settles caches
    steps = {
        "inference": measure_inference(prepared.model, prepared.inputs, options.device),
        "quantize": prepared.measurements.get(PROBE, {}).get("memory"),
    }
    figures = step_figures(steps["inference"], steps["quantize"])
    failures = []
    for step, limit in limits_for(prepared.case, options).items():
        memory = steps[step]
        if memory is None:  # fp32 has no quantization step to hold to a budget
            continue
        figures[step]["limit_bytes"] = limit
        message = check_budget(prepared.case.id, step, memory, limit)
        if message:
            failures.append(message)
    typed = MemoryFigures.from_dict(figures)  # checked against the schema as it is written
    if failures:
        raise CheckFailed("\n".join(failures), value=typed)
    return typed
