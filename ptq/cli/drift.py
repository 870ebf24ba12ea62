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
    from ptq.storage.figures import DriftFigures, SchemaError, read_figures
    from ptq.storage.runs import load_run

    path = Path(args.json)
    run = load_run(path, plain=True)  # the run loader: a damaged file is one line naming it
    infos = [b.get("extra_info") or {} for b in run.data["benchmarks"]]  # each an object (the loader checked)
    records = [i for i in infos if isinstance(i.get("metrics"), dict) and "drift" in i["metrics"]]
    if not records:
        raise UserError(f"{str(path)!r} has no drift figures; run pytest --benchmark-only --benchmark-json=FILE")
    try:
        for info in records:
            read_figures(DriftFigures, info)
        table = drift_table(records)
    except (KeyError, TypeError, AttributeError, ValueError, SchemaError) as exc:
        raise UserError(
            f"{str(path)!r}: damaged drift figures ({type(exc).__name__}: {exc}); record them again: "
            "pytest --benchmark-only --benchmark-json=FILE"
        ) from None
    print(table)
    return 0
