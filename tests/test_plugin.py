"""The pytest plugin, run as a user would: a subprocess pytest with a conftest of its own."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.slow  # every test runs pytest sessions in fresh processes

CONFTEST = """
import dataclasses
import torch
from ptq.models import Built, TensorData, register_model
from ptq.recipes import Recipe, register_handler, register_recipe

@register_model("user_mlp", batch_size=8)
def user_mlp(*, weights):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    data = TensorData(lambda g, n: (torch.randn(n, 32, generator=g),), "randn(32)")
    return Built(model, weights="random:seed=0", data=data)

@register_model("user_nan", batch_size=2)
def user_nan(*, weights):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with torch.no_grad():
        model[0].bias.fill_(float("nan"))
    data = TensorData(lambda g, n: (torch.randn(n, 4, generator=g),), "randn(4)")
    return Built(model, weights="random:seed=0", data=data)

@dataclasses.dataclass(frozen=True)
class Broken(Recipe):
    pass

@register_handler(Broken)
def broken(recipe, model, built, entry):
    raise RuntimeError("no kernel for this op")

register_recipe(Broken("broken"))
"""

TEST_FILE = """
def test_case(ptq_bench):
    ptq_bench()
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TEST_FILE)
    return pytester


FAST = [
    "--benchmark-min-rounds=3",
    "--benchmark-max-time=0.01",
    "--ptq-warmup=1",
    "--ptq-pair-time=0.01",
    "-p",
    "no:cacheprovider",
]


def test_cases_run_and_fail_individually_and_record_extra_info(suite: pytest.Pytester):
    result = suite.runpytest_subprocess(
        "--benchmark-only",
        "--ptq-models=user_mlp",
        "--ptq-recipes=fp32,dynamic_int8,static_int8,broken",
        "--benchmark-json=out.json",
        *FAST,
        "--ptq-rerun-target=0",  # the scheduled visits only: 6, whatever the noise
    )
    # A recipe that raises errors its own case at setup; the other cases still run.
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "ptq: 4 case(s) of matrix 'default', --ptq-models=user_mlp, --ptq-recipes=fp32,dynamic_int8,static_int8,"
            "broken, then their speedup visits; --ptq-budget 10m00s: the visits beyond "
            "each case's 6 stop when it is spent",
            "ptq: 4/4 cases, * elapsed, about 0s left before the speedup visits (--ptq-budget 10m00s)",
            "ptq: speedup visits, round 2/6 over 3 case(s), about * a round, * for the scheduled rounds; "
            "* of the --ptq-budget left",
            "ptq: speedup visits, round 6/6 over 3 case(s), about * a round, * for the scheduled rounds; *",
            "ptq: speedup visits done in *s",
            "ptq: time per step over 3 case(s): *",
            "ptq: memory bandwidth during the visits: median * GB/s (*-*, * reads); compare speedups across runs only where it matches",
            "*ERROR at setup of test_case?user_mlp-broken?*",
            "user_mlp-broken: recipe 'broken' failed on model 'user_mlp': RuntimeError: no kernel for this op",
            "*ptq: speedup over fp32, same session, warm-up excluded*",
            "model*recipe*stack*median ms*speedup [[]CI[]]*inference mem*size*quantized*weights",
            "*user_mlp*dynamic_int8*torch.ao.eager*",
        ]
    )
    # memray's inference high-water mark and the serialized size, in binary units; the paired speedup only
    assert re.search(
        r"user_mlp +dynamic_int8 .* \d+(\.\d)? (B|KiB|MiB) +\d+(\.\d)? (B|KiB|MiB) +2/2 ", result.stdout.str()
    )
    assert "unpaired" not in result.stdout.str()
    data = json.loads((suite.path / "out.json").read_text())
    by_case = {b["extra_info"]["case"]: b for b in data["benchmarks"]}
    assert set(by_case) == {"user_mlp-fp32", "user_mlp-dynamic_int8", "user_mlp-static_int8"}
    assert by_case["user_mlp-static_int8"]["name"] == "test_case[user_mlp-static_int8]"
    info = by_case["user_mlp-dynamic_int8"]["extra_info"]
    assert info["model"] == "user_mlp" and info["recipe"] == "dynamic_int8" and info["recipe_version"] == 1
    assert info["stack"] == "torch.ao.eager" and info["engine"] == "x86"
    assert info["weights"] == "random:seed=0" and info["input_shapes"] == [[8, 32]]
    assert info["threads"] >= 1 and info["warmup_rounds"] == 1
    assert info["quantized_layers"] == 2 and info["float_layers"] == 0
    # 6 visits (the default), the last 5 made after every test, in rounds; the interval is over visits
    speedup = info["metrics"]["speedup"]
    assert info["speedup_vs_fp32"] == speedup["ratio"] > 0 and speedup["n"] == 6 and speedup["unit"] == "visit"
    assert len(speedup["per_placement"]) == 6 and len(speedup["latency_placements"]["per_placement_ms"]) == 6
    assert speedup["low"] <= speedup["ratio"] <= speedup["high"] and speedup["level"] == pytest.approx(0.96875)
    assert info["speedup_unpaired"] > 0
    fp32 = by_case["user_mlp-fp32"]["extra_info"]
    assert fp32["speedup_vs_fp32"] == 1.0 and fp32["metrics"]["speedup"]["n"] == 6  # its A/A: the spread between visits
    assert data["ptq"]["fingerprint"] and data["ptq"]["environment"]["torch"]
    bandwidth = data["ptq"]["memory_bandwidth"]  # 3 first visits, then one reading per round (5)
    assert bandwidth["reads"] == 8 and 0 < bandwidth["low_gbps"] <= bandwidth["median_gbps"] <= bandwidth["high_gbps"]
    assert "memory_bandwidth" not in data["ptq"]["environment"]  # a state of the machine, not a key
    assert data["machine_info"]["ptq"]["environment"]["threads"] == info["threads"]


