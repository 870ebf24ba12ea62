"""Probes: measurements run on a case after its timed rounds (drift, memory, size...).

Each probe writes into ``result.metrics[name]`` and raises :class:`CheckFailed` when the case
breaks a limit. All probes run before any failure is reported, so every figure is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ptq.errors import PtqError
from ptq.registry import Registry

if TYPE_CHECKING:
    from ptq.run.results import CaseResult
    from ptq.run.workbench import PreparedCase, RunOptions

__all__ = ["CheckFailed", "Probe", "list_probes", "register_probe", "run_probes"]


class CheckFailed(PtqError):
    """A case measured outside its limit: the message names metric, value and limit.

    ``value`` is what the probe measured, recorded even though the case fails.
    """

    def __init__(self, message: str, *, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


@dataclass(frozen=True)
class Probe:
    name: str
    fn: Callable[[PreparedCase, CaseResult, RunOptions], Any]
    description: str = ""


_REGISTRY: Registry[Probe] = Registry("probe")


def register_probe(name: str, *, description: str = "", replace: bool = False):
    """Decorator: ``fn(prepared, result, options)``; its return value lands in ``result.metrics[name]``."""

    def decorator(fn):
        _REGISTRY.register(name, Probe(name, fn, description), replace=replace)
        return fn

    return decorator


def list_probes() -> list[str]:
    return _REGISTRY.names()


def run_probes(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> list[str]:
    """Run every enabled probe; returns the failure messages (empty when all passed)."""
    failures = []
    for name in _REGISTRY.names(options.probes):
        probe = _REGISTRY.get(name)
        try:
            value = probe.fn(prepared, result, options)
        except CheckFailed as exc:
            failures.append(f"[{name}] {exc}")
            value = exc.value
        if value is not None:
            result.metrics[name] = value
    return failures
