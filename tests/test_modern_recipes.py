"""torchao, PT2E, deployment forms and ONNX Runtime recipes, on tiny models."""

import pytest
import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.models import Built, ModelEntry, TensorData, get_model
from ptq.probes.best_fp32 import best_fp32_speedups
from ptq.recipes import Deployed, OnnxRuntime, Pt2eInt8, TorchaoRecipe, apply_recipe, get_recipe
from ptq.storage.results import CaseResult, LatencyStats


def _close(q, entry, built, atol=0.1):
    x = entry.example_inputs(built)
    with torch.inference_mode():
        assert torch.allclose(q.model(*x), built.model(*x), atol=atol)


@pytest.mark.parametrize(
    ("recipe", "reason"),
    [
        ("ao_int4_weight_only", r"packs int4 weights for CUDA kernels .*recipe ao_int4_weight_only_cpu"),
        ("ao_float8_dynamic", r"needs float8 matmul kernels \(CUDA compute capability >= 8.9"),
        (
            "ao_int4_weight_only_cpu",
            r"no Linear layer that torchao PrototypeInt4WeightOnlyConfig can pack: out_features",
        ),
    ],
)
def test_torchao_configs_without_a_cpu_kernel_skip_with_the_reason(tiny_entry, tiny_built, recipe, reason):
    with pytest.raises(NotApplicable, match=reason):
        apply_recipe(get_recipe(recipe), tiny_entry, tiny_built)


def test_torchao_int4_cpu_layout_and_float8_weights_run_on_cpu():
    entry = get_model("micro_linear_256")
    built = entry.build()
    for name, tensor in (("ao_int4_weight_only_cpu", "Int4OpaqueTensor"), ("ao_float8_weight_only", "Float8Tensor")):
        q = apply_recipe(get_recipe(name), entry, built)
        assert q.quantized_layers >= 1 and q.stack.startswith("torchao==")
        assert tensor in {type(m.weight).__name__ for m in q.model.modules() if isinstance(m, nn.Linear)}
        _close(q, entry, built, atol=0.2)


def test_unknown_torchao_config_lists_the_valid_ones():
    with pytest.raises(UserError, match=r"valid: Int8WeightOnlyConfig, .*PrototypeInt4WeightOnlyConfig"):
        TorchaoRecipe("x", config="Int2Config")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "quantized", "stack"), [("fp32_jit", 0, "none"), ("static_int8_jit", 2, "torch.ao.fx")]
)
def test_jit_forms_trace_freeze_and_record_their_time(tiny_entry, tiny_built, recipe, quantized, stack):
    q = apply_recipe(get_recipe(recipe), tiny_entry, tiny_built)
    assert isinstance(q.model, torch.jit.ScriptModule)
    assert (q.quantized_layers, q.stack) == (quantized, stack)
    assert q.notes["deploy"] == get_recipe(recipe).form and q.notes["deploy_seconds"] > 0
    assert get_recipe(recipe).quantizes() is bool(quantized)
    _close(q, tiny_entry, tiny_built)


def test_deployed_refuses_unknown_forms_and_deployed_bases(tiny_entry, tiny_built):
    with pytest.raises(UserError, match="unknown deployment form 'onnx'; valid: jit_freeze, jit_optimize, compile"):
        Deployed("x", form="onnx")
    with pytest.raises(UserError, match="is already deployed"):
        apply_recipe(Deployed("x", base="fp32_jit", form="jit_freeze"), tiny_entry, tiny_built)
    with pytest.raises(NotApplicable, match="runs in ONNX Runtime, not in PyTorch"):
        apply_recipe(Deployed("x", base="ort_fp32", form="jit_freeze"), tiny_entry, tiny_built)


@pytest.mark.slow
def test_pt2e_quantizes_every_conv_and_linear_and_compiles(tiny_entry, tiny_built):
    """The one torch.compile test (compilation is slow on 2 cores)."""
    q = apply_recipe(get_recipe("pt2e_static_int8"), tiny_entry, tiny_built)
    assert (q.quantized_layers, q.float_layers) == (2, 0)
    assert q.notes["qdq_nodes"]["dequantize_per_channel"] == 2 and q.notes["deploy"] == "compile"
    assert q.stack.startswith("pt2e+torchao==") and q.notes["deploy_seconds"] > 0
    _close(q, tiny_entry, tiny_built)


