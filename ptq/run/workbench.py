"""Runs a case: builds and quantizes once per session, times it, runs the probes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ptq.config import Config
from ptq.errors import DuplicateRegistration, NotApplicable, PtqError
from ptq.host.device import CPU, Device
from ptq.models import Built, ModelEntry, get_model
from ptq.models.base import Batch
from ptq.recipes import REFERENCE, Bfloat16, Float32, Quantized, Recipe, TorchaoRecipe, apply_recipe, get_recipe
from ptq.run.handoff import save_prepared
from ptq.run.matrix import Case
from ptq.run.placement import DEFAULT_PLACEMENTS
from ptq.run.probing import CheckFailed, quantize_monitors, run_probes
from ptq.storage.results import CaseResult, LatencyStats

__all__ = [
    "DEVICE_RECIPES",
    "DeviceData",
    "PreparedCase",
    "RunOptions",
    "Workbench",
    "check_finite",
    "register_quantize_monitor",
    "run_case",
    "warm_up",
]


@dataclass(frozen=True)
class RunOptions:
    warmup: int = 10  # untimed calls before timing...
    warmup_time: float = 1.0  # ...or fewer, once this many seconds have passed (at least 2 calls)
    threads: int = 1
    weights: str = "auto"
    probes: str | None = None  # glob of probe names; None runs all
    pair_budget_s: float = 1.5  # seconds of interleaved fp32/quantized pairs per case; 0 disables
    placements: int = DEFAULT_PLACEMENTS  # visits (a fresh placement each) the pairs are split over
    #: More visits in the same budget, on CPU, to keep the ``placements`` a memory-bandwidth meter found
    #: quietest (ptq.probes.bandwidth); 0: every visit counts, no meter.
    quiet_extra: int = 0
    rerun_target: float = 0.0  # more visits while the rerun interval is wider than median * (1 +- this); 0: none
    max_visits: int | None = None  # the most visits a case gets for that (None: no more than scheduled)
    #: The session's scheduler of speedup visits (ptq.probes.speedup.SpeedupVisits), which makes every
    #: case's later visits when the session ends; None: each case's visits at once, back to back.
    speedup_visits: Any = field(default=None, compare=False)
    config: Config = field(default_factory=Config)  # validated [tool.ptq], for probes' limits
    device: Device = CPU  # where models and inputs run (--ptq-device)


#: Recipe types whose models run on a device kind other than the CPU; every type runs on CPU. The
#: others (torch.ao int8, ONNX Runtime, OpenVINO, traced and compiled forms) run CPU kernels only.
DEVICE_RECIPES: dict[str, tuple[type[Recipe], ...]] = {"cuda": (Float32, Bfloat16, TorchaoRecipe)}


def _to_device(value: Any, device: Device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device.name)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v, device) for v in value)
    return value


@dataclass(frozen=True)
class DeviceData:
    """A model's data source whose batches land on the run's device, so example inputs, calibration
    and the drift probe's evaluation batches meet the model where it is. Anything else is the source's."""

    source: Any
    device: Device

    def __getattr__(self, name: str) -> Any:
        if name == "source" or name.startswith("__"):  # mid-copy, before fields exist: no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    def batch(self, split: str, index: int, batch_size: int) -> Batch:
        found = self.source.batch(split, index, batch_size)
        return replace(
            found, inputs=_to_device(found.inputs, self.device), target=_to_device(found.target, self.device)
        )


def _check_device(recipe: Recipe, device: Device) -> None:
    """A recipe whose kernels do not run on the device skips, naming the device and what does run there."""
    if not device.is_cuda:
        return
    runs = DEVICE_RECIPES["cuda"]
    if type(recipe) not in runs:  # exact types: a subclass (a Deployed form) may run other kernels
        raise NotApplicable(
            f"recipe {recipe.name!r} ({type(recipe).__name__}) runs on CPU only; on {device.name} "
            f"the suite runs {', '.join(t.__name__ for t in runs)} recipes"
        )


@dataclass
class PreparedCase:
    """Everything a benchmark needs, ready before the clock starts."""

    case: Case
    entry: ModelEntry
    recipe: Recipe
    built: Built
    quantized: Quantized
    inputs: tuple[torch.Tensor, ...]
    #: What quantize monitors recorded while this case was quantized, by monitor name.
    measurements: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> torch.nn.Module:
        return self.quantized.model


QuantizeMonitor = Callable[[Case, RunOptions], AbstractContextManager[dict[str, Any]]]
_QUANTIZE_MONITORS: dict[str, QuantizeMonitor] = {}


def register_quantize_monitor(name: str, monitor: QuantizeMonitor) -> QuantizeMonitor:
    """Wrap every case's one quantization in ``monitor(case, options)`` (a context manager).

    The dict it yields, filled by the time it exits, lands in ``PreparedCase.measurements[name]``:
    a measurement of the quantization step (e.g. its peak memory) without quantizing twice.
    """
    if name in _QUANTIZE_MONITORS:
        raise DuplicateRegistration(f"quantize monitor {name!r} is already registered")
    _QUANTIZE_MONITORS[name] = monitor
    return monitor


class Workbench:
    """Session cache: each float model is built once and each case quantized once.

    Failures are cached too, so a model that cannot build is reported once per case
    without being rebuilt. ``probed=False`` where the cases are only timed (the duet's workers):
    no probe runs, so no probe's quantize monitor either.
    """

    def __init__(self, options: RunOptions, *, probed: bool = True) -> None:
        self.options = options
        self.probed = probed
        self._built: dict[str, Built | BaseException] = {}
        self._prepared: dict[Case, PreparedCase | BaseException] = {}

    def built(self, model: str) -> Built:
        return _cached(self._built, model, lambda: self._build(model))

    def prepare(self, case: Case) -> PreparedCase:
        return _cached(self._prepared, case, lambda: self._prepare(case))

    def _build(self, model: str) -> Built:
        built = get_model(model).build(weights=self.options.weights)
        if self.options.device.is_cuda:
            built.model.to(self.options.device.name)
            built.data = DeviceData(built.data, self.options.device)
        return built

    def _prepare(self, case: Case) -> PreparedCase:
        entry, recipe = get_model(case.model), get_recipe(case.recipe)
        _check_device(recipe, self.options.device)
        built = self.built(case.model)
        with contextlib.ExitStack() as monitors:
            chosen = {**(quantize_monitors(self.options) if self.probed else {}), **_QUANTIZE_MONITORS}
            measured = {n: monitors.enter_context(m(case, self.options)) for n, m in chosen.items()}
            quantized = apply_recipe(recipe, entry, built)
        inputs = entry.example_inputs(built)  # on the device: built.data is DeviceData there
        if self.probed:  # a session of ptq ab hands its quantized model to the side's duet workers
            save_prepared(case.id, quantized.model, inputs, weights=self.options.weights, threads=self.options.threads)
        return PreparedCase(case, entry, recipe, built, quantized, inputs, measured)


def _cached(store: dict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    """``store[key]``, made once; a :class:`PtqError` is stored too and raised again on every ask."""
    if key not in store:
        try:
            store[key] = make()
        except PtqError as exc:
            store[key] = exc
    found = store[key]
    if isinstance(found, BaseException):
        raise found
    return found


def check_finite(output: Any, case: Case) -> None:
    """A NaN or Inf output is a failure of its own, not a drift figure."""
    tensors = output if isinstance(output, (tuple, list)) else (output,)
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            bad = "NaN" if torch.isnan(t).any() else "Inf"
            raise CheckFailed(
                f"{case.id}: the model produced {bad} outputs on the evaluation batch; "
                "check the recipe's calibration data and observers"
            )


def warm_up(
    fn: Callable[[], Any], *, calls: int, max_seconds: float, timer: Callable[[], float] = time.perf_counter
) -> int:
    """Run ``fn`` untimed ``calls`` times, stopping early after ``max_seconds`` (but never
    before 2 calls, when ``calls`` allows). Returns how many calls ran.

    The first calls pay for allocation, kernel selection and weight packing: that is what a
    one-shot ``time.time()`` measures by mistake. A time cap keeps slow models affordable.
    """
    start, done = timer(), 0
    while done < calls and (done < 2 or timer() - start < max_seconds):
        fn()
        done += 1
    return done


def _result(prepared: PreparedCase, options: RunOptions) -> CaseResult:
    q, entry, recipe = prepared.quantized, prepared.entry, prepared.recipe
    return CaseResult(
        case=prepared.case.id,
        model=entry.name,
        model_version=entry.version,
        family=entry.family,
        recipe=recipe.name,
        recipe_version=recipe.version,
        recipe_config=recipe.to_dict(),
        stack=q.stack,
        engine=q.engine,
        weights=prepared.built.weights,
        data=prepared.built.data.description,
        input_shapes=[list(t.shape) for t in prepared.inputs],
        batch_size=entry.batch_size,
        threads=torch.get_num_threads(),
        warmup_rounds=0,
        quantized_layers=q.quantized_layers,
        float_layers=q.float_layers,
        quantize_seconds=round(q.quantize_seconds, 4),
    )


def run_case(benchmark: Any, prepared: PreparedCase, options: RunOptions) -> tuple[CaseResult, list[str]]:
    """Warm up (untimed), time with pytest-benchmark, then run the probes.

    Returns the result and the failure messages; the caller records and then fails.
    """
    model, inputs, device = prepared.model, prepared.inputs, options.device
    result = _result(prepared, options)
    enabled = getattr(benchmark, "enabled", True)
    began = time.perf_counter()
    with torch.inference_mode():
        output = model(*inputs)
        check_finite(output, prepared.case)
        if enabled:
            result.warmup_rounds = warm_up(
                lambda: model(*inputs), calls=options.warmup, max_seconds=options.warmup_time
            )
            device.synchronize()  # no warm-up kernel left queued to land in the first timed round
        # pytest-benchmark reads its clock right after the callable returns: on CUDA the callable
        # synchronises, so each round covers its kernels, not their launch (on CPU: model itself).
        benchmark(device.synchronized(model), *inputs)
    result.phase_seconds["timing"] = round(time.perf_counter() - began, 4)
    stats = getattr(benchmark, "stats", None)
    if enabled and stats is not None:
        result.latency = LatencyStats.from_samples(list(stats.stats.data))
        if prepared.recipe.name == REFERENCE:
            result.speedup_vs_fp32 = 1.0
    if not enabled:
        options = replace(options, pair_budget_s=0.0)
    failures = run_probes(prepared, result, options)
    return result, failures
