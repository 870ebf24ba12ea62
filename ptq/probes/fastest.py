"""The fastest path per model: for each stack a user could deploy (torch eager, torch deployed,
ONNX Runtime, OpenVINO), its fastest case whose drift is within tolerance, and how far each is
from the fastest overall.

A quantization path is worth taking only against the best the user could run instead, so the
summary names that best per stack and precision, and for the torch paths what limits them: the
top operators by self time in a short ``torch.profiler`` profile of that one case.

Each pick carries the precision its case really ran: read back from the runtime where the recipe
recorded one (``precision_ran`` and ``precision_label`` in its deployment notes: OpenVINO reports
its ``INFERENCE_PRECISION_HINT``), else the recipe's own. Per stack the summary also lists every
precision its cases ran and what a user of that stack gets with its defaults (``default``:
``fp32`` eager, ``ort_fp32``, ``ov_default``, or an OpenVINO case whose precision read back is
OpenVINO's default on this CPU). docs/fast-paths.md.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from ptq.probes.drift.report import drift_headline
from ptq.recipes.peer import peer_runtime
from ptq.storage.figures import DeploymentFigures, DriftFigures, SizeFigures, metric_figures
from ptq.text import format_table

if TYPE_CHECKING:
    from ptq.storage.results import CaseResult

__all__ = [
    "STACKS",
    "ModelFastest",
    "Pick",
    "StackBest",
    "StackKind",
    "fastest_paths",
    "fastest_table",
    "top_operators",
]


@dataclass(frozen=True)
class StackKind:
    """A deployment stack of the summary: which cases belong to it, and whether to profile them."""

    name: str
    runtime: str | None  # peer runtime name (ptq.recipes.peer), None for PyTorch
    deployed: bool | None  # PyTorch only: traced/compiled (True) or eager (False)
    #: The recipes that run the stack as its user gets it without asking, first preferred.
    default_recipes: tuple[str, ...] = ()

    @property
    def profiled(self) -> bool:
        return self.runtime is None

    def holds(self, stack: str, form: str) -> bool:
        runtime = peer_runtime(stack)
        if self.runtime is not None or runtime is not None:
            return runtime == self.runtime
        return (form != "eager") is self.deployed


STACKS = (
    StackKind("torch eager", None, False, ("fp32",)),
    StackKind("torch deployed", None, True),
    StackKind("ONNX Runtime", "ONNX Runtime", None, ("ort_fp32",)),
    StackKind("OpenVINO", "OpenVINO", None, ("ov_default",)),
)
PEERS = tuple(s.name for s in STACKS if s.runtime is not None)


@dataclass(frozen=True)
class Pick:
    """One case chosen by the summary, with the figures a reader weighs it by."""

    case: str
    recipe: str
    precision: str
    median_ms: float
    #: How many times slower than the model's fastest in-tolerance case (1.0: it is the fastest): the
    #: best's paired speedup over eager fp32 over this one's where both have one, else their medians.
    vs_best: float
    drift: str | None  # the drift headline, e.g. "top1_agreement 0.98 (16 samples, min 0.9)"
    size_bytes: int | None
    speedup_vs_fp32: float | None = None  # paired (interleaved) over the model's eager fp32
    #: The precision in words, as the runtime reported it, e.g. "bf16 (OpenVINO's default on this CPU)".
    precision_label: str | None = None


@dataclass(frozen=True)
class StackBest:
    stack: str
    fastest: Pick | None
    fp32: Pick | None
    int8: Pick | None
    #: Top operators by self time of ``fastest`` (torch stacks only): {op, self_ms_per_call, share}.
    limits: tuple[Mapping[str, Any], ...] = ()
    #: What a user of the stack gets with its defaults (in tolerance), when a case of it ran.
    default: Pick | None = None
    #: The precisions this stack's timed cases of the model ran (read back where recorded).
    ran: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFastest:
    model: str
    best: Pick
    stacks: tuple[StackBest, ...]
    #: torch's fastest in-tolerance int8 median over the fastest peer case's, and the two cases.
    torch_int8_vs_peer: Mapping[str, Any] | None
    #: Timed cases left out: drift beyond tolerance, or not measured.
    excluded: tuple[str, ...] = ()
    #: torch's fastest in-tolerance case (any precision, eager or deployed) over the fastest peer case's.
    torch_best_vs_peer: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _drift(r: CaseResult) -> str | None:
    d = metric_figures(DriftFigures, r.metrics)
    return drift_headline(d.to_dict()) if d is not None else None


def _slower(r: CaseResult, than: CaseResult) -> float:
    """``r``'s time over ``than``'s: by their paired speedups over eager fp32 where both have one
    (each measured against the same fp32 in interleaved pairs, so machine drift cancels), else by
    their pytest-benchmark medians (two separate windows)."""
    if r.speedup_vs_fp32 and than.speedup_vs_fp32:
        return than.speedup_vs_fp32 / r.speedup_vs_fp32
    return _median_s(r) / _median_s(than)


def _median_s(r: CaseResult) -> float:
    """pytest-benchmark's median of a timed case (:func:`fastest_paths` keeps only those)."""
    if r.latency is None:
        raise ValueError(f"{r.case}: not timed, so it has no median")
    return r.latency.median


