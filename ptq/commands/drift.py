"""``ptq drift RESULTS.json``: the drift table of a pytest-benchmark JSON file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ptq.cli import command

__all__: list[str] = []


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("json", help="a file written by pytest --benchmark-json (or --benchmark-autosave)")


@command("drift", _args)
def _drift(args: argparse.Namespace) -> int:
    from ptq.drift_report import drift_table
    from ptq.errors import UserError

    path = Path(args.json)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read benchmark JSON {str(path)!r}: {exc}") from None
    records = [b.get("extra_info", {}) for b in data.get("benchmarks", [])]
    records = [r for r in records if "drift" in r.get("metrics", {})]
    if not records:
        raise UserError(f"{str(path)!r} has no drift figures; run pytest --benchmark-only --benchmark-json=FILE")
    print(drift_table(records))
    return 0
