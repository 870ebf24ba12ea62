"""Torch's own CPU fast path (``ptq.recipes.fast_path``, PT2E int8-mixed-bf16): channels_last,
autocast bf16 where the CPU has bf16 units, compile with freezing; skips named where they do not apply."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.models import Built, ModelEntry, TensorData
from ptq.recipes import TorchFastPath, apply_recipe, get_recipe
from ptq.recipes.bf16 import bf16_units
from ptq.recipes.fast_path import FastPathModule

BF16_RECIPES = ("bf16_autocast", "bf16_autocast_compile", "pt2e_static_int8_bf16")


def _flags(monkeypatch: pytest.MonkeyPatch, flags: list[str]) -> None:
    monkeypatch.setattr("ptq.host.env.cpu_info", lambda: {"cpu_model": "Test CPU", "cpu_flags": flags})


def test_fp32_channels_last_runs_the_model_and_its_inputs_channels_last(tiny_entry, tiny_built):
    q = apply_recipe(get_recipe("fp32_channels_last"), tiny_entry, tiny_built)
    assert isinstance(q.model, FastPathModule) and (q.quantized_layers, q.float_layers) == (0, 2) and q.stack == "torch"
    assert q.model.inner.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert q.notes["memory_format"] == "channels_last" and q.notes["precision_ran"] == "fp32"
    assert not get_recipe("fp32_channels_last").quantizes() and get_recipe("fp32_channels_last").precision() == "fp32"
    assert tiny_built.model.conv.weight.is_contiguous()  # the float model is untouched
    with torch.inference_mode():
        for batch in (tiny_entry.batch_size, 5):
            x = tiny_entry.example_inputs(tiny_built, batch)
            assert torch.allclose(q.model(*x), tiny_built.model(*x), atol=1e-5)


def test_channels_last_alone_skips_a_model_without_a_2d_convolution():
    data = TensorData(lambda g, n: (torch.randn(n, 8, generator=g),), "randn(8)")
    entry = ModelEntry(
        "mlp",
        lambda *, weights: Built(nn.Sequential(nn.Linear(8, 4)).eval(), "random", data),
        batch_size=2,
        family="test",
        description="",
    )
    built = entry.build()
    with pytest.raises(
        NotApplicable, match=r"'mlp' has no 2-d convolution: channels_last changes nothing, the case would be fp32$"
    ):
        apply_recipe(get_recipe("fp32_channels_last"), entry, built)
    with pytest.raises(NotApplicable, match=r"the case would be fp32_compile$"):
        apply_recipe(get_recipe("fp32_channels_last_compile"), entry, built)


@pytest.mark.parametrize("recipe", BF16_RECIPES)
def test_bf16_fast_paths_skip_on_a_cpu_without_bf16_units_naming_the_flags(tiny_entry, tiny_built, monkeypatch, recipe):
    _flags(monkeypatch, ["avx2", "fma"])
    with pytest.raises(
        NotApplicable,
        match=rf"recipe '{recipe}' runs bf16 and needs a CPU with avx512_bf16 or amx_bf16 "
        r"\(native bf16\); Test CPU has neither, and torch would time an fp32 emulation",
    ):
        apply_recipe(get_recipe(recipe), tiny_entry, tiny_built)


def test_bf16_autocast_runs_under_autocast_where_the_cpu_has_bf16_units(tiny_entry, tiny_built, monkeypatch):
    _flags(monkeypatch, ["amx_tile", "amx_bf16"])
    q = apply_recipe(get_recipe("bf16_autocast"), tiny_entry, tiny_built)
    assert q.notes["autocast"] == "bfloat16" and q.notes["bf16_units"] == ["amx_bf16"] and q.quantized_layers == 2
    assert (
        q.notes["precision_label"] == "bf16 (autocast; amx_bf16)" and get_recipe("bf16_autocast").precision() == "bf16"
    )
    x = tiny_entry.example_inputs(tiny_built)
    with torch.inference_mode():
        out = q.model(*x)
    assert out.dtype == torch.float32 and torch.allclose(out, tiny_built.model(*x), atol=0.05)


@pytest.mark.slow
def test_bf16_autocast_compiles_with_freezing_where_the_cpu_has_bf16_units(tiny_entry, tiny_built, monkeypatch):
    """The AMX path's compile (autocast and channels_last inside the compiled graph); on a CPU without
    bf16 units only here, with the flags faked: bf16 runs emulated, so nothing is timed."""
    _flags(monkeypatch, ["avx512_bf16"])
    q = apply_recipe(get_recipe("bf16_autocast_compile"), tiny_entry, tiny_built)
    assert q.notes["deploy"] == "compile" and "freezing" in q.notes["deploy_detail"] and q.notes["deploy_seconds"] > 0
    with torch.inference_mode():
        for batch in (tiny_entry.batch_size, 5):
            x = tiny_entry.example_inputs(tiny_built, batch)
            out = q.model(*x)
            assert out.dtype == torch.float32 and torch.allclose(out, tiny_built.model(*x), atol=0.05)


@pytest.mark.skipif(bool(bf16_units()), reason="this CPU has bf16 units: the recipe runs (see the compile test)")
def test_on_this_cpu_without_bf16_units_the_bf16_fast_path_skips(tiny_entry, tiny_built):
    with pytest.raises(NotApplicable, match="runs bf16 and needs a CPU with"):
        apply_recipe(get_recipe("bf16_autocast"), tiny_entry, tiny_built)


@pytest.mark.skipif(not bf16_units(), reason="this CPU has no bf16 units: the recipe skips (tested above)")
def test_on_a_cpu_with_bf16_units_the_bf16_fast_path_runs(tiny_entry, tiny_built):
    q = apply_recipe(get_recipe("bf16_autocast"), tiny_entry, tiny_built)
    assert q.notes["precision_ran"] == "bf16" and q.notes["bf16_units"] == bf16_units()


def test_fast_path_fields_are_validated():
    with pytest.raises(UserError, match="autocast must be None or one of bfloat16, got 'float16'"):
        TorchFastPath("x", autocast="float16")
    with pytest.raises(UserError, match="warmup_calls must be >= 1"):
        TorchFastPath("x", compile=True, warmup_calls=0)
    from ptq.recipes import Pt2eInt8

    with pytest.raises(UserError, match="autocast must be None or one of bfloat16"):
        Pt2eInt8("x", autocast="half")
    assert get_recipe("pt2e_static_int8_bf16").precision() == "int8"
