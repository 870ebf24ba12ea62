"""``ptq contention MODEL RECIPE``: which machine resource moves a case's latency (a lab study)."""

from __future__ import annotations

import argparse
import statistics

from ptq.cli import command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="resnet18", help="a registered model (default: %(default)s)")
    p.add_argument("recipe", nargs="?", default="static_int8", help="a registered recipe (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=40, help="rounds of meters and both models (default 40, at least 3)")
    p.add_argument("--window", type=float, default=0.8, help="seconds each model is timed per round (default 0.8)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, as the suite)")


@command(
    "contention",
    _configure,
    "which machine resource (clock, cache, DRAM bandwidth) moves a case's latency",
    project=True,
)
def _contention(args: argparse.Namespace) -> int:
    from ptq.errors import UserError
    from ptq.lab.contention import study

    if args.rounds < 3 or args.window <= 0 or args.threads < 1:
        raise UserError(
            f"--rounds must be >= 3, --window > 0 and --threads >= 1; got {args.rounds}, {args.window}, {args.threads}"
        )
    s = study(args.model, args.recipe, rounds=args.rounds, window_s=args.window, threads=args.threads)
    spread = s.range()
    print(f"{s.model} {s.recipe}: {len(s.rows)} rounds on one placement, 1st percentile per window")
    print(f"  {'series':12s} {'median ms':>10s} {'max/min':>8s} {'r with fp32':>12s} {'r with case':>12s}")
    for name in s.names:
        med = statistics.median(s.series(name).tolist())
        print(
            f"  {name:12s} {med:10.3f} {spread[name]:8.1%} {s.correlation(name, 'fp32'):12.2f} "
            f"{s.correlation(name, 'case'):12.2f}"
        )
    quiet, busy = s.speedup_by_dram()
    print(
        f"  speedup (fp32 / case), median: {quiet:.3f} in the fifth of rounds with the fastest DRAM copy, "
        f"{busy:.3f} in the fifth with the slowest"
    )
    return 0
