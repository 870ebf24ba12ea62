"""ptq.probes.memory: memray counts torch's native buffers, budgets fail with their reasons."""

from __future__ import annotations

import json

import pytest
import torch

from ptq.config import validate
from ptq.errors import UserError
from ptq.probes.memory import MARKER_LIMITS, Site, StepMemory, check_budget, limits_for, parse_size, track
from ptq.run.matrix import Case
from ptq.run.workbench import RunOptions

MiB = 2**20


def _allocate_64_mib() -> torch.Tensor:
    return torch.ones(16 * MiB, dtype=torch.float32)  # 16 Mi float32 = 64 MiB, in libtorch's allocator


def test_a_native_tensor_of_known_size_is_counted():
    with track() as tracking:
        kept = _allocate_64_mib()
    assert kept.numel() * kept.element_size() == 64 * MiB
    memory = tracking.memory
    assert memory is not None
    # The step's increment is the tensor, within a few percent (plus tiny Python objects).
    assert 64 * MiB <= memory.increment_bytes <= 64 * MiB * 1.03
    assert memory.baseline_bytes > 0 and memory.peak_bytes == memory.baseline_bytes + memory.increment_bytes
    assert "_allocate_64_mib" in memory.top_sites[0].where and "test_memory.py" in memory.top_sites[0].where
    assert memory.top_sites[0].bytes >= 64 * MiB


def test_the_increment_is_the_high_water_mark_not_what_is_left():
    with track() as tracking:
        big = _allocate_64_mib()
        del big
        small = torch.ones(4 * MiB)  # 16 MiB, alive at the end
    assert small.numel() == 4 * MiB
    assert tracking.memory is not None
    assert 64 * MiB <= tracking.memory.increment_bytes <= 64 * MiB * 1.03


def test_memory_freed_that_was_allocated_before_the_step_does_not_go_negative():
    before = _allocate_64_mib()
    with track() as tracking:
        del before
    assert tracking.memory is not None and 0 <= tracking.memory.increment_bytes < MiB


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24 MB", 24 * 10**6),
        ("512KiB", 512 * 2**10),
        ("1.5 GiB", int(1.5 * 2**30)),
        ("100", 100),
        (2048, 2048),
        ("8 M", 8 * MiB),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["24 parsecs", "MB", "", "-3 MB", 0, True, 1.5])
def test_parse_size_refuses_bad_values_with_an_example(bad):
    with pytest.raises(UserError, match="memory limit"):
        parse_size(bad)


def _memory(increment: int) -> StepMemory:
    return StepMemory(
        baseline_bytes=500 * MiB,
        increment_bytes=increment,
        top_sites=(Site(30 * MiB, 12, "_conv_forward at torch/nn/modules/conv.py:560 (from forward at net.py:9)"),),
    )


def test_budget_message_names_peak_budget_and_sites():
    message = check_budget("m-r", "inference", _memory(40 * MiB), 32 * MiB)
    assert message == (
        "m-r: inference allocated 40.0 MiB at its peak (process peak 540.0 MiB), over its 32.0 MiB budget "
        "(inference_limit); largest allocation sites at the peak: 30.0 MiB in 12 allocation(s) by "
        "_conv_forward at torch/nn/modules/conv.py:560 (from forward at net.py:9)"
    )
    assert check_budget("m-r", "inference", _memory(32 * MiB), 32 * MiB) is None


def test_limits_resolve_from_config_scopes_and_the_marker_overrides():
    config = validate(
        {"memory": {"inference_limit": "100 MB", "cases": {"m-r": {"quantize_limit": 4096}}}}, "test.toml"
    )
    options = RunOptions(config=config)
    assert limits_for(Case("m", "r"), options) == {"inference": 100 * 10**6, "quantize": 4096}
    assert limits_for(Case("m", "other"), options) == {"inference": 100 * 10**6}
    token = MARKER_LIMITS.set({"inference_limit": "1 KiB"})
    try:
        assert limits_for(Case("m", "r"), options) == {"inference": 1024, "quantize": 4096}
    finally:
        MARKER_LIMITS.reset(token)


def test_unknown_memory_key_is_a_config_error():
    with pytest.raises(
        UserError, match=r"unknown key 'max_peak' in \[tool\.ptq\.memory\]; valid keys: inference_limit, quantize_limit"
    ):
        validate({"memory": {"max_peak": 1}}, "test.toml")


CONFTEST = """
import torch
from ptq.models import Built, TensorData, register_model

@register_model("user_mlp", batch_size=8)
def user_mlp(*, weights):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4))
    data = TensorData(lambda g, n: (torch.randn(n, 256, generator=g),), "randn(256)")
    return Built(model, weights="random:seed=0", data=data)
"""

