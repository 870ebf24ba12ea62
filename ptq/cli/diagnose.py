"""``ptq diagnose MODEL RECIPE``: rank layers by the drift each causes when quantized alone."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ptq.cli import command

__all__: list[str] = []


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registered model (ptq list models)")
    p.add_argument("recipe", help="a registered recipe (ptq list recipes)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        dest="assignments",
        help="override a recipe field, e.g. --set calib_split=zeros (repeatable)",
    )
    p.add_argument(
        "--propose",
        action="store_true",
        help="also propose a recipe keeping the worst layers in float until the tolerance is met",
    )
    p.add_argument("--weights", default="auto", help="weights policy: auto, pretrained or random (default: auto)")
    p.add_argument("--rootdir", default=".", help="where to read [tool.ptq] / results/ptq.toml (default: .)")


def _parse_assignments(items: list[str]) -> dict[str, str]:
    from ptq.errors import UserError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set wants FIELD=VALUE, got {item!r}")
        out[key] = value
    return out


def _sqnr(x: float) -> str:
    return f"{x:.1f}" if math.isfinite(x) else str(x)


@command(
    "diagnose",
    _args,
    "rank a model's layers by the drift each causes when quantized alone",
    exit_codes=(
        (0, "done; with --propose: the proposed recipe meets its tolerances"),
        (1, "with --propose: the proposed recipe still fails its tolerances"),
    ),
    project=True,
)
def _diagnose(args: argparse.Namespace) -> int:
    from ptq.config import load_config
    from ptq.models import get_model
    from ptq.probes.drift.diagnose import propose_float_layers, recipe_source, sweep, with_fields
    from ptq.probes.drift.profiles import measure_drift, tolerances_for
    from ptq.probes.drift.report import drift_summary
    from ptq.recipes import apply_recipe, get_recipe
    from ptq.render.tables import format_table

    entry = get_model(args.model)
    recipe = with_fields(get_recipe(args.recipe), _parse_assignments(args.assignments))
    tolerances = tolerances_for(load_config(Path(args.rootdir)), entry.name, get_recipe(args.recipe).name)
    built = entry.build(weights=args.weights)
    full = measure_drift(entry, built, apply_recipe(recipe, entry, built).model, tolerances)
    print(f"{entry.name} x {recipe.name} (weights: {built.weights})")
    print(f"full recipe: {'ok' if full.passed else 'FAIL'}  {drift_summary(full.to_dict())}")
    for v in full.violations:
        print(f"  {v}")
    print()
    ranking = sweep(entry, built, recipe, tolerances, progress=lambda line: print(line, file=sys.stderr, flush=True))
    rows = [
        [
            str(i),
            s.layer,
            s.layer_type,
            _sqnr(s.sqnr_db),
            "ok" if s.report.passed else "FAIL",
            drift_summary(s.report.to_dict()),
        ]
        for i, s in enumerate(ranking, 1)
    ]
    print("layers quantized one at a time, worst first:")
    print(format_table(["rank", "layer", "type", "output SQNR dB", "alone", "drift"], rows))
    if args.propose:
        proposal = propose_float_layers(entry, built, recipe, ranking, tolerances)
        print()
        verdict = "meets its tolerances" if proposal.passed else "still fails: " + "; ".join(proposal.report.violations)
        print(f"proposal ({verdict}): {drift_summary(proposal.report.to_dict())}")
        print(f"  {recipe_source(proposal.recipe)}")
        return 0 if proposal.passed else 1
    return 0
