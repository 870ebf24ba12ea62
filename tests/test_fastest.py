"""The fastest-path summary (``ptq.fastest``): pure selection on synthetic results, the profile on a
tiny model, and the plugin's terminal table and JSON on a small model."""

from __future__ import annotations

import importlib.util
import json

import pytest

from ptq.probes.fastest import STACKS, _quiet_kineto, fastest_paths, fastest_table, top_operators
from ptq.storage.results import CaseResult, LatencyStats

PRECISION = {
    "fp32": "fp32",
    "fp32_jit": "fp32",
    "int8": "int8",
    "int8_jit": "int8",
    "ort_fp32": "fp32",
    "ort_int8": "int8",
    "ov_int8": "int8",
    "bad_int8": "int8",
}
STACK = {
    "ort_fp32": "onnxruntime==1",
    "ort_int8": "onnxruntime==1",
    "ov_int8": "openvino==2",
    "ov_fp32": "openvino==2",
    "ov_default": "openvino==2",
}


def _result(
    recipe: str,
    median_ms: float,
    *,
    passed: bool | None = True,
    form: str = "eager",
    speedup: float | None = None,
    **notes: object,
) -> CaseResult:
    metrics = {"deployment": {"form": form, **notes}, "size": {"serialized_bytes": 100}}
    if passed is not None:
        metrics["drift"] = {"passed": passed, "headline": "top1_agreement", "value": 0.99}
    return CaseResult(
        case=f"m-{recipe}",
        model="m",
        model_version=1,
        family="f",
        recipe=recipe,
        recipe_version=1,
        recipe_config={},
        stack=STACK.get(recipe, "none"),
        engine=None,
        weights="w",
        data="d",
        input_shapes=[],
        batch_size=1,
        threads=1,
        warmup_rounds=0,
        quantized_layers=0,
        float_layers=0,
        quantize_seconds=0.0,
        latency=LatencyStats.from_samples([median_ms / 1e3]),
        speedup_vs_fp32=speedup,
        metrics=metrics,
    )


RESULTS = [
    _result("fp32", 20.0),
    _result("fp32_jit", 10.0, form="jit_optimize"),
    _result("int8", 8.0),
    _result("int8_jit", 5.0, form="jit_freeze"),
    _result("ort_fp32", 9.0),
    _result("ort_int8", 4.0),
    _result("ov_int8", 2.5),
    _result("bad_int8", 1.0, passed=False),  # fastest, but out of tolerance
    _result("unmeasured", 0.5, passed=None),  # no drift record: not known to be in tolerance
]


def test_fastest_in_tolerance_case_per_stack_and_its_ratio_to_the_best():
    calls = []
    [m] = fastest_paths(
        RESULTS, PRECISION.get, lambda model, recipe: calls.append(recipe) or [{"op": "aten::x", "share": 1.0}]
    )
    assert m.best.case == "m-ov_int8" and m.best.vs_best == 1.0
    assert set(m.excluded) == {"m-bad_int8", "m-unmeasured"}
    stacks = {s.stack: s for s in m.stacks}
    assert [s.name for s in STACKS] == list(stacks)
    eager, deployed = stacks["torch eager"], stacks["torch deployed"]
    assert (eager.fastest.recipe, eager.fp32.recipe, eager.int8.recipe) == ("int8", "fp32", "int8")
    assert eager.fastest.vs_best == pytest.approx(8.0 / 2.5) and eager.fastest.drift == "top1_agreement 0.99"
    assert (deployed.fastest.recipe, deployed.fp32.recipe) == ("int8_jit", "fp32_jit")
    assert stacks["ONNX Runtime"].fp32.median_ms == pytest.approx(9.0) and stacks["OpenVINO"].fp32 is None
    # Only the torch stacks are profiled, and only their fastest case.
    assert calls == ["int8", "int8_jit"] and eager.limits[0]["op"] == "aten::x" and stacks["OpenVINO"].limits == ()
    assert m.torch_int8_vs_peer == {"torch_int8": "m-int8_jit", "peer": "m-ov_int8", "ratio": pytest.approx(2.0)}


