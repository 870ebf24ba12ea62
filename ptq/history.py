"""A history of runs: ptq's pytest-benchmark JSON files and plain ``--benchmark-save`` files alike,
read into one small shape that reports and comparisons walk over commit by commit."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptq.errors import UserError

__all__ = ["CaseRecord", "Run", "load_history", "load_run_json", "run_from_json"]


@dataclass(frozen=True)
class CaseRecord:
    """One benchmark of one run: pytest-benchmark's ``stats`` (seconds) and ptq's ``extra_info``."""

    name: str
    model: str
    recipe: str | None
    stats: Mapping[str, Any]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.extra.get("metrics") or {}


@dataclass(frozen=True)
class Run:
    source: str
    commit: str | None
    branch: str | None
    dirty: bool
    time: str
    fingerprint: str
    environment: Mapping[str, Any]
    cases: Mapping[str, CaseRecord]

    @property
    def label(self) -> str:
        """Short commit id (``*`` when the tree was dirty), else the file's name."""
        if self.commit:
            return self.commit[:7] + ("*" if self.dirty else "")
        return Path(self.source).stem


def load_run_json(path: str | Path) -> dict[str, Any]:
    """A pytest-benchmark JSON file, or one clear error naming the file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({exc}); rerun the benchmarks to rewrite it") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise UserError(f"{path}: not a pytest-benchmark run (no 'benchmarks' list); pass files written by --benchmark-json or --benchmark-save")
    return doc


def _plain_environment(machine: Mapping[str, Any]) -> dict[str, Any]:
    cpu = machine.get("cpu") or {}
    return {
        "cpu_model": cpu.get("brand_raw") or machine.get("processor") or machine.get("machine"),
        "logical_cpus": cpu.get("count"),
        "os": " ".join(str(machine[k]) for k in ("system", "release") if machine.get(k)),
        "python": machine.get("python_version"),
    }


def _environment(doc: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    ptq = doc.get("ptq") or (doc.get("machine_info") or {}).get("ptq")
    if isinstance(ptq, dict) and ptq.get("environment"):
        fp = ptq.get("fingerprint") or "mixed:" + ",".join(ptq.get("fingerprints") or ["?"])
        return fp, dict(ptq["environment"])
    # A plain pytest-benchmark file: the machine it names is the best comparability key there is.
    env = _plain_environment(doc.get("machine_info") or {})
    key = json.dumps([env.get("cpu_model"), env.get("logical_cpus"), env.get("python"), (doc.get("machine_info") or {}).get("node")])
    return "machine:" + hashlib.sha256(key.encode()).hexdigest()[:8], env


def _case(bench: Mapping[str, Any]) -> CaseRecord:
    info = bench.get("extra_info") or {}
    stats = {k: v for k, v in (bench.get("stats") or {}).items() if k != "data"}
    name = info.get("case") or bench.get("param") or bench.get("name") or "?"
    return CaseRecord(name=str(name), model=str(info.get("model") or bench.get("group") or "ungrouped"),
                      recipe=info.get("recipe"), stats=stats, extra=info)


def run_from_json(doc: Mapping[str, Any], source: str) -> Run:
    commit = doc.get("commit_info") or {}
    fp, env = _environment(doc)
    cases: dict[str, CaseRecord] = {}
    for bench in doc.get("benchmarks", []):
        rec = _case(bench)
        if rec.name in cases:
            raise UserError(f"{source}: case {rec.name!r} appears twice; a run holds each case once")
        cases[rec.name] = rec
    return Run(source=source, commit=commit.get("id"), branch=commit.get("branch"), dirty=bool(commit.get("dirty")),
               time=str(commit.get("time") or doc.get("datetime") or ""), fingerprint=fp, environment=env, cases=cases)


def _files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.json"))
            if not found:
                raise UserError(f"{p}: directory holds no .json run; pass files written by --benchmark-json or --benchmark-save")
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
    runs = [run_from_json(load_run_json(f), str(f)) for f in _files(paths)]
    return sorted(runs, key=lambda r: (r.time, r.source))
