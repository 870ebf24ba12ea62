"""Probes: measurements run on a case after its timed rounds (drift, memory, size...).

Each probe writes into ``result.metrics[name]`` and raises :class:`CheckFailed` when the case
breaks a limit. All probes run before any failure is reported, so every figure is recorded.

The built-in probes are :data:`BUILTIN_PROBES`, run in that order; probe modules register
nothing on import. Others follow: :func:`register_probe` (a conftest) and entry points in group
``ptq.probes`` (an installed package), each resolving to a :class:`Probe`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ptq.errors import PtqError
from ptq.registry import NamedRegistry, resolve
from ptq.storage.figures import Figures

if TYPE_CHECKING:
    from ptq.run.workbench import PreparedCase, QuantizeMonitor, RunOptions
    from ptq.storage.results import CaseResult

__all__ = ["BUILTIN_PROBES", "CheckFailed", "Probe", "list_probes", "quantize_monitors", "register_probe", "run_probes"]


class CheckFailed(PtqError):
    """A case measured outside its limit: the message names metric, value and limit.

    ``value`` is what the probe measured, recorded even though the case fails.
    """

    def __init__(self, message: str, *, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


@dataclass(frozen=True)
class Probe:
    """``fn(prepared, result, options)``, whose return value lands in ``result.metrics[name]``;
    ``monitor`` (optional) wraps the case's one quantization (see
    :func:`ptq.run.workbench.register_quantize_monitor`), its dict landing in
    ``prepared.measurements[name]``. Either may be a ``"module:function"`` string, imported when
    first needed."""

    name: str
    fn: Callable[[PreparedCase, CaseResult, RunOptions], Any] | str
    description: str = ""
    monitor: QuantizeMonitor | str | None = None


# Their public path: a conftest, an entry point and the registry's messages name them ``ptq.probes.*``.
CheckFailed.__module__ = Probe.__module__ = "ptq.probes"


#: The built-in probes, in the order they run.
BUILTIN_PROBES: tuple[Probe, ...] = (
    Probe(
        "speedup",
        "ptq.probes.speedup:_speedup_probe",
        "interleaved speedup over the same model's fp32, over visits spread across the session "
        "(a fresh placement each), with an order-statistic interval over visits",
    ),
    Probe(
        "lm",
        "ptq.probes.lm:_lm_probe",
        "LM decode with a KV cache (greedy, EOS ignored): time to first token, per-token p50/p90, tokens/s, "
        "KV-cache bytes, generated-token agreement, decode speedup over fp32 and decode memory (weights, KV cache, "
        "activations)",
    ),
    Probe(
        "deployment",
        "ptq.probes.best_fp32:_deployment_probe",
        "the stack and deployment form that ran, and compile/freeze seconds",
    ),
    Probe(
        "drift",
        "ptq.probes.drift.profiles:_drift_probe",
        "output drift from the float model on eval data, gated by [tool.ptq.tolerance]",
    ),
    Probe(
        "memory",
        "ptq.probes.memory:_probe",
        "peak memory of one inference and of the quantization step (memray)",
        monitor="ptq.probes.memory:quantize_monitor",
    ),
    Probe(
        "size",
        "ptq.probes.size:_size_probe",
        "serialized model bytes and their ratio to the same model's fp32 state_dict",
    ),
)

_REGISTRY: NamedRegistry[Probe] = NamedRegistry("probe", Probe, entry_point_group="ptq.probes", builtins=BUILTIN_PROBES)


def register_probe(name: str, *, description: str = "", replace: bool = False):
    """Decorator: ``fn(prepared, result, options)``; its return value lands in ``result.metrics[name]``.
    It runs after the built-in probes, e.g. in a conftest::

        @register_probe("params", description="parameter count")
        def params(prepared, result, options):
            return sum(p.numel() for p in prepared.model.parameters())
    """

    def decorator(fn):
        _REGISTRY.add(Probe(name, fn, description), replace=replace)
        return fn

    return decorator


def list_probes(include: str | None = None) -> list[str]:
    """The registered probes' names, or those ``include`` (a ``--ptq-probes`` glob) selects."""
    return _REGISTRY.names(include)


def quantize_monitors(options: RunOptions) -> dict[str, QuantizeMonitor]:
    """The quantize monitors of the probes ``options`` selects, by probe name."""
    probes = (_REGISTRY.get(name) for name in _REGISTRY.names(options.probes))
    return {p.name: resolve(p.monitor) for p in probes if p.monitor is not None}


def run_probes(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> list[str]:
    """Run every enabled probe; returns the failure messages (empty when all passed)."""
    failures = []
    for name in _REGISTRY.names(options.probes):
        probe = _REGISTRY.get(name)
        began = time.perf_counter()
        try:
            value = resolve(probe.fn)(prepared, result, options)
        except CheckFailed as exc:
            failures.append(f"[{name}] {exc}")
            value = exc.value
        finally:
            result.phase_seconds[name] = round(time.perf_counter() - began, 4)
        if isinstance(value, Figures):  # typed figures (ptq.storage.figures) are stored as their dict
            value = value.to_dict()
        if value is not None:
            result.metrics[name] = value
    return failures