def test_a_model_without_an_in_tolerance_case_has_no_summary_and_the_table_renders_the_json_form():
    assert fastest_paths([_result("bad_int8", 1.0, passed=False)], PRECISION.get) == []
    summaries = [m.to_dict() for m in fastest_paths(RESULTS, PRECISION.get)]
    json.dumps(summaries)  # the run JSON holds it as is
    lines = fastest_table(summaries).splitlines()
    assert any(
        line.startswith("m") and "OpenVINO" in line and "ov_int8 2.500 ms (1.00x best)" in line for line in lines
    )
    assert any("torch int8 / peer" in line and "2.00x the time" in line for line in lines)


def test_paired_speedups_pick_and_rank_where_every_case_has_one():
    # Separately timed medians say ov_int8 (2.5 ms) beats int8_jit (5 ms); the interleaved pairs,
    # each against the same fp32, say the opposite. The pairs win, and the table quotes them.
    paired = [
        _result("fp32", 20.0, speedup=1.0),
        _result("int8_jit", 5.0, form="jit_freeze", speedup=3.0),
        _result("ov_int8", 2.5, speedup=2.0),
    ]
    [m] = fastest_paths(paired, PRECISION.get)
    assert m.best.case == "m-int8_jit" and m.best.speedup_vs_fp32 == 3.0
    stacks = {s.stack: s for s in m.stacks}
    assert stacks["OpenVINO"].fastest.vs_best == pytest.approx(1.5)  # 3.0 / 2.0, not 2.5 ms / 5 ms
    assert m.torch_int8_vs_peer["ratio"] == pytest.approx(2.0 / 3.0, abs=1e-4)
    table = fastest_table([m.to_dict()])
    assert "ov_int8 2.00x" in table and "int8_jit 3.00x" in table and " ms" not in table


def test_each_stack_says_what_precision_ran_and_what_its_defaults_give():
    # On a CPU with bf16 units OpenVINO's default reads back bf16: a float form, not an fp32 one.
    results = [
        _result("fp32", 20.0, speedup=1.0),
        _result("int8_jit", 5.0, form="jit_freeze", speedup=4.0),
        _result("ort_fp32", 9.0, speedup=2.2),
        _result("ov_fp32", 8.0, speedup=2.5, precision_ran="fp32", precision_label="fp32", runtime_default=False),
        _result(
            "ov_default",
            3.0,
            speedup=6.0,
            precision_ran="bf16",
            precision_label="bf16 (OpenVINO's default on this CPU)",
            runtime_default=True,
        ),
        _result("ov_int8", 2.5, speedup=5.0, precision_ran="int8", precision_label="int8 (float ops f32)"),
    ]
    [m] = fastest_paths(results, PRECISION.get)
    stacks = {s.stack: s for s in m.stacks}
    ov = stacks["OpenVINO"]
    assert (ov.fastest.recipe, ov.fastest.precision, ov.fastest.precision_label) == (
        "ov_default",
        "bf16",
        "bf16 (OpenVINO's default on this CPU)",
    )
    assert ov.fp32.recipe == "ov_fp32" and ov.int8.recipe == "ov_int8" and ov.default.recipe == "ov_default"
    assert ov.ran == ("bf16", "fp32", "int8") and stacks["torch eager"].ran == ("fp32",)
    assert stacks["torch eager"].default.recipe == "fp32" and stacks["ONNX Runtime"].default.recipe == "ort_fp32"
    assert stacks["torch deployed"].default is None
    assert m.torch_best_vs_peer == {
        "torch": "m-int8_jit",
        "torch_precision": "int8",
        "peer": "m-ov_default",
        "peer_precision": "bf16",
        "ratio": pytest.approx(1.5),
    }
    table = fastest_table([m.to_dict()])
    assert "ov_default 6.00x [bf16]" in table and "torch best / peer" in table and "m-ov_default [bf16]" in table
    assert any("OpenVINO" in line and "bf16,fp32,int8" in line for line in table.splitlines())


def test_where_openvinos_default_is_f32_the_f32_case_is_what_its_users_get():
    # No ov_default case ran (the default matrix): ov_fp32's record says its precision is the default.
    [m] = fastest_paths(
        [_result("fp32", 20.0), _result("ov_fp32", 8.0, precision_ran="fp32", runtime_default=True)], PRECISION.get
    )
    ov = {s.stack: s for s in m.stacks}["OpenVINO"]
    assert ov.default.recipe == "ov_fp32" and ov.default.precision == "fp32"


