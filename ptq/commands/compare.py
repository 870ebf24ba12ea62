"""``ptq compare [RUN] [--baseline PATH]``: judge a stored run against its baseline.

Exit codes: 0 no regression, 1 regression, 2 usage error or bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ptq.cli import command
from ptq.comparison import FORMATS, compare, render
from ptq.config import load_config
from ptq.errors import UserError
from ptq.judges import list_judges
from ptq.runs import Run, baseline_path, find_newest_run, load_run

__all__ = ["resolve_baseline", "select_judges"]


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
    p.add_argument("--format", choices=sorted(FORMATS), default="text", help="text (default) or md (Markdown)")
    p.add_argument("--root", default=".", help="project root holding results/ (default: .)")
    p.add_argument("--judges", default=None, metavar="GLOBS",
                   help="comma-separated judges to run (default: all; see ptq.judges), e.g. "
                        "'*memory,size,drift' where latency is gated by ptq ab instead")


def resolve_baseline(root: Path, run: Run, explicit: str | None) -> Run | None:
    """The baseline to compare with: explicit, else the run's fingerprint's, else None (all new)."""
    if explicit:
        return load_run(explicit)
    own = baseline_path(root, run.fingerprint)
    return load_run(own) if own.exists() else None


@command("compare", _args)
def _compare(args: argparse.Namespace) -> int:
    root = Path(args.root)
    current = load_run(args.run or find_newest_run(root))
    baseline = resolve_baseline(root, current, args.baseline)
    if baseline is None:
        others = sorted(p.name for p in (root / "results" / "baselines").glob("*.json"))
        hint = f"; baselines of other environments: {', '.join(others)} (pass one with --baseline)" if others else ""
        baseline = Run(f"{baseline_path(root, current.fingerprint)} (none yet)", current.fingerprint,
                       current.environment, {})
        print(f"note: no baseline for fingerprint {current.fingerprint}{hint}")
    if baseline.path == current.path:
        raise UserError(f"{current.path} is both the run and the baseline; name another run")
    result = compare(baseline, current, config=load_config(root), judges=select_judges(args.judges))
    print(render(result, args.format).rstrip("\n"))
    return result.exit_code
