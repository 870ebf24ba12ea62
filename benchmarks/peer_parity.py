"""Peer parity figures for docs/fast-paths.md (issue 30): each peer case's per-call latency, called
the way the suite times it, against the same compiled model called standalone, interleaved in one
process (ptq.probes.parity); and where OpenVINO's int8 differs from a user's standalone NNCF run,
which of calibration data and NNCF settings it comes from.

    nice -n 19 python benchmarks/peer_parity.py [--models=mobilenet_v2,resnet18] [--rounds=60] [--skip-int8-causes]
    nice -n 19 python benchmarks/peer_parity.py --models=mobilenet_v2 --decompose=ov_int8 --rounds=300

``--decompose`` splits one OpenVINO case's call into its parts, round-robin against
``compiled_model(x)``: the suite's module call, its ``forward`` alone, the suite's infer request alone
(no torch), and ``compiled_model(x)`` against itself.

Seeded random weights unless the torch hub cache holds the pretrained ones (``weights="auto"``:
nothing is downloaded); one thread, as the suite's default. Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from typing import Any

import numpy as np
import torch

from ptq.models import get_model
from ptq.probes.parity import interleaved_parity, median_interval
from ptq.recipes import apply_recipe, get_recipe
from ptq.recipes.openvino import input_quantizers, ov_config
from ptq.recipes.peer import PeerModule


def emit(**row: Any) -> None:
    print(json.dumps(row), flush=True)


def standalone_call(q: Any, x: np.ndarray) -> Any:
    """The compiled model a case built, called as a user would: ``compiled_model(x)`` (OpenVINO's
    default call, inputs shared) or ``session.run`` (ONNX Runtime)."""
    if hasattr(q.model, "compiled"):
        compiled = q.model.compiled
        return lambda: compiled(x)
    session, name = q.model.session, q.model.input_names[0]
    return lambda: session.run(None, {name: x})


def parity_rows(model: str, recipes: list[str], rounds: int) -> None:
    import openvino as ov

    entry = get_model(model)
    built = entry.build(weights="auto")
    inputs = entry.example_inputs(built)
    x = inputs[0].numpy()
    for recipe in recipes:
        q = apply_recipe(get_recipe(recipe), entry, built)
        with torch.inference_mode():  # as ptq.run.workbench.run_case times every case
            p = interleaved_parity(lambda q=q: q.model(*inputs), standalone_call(q, x), rounds=rounds)
            emit(
                model=model,
                recipe=recipe,
                compare="suite call vs same compiled model standalone",
                weights=built.weights,
                notes={k: q.notes.get(k) for k in ("precision_label", "calibration", "reduce_range")},
                **p.to_dict(),
            )
            if hasattr(q.model, "compiled"):
                # The wrapper before this change: request.infer's default copies each input first.
                request = q.model.compiled.create_infer_request()
                before = PeerModule(lambda arrays, request=request: request.infer(arrays).to_tuple())
                p = interleaved_parity(lambda before=before: before(*inputs), standalone_call(q, x), rounds=rounds)
                emit(
                    model=model,
                    recipe=recipe,
                    compare="previous suite call (input copied) vs standalone",
                    **p.to_dict(),
                )
            if recipe == "ov_default":
                # A fresh standalone compile at OpenVINO's defaults, one thread as the suite.
                fresh = ov.Core().compile_model(
                    q.model.ov_model, "CPU", {"INFERENCE_NUM_THREADS": torch.get_num_threads()}
                )
                hint = fresh.get_property("INFERENCE_PRECISION_HINT").get_type_name()
                p = interleaved_parity(lambda q=q: q.model(*inputs), lambda fresh=fresh: fresh(x), rounds=rounds)
                emit(
                    model=model,
                    recipe=recipe,
                    compare=f"suite call vs fresh standalone default compile ({hint})",
                    **p.to_dict(),
                )


def int8_causes(model: str, rounds: int, compiles: int) -> None:
    """The suite's ov_int8 IR against a user's standalone NNCF run and the two crossed variants."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    from ptq.recipes.openvino import _convert
    from ptq.recipes.peer import calib_inputs
    from ptq.recipes.torch_ao import saturates_int16

    entry = get_model(model)
    built = entry.build(weights="auto")
    inputs = entry.example_inputs(built)
    x = inputs[0].numpy()
    recipe = get_recipe("ov_int8")
    fp32 = _convert(copy.deepcopy(built.model), inputs, entry)
    suite_data = [
        tuple(t.numpy() for t in b)
        for b in calib_inputs(built, recipe.calib_split, recipe.calib_batches, recipe.calib_batch_size)
    ]
    g = torch.Generator().manual_seed(0)
    user_data = [(torch.rand(1, *inputs[0].shape[1:], generator=g).numpy(),) for _ in range(8)]  # 8 random images
    fix = AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE)
    variants = {
        "suite (8x8 calib crops, overflow_fix=ENABLE)": (suite_data, fix),
        "suite data, NNCF defaults": (suite_data, None),
        "8 random images, overflow_fix=ENABLE": (user_data, fix),
        "user standalone (8 random images, NNCF defaults)": (user_data, None),
    }
    config = ov_config(torch.get_num_threads(), "f32")
    core = ov.Core()
    compiled: dict[str, list[Any]] = {}
    for name, (data, advanced) in variants.items():
        kwargs = {"advanced_parameters": advanced} if advanced else {}
        quantized = nncf.quantize(fp32, nncf.Dataset(data, lambda b: list(b)), subset_size=len(data), **kwargs)
        compiled[name] = [core.compile_model(quantized, "CPU", config) for _ in range(compiles)]
        emit(model=model, variant=name, input_quantizers=input_quantizers(quantized))
    times: dict[tuple[str, int], list[float]] = {(n, i): [] for n in compiled for i in range(compiles)}
    keys = list(times)
    for key in keys:  # warm-up
        compiled[key[0]][key[1]](x)
    for r in range(rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]  # rotate: no model always first
        for key in order:
            t0 = time.perf_counter()
            compiled[key[0]][key[1]](x)
            times[key].append(time.perf_counter() - t0)
    base = "suite (8x8 calib crops, overflow_fix=ENABLE)"
    for name in compiled:
        per_compile = [statistics.median(times[(name, i)]) * 1e3 for i in range(compiles)]
        # Per round, this variant's mean over its compiles over the suite's: paired within the round.
        ratios = [
            statistics.fmean(times[(name, i)][r] for i in range(compiles))
            / statistics.fmean(times[(base, i)][r] for i in range(compiles))
            for r in range(rounds)
        ]
        ratio, low, high = median_interval(ratios)
        emit(
            model=model,
            compare="ov_int8 IR variants, same compile config, interleaved",
            variant=name,
            saturates_int16=saturates_int16("x86"),
            median_ms_per_compile=[round(v, 4) for v in per_compile],
            vs_suite=round(ratio, 4),
            low=round(low, 4),
            high=round(high, 4),
            rounds=rounds,
            compiles=compiles,
        )


