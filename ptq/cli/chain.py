"""``ptq chain append|show|demo``: the chained relative history (:mod:`ptq.storage.chain`).

- ``append A.json B.json --commit SHA --parent SHA -d DIR``: the summary of ``ptq ab PARENT
  COMMIT --save``'s two sides, one small file per commit, named by the commit's full SHA (a short
  one is resolved by git; anything else is refused), its ``--time`` stored in UTC; two sides from
  different machines are refused (a link is one duet's ratio);
- ``show DIR [--cases GLOBS] [-o chain.html]``: per case, each link and the running product with
  its propagated interval, steps marked; ``-o`` also draws them (offline HTML, :mod:`ptq.render.svg`);
- ``demo``: a synthetic history measured through the real duet (:func:`ptq.run.duet.run_plan`),
  each commit's code stood in for by a worker that slows every call by that commit's
  slowdown (as ``ptq gate-quality`` injects them), then shown as ``show`` shows it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

from ptq.cli import command, output_directory
from ptq.run.duet import DuetPlan, Worker

__all__: list[str] = []


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("append", help="add a commit's summary from the two files ptq ab --save wrote")
    a.add_argument("a", help="side A (the parent): results/ab/<time>-a.json")
    a.add_argument("b", help="side B (the commit): results/ab/<time>-b.json")
    a.add_argument(
        "--commit",
        required=True,
        help="the commit B measured: its full SHA, $(git rev-parse HEAD) (a short one is resolved by git "
        "in the current directory)",
    )
    a.add_argument("--parent", required=True, help="the commit A measured: its full SHA, $(git rev-parse HEAD~1)")
    a.add_argument(
        "--time",
        default=None,
        help="the commit's time, ISO 8601 with its UTC offset: $(git show -s --format=%%cI HEAD) "
        "(default: now); the chain is ordered by instant",
    )
    a.add_argument("-d", "--dir", default="results/chain", help="the chain's directory (default: results/chain)")
    s = sub.add_parser("show", help="print (and with -o draw) the chained trend")
    s.add_argument("dir", help="the chain's directory")
    s.add_argument("--cases", default=None, metavar="GLOBS", help="comma-separated fnmatch globs (default: all)")
    s.add_argument("-o", "--output", default=None, help="also write the trends as an offline HTML file")
    d = sub.add_parser("demo", help="a synthetic history through the real duet, with an injected step")
    d.add_argument("-d", "--dir", required=True, help="where the synthetic chain goes (a new directory)")
    d.add_argument("--commits", type=int, default=10, help="synthetic commits after the root (default 10)")
    d.add_argument("--step-at", type=int, default=6, help="the commit whose code is slower (default 6)")
    d.add_argument("--slowdown", type=float, default=0.05, help="how much slower, a fraction (default 0.05)")
    d.add_argument(
        "--cases",
        default="micro_linear_256-fp32,micro_conv_16-fp32",
        help="comma-separated model-recipe cases the duet times (default: %(default)s)",
    )
    DuetPlan.add_options(d)


def _table(chain: Sequence, cases: Sequence[str]) -> str:
    from ptq.render.tables import format_table
    from ptq.storage.chain import trend

    rows = []
    for case in cases:
        for pt in trend(chain, case):
            lk = pt.link
            cell = "-" if lk is None else f"{lk.ratio:.4f} [{lk.low:.4f}, {lk.high:.4f}]"
            rows.append(
                [
                    case,
                    pt.commit[:12] + (" (gap)" if pt.gap else ""),
                    cell,
                    lk.verdict.lower() if lk else "-",
                    "STEP" if pt.step else "",
                    f"{pt.level:.4f} [{pt.low:.4f}, {pt.high:.4f}]",
                ]
            )
    return format_table(["case", "commit", "link: ratio to parent [95%]", "verdict", "step", "trend [95%]"], rows)


def _html(chain: Sequence, cases: Sequence[str]) -> str:
    from ptq.render.html import chain_chart

    parts = [f"<h2>{escape(case)}</h2>{chain_chart(chain, case)}" for case in cases]
    return (
        "<!doctype html><meta charset=utf-8><title>ptq chained history</title><h1>Chained latency "
        "(running product of duet ratios, 95% band)</h1>" + "".join(parts) + "\n"
    )


def _show(chain: Sequence, globs: str | None, output: str | None) -> int:
    from ptq.host.cache import atomic_write
    from ptq.registry import match_globs

    cases = match_globs(sorted({c for s in chain for c in s.links}), globs, None)
    print(_table(chain, cases))
    if output:
        text = _html(chain, cases).encode()
        print(f"wrote: {atomic_write(output, lambda fh: fh.write(text))}")
    return 0


class _CodeAt(Worker):
    """A duet worker standing in for a synthetic commit's code: every call slowed by ``slow`` x
    the case's median (the injection ``ptq gate-quality`` uses)."""

    def __init__(self, label: str, slow: float) -> None:
        super().__init__(label)
        self.slow = slow

    def time(self, case: str, budget_s: float, slow: float = 0.0, kind: str = "spin") -> list[float]:
        return super().time(case, budget_s, slow=self.slow + slow, kind=kind)

    @classmethod
    def pair(cls, a_slow: float, b_slow: float) -> Callable[[str], Worker]:
        """A duet's ``new_worker``: side A's code slowed ``a_slow``, side B's ``b_slow``."""
        return lambda label: cls(label, a_slow if label == "A" else b_slow)


