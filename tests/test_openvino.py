"""OpenVINO peer recipes (``ptq.recipes.openvino``) behind the wrapper ONNX Runtime shares, on a tiny model."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from ptq.errors import NotApplicable, UserError
from ptq.recipes import Deployed, OpenVino, apply_recipe, get_recipe
from ptq.recipes.openvino import OvModule, ov_config
from ptq.recipes.peer import PeerModule, peer_runtime

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
    reason="openvino and nncf are not installed: pip install 'pytest-ptq[openvino]'",
)


@needs_openvino
@pytest.mark.parametrize(("recipe", "quantized"), [("ov_fp32", 0), ("ov_int8", 2)])
def test_openvino_recipes_run_the_converted_model_with_torchs_threads(tiny_entry, tiny_built, recipe, quantized):
    q = apply_recipe(get_recipe(recipe), tiny_entry, tiny_built)
    assert isinstance(q.model, OvModule) and isinstance(q.model, PeerModule)
    assert q.stack.startswith("openvino==") and peer_runtime(q.stack) == "OpenVINO"
    assert (q.quantized_layers, q.float_layers) == (quantized, 2 - quantized)
    compiled = q.model.compiled
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == torch.get_num_threads()
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert q.notes["serialized_bytes"] > 0 and "OpenVINO IR" in q.notes["size_method"]
    with torch.inference_mode():
        for batch in (tiny_entry.batch_size, 5):  # the batch dimension stays free, as probes need
            x = tiny_entry.example_inputs(tiny_built, batch)
            assert torch.allclose(q.model(*x), tiny_built.model(*x), atol=0.1)


@needs_openvino
def test_ov_int8_calibrates_on_the_split_the_other_static_recipes_use(tiny_entry, tiny_built):
    ort = get_recipe("ort_static_int8")
    recipe = get_recipe("ov_int8")
    assert (recipe.calib_split, recipe.calib_batches, recipe.calib_batch_size) == (
        ort.calib_split, ort.calib_batches, ort.calib_batch_size)
    q = apply_recipe(recipe, tiny_entry, tiny_built)
    assert q.notes["calibration"] == "8x8 calib samples, nncf.quantize, default preset"
    assert q.notes["nncf_model_type"] == "default"  # tiny is not a text model


@needs_openvino
def test_torch_deployment_forms_refuse_an_openvino_base(tiny_entry, tiny_built):
    with pytest.raises(NotApplicable, match="runs in OpenVINO, not in PyTorch; jit_freeze does not apply"):
        apply_recipe(Deployed("x", base="ov_fp32", form="jit_freeze"), tiny_entry, tiny_built)


def test_missing_openvino_is_a_skip_naming_the_extra(tiny_entry, tiny_built, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in {"openvino", "nncf"} else real(name, *a))
    with pytest.raises(NotApplicable, match=r"recipe 'ov_int8' needs openvino, nncf; pip install 'pytest-ptq\[openvino\]'"):
        apply_recipe(get_recipe("ov_int8"), tiny_entry, tiny_built)


def test_openvino_recipe_fields_and_plugin_config_are_validated():
    with pytest.raises(UserError, match="quantization must be one of none, static, got 'dynamic'"):
        OpenVino("x", quantization="dynamic")
    with pytest.raises(UserError, match="calib_batches and calib_batch_size must be >= 1"):
        OpenVino("x", calib_batches=0)
    assert not get_recipe("ov_fp32").quantizes() and get_recipe("ov_int8").precision() == "int8"
    config = ov_config(3, "f32")
    assert config["INFERENCE_NUM_THREADS"] == 3 and config["PERFORMANCE_HINT"] == "LATENCY" and config["NUM_STREAMS"] == 1


def test_peer_fp32_forms_count_for_the_speedup_over_the_best_fp32_form():
    from ptq.plugins.deploy import _is_float
    from ptq.probes.best_fp32 import best_fp32_speedups
    from ptq.run.results import CaseResult, LatencyStats

    def result(recipe, ms):
        return CaseResult(
            case=f"m-{recipe}", model="m", model_version=1, family="f", recipe=recipe, recipe_version=1, recipe_config={},
            stack="s", engine=None, weights="w", data="d", input_shapes=[], batch_size=1, threads=1, warmup_rounds=0,
            quantized_layers=0, float_layers=0, quantize_seconds=0.0, latency=LatencyStats.from_samples([ms / 1e3]),
        )

    out = best_fp32_speedups([result("fp32", 10.0), result("ort_fp32", 6.0), result("ov_fp32", 4.0), result("ov_int8", 2.0)], _is_float)
    assert out["m-ov_int8"]["best_form"] == "ov_fp32" and out["m-ov_int8"]["ratio"] == pytest.approx(2.0)
