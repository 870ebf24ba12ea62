"""``ptq report HISTORY... -o report.html``: a history of runs as one offline HTML file, or
(``--format md``) the latest run against its baseline or the run before it, as Markdown."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ptq.cache import atomic_write
from ptq.cli import command
from ptq.config import load_config
from ptq.errors import UserError
from ptq.history import load_history
from ptq.runs import load_run

__all__: list[str] = []


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("history", nargs="+", help="run JSON files or directories of them (.benchmarks/, results/history/)")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.add_argument("--format", choices=["html", "md"], default="html")
    p.add_argument("--baseline", help="md: compare the latest run against this run file instead of the run before it")
    p.add_argument("--title", default="ptq report")
    p.add_argument("--root", default=".", help="project root whose [tool.ptq.gate] thresholds judge each step (default: .)")


@command("report", _configure)
def _report(args: argparse.Namespace) -> int:
    runs = load_history(args.history)
    config = load_config(Path(args.root))
    if args.format == "html":
        if args.baseline:
            raise UserError("--baseline applies to --format md; the HTML report judges each run against the one before it")
        from ptq.html_report import render_html

        text = render_html(runs, title=args.title, config=config)
    else:
        from ptq.md_report import render_markdown

        if args.baseline:
            base = load_run(args.baseline, plain=True)
        elif len(runs) > 1:
            base = runs[-2]
        else:
            raise UserError("--format md needs two runs or --baseline FILE; got one run")
        text = render_markdown(base, runs[-1], config)
    if args.output:
        atomic_write(args.output, lambda fh: fh.write(text.encode()))
    else:
        sys.stdout.write(text)
    return 0
