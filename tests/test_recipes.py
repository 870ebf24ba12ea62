import dataclasses

import pytest
import torch

from ptq.errors import NotApplicable, RecipeFailed, UserError
from ptq.models import get_model
from ptq.models.layers import count_layers
from ptq.recipes import (
    DynamicQuant,
    Recipe,
    StaticInt8,
    TorchaoRecipe,
    apply_recipe,
    get_recipe,
    list_recipes,
    register_handler,
    register_recipe,
    unregister_recipe,
)

DEFAULT_RECIPES = [
    "fp32",
    "dynamic_int8",
    "dynamic_int8_rnn",
    "dynamic_fp16",
    "static_int8",
    "ao_int8_dynamic",
    "ao_int8_weight_only",
]


def test_defaults_are_registered_with_reference_first():
    assert list_recipes()[: len(DEFAULT_RECIPES)] == DEFAULT_RECIPES


def test_unknown_recipe_names_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown recipe 'int3'; valid recipes: fp32, dynamic_int8"):
        get_recipe("int3")


def test_recipes_are_frozen_hashable_and_serialise_with_type_and_version():
    r = get_recipe("dynamic_int8_rnn")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.layers = ("Linear",)  # type: ignore[misc]
    assert hash(r) == hash(
        DynamicQuant("dynamic_int8_rnn", layers=("Linear", "LSTM", "GRU"), description=r.description)
    )
    d = r.to_dict()
    assert d["_type"] == "DynamicQuant" and d["_version"] == 1
    assert d["_data"]["layers"] == ["Linear", "LSTM", "GRU"]


def test_bad_recipe_fields_are_refused():
    with pytest.raises(UserError, match="unknown layer type 'Lienar'"):
        DynamicQuant("x", layers=("Lienar",))
    with pytest.raises(UserError, match="observer must be one of histogram, minmax"):
        StaticInt8("x", observer="kl")
    with pytest.raises(UserError, match="unknown torchao config 'Int3Config'"):
        TorchaoRecipe("x", config="Int3Config")


@pytest.mark.parametrize(
    ("recipe", "expected_quantized", "module_namespace"),
    [
        ("dynamic_int8", 1, "torch.ao.nn.quantized.dynamic"),
        ("dynamic_fp16", 1, "torch.ao.nn.quantized.dynamic"),
        ("static_int8", 2, "torch.ao.nn.quantized"),
        ("ao_int8_dynamic", 1, None),
        ("ao_int8_weight_only", 1, None),
    ],
)
def test_each_recipe_yields_quantized_modules(tiny_entry, tiny_built, recipe, expected_quantized, module_namespace):
    q = apply_recipe(get_recipe(recipe), tiny_entry, tiny_built)
    assert q.quantized_layers == expected_quantized
    assert count_layers(q.model)[0] == expected_quantized
    if module_namespace:
        assert any(type(m).__module__.startswith(module_namespace) for m in q.model.modules())
    else:  # torchao keeps nn.Linear and swaps its weight for a tensor subclass
        assert type(q.model.fc.weight) is not torch.nn.Parameter
    x = tiny_entry.example_inputs(tiny_built)
    with torch.inference_mode():
        assert torch.allclose(q.model(*x), tiny_built.model(*x), atol=0.1)
    # the float model is untouched
    assert type(tiny_built.model.fc) is torch.nn.Linear and type(tiny_built.model.fc.weight) is torch.nn.Parameter


def test_fp32_is_the_float_model_itself(tiny_entry, tiny_built):
    q = apply_recipe(get_recipe("fp32"), tiny_entry, tiny_built)
    assert q.model is tiny_built.model and q.stack == "none" and q.quantized_layers == 0


def test_lstm_recipe_quantizes_lstm():
    entry = get_model("micro_lstm_128")
    built = entry.build()
    q = apply_recipe(get_recipe("dynamic_int8_rnn"), entry, built)
    assert type(q.model[0].lstm).__module__.startswith("torch.ao.nn.quantized.dynamic")


def test_recipe_without_matching_layers_is_not_applicable(tiny_entry, tiny_built):
    entry = get_model("micro_conv_16")
    with pytest.raises(NotApplicable, match=r"has no Linear layer for 'dynamic_int8'"):
        apply_recipe(get_recipe("dynamic_int8"), entry, entry.build())


@pytest.mark.slow
def test_untraceable_model_is_not_applicable_for_fx_static():
    entry = get_model("minilm_l6")
    with pytest.raises(NotApplicable, match=r"FX symbolic tracing of 'minilm_l6' failed"):
        apply_recipe(get_recipe("static_int8"), entry, entry.build())


@dataclasses.dataclass(frozen=True)
class _Exploding(Recipe):
    pass


@register_handler(_Exploding)
def _explode(recipe, model, built, entry):
    raise RuntimeError("kernel missing")


def test_an_exception_inside_a_recipe_names_model_recipe_and_error(tiny_entry, tiny_built):
    with pytest.raises(RecipeFailed, match=r"recipe 'boom' failed on model 'tiny': RuntimeError: kernel missing"):
        apply_recipe(_Exploding("boom"), tiny_entry, tiny_built)


def test_register_recipe_guards():
    register_recipe(StaticInt8("test_static_minmax", observer="minmax"))
    try:
        assert get_recipe("test_static_minmax").observer == "minmax"
        with pytest.raises(UserError, match="already registered"):
            register_recipe(StaticInt8("test_static_minmax"))
    finally:
        unregister_recipe("test_static_minmax")

    @dataclasses.dataclass(frozen=True)
    class NoHandler(Recipe):
        pass

    with pytest.raises(UserError, match="has no handler"):
        register_recipe(NoHandler("orphan"))