def decompose(model: str, recipe: str, rounds: int) -> None:
    """One OpenVINO case's call in parts, round-robin (order rotated each round) against ``compiled_model(x)``."""
    entry = get_model(model)
    built = entry.build(weights="auto")
    inputs = entry.example_inputs(built)
    x = inputs[0].numpy()
    q = apply_recipe(get_recipe(recipe), entry, built)
    compiled, request = q.model.compiled, q.model.request
    calls = {
        "suite module call": lambda: q.model(*inputs),
        "compiled_model(x)": lambda: compiled(x),
        "suite request.infer(share_inputs=True).to_tuple(), no torch": lambda: request.infer(
            [x], share_inputs=True
        ).to_tuple(),
        "module.forward, no nn.Module.__call__": lambda: q.model.forward(*inputs),
        "compiled_model(x) again (A/A)": lambda: compiled(x),
    }
    keys = list(calls)
    times: dict[str, list[float]] = {k: [] for k in keys}
    with torch.inference_mode():
        for k in keys:
            for _ in range(5):
                calls[k]()
        for r in range(rounds):
            for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
                t0 = time.perf_counter()
                calls[k]()
                times[k].append(time.perf_counter() - t0)
    for k in keys:
        ratio, low, high = median_interval([a / b for a, b in zip(times[k], times["compiled_model(x)"], strict=True)])
        emit(
            model=model,
            recipe=recipe,
            compare="call decomposed, vs compiled_model(x)",
            callable=k,
            median_ms=round(statistics.median(times[k]) * 1e3, 4),
            ratio=round(ratio, 4),
            low=round(low, 4),
            high=round(high, 4),
            rounds=rounds,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="mobilenet_v2,resnet18")
    parser.add_argument("--recipes", default="ov_fp32,ov_int8,ov_default,ort_static_int8")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--compiles", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-int8-causes", action="store_true")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--decompose", default=None, metavar="RECIPE", help="only decompose this OpenVINO case's call")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for model in args.models.split(","):
        if args.decompose:
            decompose(model, args.decompose, args.rounds)
            continue
        if not args.skip_parity:
            parity_rows(model, args.recipes.split(","), args.rounds)
        if not args.skip_int8_causes:
            int8_causes(model, args.rounds, args.compiles)


if __name__ == "__main__":
    main()
