"""Stored runs and baselines: pytest-benchmark JSON with raw samples, a schema version, and
the environment fingerprint that says whose latencies they are.

Layout under ``results/``::

    results/runs/<UTC time>-<fingerprint>.json     one file per saved run (never merged)
    results/baselines/<fingerprint>.json           the baseline of one environment

A baseline is itself a run file; saving merges per case (a partial run updates only its own
cases, replacing their entries) under an ``fcntl`` lock, so two sessions saving at once lose
nothing, and every write is atomic (temporary file + rename). A baseline holds ptq cases only,
each once: a benchmark without ``extra_info.case`` (a user's own, or one cut short before ptq
recorded it) is not merged, and a file holding a case twice is refused.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptq.errors import UserError
from ptq.run.results import SCHEMA_VERSION
from ptq.storage.cache import atomic_write

__all__ = [
    "BASELINES",
    "MIGRATIONS",
    "RUNS",
    "CaseRecord",
    "Run",
    "baseline_path",
    "find_newest_run",
    "load_run",
    "merge_runs",
    "parse_run",
    "save_baseline",
    "save_run",
]

RUNS = Path("results") / "runs"
BASELINES = Path("results") / "baselines"

#: version -> function upgrading a whole file dict from that version to the next one.
#: Register one when SCHEMA_VERSION is bumped; a file without a path to the current version
#: is refused with the command that re-records it.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

RESAVE = "re-record it: `pytest --benchmark-only --ptq-save-baseline` (or `--ptq-save-run` for a run)"


@dataclass(frozen=True)
class CaseRecord:
    """One case of a run: pytest-benchmark's entry, its ``extra_info`` and raw samples (seconds)."""

    case: str
    extra_info: Mapping[str, Any]
    samples: tuple[float, ...]
    entry: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def model(self) -> str:
        """ptq's model, else pytest-benchmark's group (a plain ``--benchmark-save`` file)."""
        return str(self.extra_info.get("model") or self.entry.get("group") or "ungrouped")

    @property
    def recipe(self) -> str | None:
        return self.extra_info.get("recipe")

    @property
    def stats(self) -> Mapping[str, Any]:
        """pytest-benchmark's summary statistics (seconds), without the raw samples."""
        return {k: v for k, v in (self.entry.get("stats") or {}).items() if k != "data"}

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.extra_info.get("metrics") or {}

    @property
    def rounds(self) -> tuple[tuple[float, ...], ...]:
        """The samples split by the sessions that took them (``ptq ab --latency=rounds`` records
        each round's count as ``extra_info.ab_round_sizes``); one round where no split is
        recorded or it does not add up."""
        return self._split("ab_round_sizes") or (self.samples,)

    @property
    def placements(self) -> tuple[tuple[float, ...], ...] | None:
        """The samples split by placement (``ptq ab``'s duet records each placement's count as
        ``extra_info.ab_placement_sizes``; placement k of one side was timed beside k of the
        other); None where no split is recorded or it does not add up."""
        return self._split("ab_placement_sizes")

    def _split(self, key: str) -> tuple[tuple[float, ...], ...] | None:
        sizes = self.extra_info.get(key)
        if (not isinstance(sizes, list) or not all(isinstance(n, int) and n > 0 for n in sizes)
                or sum(sizes) != len(self.samples)):
            return None
        bounds = [0, *itertools.accumulate(sizes)]
        return tuple(self.samples[a:b] for a, b in itertools.pairwise(bounds))


@dataclass(frozen=True)
class Run:
    path: str
    fingerprint: str
    environment: Mapping[str, Any]
    cases: Mapping[str, CaseRecord]
    data: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def commit_info(self) -> Mapping[str, Any]:
        return self.data.get("commit_info") or {}

    @property
    def commit(self) -> str | None:
        return self.commit_info.get("id")

    @property
    def branch(self) -> str | None:
        return self.commit_info.get("branch")

    @property
    def dirty(self) -> bool:
        return bool(self.commit_info.get("dirty"))

    @property
    def time(self) -> str:
        """Commit time, else the time of the run: the order of a history."""
        return str(self.commit_info.get("time") or self.data.get("datetime") or "")

    @property
    def label(self) -> str:
        """Short commit id (``*`` when the tree was dirty), else the file's name."""
        if self.commit:
            return self.commit[:7] + ("*" if self.dirty else "")
        return Path(self.path).stem


