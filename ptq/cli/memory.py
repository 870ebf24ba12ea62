"""``ptq memory-spread``: one case measured N times, each in a fresh process, and the spread of
each memory figure (what a regression gate's thresholds should allow); ``ptq memory-table``:
fp32 vs each recipe's memory and size, per model, from a benchmark JSON."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from ptq.cli import command
from ptq.errors import NotApplicable, UserError

__all__: list[str] = []

FIGURES = (
    "inference.peak_bytes",
    "inference.increment_bytes",
    "quantize.peak_bytes",
    "quantize.increment_bytes",
    "size.serialized_bytes",
)


def measure_once(model: str, recipe: str, *, weights: str, threads: int, warmup: int) -> dict[str, int | None]:
    """Build, quantize (tracked), warm up, track one inference, size: the probe's figures."""
    import torch

    from ptq.models import get_model
    from ptq.probes.memory import measure_inference, track
    from ptq.probes.size import state_dict_bytes
    from ptq.recipes import REFERENCE, apply_recipe, get_recipe

    torch.set_num_threads(threads)
    entry, rec = get_model(model), get_recipe(recipe)
    built = entry.build(weights=weights)
    quantize = None
    if rec.name == REFERENCE:
        quantized = apply_recipe(rec, entry, built)
    else:
        with track(top=0) as tracking:
            quantized = apply_recipe(rec, entry, built)
        quantize = tracking.memory
    inputs = entry.example_inputs(built)
    with torch.inference_mode():
        for _ in range(warmup):
            quantized.model(*inputs)
    inference = measure_inference(quantized.model, inputs)
    return {
        "inference.peak_bytes": inference.peak_bytes,
        "inference.increment_bytes": inference.increment_bytes,
        "quantize.peak_bytes": quantize.peak_bytes if quantize else None,
        "quantize.increment_bytes": quantize.increment_bytes if quantize else None,
        "size.serialized_bytes": state_dict_bytes(quantized.model),
    }


#: ``python -m ptq.cli`` would run a second copy of the CLI module, without the registered commands.
_CHILD = "import sys; from ptq.cli import main; sys.exit(main(sys.argv[1:]))"


def spread(samples: list[float]) -> dict[str, float]:
    """min / median / max, the range, and the range relative to the median."""
    median = statistics.median(samples)
    lo, hi = min(samples), max(samples)
    return {
        "n": len(samples),
        "min": lo,
        "median": median,
        "max": hi,
        "range": hi - lo,
        "relative_range": (hi - lo) / median if median else 0.0,
    }


def _spread_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registered model (ptq list models)")
    p.add_argument("recipe", help="a registered recipe (ptq list recipes)")
    p.add_argument("--repeat", type=int, default=5, help="fresh processes to measure in (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls before the tracked one (default 10)")
    p.add_argument(
        "--weights", default="auto", choices=["auto", "pretrained", "random"], help="weights policy (default: auto)"
    )
    p.add_argument(
        "--json", dest="json_out", metavar="PATH", help="also write the samples and spreads here (atomically)"
    )
    p.add_argument("--once", action="store_true", help=argparse.SUPPRESS)  # the child process's mode


