"""Recipes on ``torch.ao.quantization`` (eager dynamic, FX static): deprecated upstream but still
what most tutorials and deployed models use, so they stay the reference path."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.models.base import Built, ModelEntry
from ptq.models.layers import count_layers, has_layer_types, layer_types
from ptq.recipes.base import Quantized, Recipe, register_handler
from ptq.recipes.peer import LibraryLimits

__all__ = ["DynamicQuant", "Float32", "StaticInt8", "saturates_int16"]


@contextlib.contextmanager
def _torch_ao(engine: str) -> Iterator[None]:
    """Select the quantized engine and hush torch.ao's deprecation notice (results record the stack)."""
    if engine not in torch.backends.quantized.supported_engines:
        raise NotApplicable(
            f"quantized engine {engine!r} is not supported by this torch build "
            f"(supported: {', '.join(torch.backends.quantized.supported_engines)})"
        )
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quant_min and quant_max.*")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*")
        try:
            yield
        finally:
            torch.backends.quantized.engine = previous


def _done(model: nn.Module, stack: str, engine: str | None, **notes: object) -> Quantized:
    q, f = count_layers(model)
    return Quantized(model, stack=stack, engine=engine, quantized_layers=q, float_layers=f, notes=dict(notes))


@dataclass(frozen=True)
class Float32(Recipe):
    """The unquantized reference every speedup is measured against."""

    stack: ClassVar[str] = "none"

    def quantizes(self) -> bool:
        return False