def _migrate(data: dict[str, Any], where: str) -> dict[str, Any]:
    version = data["ptq"].get("schema_version")
    if not isinstance(version, int):
        raise UserError(f"{where}: no integer ptq.schema_version; {RESAVE}")
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{where}: schema version {version} is newer than this ptq reads ({SCHEMA_VERSION}); "
            "upgrade ptq (`pip install -U ptq`) or compare with the ptq that wrote it"
        )
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise UserError(
                f"{where}: schema version {version} is older than {SCHEMA_VERSION} and cannot be migrated; {RESAVE}"
            )
        data = MIGRATIONS[version](data)
        version += 1
        data["ptq"]["schema_version"] = version
    return data


def _plain_environment(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A plain pytest-benchmark file: the machine it names is the best comparability key there is."""
    machine = data.get("machine_info") or {}
    cpu = machine.get("cpu") or {}
    env = {
        "cpu_model": cpu.get("brand_raw") or machine.get("processor") or machine.get("machine"),
        "logical_cpus": cpu.get("count"),
        "os": " ".join(str(machine[k]) for k in ("system", "release") if machine.get(k)),
        "python": machine.get("python_version"),
    }
    key = json.dumps([env["cpu_model"], env["logical_cpus"], env["python"], machine.get("node")])
    return "machine:" + hashlib.sha256(key.encode()).hexdigest()[:8], env


def _provenance(data: dict[str, Any], where: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    data = _migrate(data, where)
    ptq = data["ptq"]
    env, fp = ptq.get("environment"), ptq.get("fingerprint")
    if fp is None and isinstance(ptq.get("fingerprints"), list) and ptq["fingerprints"]:
        fp = "mixed:" + ",".join(map(str, ptq["fingerprints"]))  # shards merged from several machines
    if not isinstance(env, dict) or not isinstance(fp, str):
        raise UserError(f"{where}: ptq.environment or ptq.fingerprint missing; {RESAVE}")
    return data, fp, env


def parse_run(data: Any, where: str, *, plain: bool = False) -> Run:
    """Validate and migrate one run dict; ``where`` names it in every error.

    ``plain``: also accept a file pytest-benchmark wrote without ptq (``--benchmark-save``): its
    benchmarks are cases named by their parameter, its machine stands in for the fingerprint.
    """
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise UserError(f"{where}: not a pytest-benchmark JSON file (no 'benchmarks' list); {RESAVE}")
    if isinstance(data.get("ptq"), dict):
        data, fp, env = _provenance(data, where)
    elif plain:
        fp, env = _plain_environment(data)
    else:
        raise UserError(f"{where}: no 'ptq' provenance (written without the ptq plugin?); {RESAVE}")
    cases: dict[str, CaseRecord] = {}
    for i, bench in enumerate(data["benchmarks"]):
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        name = info.get("case") if isinstance(info, dict) else None
        if name is None and plain and isinstance(bench, dict):
            name = bench.get("param") or bench.get("name")
        if name is None:
            continue  # a benchmark that is not a ptq case (a user's own); not ours to judge
        if name in cases:
            raise UserError(
                f"{where}: case {name!r} appears twice; a run holds each case once: restore the file "
                f"(`git checkout -- {where}`) or delete one of its two entries"
            )
        stats = bench.get("stats") if isinstance(bench.get("stats"), dict) else {}
        samples = stats.get("data") or ()
        if not isinstance(samples, list | tuple) or not all(isinstance(s, int | float) for s in samples):
            raise UserError(f"{where}: benchmarks[{i}].stats.data is not a list of numbers; {RESAVE}")
        cases[str(name)] = CaseRecord(str(name), info or {}, tuple(float(s) for s in samples), bench)
    return Run(where, fp, env, cases, data)


def load_run(path: str | Path, *, plain: bool = False) -> Run:
    """Read a run or baseline file; a truncated or corrupt file is one error naming it."""
    return parse_run(read_json(path), str(path), plain=plain)


def read_json(path: str | Path) -> Any:
    """The raw JSON of a run file, or one error naming the file and the fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; save one with `pytest --benchmark-only --ptq-save-run`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: corrupt or truncated JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f"restore it (`git checkout -- {path}`) or {RESAVE}"
        ) from None
    return data


