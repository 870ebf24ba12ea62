"""``ptq gate-quality``: the benchmark of the regression gate (false alarms and detections).

Exit codes: 0 when both targets hold in every latency mode run (plain, interleaved,
processes, duet: <= 1% false regressions on A/A judgements, >= 95% detection of a 10% slowdown),
1 when one is missed, 2 on bad input. The speedup mode is reported, not gated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ptq.cli import command
from ptq.defaults import DEFAULT_PAIR_TIME
from ptq.errors import UserError
from ptq.gate.judges import DEFAULTS
from ptq.progress import Progress
from ptq.run.duet import DuetPlan
from ptq.stats.decide import LOCATIONS
from ptq.stats.sequential import SequentialPlan

TARGET_FALSE = 0.01
TARGET_DETECT = 0.95
TARGET_SLOWDOWN = 0.10
#: Small and large Linear and Conv2d, fp32 and int8, and an LSTM: the kinds a placement moves differently.
DEFAULT_CASES = ",".join(
    [
        "micro_conv_16-fp32",
        "micro_conv_16-static_int8",
        "micro_conv_256-fp32",
        "micro_linear_256-dynamic_int8",
        "micro_linear_1024-fp32",
        "micro_linear_4096-dynamic_int8",
        "micro_lstm_128-dynamic_int8_rnn",
    ]
)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cases",
        default=DEFAULT_CASES,
        help="comma-separated model-recipe cases; non-fp32 ones get the injected slowdowns (all of them in "
        "the duet mode; include a model's fp32 case for the speedup mode)",
    )
    p.add_argument(
        "--slowdowns",
        default="0.03,0.05,0.10,0.20",
        help="comma-separated injected slowdown fractions (default: %(default)s)",
    )
    p.add_argument("--aa-trials", type=int, default=30, help="trials with nothing injected (default 30)")
    p.add_argument("--trials", type=int, default=20, help="trials per injected slowdown (default 20)")
    p.add_argument(
        "--time",
        type=float,
        default=1.0,
        help="seconds of timing per case per side (default 1.0, pytest-benchmark's max_time)",
    )
    p.add_argument(
        "--pair-time",
        type=float,
        default=DEFAULT_PAIR_TIME,
        help=f"seconds of interleaved pairs per case per side in speedup mode (default {DEFAULT_PAIR_TIME}, "
        "the suite's --ptq-pair-time)",
    )
    p.add_argument(
        "--rounds", type=int, default=4, help="ABBA rounds per trial in the interleaved and processes modes (default 4)"
    )
    p.add_argument(
        "--process-rounds",
        type=int,
        default=6,
        help="ABBA rounds per trial in the processes mode, each a fresh process timing every case for "
        "--time/--rounds seconds (default 6, as the pull-request workflow's ptq ab)",
    )
    p.add_argument(
        "--process-trials",
        type=int,
        default=30,
        help="trials of the processes mode, each judging every case unslowed (A/A) and at every "
        "slowdown against the same rounds (default 30)",
    )
    p.add_argument(
        "--duet-trials",
        type=int,
        default=30,
        help="trials of the duet mode, each two fresh workers judging every case unslowed (A/A) and "
        "at every slowdown (default 30)",
    )
    DuetPlan.add_options(p)
    p.add_argument(
        "--modes",
        default="plain,interleaved,processes,duet,speedup",
        help="plain, interleaved, processes, duet, speedup (default: all)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: the suite's, torch's default less one; see ptq.host.env.benchmark_threads)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULTS["latency_threshold"],
        help="latency ratio a regression must exceed, as the gate's (default %(default)s)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=DEFAULTS["alpha"],
        help="significance level of the latency test, as the gate's (default %(default)s)",
    )
    p.add_argument(
        "--statistic",
        default=DEFAULTS["latency_statistic"],
        choices=list(LOCATIONS),
        help=f"latency statistic compared (default {DEFAULTS['latency_statistic']})",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="also write the tallies as JSON (atomically)")


def _parse_fractions(text: str) -> list[float]:
    try:
        fractions = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--slowdowns={text!r}: give comma-separated fractions, e.g. 0.05,0.1") from None
    if not fractions or any(f <= 0 for f in fractions):
        raise UserError(f"--slowdowns={text!r}: fractions must be > 0")
    return fractions


@command(
    "gate-quality",
    _args,
    "benchmark the regression gate: false alarms on A/A, detection of injected slowdowns",
    exit_codes=(
        (
            0,
            f"every gated mode holds both targets (<= {TARGET_FALSE:.0%} false regressions, "
            f">= {TARGET_DETECT:.0%} detection of a {TARGET_SLOWDOWN:.0%} slowdown)",
        ),
        (1, "a target is missed in some mode"),
    ),
    project=True,
)
def _gate_quality(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ptq.host.cache import atomic_write
    from ptq.host.env import benchmark_threads
    from ptq.lab.gate_quality import (
        MODES,
        Outcome,
        build_targets,
        run_duet_trial,
        run_process_trial,
        run_trial,
        speedups,
        summarize,
    )
    from ptq.render.tables import format_table

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise UserError(f"--modes={args.modes!r}; valid: {', '.join(MODES)}")
    if args.json:
        from ptq.cli import output_file

        output_file("--json", args.json)  # before the trials, not after them
    fractions = _parse_fractions(args.slowdowns)
    if TARGET_SLOWDOWN not in fractions:
        fractions.append(TARGET_SLOWDOWN)
    threads = args.threads or benchmark_threads()
    targets = build_targets(args.cases, threads)
    print(
        "cases: "
        + ", ".join(f"{t.case} ({t.median_s * 1e3:.3f} ms{', injected' if t.inject else ''})" for t in targets),
        file=sys.stderr,
    )
    plan = [0.0] * args.aa_trials + [f for f in fractions for _ in range(args.trials)]
    outcomes, started = [], time.perf_counter()
    for mode in modes:
        outcome = Outcome(mode)
        if mode == "processes":
            trials = Progress(f"{mode} trials", args.process_trials)
            for _ in range(args.process_trials):
                rounds_a, rounds_b = run_process_trial(
                    targets,
                    fractions,
                    cases=args.cases,
                    threads=threads,
                    budget_s=args.time / args.rounds * args.process_rounds,
                    rounds=args.process_rounds,
                )
                outcome.record_rounds(
                    rounds_a, rounds_b, threshold=args.threshold, alpha=args.alpha, statistic=args.statistic
                )
                trials.step()
            outcomes.append(outcome)
            continue
        if mode in ("duet", "duet-compute"):
            duet_plan = DuetPlan.from_args(args)
            # a sequential duet spends its alpha over the looks: the verdict tests at the per-look share
            alpha = (
                SequentialPlan(duet_plan.looks, args.alpha, args.threshold).alpha_look
                if duet_plan.stopping == "sequential"
                else args.alpha
            )
            kind = "compute" if mode == "duet-compute" else "spin"
            trials = Progress(f"{mode} trials", args.duet_trials)
            for _ in range(args.duet_trials):
                placed_a, placed_b = run_duet_trial(
                    targets,
                    fractions,
                    threads=threads,
                    plan=duet_plan,
                    slow_kind=kind,
                    alpha=args.alpha,
                    threshold=args.threshold,
                    statistic=args.statistic,
                )
                outcome.record_placements(
                    placed_a, placed_b, threshold=args.threshold, alpha=alpha, statistic=args.statistic
                )
                trials.step()
            print(format_table(["case", "A/A false", "caught", "placement spread (median)"], outcome.case_rows()))
            windows = (
                duet_plan.sweeps_per_placement
                if duet_plan.stopping == "sequential"
                else duet_plan.sweeps / duet_plan.placements
            )
            print(
                f"{mode}: {duet_plan.stopping} plan, mean {np.mean(outcome.placements):.1f} placements "
                f"({np.mean(outcome.placements) * windows:.1f} windows per side) per judgement"
            )
            outcomes.append(outcome)
            continue
        trials = Progress(f"{mode} trials", len(plan))
        for fraction in plan:
            if mode == "speedup":
                outcome.record_speedups(
                    fraction,
                    speedups(targets, 0.0, args.pair_time),
                    speedups(targets, fraction, args.pair_time),
                    threshold=DEFAULTS["speedup_threshold"],
                )
            else:
                base, cur = run_trial(targets, fraction, mode=mode, budget_s=args.time, rounds=args.rounds)
                outcome.record(
                    fraction, targets, base, cur, threshold=args.threshold, alpha=args.alpha, statistic=args.statistic
                )
            trials.step(f"{fraction:.0%} injected" if fraction else "A/A")
        outcomes.append(outcome)
    print(format_table(["mode", "injected", "judgements", "flagged", "rate", "median ratio"], summarize(outcomes)))
    ok = True
    for o in outcomes:
        smallest = o.smallest_caught(TARGET_DETECT)
        met = o.false_rate() <= TARGET_FALSE and o.rate(TARGET_SLOWDOWN) >= TARGET_DETECT
        ok &= met or o.mode == "speedup"  # the targets are the two modes; speedup is reported
        print(
            f"{o.mode}: false regressions {o.false_rate():.1%} (target <= {TARGET_FALSE:.0%}), "
            f"10% slowdown caught {o.rate(TARGET_SLOWDOWN):.0%} (target >= {TARGET_DETECT:.0%}), smallest slowdown "
            f"caught >= 95%: {f'{smallest:.0%}' if smallest else 'none tried'}: {'PASS' if met else 'MISS'}"
        )
    print(
        f"{args.statistic} ratio > {1 + args.threshold:g} and p < {args.alpha} (Mann-Whitney over calls; "
        f"processes: Welch t over each side's fastest rounds; duet: t over paired placements), "
        f"{torch.get_num_threads()} torch threads, {args.time}s per case per side, "
        f"{time.perf_counter() - started:.0f}s"
    )
    if args.json:
        from ptq.host.env import environment, fingerprint

        env = environment()
        data = {
            "args": vars(args),
            "environment": env,
            "fingerprint": fingerprint(env),
            "outcomes": [
                {
                    "mode": o.mode,
                    "aa": o.aa,
                    "detected": {str(f): v for f, v in o.detected.items()},
                    "smallest_caught_95": o.smallest_caught(TARGET_DETECT),
                    "ratio_quantiles": o.ratio_quantiles(),
                    "judgements": o.judgements,
                    "per_case": {c: {f"{f:g}": v for f, v in t.items()} for c, t in o.per_case.items()},
                    "placements": o.placements,
                }
                for o in outcomes
            ],
        }
        text = json.dumps(data, indent=1, default=str).encode()
        atomic_write(args.json, lambda fh: fh.write(text))
    return 0 if ok else 1