def _notes(r: CaseResult) -> Mapping[str, Any]:
    d = metric_figures(DeploymentFigures, r.metrics)
    return d.extra if d is not None and d.extra else {}


def precision_ran(r: CaseResult, precision_of: Callable[[str], str]) -> str:
    """The precision ``r`` ran: the one its recipe read back from the runtime, else the recipe's."""
    return str(_notes(r).get("precision_ran") or precision_of(r.recipe))


def _is_default(r: CaseResult, kind: StackKind) -> bool:
    return r.recipe in kind.default_recipes or bool(_notes(r).get("runtime_default"))


def _pick(r: CaseResult, best: CaseResult, precision: str) -> Pick:
    sized = metric_figures(SizeFigures, r.metrics)
    size = sized.serialized_bytes if sized is not None else None
    label = _notes(r).get("precision_label")
    return Pick(
        r.case,
        r.recipe,
        precision,
        round(_median_s(r) * 1e3, 4),
        round(_slower(r, best), 4),
        _drift(r),
        size,
        r.speedup_vs_fp32,
        str(label) if label else None,
    )


def _fastest(results: Sequence[CaseResult]) -> CaseResult | None:
    """By paired speedup where every candidate has one (they share the model's fp32), else by median."""
    if results and all(r.speedup_vs_fp32 for r in results):
        return max(results, key=lambda r: r.speedup_vs_fp32 or 0.0)
    return min(results, key=_median_s, default=None)


def _present(results: Iterable[CaseResult | None]) -> list[CaseResult]:
    return [r for r in results if r is not None]


def _form(r: CaseResult) -> str:
    d = metric_figures(DeploymentFigures, r.metrics)
    return d.form if d is not None else "eager"


Profile = Callable[[str, str], Sequence[Mapping[str, Any]]]


def fastest_paths(
    results: Sequence[CaseResult], precision_of: Callable[[str], str], profile: Profile | None = None
) -> list[ModelFastest]:
    """Per model (in run order): the fastest in-tolerance case overall and per stack.

    In tolerance means the drift probe ran and passed; ``precision_of(recipe)`` names a recipe's
    precision; ``profile(model, recipe)``, when given, returns the top operators of a torch case.
    """
    by_model: dict[str, list[CaseResult]] = {}
    for r in results:
        if r.latency is not None and r.latency.median > 0:
            by_model.setdefault(r.model, []).append(r)
    out = []
    for model, cases in by_model.items():
        ok = [r for r in cases if (d := metric_figures(DriftFigures, r.metrics)) is not None and d.passed is True]
        best = _fastest(ok)
        if best is None:
            continue
        stacks, chosen = [], {}
        ran = {r.case: precision_ran(r, precision_of) for r in cases}
        for kind in STACKS:
            mine = [r for r in ok if kind.holds(r.stack, _form(r))]
            picks = {
                key: _fastest([r for r in mine if want is None or ran[r.case] == want])
                for key, want in (("fastest", None), ("fp32", "fp32"), ("int8", "int8"))
            }
            chosen[kind.name] = picks
            limits = (
                tuple(profile(model, picks["fastest"].recipe)) if profile and kind.profiled and picks["fastest"] else ()
            )
            defaults = sorted(
                (r for r in mine if _is_default(r, kind)),
                key=lambda r: kind.default_recipes.index(r.recipe) if r.recipe in kind.default_recipes else 99,
            )
            fastest, fp32, int8 = (_pick(p, best, ran[p.case]) if p else None for p in picks.values())
            stacks.append(
                StackBest(
                    kind.name,
                    fastest,
                    fp32,
                    int8,
                    limits=limits,
                    default=_pick(defaults[0], best, ran[defaults[0].case]) if defaults else None,
                    ran=tuple(sorted({ran[r.case] for r in cases if kind.holds(r.stack, _form(r))})),
                )
            )
        torch_int8 = _fastest(_present(chosen[s.name]["int8"] for s in STACKS if s.runtime is None))
        torch_best = _fastest(_present(chosen[s.name]["fastest"] for s in STACKS if s.runtime is None))
        peer = _fastest(_present(chosen[name]["fastest"] for name in PEERS))
        versus = best_versus = None
        if torch_int8 and peer:
            versus = {"torch_int8": torch_int8.case, "peer": peer.case, "ratio": round(_slower(torch_int8, peer), 4)}
        if torch_best and peer:
            best_versus = {
                "torch": torch_best.case,
                "torch_precision": ran[torch_best.case],
                "peer": peer.case,
                "peer_precision": ran[peer.case],
                "ratio": round(_slower(torch_best, peer), 4),
            }
        excluded = tuple(r.case for r in cases if r not in ok)
        out.append(ModelFastest(model, _pick(best, best, ran[best.case]), tuple(stacks), versus, excluded, best_versus))
    return out


