"""``ptq report HISTORY... -o report.html``: a history of runs as one offline HTML file, or
(``--format md`` / ``json``) the latest run against ``--baseline`` or the run before it.
``--chain DIR``: the history's trends from a chained history's per-commit summaries
(:mod:`ptq.storage.chain`), with or without runs (the latest of which still gives the latest state).

Every format renders the :class:`~ptq.gate.comparison.Comparison` that ``ptq compare`` judges (same
judges, ``--judges``, ``[tool.ptq.gate]``), so a report never disagrees with the gate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ptq.cli import command
from ptq.cli.compare import select_judges
from ptq.config import load_config
from ptq.errors import UserError
from ptq.gate.comparison import compare, render
from ptq.host.cache import atomic_write
from ptq.storage.chain import load_chain
from ptq.storage.history import load_history
from ptq.storage.runs import Run, load_run

__all__: list[str] = []

#: ``--format``: the whole HTML report, or the comparison alone as ``ptq compare --format`` writes it.
FORMATS = ("html", "md", "json")


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("history", nargs="*", help="run JSON files or directories of them (.benchmarks/, results/history/)")
    p.add_argument(
        "--chain",
        default=None,
        metavar="DIR",
        help="a directory of chained-history summaries (ptq chain append): the trends come from them",
    )
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="html",
        help="html (default): the history, with the latest comparison; md, json: the comparison alone, "
        "as ptq compare --format md / json",
    )
    p.add_argument("--baseline", help="compare the latest run against this run file instead of the run before it")
    p.add_argument(
        "--judges", default=None, metavar="GLOBS", help="judges to run, as ptq compare's --judges (default: all)"
    )
    p.add_argument("--accept-new", action="store_true", help="cases without a baseline figure pass, as in ptq compare")
    p.add_argument("--title", default="ptq report", help="the HTML report's title (default: %(default)s)")
    p.add_argument(
        "--root", default=".", help="project root whose [tool.ptq.gate] thresholds judge each step (default: .)"
    )


@command("report", _configure, "a history of runs as one offline HTML file, or the latest comparison as md / json")
def _report(args: argparse.Namespace) -> int:
    if args.output and Path(args.output).is_dir():
        raise UserError(
            f"-o {args.output}: is a directory; name a file in it, e.g. "
            f"-o {Path(args.output) / ('report.' + args.format)}"
        )
    judges = select_judges(args.judges)
    if not args.history and not args.chain:
        raise UserError(
            "no history given; pass run JSON files or directories such as .benchmarks/ or "
            "results/history/, or --chain DIR (summaries written by `ptq chain append`)"
        )
    chain = load_chain(args.chain) if args.chain else None
    runs = load_history(args.history) if args.history else []
    base: Run | None = load_run(args.baseline, plain=True) if args.baseline else (runs[-2] if len(runs) > 1 else None)
    config = load_config(Path(args.root))
    comparison = (
        None
        if base is None or not runs
        else compare(base, runs[-1], config=config, judges=judges, accept_new=args.accept_new, across_runs=True)
    )
    if args.format == "html":
        from ptq.render.html import render_html

        text = render_html(runs, title=args.title, config=config, comparison=comparison, chain=chain)
    elif comparison is None:
        raise UserError(f"--format {args.format} needs two runs or a run and --baseline FILE; got {len(runs)} run(s)")
    else:
        text = render(comparison, args.format)
    if args.output:
        atomic_write(args.output, lambda fh: fh.write(text.encode()))
    else:
        sys.stdout.write(text)
    return 0