def _demo(args: argparse.Namespace) -> int:
    from ptq.errors import UserError
    from ptq.gate.chain import link
    from ptq.run.duet import run_plan
    from ptq.storage.chain import CommitSummary, load_chain, save_summary

    if not 1 <= args.step_at <= args.commits or args.slowdown < 0:
        raise UserError(f"--step-at must be in 1..--commits and --slowdown >= 0, got {args.step_at}, {args.slowdown}")
    output_directory("-d", args.dir)
    if Path(args.dir).exists() and any(Path(args.dir).iterdir()):
        raise UserError(f"-d {args.dir}: not empty; name a new directory for the synthetic chain")
    plan, cases = DuetPlan.from_args(args), [c.strip() for c in args.cases.split(",") if c.strip()]
    slow = [args.slowdown if k >= args.step_at else 0.0 for k in range(args.commits + 1)]
    for k in range(1, args.commits + 1):
        print(
            f"commit c{k:02d}: duet of c{k - 1:02d} (slowed {slow[k - 1]:.0%}) and c{k:02d} (slowed {slow[k]:.0%})",
            file=sys.stderr,
            flush=True,
        )
        got = run_plan(
            plan,
            cases,
            threads=1,
            weights="random",
            new_worker=_CodeAt.pair(slow[k - 1], slow[k]),
        )
        if got.failed:
            raise UserError(f"--cases: a duet worker could not prepare {got.failed}")
        links = {c: link(got.blocks["A"][(c, 0.0)], got.blocks["B"][(c, 0.0)]) for c in cases}
        save_summary(
            CommitSummary(
                f"c{k:02d}",
                f"c{k - 1:02d}",
                f"2000-01-01T00:{k:02d}:00Z",
                links,
                runner="demo",
                notes=(f"synthetic: code slowed {slow[k]:.0%}",),
            ),
            args.dir,
        )
    return _show(load_chain(args.dir), None, None)


@command("chain", _args, "the chained relative history: append a commit's A/B summary, show the trend, or a demo")
def _chain(args: argparse.Namespace) -> int:
    from ptq.errors import UserError
    from ptq.gate.chain import summarize
    from ptq.storage.chain import load_chain, parse_time, resolve_commit, save_summary, utc
    from ptq.storage.runs import load_run

    if args.action == "append":
        output_directory("-d", args.dir)
        commit, parent = resolve_commit(args.commit, "--commit"), resolve_commit(args.parent, "--parent")
        if commit == parent:
            raise UserError(
                f"--commit and --parent name one commit ({commit}); a link is a commit over its parent: "
                "pass --parent $(git rev-parse COMMIT~1)"
            )
        try:
            when = (
                parse_time(args.time, "--time")
                if args.time
                else _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
        summary = summarize(load_run(args.a), load_run(args.b), commit=commit, parent=parent, time=utc(when))
        for note in summary.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote: {save_summary(summary, args.dir)}")
        return 0
    if args.action == "show":
        return _show(load_chain(args.dir), args.cases, args.output)
    return _demo(args)