#: What libkineto (torch.profiler's backend) writes to fd 2 around a CPU-only profile on a CUDA
#: build of torch: its stage marks, and, without a GPU driver, ``ERROR:... gpuGetDeviceCount failed
#: with code 35`` (it lists devices for the trace whatever activities were asked for).
_KINETO_LINE = re.compile(r"^(?P<level>[A-Z]+):\S+ \S+ \d+:\d+ [\w.]+:\d+\] (?P<text>.*)")


def _kineto_noise(line: str) -> bool:
    m = _KINETO_LINE.match(line)
    return m is not None and (m["level"] in ("INFO", "STAGE", "USDT") or "gpuGetDevice" in m["text"])


@contextmanager
def _quiet_kineto() -> Iterator[None]:
    """Hold fd 2 while profiling and write back all but libkineto's noise: the C++ library writes
    past Python's ``sys.stderr``, and its log level is read once per process, from the environment."""
    fd = 2  # std::cerr, whatever sys.stderr is
    try:
        saved = os.dup(fd)
    except OSError:  # no fd 2 (closed, embedded): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            held.seek(0)
            kept = [
                line
                for line in held.read().decode(errors="replace").splitlines(keepends=True)
                if not _kineto_noise(line)
            ]
            if kept:
                os.write(fd, "".join(kept).encode())


def top_operators(
    model: torch.nn.Module, inputs: tuple[Any, ...], *, calls: int = 5, top: int = 3
) -> list[dict[str, Any]]:
    """The ``top`` operators by self CPU time over ``calls`` profiled calls (after one warm call):
    cheap enough to run on the few cases the summary picks, and it names what bounds them."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        model(*inputs)
        with _quiet_kineto(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                model(*inputs)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "op": e.key,
            "self_ms_per_call": round(e.self_cpu_time_total / 1e3 / calls, 4),
            "share": round(e.self_cpu_time_total / total, 4),
        }
        for e in events[:top]
    ]


def _cell(pick: Mapping[str, Any] | None) -> str:
    """The recipe, its paired speedup over eager fp32 and the precision it ran; without a speedup
    (``--ptq-pair-time=0``), its median and how many times the model's fastest it takes."""
    if not pick:
        return "-"
    ran = f" [{pick['precision']}]" if pick.get("precision") else ""
    if pick.get("speedup_vs_fp32"):
        return f"{pick['recipe']} {pick['speedup_vs_fp32']:.2f}x{ran}"
    return f"{pick['recipe']} {pick['median_ms']:.3f} ms ({pick['vs_best']:.2f}x best){ran}"


def fastest_table(summaries: Sequence[Mapping[str, Any]]) -> str:
    """The summary as text, from its JSON form (``ModelFastest.to_dict``), one row per model x stack
    that has an in-tolerance case (a stack the selection left out has none, and no row)."""
    rows = []
    for s in summaries:
        for st in s["stacks"]:
            fastest = st["fastest"]
            if not fastest:
                continue
            limits = ", ".join(f"{op['op']} {op['share']:.0%}" for op in st.get("limits") or ()) or "-"
            rows.append(
                [
                    s["model"],
                    st["stack"],
                    _cell(fastest),
                    fastest.get("drift") or "-",
                    _cell(st["fp32"]),
                    _cell(st["int8"]),
                    _cell(st.get("default")),
                    ",".join(st.get("ran") or ()) or "-",
                    limits,
                ]
            )
        versus = s.get("torch_int8_vs_peer")
        if versus:
            rows.append(
                [
                    s["model"],
                    "torch int8 / peer",
                    f"{versus['ratio']:.2f}x the time",
                    "",
                    versus["torch_int8"],
                    versus["peer"],
                    "",
                    "",
                    "",
                ]
            )
        best = s.get("torch_best_vs_peer")
        if best:
            rows.append(
                [
                    s["model"],
                    "torch best / peer",
                    f"{best['ratio']:.2f}x the time",
                    "",
                    f"{best['torch']} [{best['torch_precision']}]",
                    f"{best['peer']} [{best['peer_precision']}]",
                    "",
                    "",
                    "",
                ]
            )
    return format_table(
        [
            "model",
            "stack",
            "fastest in tolerance",
            "drift",
            "best fp32",
            "best int8",
            "defaults (precision)",
            "ran",
            "top ops by self time",
        ],
        rows,
    )
