"""``ptq export RUN --format github-action-benchmark|bencher [-o DIR]``: a run's figures for the
history tools users already run (:mod:`ptq.render.export`); prints the files it wrote."""

from __future__ import annotations

import argparse

from ptq.cli import command

__all__: list[str] = []


def _args(p: argparse.ArgumentParser) -> None:
    from ptq.render.export import EXPORTERS

    p.add_argument("run", help="a run file (pytest --benchmark-json, --ptq-save-run, ptq ab --save)")
    p.add_argument("--format", required=True, choices=list(EXPORTERS),
                   help="github-action-benchmark: customSmallerIsBetter.json and customBiggerIsBetter.json; "
                        "bencher: bencher.json (Bencher Metric Format)")
    p.add_argument("-o", "--output-dir", default=".", help="directory the files go to (default: .)")


@command("export", _args, "a run's figures for github-action-benchmark or Bencher")
def _export(args: argparse.Namespace) -> int:
    from ptq.render.export import write_export
    from ptq.storage.runs import load_run

    for path in write_export(load_run(args.run, plain=True), args.format, args.output_dir):
        print(f"wrote: {path}")
    return 0