def test_duplicate_handler_is_refused():
    with pytest.raises(UserError, match="already registered"):
        register_handler(StaticInt8)(lambda *a: None)


@pytest.mark.slow
def test_static_int8_generic_on_torchvision_resnet18():
    entry = get_model("resnet18")
    q = apply_recipe(get_recipe("static_int8"), entry, entry.build())
    assert q.float_layers == 0 and q.quantized_layers == 21
    assert q.engine == "x86" and q.stack == "torch.ao.fx"


@pytest.mark.parametrize("flags", [["avx2", "avx512f", "avx512_vnni"], []])
def test_bf16_skips_naming_the_missing_flags_on_a_cpu_without_bf16(tiny_entry, tiny_built, monkeypatch, flags):
    monkeypatch.setattr("ptq.host.env.cpu_info", lambda: {"cpu_model": "Test CPU", "cpu_flags": flags})
    recorded = ", ".join(flags) or "none"
    with pytest.raises(
        NotApplicable,
        match=rf"needs a CPU with avx512_bf16 or amx_bf16 \(native bf16\); Test CPU has neither "
        rf"\(flags recorded: {recorded}\)",
    ):
        apply_recipe(get_recipe("bf16"), tiny_entry, tiny_built)


@pytest.mark.parametrize("flags", [["avx512_bf16"], ["amx_tile", "amx_bf16"]])
def test_bf16_runs_the_model_in_bfloat16_where_the_cpu_has_it(tiny_entry, tiny_built, monkeypatch, flags):
    monkeypatch.setattr("ptq.host.env.cpu_info", lambda: {"cpu_model": "Test CPU", "cpu_flags": flags})
    q = apply_recipe(get_recipe("bf16"), tiny_entry, tiny_built)
    assert q.engine == "+".join(f for f in flags if f.endswith("bf16")) and q.quantized_layers == 2
    assert {p.dtype for p in q.model.parameters()} == {torch.bfloat16}
    assert get_recipe("bf16").precision() == get_recipe("bf16_compile").precision() == "bf16"
    x = tiny_entry.example_inputs(tiny_built)
    with torch.inference_mode():
        out = q.model(*x)
        assert out.dtype == torch.float32 and torch.allclose(out, tiny_built.model(*x), atol=0.05)


def test_pt2e_names_the_known_prepare_failures_and_no_other():
    from ptq.recipes.pt2e import _known_prepare_issue

    def _get_output_nodes_of_partitions():  # the torchao frame MiniLM's IndexError comes from
        return [][0]

    def elsewhere():
        return [][0]

    def raised(fn):
        try:
            fn()
        except IndexError as exc:
            return exc
        raise AssertionError("no IndexError")

    assert "a linear + unary partition without an output node" in _known_prepare_issue(
        raised(_get_output_nodes_of_partitions)
    )
    assert _known_prepare_issue(raised(elsewhere)) is None
    assert "use strict_export=True" in _known_prepare_issue(ValueError("Input partition has more than one output node"))
    assert _known_prepare_issue(ValueError("another")) is None


def test_a_bug_in_ptqs_own_qconfig_mapping_fails_the_case_instead_of_skipping(tiny_entry, tiny_built, monkeypatch):
    def buggy_mapping(recipe):
        raise TypeError("ptq bug in the qconfig mapping")

    monkeypatch.setattr("ptq.recipes.torch_ao._qconfig_mapping", buggy_mapping)
    with pytest.raises(RecipeFailed, match=r"recipe 'static_int8' failed on model 'tiny': TypeError: ptq bug") as info:
        apply_recipe(get_recipe("static_int8"), tiny_entry, tiny_built)
    assert not isinstance(info.value, NotApplicable) and isinstance(info.value.error, TypeError)


def test_a_type_error_passed_to_fx_outside_tracing_fails_the_case(tiny_entry, tiny_built, monkeypatch):
    """prepare_fx given a mapping it cannot read (ptq's mistake, not the model's) is no skip."""
    monkeypatch.setattr("ptq.recipes.torch_ao._qconfig_mapping", lambda recipe: object())
    with pytest.raises(RecipeFailed, match=r"recipe 'static_int8' failed on model 'tiny'"):
        apply_recipe(get_recipe("static_int8"), tiny_entry, tiny_built)


def test_library_limits_skip_only_the_librarys_verdict():
    from ptq.recipes.peer import LibraryLimits

    limits = LibraryLimits(kinds=(torch.fx.proxy.TraceError,), beneath=("tests/test_recipes.py:_library_call",))

    def _library_call(exc):
        raise exc

    def reason(error):
        return f"tracing failed ({error})"

    with pytest.raises(NotApplicable, match=r"^tracing failed \(TraceError: control flow\)$"):
        with limits.skip_unsupported(reason):
            raise torch.fx.proxy.TraceError("control flow\nmore")
    with pytest.raises(NotApplicable, match=r"^tracing failed \(TypeError: slice indices\)$"):
        with limits.skip_unsupported(reason):
            _library_call(TypeError("slice indices"))
    with pytest.raises(TypeError, match="a bug"):  # neither of its kinds nor beneath its frames
        with limits.skip_unsupported(reason):
            raise TypeError("a bug")
