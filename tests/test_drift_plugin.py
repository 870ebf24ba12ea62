"""The drift probe inside benchmark cases, run as a user would (pytester subprocess)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow  # every test runs pytest sessions in fresh processes

CONFTEST = """
import torch
from ptq.models import Built, TensorData, register_model
from ptq.recipes import StaticInt8, register_recipe

@register_model("user_cls", batch_size=8, family="vision")
def user_cls(*, weights):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    data = TensorData(lambda g, n: (torch.randn(n, 16, generator=g),), "randn(16)")
    return Built(model, weights="random:seed=0", data=data)

register_recipe(StaticInt8("static_int8_zeros", calib_split="zeros", description="calibrated on zeros: broken"))
"""

TEST_FILE = """
def test_case(ptq_bench):
    ptq_bench()
"""

FAST = [
    "--benchmark-min-rounds=3",
    "--benchmark-max-time=0.01",
    "--ptq-warmup=1",
    "--ptq-pair-time=0",
    "-p",
    "no:cacheprovider",
    "--ptq-models=user_cls",
]


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TEST_FILE)
    return pytester


def test_broken_calibration_fails_its_case_naming_metric_tolerance_and_layers(suite: pytest.Pytester):
    result = suite.runpytest_subprocess(
        "--benchmark-only", "--ptq-recipes=fp32,static_int8,static_int8_zeros", "--benchmark-json=out.json", *FAST
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]drift[]] user_cls-static_int8_zeros: drift beyond tolerance: sqnr_db = * "
            "(tolerance min_output_sqnr_db >= 5) over 16 evaluation samples; "
            "lowest-SQNR layers: 0 (LinearReLU, * dB), 2 (Linear, * dB)*",
            "*ptq: drift from fp32 on the evaluation split*",
            # the measure the gate follows, named, with its sample count and why it has no limit here
            "*user_cls*static_int8 *top1_agreement * (16 samples, not gated: random weights)*ok*",
            "*user_cls*static_int8_zeros*FAIL*",
        ]
    )
    data = json.loads((suite.path / "out.json").read_text())
    drift = {b["extra_info"]["case"]: b["extra_info"]["metrics"]["drift"] for b in data["benchmarks"]}
    assert drift["user_cls-fp32"]["top1_agreement"] == 1.0 and drift["user_cls-fp32"]["passed"]
    good = drift["user_cls-static_int8"]
    assert good["passed"] and good["profile"] == "classifier" and good["samples"] == 16
    # random weights: top-1 agreement is recorded but not gated; the output SQNR floor is
    assert good["tolerances"]["min_output_sqnr_db"] == 5.0 and "min_top1_agreement" not in good["tolerances"]
    assert good["not_gated"] == ["top1_agreement: random weights", "top5_agreement: random weights"]
    assert good["worst_layers"][0]["name"] in ("0", "2")


def test_tolerance_config_loosens_one_case(suite: pytest.Pytester):
    suite.makefile(
        ".toml",
        **{
            "results/ptq": """
[tolerance.cases."user_cls-static_int8_zeros"]
min_output_sqnr_db = -100.0
"""
        },
    )
    result = suite.runpytest_subprocess("--benchmark-disable", "--ptq-recipes=static_int8_zeros", *FAST)
    result.assert_outcomes(passed=1)


def test_unknown_tolerance_key_is_a_usage_error(suite: pytest.Pytester):
    suite.makefile(".toml", **{"results/ptq": "[tolerance]\nmin_accuracy = 0.5\n"})
    result = suite.runpytest_subprocess("--benchmark-disable", "--ptq-recipes=fp32", *FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # results/ptq.toml has no [tool.ptq] prefix: the error names the table as written there
    result.stderr.fnmatch_lines(["*results/ptq.toml: unknown key 'min_accuracy' in [[]tolerance[]]; valid keys: *"])
