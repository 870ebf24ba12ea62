"""``ptq naive MODEL RECIPE``: the tutorial's one-call timing beside ptq's warm, interleaved one."""

from __future__ import annotations

import argparse

from ptq.cli import command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="mobilenet_v2", help="a registered model (default: %(default)s)")
    p.add_argument("recipe", nargs="?", default="dynamic_int8", help="a registered recipe (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=8, help="fresh processes for the naive method (default 8)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    p.add_argument("--pair-time", type=float, default=3.0, help="seconds of interleaved warm pairs (default 3)")


@command("naive", _configure, "the tutorial's one-call timing beside ptq's warm, interleaved one", project=True)
def _naive(args: argparse.Namespace) -> int:
    from ptq.errors import UserError
    from ptq.lab.naive import compare_naive

    if args.repeat < 1:
        raise UserError(f"--repeat must be >= 1, got {args.repeat}")
    c = compare_naive(args.model, args.recipe, repeat=args.repeat, threads=args.threads, pair_time=args.pair_time)
    ratios = ", ".join(f"{r:.2f}" for r in c.naive_ratios)
    print(f"{c.model} {c.recipe}")
    print(f"  naive, one time.time() call each in a fresh process (quantized/float time): {ratios}")
    print(f"    -> apparent speedup {min(c.naive_speedups):.2f}x .. {max(c.naive_speedups):.2f}x")
    print(
        f"  ptq, warm-up excluded, {c.warm.n} interleaved pairs: speedup {c.warm.ratio:.2f}x "
        f"[{c.warm.low:.2f}, {c.warm.high:.2f}] (quantized/float time {1 / c.warm.ratio:.2f})"
    )
    return 0
