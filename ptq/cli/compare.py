"""``ptq compare [RUN] [--baseline PATH | --fallback-root DIR] [--accept-new]``: judge a stored run
against its baseline.

``--fallback-root DIR``: where ROOT's results/baselines holds none that applies, DIR/results/baselines
is searched the same way (the run's fingerprint, then matching numerics keys); CI points it at a
checkout of the ``ptq-history`` branch, where a push to main records the runner's baseline.

Exit codes (see :mod:`ptq.gate.comparison`): 0 pass, 1 a regression or a row not measured / not
compared, 2 usage error or bad input, 3 no baseline applies or a case is new (without ``--accept-new``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ptq.cli import command
from ptq.config import load_config
from ptq.errors import UserError
from ptq.gate.comparison import (
    EXIT_NO_BASELINE,
    EXIT_OK,
    EXIT_REGRESSION,
    FORMATS,
    compare_stored,
    missing_baseline,
    render,
    resolve_baseline,
)
from ptq.gate.judges import select_judges
from ptq.storage.runs import Run, find_newest_run, load_run

__all__ = ["FORMAT_HELP", "GATE_EXIT_CODES", "resolve_baseline", "select_judges"]

FORMAT_HELP = (
    "text (default); md: Markdown, failing rows first, every row under <details>; json: schema "
    "ptq.comparison version 1 (ptq/gate/schemas/comparison.schema.json); html: the HTML report's table section"
)


#: The gate's exit codes (``ptq compare``, ``ptq ab``), read from :mod:`ptq.gate.comparison`'s constants;
#: ``EXIT_BAD_INPUT`` comes with every command's (:func:`ptq.cli.general_exit_codes`).
GATE_EXIT_CODES = (
    (EXIT_OK, "pass: no regression"),
    (EXIT_REGRESSION, "a regression, or a row not measured / not compared"),
    (EXIT_NO_BASELINE, "no baseline applies, or a case is new (without --accept-new)"),
)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run JSON (default: the newest under results/runs or .benchmarks)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--baseline",
        help="baseline JSON (default: results/baselines/<the run's fingerprint>.json, "
        "else one there whose numerics keys match)",
    )
    where.add_argument(
        "--fallback-root",
        metavar="DIR",
        help="where results/baselines holds none that applies, look in DIR/results/baselines the "
        "same way (e.g. a checkout of the ptq-history branch, where CI records baselines)",
    )
    p.add_argument("--format", choices=sorted(FORMATS), default="text", help=FORMAT_HELP)
    p.add_argument("--root", default=".", help="project root holding results/ (default: .)")
    p.add_argument(
        "--judges",
        default=None,
        metavar="GLOBS",
        help="comma-separated judges to run (default: memory, quantize_memory, size, drift: two "
        "runs' latencies differ with the host's state, so latency is ptq ab's; '*' or 'latency' "
        "asks for it here anyway)",
    )
    p.add_argument(
        "--accept-new",
        action="store_true",
        help="cases without a baseline figure pass (default: they fail, exit 3); a run without "
        "any baseline still fails",
    )


def _fallback_baseline(directory: str | None, root: Path, current: Run) -> str | None:
    """``--fallback-root``: the baseline that applies under ``directory`` where none under ``root`` does."""
    if directory is None:
        return None
    if not Path(directory).is_dir():
        raise UserError(f"--fallback-root {directory}: no such directory; name a checkout holding results/baselines/")
    if resolve_baseline(root, current, None) is not None:
        return None
    found = resolve_baseline(directory, current, None)
    return None if found is None else found.path


@command("compare", _args, "judge a stored run against its baseline (the gate)", exit_codes=GATE_EXIT_CODES)
def _compare(args: argparse.Namespace) -> int:
    root = Path(args.root)
    current = load_run(args.run or find_newest_run(root))
    baseline = args.baseline or _fallback_baseline(args.fallback_root, root, current)
    result = compare_stored(
        root,
        current,
        baseline=baseline,
        config=load_config(root),
        judges=select_judges(args.judges),
        accept_new=args.accept_new,
    )
    if args.fallback_root and result.no_baseline:
        there = missing_baseline(args.fallback_root, current)
        result = dataclasses.replace(
            result, no_baseline=f"{result.no_baseline}; nor under --fallback-root {args.fallback_root}: {there}"
        )
    print(render(result, args.format).rstrip("\n"))
    return result.exit_code
