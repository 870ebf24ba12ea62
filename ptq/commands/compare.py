"""``ptq compare [RUN] [--baseline PATH] [--accept-new]``: judge a stored run against its baseline.

Exit codes (see :mod:`ptq.comparison`): 0 pass, 1 a regression or a row not measured / not
compared, 2 usage error or bad input, 3 no baseline applies or a case is new (without ``--accept-new``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ptq.cli import command
from ptq.comparison import FORMATS, compare_stored, render, resolve_baseline
from ptq.config import load_config
from ptq.errors import UserError
from ptq.judges import list_judges
from ptq.runs import find_newest_run, load_run

__all__ = ["FORMAT_HELP", "resolve_baseline", "select_judges"]

FORMAT_HELP = ("text (default); md: Markdown, failing rows first, every row under <details>; json: schema "
               "ptq.comparison version 1 (ptq/schemas/comparison.schema.json); html: the HTML report's table section")


def select_judges(globs: str | None) -> list[str] | None:
    """The judges ``--judges`` names (None: all); a glob matching none is an error naming the valid ones."""
    if globs is None:
        return None
    chosen = list_judges(globs)
    missing = [g for g in (x.strip() for x in globs.split(",")) if g and not list_judges(g)]
    if missing or not chosen:
        raise UserError(f"--judges={globs!r}: {', '.join(missing) or 'nothing'} matches no judge; "
                        f"valid: {', '.join(list_judges())}")
    return chosen


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run JSON (default: the newest under results/runs or .benchmarks)")
    p.add_argument("--baseline", help="baseline JSON (default: results/baselines/<the run's fingerprint>.json)")
    p.add_argument("--format", choices=sorted(FORMATS), default="text", help=FORMAT_HELP)
    p.add_argument("--root", default=".", help="project root holding results/ (default: .)")
    p.add_argument("--judges", default=None, metavar="GLOBS",
                   help="comma-separated judges to run (default: all; see ptq.judges), e.g. "
                        "'*memory,size,drift' where latency is gated by ptq ab instead")
    p.add_argument("--accept-new", action="store_true",
                   help="cases without a baseline figure pass (default: they fail, exit 3); a run without "
                        "any baseline still fails")


@command("compare", _args)
def _compare(args: argparse.Namespace) -> int:
    root = Path(args.root)
    current = load_run(args.run or find_newest_run(root))
    result = compare_stored(root, current, baseline=args.baseline, config=load_config(root),
                            judges=select_judges(args.judges), accept_new=args.accept_new)
    print(render(result, args.format).rstrip("\n"))
    return result.exit_code