@command(
    "memory-spread",
    _spread_args,
    "one case's memory figures measured in N fresh processes, and their spread",
    exit_codes=(
        (0, "success"),
        (1, "a measuring process crashed: its own exit code is returned, its last error line printed"),
    ),
    project=True,
)
def _memory_spread(args: argparse.Namespace) -> int:
    if args.once:
        try:
            figures = measure_once(
                args.model, args.recipe, weights=args.weights, threads=args.threads, warmup=args.warmup
            )
        except NotApplicable as exc:
            raise UserError(f"{args.model}-{args.recipe} does not run: {exc}") from None
        print(json.dumps(figures))
        return 0
    if args.repeat < 2:
        raise UserError(f"--repeat must be >= 2 to measure a spread, got {args.repeat}")
    if args.json_out:
        from ptq.cli import output_file

        output_file("--json", args.json_out)  # before the processes run, not after
    runs = []
    for i in range(args.repeat):
        child = [
            sys.executable,
            "-c",
            _CHILD,
            "memory-spread",
            args.model,
            args.recipe,
            "--once",
            f"--threads={args.threads}",
            f"--warmup={args.warmup}",
            f"--weights={args.weights}",
            f"--rootdir={args.rootdir}",
        ]
        proc = subprocess.run(child, capture_output=True, text=True)
        if proc.returncode != 0:
            print(
                proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"run {i + 1} failed", file=sys.stderr
            )
            return proc.returncode
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    from ptq.probes.memory import format_bytes
    from ptq.render.tables import format_table

    spreads = {}
    rows = []
    for figure in FIGURES:
        samples = [r[figure] for r in runs if r[figure] is not None]
        if not samples:
            continue
        s = spreads[figure] = spread(samples)
        rows.append(
            [
                figure,
                str(s["n"]),
                format_bytes(s["min"]),
                format_bytes(s["median"]),
                format_bytes(s["max"]),
                f"{s['range']:.0f} B",
                f"{s['relative_range'] * 100:.2f}%",
            ]
        )
    print(f"{args.model}-{args.recipe}: {args.repeat} fresh processes, {args.threads} thread(s)")
    print(format_table(["figure", "n", "min", "median", "max", "range", "range/median"], rows))
    if args.json_out:
        from ptq.host.cache import atomic_write

        payload = {"case": f"{args.model}-{args.recipe}", "threads": args.threads, "runs": runs, "spread": spreads}
        atomic_write(args.json_out, lambda fh: fh.write(json.dumps(payload, indent=2).encode()))
    return 0


def _mib(value: Any) -> str:
    return f"{value / 2**20:.1f}" if isinstance(value, (int, float)) else "-"


def memory_table(benchmarks: list[dict[str, Any]]) -> str:
    """Per model: fp32 first, then each recipe; MiB of inference and quantization, size, ratio."""
    from ptq.render.tables import format_table

    by_model: dict[str, list[dict[str, Any]]] = {}
    for bench in benchmarks:
        info = bench.get("extra_info", {})
        if "model" in info and "metrics" in info:
            by_model.setdefault(info["model"], []).append(info)
    blocks = []
    for model, infos in by_model.items():
        infos.sort(key=lambda i: i["recipe"] != "fp32")
        rows = []
        for info in infos:
            mem, size = info["metrics"].get("memory") or {}, info["metrics"].get("size") or {}
            inf, q = mem.get("inference") or {}, mem.get("quantize") or {}
            rows.append(
                [
                    info["recipe"],
                    _mib(inf.get("peak_bytes")),
                    _mib(inf.get("increment_bytes")),
                    _mib(q.get("peak_bytes")),
                    _mib(q.get("increment_bytes")),
                    f"{size['serialized_bytes'] / 1e6:.2f}" if size.get("serialized_bytes") else "-",
                    f"{size['ratio_vs_fp32']:.3f}x" if "ratio_vs_fp32" in size else "-",
                ]
            )
        header = ["recipe", "infer peak MiB", "infer +MiB", "quant peak MiB", "quant +MiB", "serialized MB", "vs fp32"]
        blocks.append(f"{model}\n" + format_table(header, rows))
    return "\n\n".join(blocks)


def _table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("json_path", metavar="BENCHMARK_JSON", help="a pytest-benchmark JSON written by a ptq run")


@command("memory-table", _table_args, "fp32 vs each recipe's memory and size, per model, from a benchmark JSON")
def _memory_table(args: argparse.Namespace) -> int:
    from ptq.storage.figures import MemoryFigures, SchemaError, SizeFigures, read_figures
    from ptq.storage.runs import load_run

    path = Path(args.json_path)
    run = load_run(path, plain=True)  # the run loader: a damaged file is one line naming it
    benchmarks = run.data["benchmarks"]  # every entry an object, its extra_info one where present
    try:
        for bench in benchmarks:
            read_figures(MemoryFigures, bench.get("extra_info") or {})
            read_figures(SizeFigures, bench.get("extra_info") or {})
        table = memory_table([{**b, "extra_info": b.get("extra_info") or {}} for b in benchmarks])
    except (KeyError, TypeError, AttributeError, ValueError, SchemaError) as exc:
        raise UserError(
            f"{str(path)!r}: damaged memory or size figures ({type(exc).__name__}: {exc}); record them "
            "again with ptq's probes"
        ) from None
    if not table:
        raise UserError(f"{str(path)!r} has no case with memory or size metrics; run the benchmarks with ptq's probes")
    print(table)
    return 0
