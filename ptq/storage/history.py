"""A history of runs: every run file under the paths given (ptq's and plain ``--benchmark-save``
files alike, parsed by :mod:`ptq.storage.runs`), oldest first, for reports to walk commit by commit; or
the same walk over a chained history's compact summaries (:func:`chain_runs`), no raw run needed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ptq.errors import UserError
from ptq.storage.runs import Run, load_run

if TYPE_CHECKING:
    from ptq.storage.chain import CommitSummary

__all__ = ["chain_runs", "load_history"]


def _files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.json"))
            if not found:
                raise UserError(
                    f"{p}: directory holds no .json run; pass files written by --benchmark-json or --benchmark-save"
                )
            files.extend(found)
        else:
            files.append(p)
    return files


def load_history(paths: Sequence[str | Path]) -> list[Run]:
    """Runs from files and directories (searched recursively, e.g. ``.benchmarks/``), oldest first.

    Ordered by commit time (pytest-benchmark's ``commit_info.time``), else the run's datetime.
    """
    if not paths:
        raise UserError("no history given; pass run JSON files or directories such as .benchmarks/ or results/history/")
    runs = [load_run(f, plain=True) for f in _files(paths)]
    return sorted(runs, key=lambda r: (r.time, r.path))


def chain_runs(chain: Sequence[CommitSummary]) -> list[Run]:
    """Each summary (oldest first) as a run of its numerics figures: the cases it kept, the
    numerics keys' values as its environment, its runner as its fingerprint. What
    :func:`ptq.render.trends.series` walks, judging memory, size and drift as the gate does; no latency
    (the chain's links are the latency history, :func:`ptq.storage.chain.trend`)."""
    runs = []
    for s in chain:
        cases = {c: rec for c in s.records if (rec := s.record(c)) is not None}
        runs.append(
            Run(f"{s.commit}.json", s.runner, s.environment, cases, {"commit_info": {"id": s.commit, "time": s.time}})
        )
    return runs