@register_handler(Float32)
def _float32(recipe: Float32, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    return _done(built.model, "none", None)  # the shared float model, not a copy


def _check_layer_selection(recipe: Recipe, float_layers: tuple[str, ...], only_layers: tuple[str, ...]) -> None:
    if float_layers and only_layers:
        raise UserError(f"recipe {recipe.name!r}: set float_layers or only_layers, not both")


def _selected(name: str, float_layers: tuple[str, ...], only_layers: tuple[str, ...]) -> bool:
    return name in only_layers if only_layers else name not in float_layers


def _unknown_layers(model: nn.Module, recipe: Recipe, names: tuple[str, ...]) -> None:
    known = dict(model.named_modules())
    missing = [n for n in names if n not in known]
    if missing:
        raise UserError(
            f"recipe {recipe.name!r} names layers the model does not have: {', '.join(missing)}; "
            "use qualified module names as model.named_modules() gives them"
        )


@dataclass(frozen=True)
class DynamicQuant(Recipe):
    """``quantize_dynamic``: weights quantized ahead of time, activations at run time.

    ``float_layers`` (qualified module names) stay in float; ``only_layers``, when set, are the
    only layers quantized (what ``ptq diagnose`` uses to try one layer at a time).
    """

    layers: tuple[str, ...] = ("Linear",)
    dtype: str = "qint8"  # or "float16"
    engine: str = "x86"
    float_layers: tuple[str, ...] = ()
    only_layers: tuple[str, ...] = ()
    stack: ClassVar[str] = "torch.ao.eager"

    def precision(self) -> str:
        return "fp16" if self.dtype == "float16" else "int8"

    def __post_init__(self) -> None:
        layer_types(self.layers)
        if self.dtype not in ("qint8", "float16"):
            raise UserError(f"recipe {self.name!r}: dtype must be 'qint8' or 'float16', got {self.dtype!r}")
        _check_layer_selection(self, self.float_layers, self.only_layers)


@register_handler(DynamicQuant)
def _dynamic(recipe: DynamicQuant, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    types = layer_types(recipe.layers)
    if not has_layer_types(model, types):
        raise NotApplicable(f"model {entry.name!r} has no {'/'.join(recipe.layers)} layer for {recipe.name!r}")
    with _torch_ao(recipe.engine):
        from torch.ao.quantization import quantize_dynamic

        spec: set[type[nn.Module]] | dict[str, object] = types
        if recipe.float_layers or recipe.only_layers:
            from torch.ao.quantization import default_dynamic_qconfig, float16_dynamic_qconfig

            _unknown_layers(model, recipe, recipe.float_layers + recipe.only_layers)
            qconfig = float16_dynamic_qconfig if recipe.dtype == "float16" else default_dynamic_qconfig
            spec = {
                name: qconfig
                for name, m in model.named_modules()
                if isinstance(m, tuple(types)) and _selected(name, recipe.float_layers, recipe.only_layers)
            }
        q = quantize_dynamic(model, spec, dtype=getattr(torch, recipe.dtype))
    return _done(q, recipe.stack, recipe.engine)


@dataclass(frozen=True)
class StaticInt8(Recipe):
    """FX graph-mode static int8 with calibration: works on any symbolically traceable model,
    not only on torchvision's hand-made quantizable variants. Per-channel symmetric weights."""

    calib_batches: int = 8
    calib_batch_size: int = 8
    observer: str = "histogram"  # or "minmax"
    engine: str = "x86"
    calib_split: str = "calib"  # or "zeros": calibration batches of zeros, a deliberately broken recipe
    float_layers: tuple[str, ...] = ()
    only_layers: tuple[str, ...] = ()
    stack: ClassVar[str] = "torch.ao.fx"

    def __post_init__(self) -> None:
        _check_layer_selection(self, self.float_layers, self.only_layers)
        if self.calib_split not in _CALIB_SOURCES:
            raise UserError(
                f"recipe {self.name!r}: calib_split must be one of {', '.join(_CALIB_SOURCES)}, got {self.calib_split!r}"
            )
        if self.observer not in _OBSERVERS:
            raise UserError(
                f"recipe {self.name!r}: observer must be one of {', '.join(_OBSERVERS)}, got {self.observer!r}"
            )
        if self.calib_batches < 1 or self.calib_batch_size < 1:
            raise UserError(f"recipe {self.name!r}: calib_batches and calib_batch_size must be >= 1")


def _observer(name: str):
    from torch.ao.quantization import HistogramObserver, MinMaxObserver

    return {"histogram": HistogramObserver, "minmax": MinMaxObserver}[name]


_OBSERVERS = ("histogram", "minmax")

#: Where calibration batches come from: a data split, or zeros shaped like the calib split
#: (every activation range collapses to one value: a known-bad recipe to test drift checks).
_CALIB_SOURCES = {
    "calib": lambda data, i, n: data.batch("calib", i, n).inputs,
    "eval": lambda data, i, n: data.batch("eval", i, n).inputs,
    "zeros": lambda data, i, n: tuple(torch.zeros_like(t) for t in data.batch("calib", i, n).inputs),
}


@functools.cache
def saturates_int16(engine: str) -> bool:
    """Whether ``engine``'s int8 linear and conv kernels on this CPU lose 8-bit activations.

    Without VNNI, x86 int8 kernels add u8 x s8 products in pairs into int16 (``vpmaddubsw``),
    which saturates above 32767: one pair of 255 x 127 is 64770. A 7-bit activation range
    (``reduce_range=True``, torch's own x86/fbgemm default) keeps every pair in range. Which
    kernel runs depends on the CPU, the flags its hypervisor shows, torch's choice between fbgemm
    and oneDNN and the layer's shape, so this runs the kernels instead of reading CPU flags:
    worst-case inputs (all 255) and weights (all 127), where the exact int32 sums are known.
    Measured on an AVX2-only AMD EPYC (Zen 3), torch 2.14.1: x86, fbgemm and onednn returned
    0.505 of the exact sum (linear, conv), fbgemm's depthwise conv 0.56; with 7-bit inputs, 1.000.
    """
    import torch.ao.nn.quantized as nnq

    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        layers: list[tuple[nnq.Linear | nnq.Conv2d, tuple[int, ...], int]] = [(nnq.Linear(64, 4), (2, 64), 64)]
        for channels, groups in ((16, 1), (16, 16), (128, 128)):  # dense, depthwise (oneDNN / fbgemm in x86)
            layers.append(
                (nnq.Conv2d(channels, channels, 3, groups=groups), (1, channels, 3, 3), 9 * channels // groups)
            )
        for layer, shape, terms in layers:
            w = layer.weight()
            ones = torch.ones(w.shape[0])
            zeros = torch.zeros_like(ones, dtype=torch.long)
            layer.set_weight_bias(
                torch.quantize_per_channel(torch.full(w.shape, 127.0), ones, zeros, 0, torch.qint8), None
            )
            exact = 255.0 * 127.0 * terms
            layer.scale, layer.zero_point = exact / 200, 0  # the exact sum lands on 200 of 0..255
            x = torch.quantize_per_tensor(torch.full(shape, 255.0), 1.0, 0, torch.quint8)
            if bool((layer(x).int_repr() != 200).any()):
                return True
        return False
    finally:
        torch.backends.quantized.engine = previous


def _qconfig_mapping(recipe: StaticInt8):
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import PerChannelMinMaxObserver

    mapping = get_default_qconfig_mapping(recipe.engine)
    # 8-bit activations only where the kernels add their products without int16 saturation (VNNI
    # CPUs); elsewhere the 8-bit range measured 18 dB SQNR on a conv that int8 math puts at 39 dB.
    activation = _observer(recipe.observer).with_args(reduce_range=saturates_int16(recipe.engine))
    weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    qconfig = QConfig(activation=activation, weight=weight)
    if recipe.only_layers:  # nothing else quantized: the drift is this layer's alone
        mapping = mapping.set_global(None)
        for name in recipe.only_layers:
            mapping = mapping.set_module_name(name, qconfig)
        return mapping
    mapping = mapping.set_global(qconfig)
    for name in recipe.float_layers:
        mapping = mapping.set_module_name(name, None)
    return mapping


#: Tracing is the usual limit of FX: ``TraceError`` (control flow on a proxy), or whatever the
#: model's own code raises while the tracer runs it (MiniLM: ``TypeError`` slicing with a proxy).
_FX_TRACING = LibraryLimits(
    kinds=(torch.fx.proxy.TraceError,), beneath=("torch/fx/_symbolic_trace.py:trace",), chars=160
)


@register_handler(StaticInt8)
def _static_fx(recipe: StaticInt8, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    calib = _CALIB_SOURCES[recipe.calib_split]
    example = calib(built.data, 0, 1)
    _unknown_layers(model, recipe, recipe.float_layers + recipe.only_layers)
    with _torch_ao(recipe.engine):
        mapping = _qconfig_mapping(recipe)  # ptq's own code: a bug here fails the case, never skips it
        with _FX_TRACING.skip_unsupported(
            lambda error: (
                f"FX symbolic tracing of {entry.name!r} failed ({error}); use a dynamic or torchao recipe for this model"
            )
        ):
            prepared = prepare_fx(model, mapping, example)
        with torch.inference_mode():
            for i in range(recipe.calib_batches):
                prepared(*calib(built.data, i, recipe.calib_batch_size))
        q = convert_fx(prepared)
    bits = (
        "7 (this CPU's int8 kernels saturate int16 sums of 8-bit activations)"
        if saturates_int16(recipe.engine)
        else "8"
    )
    return _done(
        q,
        recipe.stack,
        recipe.engine,
        activation_bits=bits,
        calibration=f"{recipe.calib_batches}x{recipe.calib_batch_size} {recipe.calib_split} samples",
    )