def test_nan_output_fails_with_its_own_message(suite: pytest.Pytester):
    result = suite.runpytest_subprocess("--benchmark-only", "--ptq-models=user_nan", "--ptq-recipes=fp32", *FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*user_nan-fp32: the model produced NaN outputs on the evaluation batch*"])


def test_inapplicable_recipe_is_skipped_with_its_reason(suite: pytest.Pytester):
    result = suite.runpytest_subprocess(
        "--benchmark-only", "--ptq-models=micro_conv_16", "--ptq-recipes=fp32,dynamic_int8", "-rs", *FAST
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*micro_conv_16-dynamic_int8: model 'micro_conv_16' has no Linear layer*"])


def test_skipped_cases_are_listed_with_their_reasons_without_rs(suite: pytest.Pytester):
    result = suite.runpytest_subprocess(
        "--benchmark-only", "--ptq-models=micro_conv_16", "--ptq-recipes=fp32,dynamic_int8", *FAST
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*ptq: 1 case(s) skipped (-rs: pytest's own list)*",
            "micro_conv_16-dynamic_int8: model 'micro_conv_16' has no Linear layer*",
        ]
    )
    # with -rs pytest lists it, and ptq does not repeat it
    result = suite.runpytest_subprocess(
        "--benchmark-only", "--ptq-models=micro_conv_16", "--ptq-recipes=fp32,dynamic_int8", "-rs", *FAST
    )
    assert "case(s) skipped" not in result.stdout.str()


def test_disabled_benchmarks_still_run_every_code_path(suite: pytest.Pytester):
    result = suite.runpytest_subprocess(
        "--benchmark-disable", "--ptq-models=user_mlp", "--ptq-recipes=fp32,dynamic_int8", *FAST
    )
    result.assert_outcomes(passed=2)
    assert "ptq: speedup" not in result.stdout.str()


def test_unknown_selection_is_a_usage_error(suite: pytest.Pytester):
    result = suite.runpytest_subprocess("--benchmark-only", "--ptq-models=vgg*", *FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --ptq-models='vgg[*]' matches no model of matrix 'default'; valid: *user_mlp*"]
    )


def test_k_selection_works_on_readable_ids(suite: pytest.Pytester):
    result = suite.runpytest_subprocess(
        "--benchmark-only", "--ptq-models=user_mlp", "-k", "fp32", "--collect-only", "-q"
    )
    result.stdout.fnmatch_lines(["test_suite.py::test_case[[]user_mlp-fp32[]]"])
