"""``ptq export RUN --format github-action-benchmark|bencher [-o DIR]``: a run's figures for the
history tools users already run (:mod:`ptq.render.export`); prints the files it wrote, and on
stderr what it left out: cases whose test failed, a file the run has no figure for (not written:
github-action-benchmark fails on an empty list; one an earlier export left there is removed)."""

from __future__ import annotations

import argparse
import sys

from ptq.cli import command, output_directory

__all__: list[str] = []


def _args(p: argparse.ArgumentParser) -> None:
    from ptq.render.export import EXPORTERS

    p.add_argument("run", help="a run file (pytest --benchmark-json, --ptq-save-run, ptq ab --save)")
    p.add_argument(
        "--format",
        required=True,
        choices=list(EXPORTERS),
        help="github-action-benchmark: customSmallerIsBetter.json and customBiggerIsBetter.json; "
        "bencher: bencher.json (Bencher Metric Format)",
    )
    p.add_argument("-o", "--output-dir", default=".", help="directory the files go to (default: .)")


@command("export", _args, "a run's figures for github-action-benchmark or Bencher")
def _export(args: argparse.Namespace) -> int:
    from ptq.render.export import write_export
    from ptq.storage.runs import load_run

    output_directory("-o", args.output_dir)
    notes: list[str] = []
    for path in write_export(load_run(args.run, plain=True), args.format, args.output_dir, notes=notes):
        print(f"wrote: {path}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
