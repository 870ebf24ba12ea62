"""Each stack's cases of one model timed side by side, for docs/fast-paths.md (issue 30): every
recipe's model prepared as the suite prepares it (``apply_recipe``), then called round-robin in one
process, the order rotated each round, so load and drift land on all alike. Prints per recipe its
median, and its time over the first recipe's (median over rounds of the per-round ratio, with a
distribution-free 95% interval), and the precision it ran (read back where the recipe records it).

    nice -n 19 python benchmarks/fast_paths.py --model=mobilenet_v2 [--recipes=fp32,...] [--rounds=40]

Seeded random weights unless the torch hub cache holds the pretrained ones; one thread by default.
A recipe that skips (NotApplicable) is printed with its reason. Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ptq.errors import NotApplicable
from ptq.models import get_model
from ptq.probes.parity import median_interval
from ptq.recipes import apply_recipe, get_recipe

RECIPES = (
    "fp32,fp32_channels_last,fp32_jit,fp32_compile,fp32_channels_last_compile,bf16_autocast,bf16_autocast_compile,"
    "static_int8,static_int8_jit,pt2e_static_int8,pt2e_static_int8_bf16,ort_fp32,ort_static_int8,ov_fp32,ov_default,ov_int8"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--recipes", default=RECIPES)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    entry = get_model(args.model)
    built = entry.build(weights="auto")
    inputs = entry.example_inputs(built)
    models, notes = {}, {}
    for name in args.recipes.split(","):
        recipe = get_recipe(name)
        try:
            q = apply_recipe(recipe, entry, built)
        except NotApplicable as exc:
            print(json.dumps({"model": args.model, "recipe": name, "skipped": str(exc)}), flush=True)
            continue
        models[name] = q.model
        notes[name] = {
            "precision": q.notes.get("precision_label") or recipe.precision(),
            "stack": q.stack,
            "form": q.notes.get("deploy", "eager"),
            "quantize_s": round(q.quantize_seconds, 1),
        }
    names = list(models)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():  # as ptq.run.workbench.run_case times every case
        for n in names:
            for _ in range(3):
                models[n](*inputs)
        for r in range(args.rounds):
            for n in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                models[n](*inputs)
                times[n].append(time.perf_counter() - t0)
    first = names[0]
    for n in names:
        ratio, low, high = median_interval([a / b for a, b in zip(times[n], times[first], strict=True)])
        print(
            json.dumps(
                {
                    "model": args.model,
                    "recipe": n,
                    "weights": built.weights,
                    "median_ms": round(statistics.median(times[n]) * 1e3, 4),
                    f"vs_{first}": round(ratio, 4),
                    "low": round(low, 4),
                    "high": round(high, 4),
                    "rounds": args.rounds,
                    "threads": args.threads,
                    **notes[n],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