def baseline_path(root: str | Path, fingerprint: str) -> Path:
    return Path(root) / BASELINES / f"{fingerprint}.json"


def _dump(data: Mapping[str, Any]) -> Callable[[Any], object]:
    return lambda fh: fh.write(json.dumps(data, indent=1, sort_keys=False).encode())


def save_run(root: str | Path, data: Mapping[str, Any], *, now: _dt.datetime | None = None) -> Path:
    """One new file per run, so concurrent sessions never write the same path."""
    run = parse_run(dict(data), "(this run)")
    stamp = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%dT%H%M%S.%fZ")
    return atomic_write(Path(root) / RUNS / f"{stamp}-{run.fingerprint}.json", _dump(data))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _by_case(benchmarks: Any) -> dict[str, Any]:
    """Case id -> its benchmark, the last one where a case repeats; benchmarks without a case left out."""
    out: dict[str, Any] = {}
    for b in benchmarks or ():
        case = (b.get("extra_info") or {}).get("case") if isinstance(b, dict) else None
        if case is not None:
            out.pop(case, None)
            out[case] = b
    return out


def merge_runs(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """``new``'s provenance and cases, plus the cases of ``old`` that ``new`` did not run: one
    entry per case id, ``new``'s replacing ``old``'s."""
    merged = json.loads(json.dumps(new))
    cases = _by_case(old.get("benchmarks") if old is not None else ())
    for case, b in _by_case(merged["benchmarks"]).items():
        cases.pop(case, None)
        cases[case] = b
    merged["benchmarks"] = list(cases.values())
    return merged


def save_baseline(root: str | Path, data: Mapping[str, Any], *, path: str | Path | None = None) -> Path:
    """Merge this run into the baseline of its fingerprint (read-merge-write under a lock).

    A corrupt existing baseline stops the save with its error and is left as it was.
    """
    run = parse_run(json.loads(json.dumps(data)), "(this run)")
    missing = [c for c, r in run.cases.items() if not r.samples]
    if missing:
        raise UserError(f"cannot save a baseline without raw samples for {', '.join(sorted(missing))}; run with timing enabled")
    target = Path(path) if path else baseline_path(root, run.fingerprint)
    with _locked(target):
        old = load_run(target).data if target.exists() else None
        if old is not None and old["ptq"]["fingerprint"] != run.fingerprint:
            raise UserError(
                f"{target}: holds fingerprint {old['ptq']['fingerprint']}, this run is {run.fingerprint}; "
                "save to results/baselines/<fingerprint>.json (the default)"
            )
        return atomic_write(target, _dump(merge_runs(old, run.data)))


def find_newest_run(root: str | Path) -> Path:
    """The most recently written run under ``results/runs`` or ``.benchmarks`` (pytest-benchmark's)."""
    root = Path(root)
    found = [p for d in (root / RUNS, root / ".benchmarks") if d.is_dir() for p in d.rglob("*.json")]
    if not found:
        raise UserError(
            f"no run under {root / RUNS} or {root / '.benchmarks'}; record one with "
            "`pytest --benchmark-only --ptq-save-run` or name a file: `ptq compare RUN.json`"
        )
    return max(found, key=lambda p: p.stat().st_mtime_ns)
