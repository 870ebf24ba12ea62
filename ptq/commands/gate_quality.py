"""``ptq gate-quality``: the benchmark of the regression gate (false alarms and detections).

Exit codes: 0 when both targets hold in the plain and interleaved modes (<= 1% false
regressions on A/A judgements, >= 95% detection of a 10% slowdown), 1 when one is missed,
2 on bad input. The speedup mode is reported, not gated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ptq.cli import command
from ptq.errors import UserError
from ptq.gate import LOCATIONS
from ptq.judges import DEFAULTS
from ptq.speedup import DEFAULT_PAIR_TIME

TARGET_FALSE = 0.01
TARGET_DETECT = 0.95
TARGET_SLOWDOWN = 0.10


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", default="micro_linear_1024-fp32,micro_linear_1024-dynamic_int8,micro_conv_64-fp32,micro_conv_64-static_int8",
                   help="comma-separated model-recipe cases; non-fp32 ones get the injected slowdowns "
                        "(list a model's fp32 before its quantized cases for the speedup mode)")
    p.add_argument("--slowdowns", default="0.03,0.05,0.10,0.20", help="injected slowdown fractions")
    p.add_argument("--aa-trials", type=int, default=30, help="trials with nothing injected (default 30)")
    p.add_argument("--trials", type=int, default=20, help="trials per injected slowdown (default 20)")
    p.add_argument("--time", type=float, default=1.0,
                   help="seconds of timing per case per side (default 1.0, pytest-benchmark's max_time)")
    p.add_argument("--pair-time", type=float, default=DEFAULT_PAIR_TIME,
                   help=f"seconds of interleaved pairs per case per side in speedup mode (default {DEFAULT_PAIR_TIME}, "
                        "the suite's --ptq-pair-time)")
    p.add_argument("--rounds", type=int, default=4, help="ABBA rounds per trial in interleaved mode (default 4)")
    p.add_argument("--modes", default="plain,interleaved,speedup", help="plain, interleaved, speedup (default: all)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: the suite's, torch's default less one; see ptq.env.benchmark_threads)")
    p.add_argument("--threshold", type=float, default=DEFAULTS["latency_threshold"])
    p.add_argument("--alpha", type=float, default=DEFAULTS["alpha"])
    p.add_argument("--statistic", default=DEFAULTS["latency_statistic"], choices=list(LOCATIONS),
                   help=f"latency statistic compared (default {DEFAULTS['latency_statistic']})")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the tallies as JSON (atomically)")


def _parse_fractions(text: str) -> list[float]:
    try:
        fractions = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--slowdowns={text!r}: give comma-separated fractions, e.g. 0.05,0.1") from None
    if not fractions or any(f <= 0 for f in fractions):
        raise UserError(f"--slowdowns={text!r}: fractions must be > 0")
    return fractions


def _targets(cases: str, threads: int | None):
    import torch

    from ptq.env import benchmark_threads
    from ptq.gate_quality import Target, time_calls
    from ptq.matrix import Case
    from ptq.runner import RunOptions, Workbench

    torch.set_num_threads(threads or benchmark_threads())
    bench = Workbench(RunOptions(threads=torch.get_num_threads(), weights="random"))
    targets, calls = [], {}
    for spec in (c.strip() for c in cases.split(",") if c.strip()):
        model, sep, recipe = spec.rpartition("-")
        if not sep:
            raise UserError(f"--cases: {spec!r} is not model-recipe, e.g. micro_linear_1024-dynamic_int8")
        prepared = bench.prepare(Case(model, recipe))
        quantized, inputs = prepared.model, prepared.inputs

        def call(m=quantized, x=inputs):
            with torch.inference_mode():
                return m(*x)

        samples = time_calls(call, 0.3, warmup=10)
        calls[spec] = call
        targets.append(Target(spec, call, sorted(samples)[len(samples) // 2], inject=recipe != "fp32",
                              reference=calls.get(f"{model}-fp32")))
    if not any(t.inject for t in targets):
        raise UserError(f"--cases={cases!r}: no non-fp32 case to inject slowdowns into")
    return targets


@command("gate-quality", _args)
def _gate_quality(args: argparse.Namespace) -> int:
    import torch

    from ptq.cache import atomic_write
    from ptq.gate_quality import MODES, Outcome, run_trial, speedups, summarize
    from ptq.report import format_table

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise UserError(f"--modes={args.modes!r}; valid: {', '.join(MODES)}")
    fractions = _parse_fractions(args.slowdowns)
    if TARGET_SLOWDOWN not in fractions:
        fractions.append(TARGET_SLOWDOWN)
    targets = _targets(args.cases, args.threads)
    print("cases: " + ", ".join(f"{t.case} ({t.median_s * 1e3:.3f} ms{', injected' if t.inject else ''})" for t in targets),
          file=sys.stderr)
    plan = [0.0] * args.aa_trials + [f for f in fractions for _ in range(args.trials)]
    outcomes, started = [], time.perf_counter()
    for mode in modes:
        outcome = Outcome(mode)
        for i, fraction in enumerate(plan):
            if mode == "speedup":
                outcome.record_speedups(fraction, speedups(targets, 0.0, args.pair_time),
                                        speedups(targets, fraction, args.pair_time),
                                        threshold=DEFAULTS["speedup_threshold"])
            else:
                base, cur = run_trial(targets, fraction, mode=mode, budget_s=args.time, rounds=args.rounds)
                outcome.record(fraction, targets, base, cur, threshold=args.threshold, alpha=args.alpha,
                               statistic=args.statistic)
            print(f"\r{mode}: trial {i + 1}/{len(plan)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        outcomes.append(outcome)
    print(format_table(["mode", "injected", "judgements", "flagged", "rate", "median ratio"], summarize(outcomes)))
    ok = True
    for o in outcomes:
        smallest = o.smallest_caught(TARGET_DETECT)
        met = o.false_rate() <= TARGET_FALSE and o.rate(TARGET_SLOWDOWN) >= TARGET_DETECT
        ok &= met or o.mode == "speedup"  # the targets are the two modes; speedup is reported
        print(f"{o.mode}: false regressions {o.false_rate():.1%} (target <= {TARGET_FALSE:.0%}), "
              f"10% slowdown caught {o.rate(TARGET_SLOWDOWN):.0%} (target >= {TARGET_DETECT:.0%}), smallest slowdown "
              f"caught >= 95%: {f'{smallest:.0%}' if smallest else 'none tried'}: {'PASS' if met else 'MISS'}")
    print(f"{args.statistic} ratio > {1 + args.threshold:g} and Mann-Whitney p < {args.alpha}, "
          f"{torch.get_num_threads()} torch threads, {args.time}s per case per side, "
          f"{time.perf_counter() - started:.0f}s")
    if args.json:
        from ptq.env import environment, fingerprint

        env = environment()
        data = {"args": vars(args), "environment": env, "fingerprint": fingerprint(env), "outcomes": [
            {"mode": o.mode, "aa": o.aa, "detected": {str(f): v for f, v in o.detected.items()},
             "smallest_caught_95": o.smallest_caught(TARGET_DETECT),
             "ratio_quantiles": o.ratio_quantiles()} for o in outcomes]}
        text = json.dumps(data, indent=1, default=str).encode()
        atomic_write(args.json, lambda fh: fh.write(text))
    return 0 if ok else 1
