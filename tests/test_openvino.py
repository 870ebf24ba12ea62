"""OpenVINO peer recipes (``ptq.recipes.openvino``) behind the wrapper ONNX Runtime shares, on a tiny model."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from ptq.errors import NotApplicable, UserError
from ptq.recipes import Deployed, OpenVino, apply_recipe, get_recipe
from ptq.recipes.openvino import OV_PRECISIONS, OvModule, ov_config, precision_ran
from ptq.recipes.peer import PeerModule, peer_runtime

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
    reason="openvino and nncf are not installed: pip install 'pytest-ptq[openvino]'",
)


@pytest.mark.slow
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
    assert q.notes["inference_precision"] == "f32" and q.notes["precision_ran"] == get_recipe(recipe).precision()
    assert q.notes["serialized_bytes"] > 0 and "OpenVINO IR" in q.notes["size_method"]
    with torch.inference_mode():
        for batch in (tiny_entry.batch_size, 5):  # the batch dimension stays free, as probes need
            x = tiny_entry.example_inputs(tiny_built, batch)
            assert torch.allclose(q.model(*x), tiny_built.model(*x), atol=0.1)


@pytest.mark.slow
@needs_openvino
def test_ov_int8_calibrates_on_the_split_the_other_static_recipes_use(tiny_entry, tiny_built):
    ort = get_recipe("ort_static_int8")
    recipe = get_recipe("ov_int8")
    assert (recipe.calib_split, recipe.calib_batches, recipe.calib_batch_size) == (
        ort.calib_split,
        ort.calib_batches,
        ort.calib_batch_size,
    )
    q = apply_recipe(recipe, tiny_entry, tiny_built)
    assert q.notes["calibration"] == "8x8 calib samples, nncf.quantize, default preset"
    assert q.notes["nncf_model_type"] == "default"  # tiny is not a text model
    # randn calibration data goes below zero: the input's quantizer is signed (images in [0, 1) give unsigned)
    assert q.notes["input_quantizers"] == ["signed"] and q.notes["overflow_fix"] in ("ENABLE", "NNCF default")


@pytest.mark.slow
@needs_openvino
def test_torch_deployment_forms_refuse_an_openvino_base(tiny_entry, tiny_built):
    with pytest.raises(NotApplicable, match="runs in OpenVINO, not in PyTorch; jit_freeze does not apply"):
        apply_recipe(Deployed("x", base="ov_fp32", form="jit_freeze"), tiny_entry, tiny_built)


def test_missing_openvino_is_a_skip_naming_the_extra(tiny_entry, tiny_built, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in {"openvino", "nncf"} else real(name, *a)
    )
    with pytest.raises(
        NotApplicable, match=r"recipe 'ov_int8' needs openvino, nncf; pip install 'pytest-ptq\[openvino\]'"
    ):
        apply_recipe(get_recipe("ov_int8"), tiny_entry, tiny_built)


def test_openvino_recipe_fields_and_plugin_config_are_validated():
    with pytest.raises(UserError, match="quantization must be one of none, static, got 'dynamic'"):
        OpenVino("x", quantization="dynamic")
    with pytest.raises(UserError, match="calib_batches and calib_batch_size must be >= 1"):
        OpenVino("x", calib_batches=0)
    assert not get_recipe("ov_fp32").quantizes() and get_recipe("ov_int8").precision() == "int8"
    config = ov_config(3, "f32")
    assert (
        config["INFERENCE_NUM_THREADS"] == 3 and config["PERFORMANCE_HINT"] == "LATENCY" and config["NUM_STREAMS"] == 1
    )
    assert config["INFERENCE_PRECISION_HINT"] == "f32" and "INFERENCE_PRECISION_HINT" not in ov_config(3, None)


def test_peer_fp32_forms_count_for_the_speedup_over_the_best_fp32_form():
    from ptq.plugins.deploy import _is_float
    from ptq.probes.best_fp32 import best_fp32_speedups
    from ptq.storage.results import CaseResult, LatencyStats

    def result(recipe, ms):
        return CaseResult(
            case=f"m-{recipe}",
            model="m",
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
            latency=LatencyStats.from_samples([ms / 1e3]),
        )

    out = best_fp32_speedups(
        [result("fp32", 10.0), result("ort_fp32", 6.0), result("ov_fp32", 4.0), result("ov_int8", 2.0)], _is_float
    )
    assert out["m-ov_int8"]["best_form"] == "ov_fp32" and out["m-ov_int8"]["ratio"] == pytest.approx(2.0)
    assert out["m-ov_int8"]["best_precision"] == "fp32"
    # OpenVINO's default is a float form too, and the record says what it ran (bf16 on CPUs with bf16 units)
    default = result("ov_default", 3.0)
    default.metrics["deployment"] = {"form": "eager", "precision_ran": "bf16"}
    out = best_fp32_speedups([result("fp32", 10.0), result("ov_fp32", 4.0), default, result("ov_int8", 2.0)], _is_float)
    assert (out["m-ov_int8"]["best_form"], out["m-ov_int8"]["best_precision"]) == ("ov_default", "bf16")


@pytest.mark.slow
@needs_openvino
def test_ov_default_compiles_without_a_precision_hint_and_records_the_one_that_ran(tiny_entry, tiny_built):
    import openvino as ov

    q = apply_recipe(get_recipe("ov_default"), tiny_entry, tiny_built)
    assert "INFERENCE_PRECISION_HINT" not in q.notes["ov_config"]
    default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()  # bf16 on CPUs with bf16 units
    ran = q.model.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    assert ran == default == q.notes["inference_precision"] and q.notes["runtime_default"] is True
    assert q.notes["precision_ran"] == OV_PRECISIONS.get(ran, ran) == get_recipe("ov_default").precision()
    assert q.notes["precision_label"].startswith(f"{q.notes['precision_ran']} (OpenVINO's default on this CPU")
    assert ("the same as an f32 hint (ov_fp32)" in q.notes["precision_label"]) is (ran == "f32")
    assert not get_recipe("ov_default").quantizes()  # a float form: the best-float comparison weighs it
    # ov_fp32 is what OpenVINO runs by default exactly where the default is f32
    assert apply_recipe(get_recipe("ov_fp32"), tiny_entry, tiny_built).notes["runtime_default"] is (ran == "f32")
    with torch.inference_mode():
        x = tiny_entry.example_inputs(tiny_built)
        assert torch.allclose(q.model(*x), tiny_built.model(*x), atol=0.1)


class _Compiled:
    def __init__(self, hint: str) -> None:
        import openvino as ov

        self.hint = getattr(ov.Type, hint)

    def get_property(self, name: str):
        assert name == "INFERENCE_PRECISION_HINT"
        return self.hint


@needs_openvino
@pytest.mark.parametrize(
    ("recipe", "hint", "ran", "label"),
    [
        ("ov_default", "bf16", "bf16", "bf16 (OpenVINO's default on this CPU)"),
        ("ov_default", "f32", "fp32", "fp32 (OpenVINO's default on this CPU, the same as an f32 hint (ov_fp32))"),
        ("ov_fp32", "f32", "fp32", "fp32"),
        ("ov_int8", "bf16", "int8", "int8 (float ops bf16)"),
    ],
)
def test_the_precision_read_back_names_what_ran(recipe, hint, ran, label):
    notes = precision_ran(_Compiled(hint), get_recipe(recipe))
    assert (notes["inference_precision"], notes["precision_ran"], notes["precision_label"]) == (hint, ran, label)
