"""The drift probe's pieces on tiny models: gates, tolerances, layer matching, NaN handling."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from torch import nn

from ptq.config import Config, validate
from ptq.errors import UserError
from ptq.models import Built, ModelEntry, TensorData
from ptq.models.vision import recalibrate_batchnorm
from ptq.probes.drift.layerwise import layer_drift, worst_layers
from ptq.probes.drift.measures import sqnr_db
from ptq.probes.drift.profiles import DEFAULT_TOLERANCES, Gate, measure_drift, profile_for, tolerances_for
from ptq.probes.drift.report import drift_headline, drift_table
from ptq.recipes import StaticInt8, apply_recipe, get_recipe


def test_gates_compare_in_the_direction_their_key_says():
    upper, lower = Gate("relative_accuracy_drop", "max_relative_accuracy_drop"), Gate("sqnr_db", "min_sqnr_db")
    assert upper.passes(0.01, 0.01) and not upper.passes(0.011, 0.01)
    assert lower.passes(20.0, 20.0) and not lower.passes(19.9, 20.0)
    assert lower.describe(19.9, 20) == "sqnr_db = 19.9 (tolerance min_sqnr_db >= 20)"


def test_tolerances_resolve_case_over_recipe_over_model_and_reject_unknown_keys():
    cfg = validate(
        {
            "tolerance": {
                "min_sqnr_db": 25,
                "models": {"tiny": {"min_sqnr_db": 30}},
                "recipes": {"static_int8": {"min_cosine": 0.9}},
                "cases": {"tiny-static_int8": {"min_sqnr_db": 10}},
            }
        },
        "test",
    )
    assert tolerances_for(cfg, "other", "fp32")["min_sqnr_db"] == 25
    assert tolerances_for(cfg, "tiny", "dynamic_int8")["min_sqnr_db"] == 30
    t = tolerances_for(cfg, "tiny", "static_int8")
    assert t["min_sqnr_db"] == 10 and t["min_cosine"] == 0.9
    assert tolerances_for(Config(), "x", "y") == DEFAULT_TOLERANCES
    with pytest.raises(UserError, match=r"unknown key 'max_drift' in \[tool.ptq.tolerance\]; valid keys: max_absolute"):
        validate({"tolerance": {"max_drift": 1.0}}, "test")


def test_profiles_follow_the_family(tiny_entry: ModelEntry):
    assert profile_for(tiny_entry).name == "tensor"  # family "test" has no profile of its own
    assert profile_for(dataclasses.replace(tiny_entry, family="vision")).name == "classifier"
    assert profile_for(dataclasses.replace(tiny_entry, family="text")).name == "embedding"


@pytest.mark.slow
def test_fx_fused_layers_are_compared_with_the_end_of_their_chain(tiny_entry: ModelEntry, tiny_built: Built):
    q = apply_recipe(get_recipe("static_int8"), tiny_entry, tiny_built)
    layers = {d.name: d for d in layer_drift(tiny_built.model, q.model, tiny_built.data.batch("eval", 0, 4).inputs)}
    assert set(layers) == {"conv", "fc"}
    # FX fused conv+relu: the quantized ConvReLU2d stands for the float relu's output.
    assert layers["conv"].quantized_type == "ConvReLU2d" and layers["conv"].compared_with == "relu"
    assert layers["fc"].compared_with == "fc" and layers["conv"].quantized
    assert 20 < layers["conv"].sqnr_db < 80


@pytest.mark.slow
def test_static_int8_kernels_compute_what_int8_math_says(tiny_built: Built):
    # Without VNNI the int8 kernels sum u8 x s8 pairs in int16 and saturate on 8-bit activations:
    # on an AVX2-only EPYC the kernels' output was 27.7 dB from the reference (int8 math in float)
    # model and the conv layer 18 dB from float. The recipe must pick an activation range this
    # CPU's kernels compute exactly (7-bit there: inf dB); elsewhere only requantization rounding differs.
    from torch.ao.quantization.quantize_fx import convert_fx, convert_to_reference_fx, prepare_fx

    from ptq.recipes.torch_ao import _qconfig_mapping, _torch_ao

    recipe, data = get_recipe("static_int8"), tiny_built.data
    with _torch_ao(recipe.engine):
        prepared = prepare_fx(
            copy.deepcopy(tiny_built.model), _qconfig_mapping(recipe), data.batch("calib", 0, 1).inputs
        )
        with torch.no_grad():
            for i in range(recipe.calib_batches):
                prepared(*data.batch("calib", i, recipe.calib_batch_size).inputs)
        reference, kernels = convert_to_reference_fx(copy.deepcopy(prepared)), convert_fx(prepared)
        x = data.batch("eval", 0, 16).inputs
        with torch.no_grad():
            assert sqnr_db(reference(*x), kernels(*x)) > 40


def test_good_recipe_passes_and_records_figures(tiny_entry: ModelEntry, tiny_built: Built):
    q = apply_recipe(get_recipe("static_int8"), tiny_entry, tiny_built)
    report = measure_drift(tiny_entry, tiny_built, q.model, DEFAULT_TOLERANCES)
    assert report.passed, report.violations
    d = report.to_dict()
    assert d["profile"] == "tensor" and d["tolerances"] == {"min_sqnr_db": 20.0}
    assert d["sqnr_db"] > 20 and d["layers_compared"] == 2 and d["worst_layers"][0]["name"] in ("conv", "fc")


@pytest.mark.slow
def test_zero_calibrated_recipe_fails_naming_metric_tolerance_and_layers(tiny_entry: ModelEntry, tiny_built: Built):
    broken = StaticInt8("static_int8_zeros", calib_split="zeros")
    q = apply_recipe(broken, tiny_entry, tiny_built)
    report = measure_drift(tiny_entry, tiny_built, q.model, DEFAULT_TOLERANCES)
    assert not report.passed
    msg = report.message("tiny-static_int8_zeros")
    assert "sqnr_db = " in msg and "(tolerance min_sqnr_db >= 20)" in msg
    assert "lowest-SQNR layers: conv (ConvReLU2d," in msg and "fc (Linear," in msg
    assert "ptq diagnose tiny static_int8_zeros" in msg
    assert worst_layers(report.layers, 1)[0].name == "conv"  # the error enters at the first layer


def test_the_headline_names_its_measure_samples_and_limit():
    # "1 -> 0.875" alone hides that this is top-1 agreement over 16 inputs, where two flips fail
    d = {"headline": "top1_agreement", "value": 0.875, "samples": 16, "tolerances": {"min_top1_agreement": 0.9}}
    assert drift_headline(d) == "top1_agreement 0.875 (16 samples, min 0.9)"
    assert (
        drift_headline(
            {"headline": "sqnr_db", "value": 18.26, "samples": 1, "tolerances": {"min_output_sqnr_db": 20.0}}
        )
        == "sqnr_db 18.26 (1 sample, min 20)"
    )
    assert drift_headline({**d, "tolerances": {}, "not_gated": ["top1_agreement: random weights"]}) == (
        "top1_agreement 0.875 (16 samples, not gated: random weights)"
    )
    assert drift_headline({"samples": 16, "nonfinite": "NaN"}) is None


def test_nan_output_is_its_own_failure(tiny_entry: ModelEntry, tiny_built: Built):
    class NaNs(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], 4), math.nan)

    report = measure_drift(tiny_entry, tiny_built, NaNs(), DEFAULT_TOLERANCES)
    assert report.nonfinite == "NaN" and not report.passed
    assert "produced NaN outputs on the evaluation data" in report.message("tiny-x")
    assert "NaN/Inf" in drift_table(
        [
            {
                "model": "tiny",
                "recipe": "x",
                "quantized_layers": 0,
                "float_layers": 1,
                "metrics": {"drift": report.to_dict()},
            }
        ]
    )


def test_labeled_classifier_records_accuracy_and_its_drop(tiny_entry: ModelEntry):
    def build(*, weights: str) -> Built:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 3))

        class Labeled:
            description = "labeled"

            def size(self, split: str) -> int:
                return 12

            def batch(self, split: str, index: int, batch_size: int):
                from ptq.models import Batch

                g = torch.Generator().manual_seed(1)
                x = torch.randn(batch_size, 8, generator=g)
                return Batch((x,), model(x).argmax(1).roll(1))  # labels float gets partly wrong

        return Built(model, "random", Labeled())

    entry = dataclasses.replace(tiny_entry, build_fn=build, family="vision")
    built = entry.build()
    report = measure_drift(entry, built, built.model, DEFAULT_TOLERANCES)
    f = report.figures
    assert report.samples == 12 and f["accuracy"] == f["accuracy_fp32"] and f["absolute_accuracy_drop"] == 0.0
    # seeded random weights: agreement is recorded, not gated; the SQNR floor is
    assert set(report.tolerances) == {"max_relative_accuracy_drop", "max_absolute_accuracy_drop", "min_output_sqnr_db"}
    assert report.not_gated == ["top1_agreement: random weights", "top5_agreement: random weights"]
    assert report.to_dict()["headline"] == "accuracy" and report.to_dict()["higher_is_better"] is True
    built.weights = "trained:test"
    trained = measure_drift(entry, built, built.model, DEFAULT_TOLERANCES)
    assert {"min_top1_agreement", "min_top5_agreement"} <= set(trained.tolerances) and trained.not_gated == []


def test_batchnorm_recalibration_sets_statistics_of_the_calibration_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    data = TensorData(lambda g, n: (5 + 3 * torch.randn(n, 3, 8, 8, generator=g),), "shifted")
    before = model(data.batch("eval", 0, 8).inputs[0]).detach()
    assert recalibrate_batchnorm(model, data, batches=2, batch_size=8) == 1
    assert not model.training and model[1].momentum == 0.1
    with torch.no_grad():
        conv_out = model[0](torch.cat([data.batch("calib", i, 8).inputs[0] for i in range(2)]))
    torch.testing.assert_close(model[1].running_mean, conv_out.mean((0, 2, 3)), rtol=1e-4, atol=1e-4)
    after = model(data.batch("eval", 0, 8).inputs[0]).detach()
    assert not torch.allclose(before, after)
