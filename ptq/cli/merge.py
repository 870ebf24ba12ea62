"""``ptq merge SHARD.json... -o RUN.json``: join the JSON files of ``--ptq-shard`` runs into one run.

The merged file is an ordinary pytest-benchmark JSON file, so ``ptq compare`` and ``ptq report``
read it like any other run. Shards must come from the same commit and must not share a case.
Runners of one CI job can land on different CPUs: when the shards' fingerprints differ the
merged run says so (``ptq.fingerprint`` null, ``ptq.fingerprints`` listing them) rather than
pretending to one, and each case keeps its shard's fingerprint in ``extra_info``; where the
shards' environments differ, each case also keeps its shard's environment (``extra_info.provenance``),
so ``ptq compare`` judges each case by its own machine's keys: a case timed on another CPU than the
baseline's gets latency "not compared", never a verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ptq.cli import command
from ptq.errors import UserError
from ptq.host.cache import atomic_write
from ptq.storage.runs import PROVENANCE, load_run

__all__ = ["merge_runs"]


def _fingerprint(doc: dict[str, Any]) -> str | None:
    ptq = doc.get("ptq") or doc.get("machine_info", {}).get("ptq") or {}
    return ptq.get("fingerprint")


def _environment(doc: dict[str, Any]) -> dict[str, Any] | None:
    env = (doc.get("ptq") or {}).get("environment")
    return env if isinstance(env, dict) else None


def merge_runs(docs: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """One run holding every shard's benchmarks; the first shard's run-level fields."""
    if not docs:
        raise UserError("ptq merge needs at least one shard file")
    commits = {(d.get("commit_info") or {}).get("id") for d in docs}
    if len(commits) > 1:
        raise UserError(f"shards come from different commits {sorted(map(str, commits))}; merge shards of one run only")
    seen: dict[str, str] = {}
    benchmarks: list[dict[str, Any]] = []
    environments = [_environment(d) for d in docs]
    mixed = any(env != environments[0] for env in environments)
    for doc, name, env in zip(docs, names, environments, strict=True):
        fp = _fingerprint(doc)
        for bench in doc["benchmarks"]:
            key = bench.get("fullname") or bench.get("name")
            if key in seen:
                raise UserError(
                    f"case {key!r} is in both {seen[key]} and {name}; were the shards run with the same --ptq-shard?"
                )
            seen[key] = name
            info = bench.setdefault("extra_info", {})
            if fp is not None:
                info.setdefault("fingerprint", fp)
                if mixed and env is not None:  # each case judged by its own shard's keys (ptq compare)
                    info.setdefault(PROVENANCE, {"fingerprint": fp, "environment": env})
            benchmarks.append(bench)
    merged = {k: v for k, v in docs[0].items() if k != "benchmarks"}
    merged["benchmarks"] = benchmarks
    fingerprints = sorted({fp for fp in map(_fingerprint, docs) if fp is not None})
    if isinstance(merged.get("ptq"), dict):
        ptq = dict(merged["ptq"])
        ptq.pop("shard", None)
        ptq.pop("memory_bandwidth", None)  # each shard's own, below: shards ran at other times, maybe elsewhere
        ptq["shards"] = [
            {
                "file": name,
                "shard": (d.get("ptq") or {}).get("shard"),
                "fingerprint": _fingerprint(d),
                "cases": len(d["benchmarks"]),
                **({"memory_bandwidth": bw} if (bw := (d.get("ptq") or {}).get("memory_bandwidth")) else {}),
            }
            for d, name in zip(docs, names, strict=True)
        ]
        if len(fingerprints) > 1:
            ptq["fingerprint"], ptq["fingerprints"] = None, fingerprints
        merged["ptq"] = ptq
    return merged


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("shards", nargs="+", help="JSON files of --ptq-shard runs, one per shard, all of one commit")
    p.add_argument("-o", "--output", required=True, help="merged run JSON to write (required; written atomically)")


@command("merge", _configure, "join the JSON files of --ptq-shard runs into one run")
def _merge(args: argparse.Namespace) -> int:
    docs = [dict(load_run(p, plain=True).data) for p in args.shards]
    merged = merge_runs(docs, [Path(p).name for p in args.shards])
    atomic_write(args.output, lambda fh: fh.write(json.dumps(merged, indent=2).encode()))
    fps = merged.get("ptq", {}).get("fingerprints")
    if fps:
        print(
            f"ptq merge: shards ran on different machines (fingerprints {', '.join(fps)}); "
            "latency is not comparable across them",
            file=sys.stderr,
        )
    print(f"merged {len(docs)} shard(s), {len(merged['benchmarks'])} case(s) -> {args.output}")
    return 0