def test_stacks_without_an_in_tolerance_case_print_no_row():
    [m] = fastest_paths([_result("fp32", 20.0), _result("int8", 8.0)], PRECISION.get)
    assert {s.stack for s in m.stacks if s.fastest is None} == {
        "torch deployed",
        "ONNX Runtime",
        "OpenVINO",
    }  # in the JSON
    rows = fastest_table([m.to_dict()]).splitlines()[2:]
    assert len(rows) == 1 and "torch eager" in rows[0]


def test_profiling_keeps_stderr_but_drops_libkinetos_noise(capfd: pytest.CaptureFixture[str]):
    import os

    with _quiet_kineto():
        os.write(
            2,
            b"USDT:2026-01-01 10:00:00 1:1 SyncActivityProfilerHandler.cpp:39] profiler_start\n"
            b"ERROR:2026-01-01 10:00:00 1:1 DeviceProperties.cpp:56] gpuGetDeviceCount failed with code 35\n"
            b"ERROR:2026-01-01 10:00:00 1:1 Other.cpp:1] something else\n"
            b"a user's own line\n",
        )
    err = capfd.readouterr().err
    assert err == "ERROR:2026-01-01 10:00:00 1:1 Other.cpp:1] something else\na user's own line\n"


def test_top_operators_names_the_ops_with_the_most_self_time(tiny_entry, tiny_built):
    ops = top_operators(tiny_built.model, tiny_entry.example_inputs(tiny_built), calls=2, top=3)
    assert 1 <= len(ops) <= 3 and all(op["op"].startswith("aten::") for op in ops)
    assert all(0 < op["share"] <= 1 for op in ops) and ops == sorted(ops, key=lambda o: -o["share"])


CONFTEST = """
import torch
from ptq.models import Built, TensorData, register_model

@register_model("user_conv", batch_size=4)
def user_conv(*, weights):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 4))
    data = TensorData(lambda g, n: (torch.randn(n, 3, 16, 16, generator=g),), "randn(3,16,16)")
    return Built(model.eval(), weights="random:seed=0", data=data)
"""
FAST = [
    "--benchmark-min-rounds=3",
    "--benchmark-max-time=0.01",
    "--ptq-warmup=1",
    "--ptq-pair-time=0.01",
    "--ptq-placements=2",
    "-p",
    "no:cacheprovider",
]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed: pip install 'pytest-ptq[openvino]'"
)
def test_plugin_prints_and_records_the_fastest_paths(pytester: pytest.Pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite="def test_case(ptq_bench):\n    ptq_bench()\n")
    result = pytester.runpytest_subprocess(
        "--benchmark-only",
        "--ptq-models=user_conv",
        "--ptq-recipes=fp32,fp32_jit,ov_fp32",
        "--benchmark-json=out.json",
        *FAST,
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*ptq: fastest in-tolerance path per model and stack (paired speedup over eager fp32)*",
            "user_conv*torch eager*fp32 1.00x*",
            "user_conv*OpenVINO*ov_fp32 *x*",
        ]
    )
    result.stdout.no_fnmatch_line("user_conv*ONNX Runtime*")  # not selected: no row
    assert "gpuGetDeviceCount" not in result.stdout.str() + result.stderr.str()  # the profiler's noise on CUDA builds
    [summary] = json.loads((pytester.path / "out.json").read_text())["ptq"]["fastest"]
    stacks = {s["stack"]: s for s in summary["stacks"]}
    assert summary["model"] == "user_conv" and stacks["OpenVINO"]["fp32"]["recipe"] == "ov_fp32"
    assert stacks["torch eager"]["limits"] and all(op["op"] for op in stacks["torch eager"]["limits"])
    assert stacks["ONNX Runtime"]["fastest"] is None and stacks["torch deployed"]["fp32"]["recipe"] == "fp32_jit"


def test_html_report_shows_the_latest_runs_summary():
    from ptq.render.html import render_html
    from ptq.storage.runs import parse_run, read_json

    path = "tests/fixtures/history/runs/run-0004.json"
    data = read_json(path)
    before = render_html([parse_run(data, path)])
    assert "records no fastest-path summary" in before
    data["ptq"]["fastest"] = [m.to_dict() for m in fastest_paths(RESULTS, PRECISION.get)]
    html = render_html([parse_run(data, path)])
    assert 'id="fastest"' in html and "fastest overall: m-ov_int8" in html
    assert "torch's fastest int8 (m-int8_jit) takes 2.00x the time of the fastest peer (m-ov_int8)" in html
