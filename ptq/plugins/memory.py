"""Memory and size probes for the benchmark cases, and the ``ptq_memory_limit`` marker.

``@pytest.mark.ptq_memory_limit(inference="24 MB", quantize="1 GiB")`` on a benchmark test sets
budgets for every case it runs, over ``[tool.ptq.memory]`` (in the spirit of pytest-memray's
``limit_memory``). Either keyword may be left out.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ptq.probes.memory import LIMIT_KEYS, MARKER_LIMITS, parse_size

__all__: list[str] = []

MARKER = "ptq_memory_limit"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(inference=None, quantize=None): memory budget per step, e.g. inference='24 MB' "
        "(bounds the step's increment as measured by memray); overrides [tool.ptq.memory]",
    )


def _marker_limits(marker: pytest.Mark, where: str) -> dict[str, int | str]:
    if marker.args:
        raise pytest.UsageError(f"{where}: {MARKER} takes keywords only, e.g. {MARKER}(inference='24 MB')")
    unknown = sorted(set(marker.kwargs) - set(LIMIT_KEYS))
    if unknown:
        raise pytest.UsageError(
            f"{where}: {MARKER} has no keyword {', '.join(unknown)}; valid: {', '.join(LIMIT_KEYS)}"
        )
    limits: dict[str, int | str] = {}
    for step, value in marker.kwargs.items():
        try:
            parse_size(value, what=f"{where}: {MARKER} {step}")
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        limits[LIMIT_KEYS[step]] = value
    return limits


@pytest.fixture(autouse=True)
def _ptq_memory_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        yield
        return
    token = MARKER_LIMITS.set(_marker_limits(marker, request.node.nodeid))
    try:
        yield
    finally:
        MARKER_LIMITS.reset(token)
