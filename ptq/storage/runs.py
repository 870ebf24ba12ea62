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
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptq.errors import UserError
from ptq.host.cache import atomic_write
from ptq.storage.results import SCHEMA_VERSION

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
    "path",
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

#: ``extra_info`` key of a case measured elsewhere than the file's own provenance says: a shard
#: from another machine (``ptq merge``), or a baseline's case a later partial save did not touch
#: (:func:`merge_runs`). ``{"fingerprint": str, "environment": {...}, "commit_info": {...}}``.
PROVENANCE = "provenance"


def damaged_fix(where: str) -> str:
    """The fix for a damaged run file: one that works whether the file is read or saved into (a
    baseline refused by ``--ptq-save-baseline`` must be moved aside before a save can replace it)."""
    if not Path(where).is_file():
        return RESAVE
    return f"restore it (`git checkout -- {where}`), or move it aside (`mv {where} {where}.damaged`) and {RESAVE}"


def _replace_fix(where: str) -> str:
    return f"move it aside (`mv {where} {where}.old`) and {RESAVE}" if Path(where).is_file() else RESAVE


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
        if (
            not isinstance(sizes, list)
            or not all(isinstance(n, int) and n > 0 for n in sizes)
            or sum(sizes) != len(self.samples)
        ):
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

    def provenance_of(self, case: str) -> Mapping[str, Any] | None:
        """The case's own provenance (:data:`PROVENANCE`) where it differs from the file's, else None."""
        rec = self.cases.get(case)
        found = rec.extra_info.get(PROVENANCE) if rec is not None else None
        return found if isinstance(found, Mapping) else None

    def environment_of(self, case: str) -> Mapping[str, Any]:
        """The environment ``case`` was measured in: its own provenance's, else the file's."""
        own = self.provenance_of(case)
        return own["environment"] if own is not None else self.environment

    def fingerprint_of(self, case: str) -> str:
        """The timing key ``case`` was measured under: its own (a merged shard's), else the file's."""
        own = self.provenance_of(case)
        rec = self.cases.get(case)
        legacy = rec.extra_info.get("fingerprint") if rec is not None else None  # ptq merge before provenance
        return str(own["fingerprint"] if own is not None else legacy or self.fingerprint)

    def has_own_provenance(self, case: str) -> bool:
        rec = self.cases.get(case)
        return self.provenance_of(case) is not None or (rec is not None and "fingerprint" in rec.extra_info)

    @property
    def label(self) -> str:
        """Short commit id (``*`` when the tree was dirty), else the file's name."""
        if self.commit:
            return self.commit[:7] + ("*" if self.dirty else "")
        return Path(self.path).stem


def _migrate(data: dict[str, Any], where: str) -> dict[str, Any]:
    version = data["ptq"].get("schema_version")
    if not isinstance(version, int):
        raise UserError(f"{where}: no integer ptq.schema_version; {damaged_fix(where)}")
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{where}: schema version {version} is newer than this ptq reads ({SCHEMA_VERSION}); "
            "upgrade ptq (`pip install -U pytest-ptq`) or compare with the ptq that wrote it"
        )
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise UserError(
                f"{where}: schema version {version} is older than {SCHEMA_VERSION} and cannot be migrated; "
                f"{_replace_fix(where)}"
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
        raise UserError(f"{where}: ptq.environment or ptq.fingerprint missing; {damaged_fix(where)}")
    return data, fp, env


def _samples(where: str, i: int, name: str, stats: Mapping[str, Any]) -> tuple[float, ...]:
    """A case's raw latencies (seconds): finite, not negative, or the file is refused as damaged."""
    data = stats.get("data") or ()
    if not isinstance(data, list | tuple) or not all(
        isinstance(s, int | float) and not isinstance(s, bool) for s in data
    ):
        raise UserError(f"{where}: benchmarks[{i}].stats.data is not a list of numbers; {damaged_fix(where)}")
    bad = next((s for s in data if not math.isfinite(s) or s < 0), None)
    if bad is not None:
        raise UserError(
            f"{where}: damaged: case {name!r} has latency sample {bad!r} (benchmarks[{i}].stats.data), "
            f"and a latency is a finite, non-negative time; {damaged_fix(where)}"
        )
    return tuple(float(s) for s in data)


def _check_provenance(where: str, i: int, info: Mapping[str, Any]) -> None:
    found = info.get(PROVENANCE)
    if found is None:
        return
    if (
        not isinstance(found, dict)
        or not isinstance(found.get("fingerprint"), str)
        or not isinstance(found.get("environment"), dict)
        or not isinstance(found.get("commit_info", {}), dict)
    ):
        raise UserError(
            f"{where}: damaged: benchmarks[{i}].extra_info.{PROVENANCE} is not "
            f"{{fingerprint, environment[, commit_info]}}; {damaged_fix(where)}"
        )


def parse_run(data: Any, where: str, *, plain: bool = False) -> Run:
    """Validate and migrate one run dict; ``where`` names it in every error. The one loader of
    run and baseline files: what it returns, readers may use without checking again.

    ``plain``: also accept a file pytest-benchmark wrote without ptq (``--benchmark-save``): its
    benchmarks are cases named by their parameter, its machine stands in for the fingerprint.
    """
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise UserError(f"{where}: not a pytest-benchmark JSON file (no 'benchmarks' list); {damaged_fix(where)}")
    if not isinstance(data.get("commit_info") or {}, dict) or not isinstance(data.get("machine_info") or {}, dict):
        raise UserError(f"{where}: damaged: commit_info or machine_info is not an object; {damaged_fix(where)}")
    if isinstance(data.get("ptq"), dict):
        data, fp, env = _provenance(data, where)
    elif plain:
        fp, env = _plain_environment(data)
    else:
        raise UserError(f"{where}: no 'ptq' provenance (written without the ptq plugin?); {damaged_fix(where)}")
    cases: dict[str, CaseRecord] = {}
    for i, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, dict):
            raise UserError(
                f"{where}: damaged: benchmarks[{i}] is {type(bench).__name__}, not an object; {damaged_fix(where)}"
            )
        info = bench.get("extra_info")
        if info is not None and not isinstance(info, dict):
            raise UserError(f"{where}: damaged: benchmarks[{i}].extra_info is not an object; {damaged_fix(where)}")
        name = info.get("case") if info else None
        if name is None and plain:
            name = bench.get("param") or bench.get("name")
        if name is None:
            continue  # a benchmark that is not a ptq case (a user's own); not ours to judge
        if not isinstance(name, str) or not name:
            raise UserError(
                f"{where}: damaged: benchmarks[{i}] names case {name!r}, not a string; {damaged_fix(where)}"
            )
        if name in cases:
            raise UserError(
                f"{where}: case {name!r} appears twice; a run holds each case once: restore the file "
                f"(`git checkout -- {where}`) or delete one of its two entries"
            )
        if info and not isinstance(info.get("metrics") or {}, dict):
            raise UserError(
                f"{where}: damaged: case {name!r} has extra_info.metrics that is not an object; {damaged_fix(where)}"
            )
        _check_provenance(where, i, info or {})
        stats = bench.get("stats")
        stats = stats if isinstance(stats, dict) else {}
        cases[name] = CaseRecord(name, info or {}, _samples(where, i, name, stats), bench)
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
            f"{path}: corrupt or truncated JSON ({exc.msg}: line {exc.lineno} column {exc.colno}); "
            f"{damaged_fix(str(path))}"
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


