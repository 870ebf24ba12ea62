"""The recipe registry: named, frozen recipe configs; ``apply_recipe`` runs their handlers.

Add a recipe of an existing type with ``register_recipe(StaticInt8(name="static_int8_minmax",
observer="minmax"))``; a new kind of recipe needs a ``Recipe`` subclass and a handler
decorated with ``register_handler``. Installed packages may register from an entry point in
group ``ptq.recipes``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ptq.recipes.base import Quantized, Recipe, apply_recipe, handler_for, register_handler
from ptq.recipes.bf16 import Bfloat16
from ptq.recipes.deploy import Deployed
from ptq.recipes.fast_path import TorchFastPath
from ptq.recipes.onnx_runtime import OnnxRuntime
from ptq.recipes.openvino import OpenVino
from ptq.recipes.pt2e import Pt2eInt8
from ptq.recipes.torch_ao import DynamicQuant, Float32, StaticInt8
from ptq.recipes.torchao_recipes import TorchaoRecipe
from ptq.registry import Registry

__all__ = [
    "BUILTIN_RECIPES",
    "Bfloat16",
    "Deployed",
    "DynamicQuant",
    "Float32",
    "OnnxRuntime",
    "OpenVino",
    "Pt2eInt8",
    "Quantized",
    "Recipe",
    "StaticInt8",
    "TorchFastPath",
    "TorchaoRecipe",
    "apply_recipe",
    "get_recipe",
    "handler_for",
    "list_recipes",
    "register_handler",
    "register_recipe",
    "unregister_recipe",
]

_REGISTRY: Registry[Recipe] = Registry("recipe", entry_point_group="ptq.recipes")

#: The float reference: every other recipe's speedup is measured against it.
REFERENCE = "fp32"


def register_recipe(recipe: Recipe, *, replace: bool = False) -> Recipe:
    if not isinstance(recipe, Recipe):
        raise TypeError(f"register_recipe wants a Recipe instance, got {type(recipe).__name__}")
    handler_for(recipe)  # refuse a recipe nothing can run
    return _REGISTRY.register(recipe.name, recipe, replace=replace)


def unregister_recipe(name: str) -> Recipe:
    return _REGISTRY.unregister(name)


def get_recipe(name: str) -> Recipe:
    return _REGISTRY.get(name)


def list_recipes(include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
    return _REGISTRY.names(include, exclude)


for _recipe in (
    Float32(REFERENCE, description="unquantized float32 reference"),
    DynamicQuant("dynamic_int8", layers=("Linear",), description="quantize_dynamic int8 on {Linear}, as the tutorial"),
    DynamicQuant(
        "dynamic_int8_rnn", layers=("Linear", "LSTM", "GRU"), description="quantize_dynamic int8 on {Linear, LSTM, GRU}"
    ),
    DynamicQuant(
        "dynamic_fp16",
        layers=("Linear", "LSTM", "GRU"),
        dtype="float16",
        description="quantize_dynamic float16 weights",
    ),
    StaticInt8("static_int8", description="FX static int8, x86 engine, histogram observer, per-channel weights"),
    TorchaoRecipe(
        "ao_int8_dynamic",
        config="Int8DynamicActivationInt8WeightConfig",
        description="torchao int8 activations and weights",
    ),
    TorchaoRecipe("ao_int8_weight_only", config="Int8WeightOnlyConfig", description="torchao int8 weight-only"),
    TorchaoRecipe(
        "ao_int4_weight_only", config="Int4WeightOnlyConfig", description="torchao int4 weight-only (CUDA layout)"
    ),
    TorchaoRecipe(
        "ao_int4_weight_only_cpu",
        config="PrototypeInt4WeightOnlyConfig",
        description="torchao int4 weight-only, CPU tinygemm layout (Int4OpaqueTensor), group 128",
    ),
    TorchaoRecipe(
        "ao_float8_weight_only",
        config="Float8WeightOnlyConfig",
        description="torchao float8 weights, dequantized to matmul",
    ),
    TorchaoRecipe(
        "ao_float8_dynamic",
        config="Float8DynamicActivationFloat8WeightConfig",
        description="torchao float8 activations and weights",
    ),
    # Deployment forms: the float reference and the FX static recipe, traced and frozen.
    Deployed(
        "fp32_jit", base=REFERENCE, form="jit_optimize", description="fp32, torch.jit.trace + optimize_for_inference"
    ),
    Deployed(
        "static_int8_jit", base="static_int8", form="jit_freeze", description="FX static int8, torch.jit.trace + freeze"
    ),
    # ONNX Runtime, the peer: same model, same calibration data.
    OnnxRuntime("ort_fp32", description="ONNX export run by onnxruntime, fp32"),
    OnnxRuntime(
        "ort_static_int8",
        quantization="static",
        description="onnxruntime static int8, QDQ, per-channel, same calib data",
    ),
    OnnxRuntime(
        "ort_dynamic_int8", quantization="dynamic", description="onnxruntime dynamic int8 weights, per-channel"
    ),
    # OpenVINO, the second peer: converted from the same model, NNCF int8 on the same calibration data.
    OpenVino("ov_fp32", description="ov.convert_model run by OpenVINO's CPU plugin, f32 inference precision"),
    OpenVino(
        "ov_int8",
        quantization="static",
        description="NNCF post-training int8 (default preset), same calib data, OpenVINO CPU",
    ),
    # What a user of OpenVINO gets without asking: no precision hint (bf16 where the CPU has bf16 units).
    OpenVino(
        "ov_default",
        inference_precision=None,
        description="ov.convert_model run by OpenVINO's CPU plugin at its default inference precision, read back",
    ),
    # bfloat16 weights and activations; skipped on CPUs without native bf16 (AVX512-BF16, AMX).
    Bfloat16("bf16", description="model.to(bfloat16), float32 at the boundary"),
    # torch.compile forms: tens of seconds of compilation per model on 2 cores, so only in
    # the ``deploy`` matrix (ptq.run.matrix), never in ``default``.
    Deployed("fp32_compile", base=REFERENCE, form="compile", description="fp32, torch.compile (inductor, freezing)"),
    Deployed("bf16_compile", base="bf16", form="compile", description="bfloat16, torch.compile (inductor, freezing)"),
    Deployed(
        "ao_int8_dynamic_compile",
        base="ao_int8_dynamic",
        form="compile",
        description="torchao int8 dynamic, torch.compile",
    ),
    Pt2eInt8("pt2e_static_int8", description="PT2E static int8, X86InductorQuantizer, torch.compile (freezing)"),
    # Torch's own CPU fast path as PyTorch documents it (docs/fast-paths.md): channels_last, autocast
    # bf16 (skipped without bf16 units), torch.compile with freezing, and PT2E int8-mixed-bf16.
    TorchFastPath("fp32_channels_last", description="fp32, model and 4-d inputs channels_last (eager)"),
    TorchFastPath(
        "fp32_channels_last_compile",
        compile=True,
        description="fp32, channels_last, torch.compile (inductor, freezing)",
    ),
    TorchFastPath(
        "bf16_autocast",
        autocast="bfloat16",
        description="torch.autocast('cpu', bfloat16), channels_last where the model has 2-d convolutions (eager)",
    ),
    TorchFastPath(
        "bf16_autocast_compile",
        autocast="bfloat16",
        compile=True,
        description="autocast bfloat16, channels_last, torch.compile (inductor, freezing)",
    ),
    Pt2eInt8(
        "pt2e_static_int8_bf16",
        autocast="bfloat16",
        description="PT2E static int8, X86InductorQuantizer, float ops in bf16 (autocast), torch.compile (freezing)",
    ),
):
    register_recipe(_recipe)

#: The recipes ptq ships; any other registered recipe is a project's (:mod:`ptq.project`).
BUILTIN_RECIPES: frozenset[str] = frozenset(_REGISTRY)
