"""``ptq drift RESULTS.json``: the drift table of a pytest-benchmark JSON file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ptq.cli import command

__all__: list[str] = []


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("json", help="a file written by pytest --benchmark-json (or --benchmark-autosave)")


@command("drift", _args, "the drift table of a pytest-benchmark JSON file")
def _drift(args: argparse.Namespace) -> int:
    from ptq.errors import UserError
    from ptq.probes.drift.report import drift_table
    from ptq.storage.runs import read_json

    path = Path(args.json)
    data = read_json(path)
    records = [b.get("extra_info", {}) for b in data.get("benchmarks", [])]
    records = [r for r in records if "drift" in r.get("metrics", {})]
    if not records:
        raise UserError(f"{str(path)!r} has no drift figures; run pytest --benchmark-only --benchmark-json=FILE")
    print(drift_table(records))
    return 0