TESTS = """
import pytest

def test_case(ptq_bench):
    ptq_bench()

@pytest.mark.ptq_memory_limit(inference="16 B")
def test_limited(ptq_bench):
    ptq_bench()
"""

TOML = """
[memory.cases."user_mlp-dynamic_int8"]
quantize_limit = "16 B"
"""

FAST = [
    "--benchmark-min-rounds=3",
    "--benchmark-max-time=0.01",
    "--ptq-warmup=1",
    "--ptq-pair-time=0.01",
    "-p",
    "no:cacheprovider",
]


@pytest.mark.slow
def test_plugin_records_memory_and_size_and_enforces_budgets(pytester: pytest.Pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TESTS)
    (pytester.path / "results").mkdir()
    (pytester.path / "results" / "ptq.toml").write_text(TOML)
    result = pytester.runpytest_subprocess(
        "--benchmark-only",
        "--ptq-models=user_mlp",
        "--ptq-recipes=fp32,dynamic_int8",
        "--benchmark-json=out.json",
        *FAST,
    )
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "*[[]memory[]] user_mlp-dynamic_int8: quantize allocated * at its peak (process peak *), over its 16 B budget "
            "(quantize_limit); largest allocation sites at the peak: * by *",
            "*[[]memory[]] user_mlp-fp32: inference allocated * over its 16 B budget (inference_limit)*",
        ]
    )
    data = json.loads((pytester.path / "out.json").read_text())
    by_name = {b["name"]: b["extra_info"]["metrics"] for b in data["benchmarks"]}
    fp32, dyn = by_name["test_case[user_mlp-fp32]"], by_name["test_case[user_mlp-dynamic_int8]"]
    assert fp32["memory"].get("quantize") is None  # the reference has no quantization step
    for step in (fp32["memory"]["inference"], dyn["memory"]["inference"], dyn["memory"]["quantize"]):
        assert step["increment_bytes"] > 0 and step["peak_bytes"] == step["baseline_bytes"] + step["increment_bytes"]
    assert dyn["memory"]["quantize"]["limit_bytes"] == 16  # recorded even though the case failed
    # int8 weights of a 256x256 Linear: about a quarter of fp32's bytes.
    assert fp32["size"]["ratio_vs_fp32"] == 1.0
    assert 0.2 < dyn["size"]["ratio_vs_fp32"] < 0.35
    assert dyn["size"]["fp32_state_dict_bytes"] == fp32["size"]["serialized_bytes"]


@pytest.mark.slow
def test_marker_with_an_unknown_keyword_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.ptq_memory_limit(peak="1 MB")
def test_case(ptq_bench):
    ptq_bench()
"""
    )
    result = pytester.runpytest_subprocess("--benchmark-only", "--ptq-models=user_mlp", "--ptq-recipes=fp32", *FAST)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*ptq_memory_limit has no keyword peak; valid: inference, quantize*"])


def _bench(model: str, recipe: str, inference: int, quantize: int | None, size: int, ratio: float) -> dict:
    step = lambda inc: {"peak_bytes": 100 * MiB + inc, "increment_bytes": inc}  # noqa: E731
    return {
        "extra_info": {
            "model": model,
            "recipe": recipe,
            "metrics": {
                "memory": {"inference": step(inference), "quantize": step(quantize) if quantize is not None else None},
                "size": {"serialized_bytes": size, "ratio_vs_fp32": ratio},
            },
        }
    }


def test_memory_table_reads_a_benchmark_json(tmp_path, capsys):
    from ptq.cli import main

    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(
            {
                "benchmarks": [
                    _bench("m", "static_int8", 2 * MiB, 150 * MiB, 11_200_000, 0.2506),
                    _bench("m", "fp32", 8 * MiB, None, 44_700_000, 1.0),
                ]
            }
        )
    )
    assert main(["memory-table", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "m"
    assert lines[3].split() == ["fp32", "108.0", "8.0", "-", "-", "44.70", "1.000x"]
    assert lines[4].split() == ["static_int8", "102.0", "2.0", "250.0", "150.0", "11.20", "0.251x"]
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"benchmarks": []}))
    assert main(["memory-table", str(empty)]) == 2
    assert "has no case with memory or size metrics" in capsys.readouterr().err


def test_spread_of_samples():
    from ptq.cli.memory import spread

    assert spread([100, 104, 102]) == {
        "n": 3,
        "min": 100,
        "median": 102,
        "max": 104,
        "range": 4,
        "relative_range": 4 / 102,
    }
