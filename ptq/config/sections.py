"""The sections of ``[tool.ptq]``: every key, its type, its range and default, and why.

Listed here, in one torch-free module, so that validating a config (``ptq compare`` reads one)
imports none of the features that use them; each feature reads its section from here.
Installed packages add sections through entry points in group ``ptq.config_sections``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ptq.errors import UserError
from ptq.stats.decide import DEFAULT_LOCATION, LOCATIONS

__all__ = [
    "BUILTIN_SECTIONS",
    "DATA",
    "DEFAULT_TOLERANCES",
    "GATE",
    "GATE_DEFAULTS",
    "MEMORY",
    "MEMORY_LIMIT_KEYS",
    "TOLERANCE",
    "Range",
    "Section",
    "parse_size",
    "size_problem",
]


@dataclass(frozen=True)
class Range:
    """The finite numbers a key allows: from ``low`` to ``high``, each end included unless its
    ``*_open`` flag says otherwise; ``why`` is said with a refused value, so the user sees the unit."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if math.isinf(self.low):
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


@dataclass(frozen=True)
class Section:
    """A config section: its valid keys with their types (and, for some, their allowed values
    or numeric ``bounds``), whether it takes scopes, and the defaults of the keys that have one."""

    name: str
    keys: Mapping[str, type | tuple[type, ...]]
    scoped: bool = True
    description: str = ""
    choices: Mapping[str, Collection[Any]] = field(default_factory=dict)
    bounds: Mapping[str, Range] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: Per key, what is wrong with a value of the right type (``None``: nothing), checked when the
    #: config loads like ``bounds``: e.g. a memory budget's size string.
    checks: Mapping[str, Callable[[Any], str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        undeclared = sorted(
            (set(self.choices) | set(self.bounds) | set(self.defaults) | set(self.checks)) - set(self.keys)
        )
        if undeclared:
            raise UserError(
                f"config section {self.name!r} constrains undeclared key(s) {', '.join(undeclared)}; "
                "declare them in keys"
            )


#: Defaults of ``[tool.ptq.gate]`` (ptq.gate.judges).
GATE_DEFAULTS: dict[str, Any] = {
    "latency_threshold": 0.05,  # minimum slowdown of the latency statistic (5%) ...
    "alpha": 0.01,  # ... AND a Mann-Whitney p below this
    "latency_statistic": DEFAULT_LOCATION,  # the quantile compared: p1 (see ptq.stats.decide), min, p5, p10, p25, median
    "speedup_threshold": 0.05,  # speedup over fp32 must fall 5% with non-overlapping CIs
    "memory_threshold": 0.05,  # relative growth of peak bytes allowed (or the measured spread) ...
    # ... or this many bytes: one pymalloc arena and change. memray (Python allocators untraced)
    # sees Python's small objects as 1 MiB arena mmaps, so a step that happens to need a fresh
    # arena grows by about 1 MiB: unchanged code moved 17 of 280 step figures by 0.96-1.08 MiB
    # between two runs on the reference machine.
    "memory_absolute": 5 << 18,  # 1.25 MiB
    "size_threshold": 0.01,  # relative growth of serialized bytes allowed
    "drift_tolerance": 0.005,  # absolute worsening of the drift figure allowed
}

GATE = Section(
    "gate",
    keys={k: str if isinstance(v, str) else (int, float) for k, v in GATE_DEFAULTS.items()},
    choices={"latency_statistic": tuple(LOCATIONS)},
    bounds={
        "latency_threshold": Range(0, why="a fraction of the latency statistic: 0.05 is 5%"),
        "alpha": Range(0, 1, low_open=True, high_open=True, why="a p-value cutoff"),
        "speedup_threshold": Range(0, 1, high_open=True, why="a fraction of the speedup, which cannot fall by 100%"),
        "memory_threshold": Range(0, why="a fraction of peak bytes: 0.05 is 5%"),
        "memory_absolute": Range(0, why="bytes"),
        "size_threshold": Range(0, why="a fraction of serialized bytes: 0.01 is 1%"),
        "drift_tolerance": Range(0, why="an absolute worsening of the drift figure"),
    },
    defaults=GATE_DEFAULTS,
    description="regression gate thresholds (ptq compare, --ptq-compare, ptq ab)",
)

#: Every key of ``[tool.ptq.tolerance]`` (ptq.probes.drift.profiles) with its default. A gate whose
#: metric a profile does not measure is not applied; set a bound to its loosest value to switch a gate off.
DEFAULT_TOLERANCES: dict[str, float] = {
    "max_relative_accuracy_drop": 0.01,  # MLPerf (>= 99% of fp32) and INC (1% relative loss)
    "max_absolute_accuracy_drop": 0.01,  # NNCF accuracy control
    "min_top1_agreement": 0.75,  # unlabeled classifiers: share of float's top-1 kept
    "min_top5_agreement": 0.95,  # share of float's top-1 still within the top-5
    "min_cosine": 0.98,  # mean per-sample cosine similarity of outputs / embeddings
    "min_neighbour_agreement": 0.9,  # encoders: nearest other sentence unchanged
    "min_sqnr_db": 20.0,  # raw tensors: output signal-to-quantization-noise ratio
    "min_output_sqnr_db": 5.0,  # classifiers: floor that catches a broken recipe on any weights
    "max_perplexity_rise": 0.05,  # LMs: relative held-out perplexity rise (README, "Language models")
}

#: Tolerances that are shares of the samples (accuracy drops, agreements): in [0, 1].
_SHARES = (
    "max_relative_accuracy_drop",
    "max_absolute_accuracy_drop",
    "min_top1_agreement",
    "min_top5_agreement",
    "min_neighbour_agreement",
)

TOLERANCE = Section(
    "tolerance",
    keys={k: (int, float) for k in DEFAULT_TOLERANCES},
    bounds={
        **dict.fromkeys(_SHARES, Range(0, 1, why="a share: 0.01 is 1%")),
        "min_cosine": Range(-1, 1, why="a cosine similarity"),
    },
    defaults=DEFAULT_TOLERANCES,
    description="drift tolerances of the drift probe (per model, recipe or case)",
)

#: Steps the memory probe (ptq.probes.memory) measures, with their budget key in ``[tool.ptq.memory]``.
MEMORY_LIMIT_KEYS = {"inference": "inference_limit", "quantize": "quantize_limit"}

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
}
_SIZE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_SIZE_EXAMPLE = "write bytes or a size such as '24 MB', '512 KiB' or '1.5 GiB'"


def _size(value: int | str) -> tuple[int | None, str | None]:
    """``(bytes, None)``, or ``(None, what is wrong)``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None, f"must be bytes or a size such as '24 MB', got {value!r}"
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            return None, f"cannot parse size {value!r}; {_SIZE_EXAMPLE}"
        number = float(match.group(1)) * _UNITS[unit]
        if not math.isfinite(number):
            return None, f"size {value!r} is too large; {_SIZE_EXAMPLE}"
        size = int(number)
    if size <= 0:
        return None, f"must be positive, got {value!r}; {_SIZE_EXAMPLE}"
    return size, None


def size_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as a memory budget, or None."""
    return _size(value)[1]


def parse_size(value: int | str, *, what: str = "memory limit") -> int:
    """Bytes from an int or a string such as ``"24 MB"`` (10**6) or ``"1.5 GiB"`` (2**30)."""
    size, problem = _size(value)
    if size is None:
        raise UserError(f"{what}: {problem}")
    return size


MEMORY = Section(
    "memory",
    keys={key: (int, str) for key in MEMORY_LIMIT_KEYS.values()},
    checks=dict.fromkeys(MEMORY_LIMIT_KEYS.values(), size_problem),
    description="memory budgets on a step's increment: bytes, or a size such as '24 MB' or '1.5GiB'",
)

#: Where the torchvision entries read images (ptq.models.image_folder).
DATA = Section(
    "data",
    keys={"image_folder": str},
    scoped=False,
    description="evaluation data: image_folder = ImageFolder-layout directory for the torchvision models",
)

#: The built-in sections, in the order ``valid sections`` lists them.
BUILTIN_SECTIONS: tuple[Section, ...] = (DATA, GATE, MEMORY, TOLERANCE)