class _SharedRelu(nn.Module):
    """torchvision's BasicBlock shape: one nn.ReLU module called twice around a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))) + x)


def test_pt2e_known_partition_issue_is_a_named_skip_under_non_strict_export():
    data = TensorData(lambda g, n: (torch.randn(n, 4, 8, 8, generator=g),), "randn(4,8,8)")
    entry = ModelEntry(
        "shared_relu",
        lambda *, weights: Built(_SharedRelu().eval(), "random", data),
        batch_size=1,
        family="test",
        description="",
    )
    with pytest.raises(
        NotApplicable, match=r"known issue .*Input partition has more than one output node.*strict_export=True"
    ):
        apply_recipe(Pt2eInt8("x", strict_export=False, calib_samples=2), entry, entry.build())


@pytest.mark.parametrize(("recipe", "quantized"), [("ort_fp32", 0), ("ort_static_int8", 2), ("ort_dynamic_int8", 2)])
def test_onnx_runtime_recipes_run_in_an_inference_session(tiny_entry, tiny_built, recipe, quantized):
    q = apply_recipe(get_recipe(recipe), tiny_entry, tiny_built)
    assert q.stack.startswith("onnxruntime==") and q.quantized_layers == quantized
    assert q.model.session.get_session_options().intra_op_num_threads == torch.get_num_threads()
    _close(q, tiny_entry, tiny_built)


def test_onnx_runtime_recipe_fields_are_validated():
    with pytest.raises(UserError, match="quantization must be one of none, static, dynamic, got 'int4'"):
        OnnxRuntime("x", quantization="int4")
    assert not OnnxRuntime("x").quantizes() and OnnxRuntime("x", quantization="static").quantizes()


def _result(model, recipe, median_ms, speedup):
    return CaseResult(
        case=f"{model}-{recipe}",
        model=model,
        model_version=1,
        family="f",
        recipe=recipe,
        recipe_version=1,
        recipe_config={},
        stack="s",
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
    )


def test_speedup_over_best_fp32_form_chains_the_paired_figures():
    results = [
        _result("m", "fp32", 20.0, 1.0),
        _result("m", "fp32_jit", 8.0, 2.4),  # best float form, measured 2.4x over eager in pairs
        _result("m", "int8", 4.0, 6.0),
        _result("m", "int8_unpaired", 5.0, None),
        _result("other", "int8", 1.0, 3.0),  # no float form of this model ran: no figure
    ]
    out = best_fp32_speedups(results, is_float=lambda r: r.startswith("fp32"))
    assert out["m-int8"]["best_form"] == "fp32_jit" and out["m-int8"]["best_ms"] == pytest.approx(8.0)
    assert out["m-int8"]["ratio"] == pytest.approx(6.0 / 2.4) and out["m-int8"]["unpaired"] == pytest.approx(2.0)
    assert out["m-int8_unpaired"]["ratio"] == pytest.approx(8.0 / 5.0) and out["m-int8_unpaired"]["paired"] is None
    assert out["m-fp32_jit"]["ratio"] == pytest.approx(1.0)
    assert "other-int8" not in out


def test_the_speedup_over_the_best_fp32_form_carries_both_placement_intervals():
    results = [_result("m", "fp32", 20.0, 1.0), _result("m", "fp32_jit", 8.0, 2.4), _result("m", "int8", 4.0, 6.0)]
    for r, (low, high) in zip(results, [(0.98, 1.02), (2.3, 2.5), (5.5, 6.6)], strict=True):
        r.metrics["speedup"] = {"ratio": r.speedup_vs_fp32, "low": low, "high": high}
    out = best_fp32_speedups(results, is_float=lambda r: r.startswith("fp32"))
    assert out["m-int8"]["low"] == pytest.approx(5.5 / 2.5) and out["m-int8"]["high"] == pytest.approx(6.6 / 2.3)
    assert out["m-fp32_jit"]["low"] == out["m-fp32_jit"]["high"] == 1.0  # the best form against itself
    assert out["m-fp32"]["low"] == pytest.approx(0.98 / 2.5)