def _file_provenance(data: Mapping[str, Any]) -> dict[str, Any]:
    ptq = data.get("ptq") or {}
    fp = ptq.get("fingerprint")
    if not isinstance(fp, str):
        fp = "mixed:" + ",".join(map(str, ptq.get("fingerprints") or ()))
    env = ptq.get("environment")
    out: dict[str, Any] = {"fingerprint": fp, "environment": env if isinstance(env, dict) else {}}
    if data.get("commit_info"):
        out["commit_info"] = data["commit_info"]
    return out


def merge_runs(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """``new``'s provenance and cases, plus the cases of ``old`` that ``new`` did not run: one
    entry per case id, ``new``'s replacing ``old``'s.

    A case ``new`` did not run keeps what it was measured under: where ``old``'s environment or
    commit differs from ``new``'s, it gets ``old``'s in ``extra_info.provenance`` (unless it has
    one already), so the merged file does not relabel it with ``new``'s versions and ``ptq
    compare`` judges it by its own keys (:meth:`Run.environment_of`)."""
    merged = json.loads(json.dumps(new))
    cases = _by_case(json.loads(json.dumps(old.get("benchmarks"))) if old is not None else ())
    for case, b in _by_case(merged["benchmarks"]).items():
        cases.pop(case, None)
        cases[case] = b
    if old is not None and isinstance(old.get("ptq"), Mapping):
        was, now = _file_provenance(old), _file_provenance(merged)
        if (
            was["environment"] != now["environment"]
            or was["fingerprint"] != now["fingerprint"]
            or (was.get("commit_info") or {}).get("id") != (now.get("commit_info") or {}).get("id")
        ):
            ran = set(_by_case(merged["benchmarks"]))
            for case, b in cases.items():
                if case not in ran and isinstance(b.get("extra_info"), dict):
                    b["extra_info"].setdefault(PROVENANCE, was)
    merged["benchmarks"] = list(cases.values())
    return merged


def save_baseline(root: str | Path, data: Mapping[str, Any], *, path: str | Path | None = None) -> Path:
    """Merge this run into the baseline of its fingerprint (read-merge-write under a lock).

    A corrupt existing baseline stops the save with its error and is left as it was; the error's
    fix (move it aside) lets the same command then record a new one.
    """
    run = parse_run(json.loads(json.dumps(data)), "(this run)")
    missing = [c for c, r in run.cases.items() if not r.samples]
    if missing:
        raise UserError(
            f"cannot save a baseline without raw samples for {', '.join(sorted(missing))}; run with timing enabled"
        )
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


def path(info: Mapping[str, Any], dotted: str) -> Any:
    """``info["a"]["b"]`` for ``"a.b"``; None where any step is missing."""
    node: Any = info
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node
