"""OpenVINO as the second peer: the model converted by ``ov.convert_model`` and run by OpenVINO's
CPU plugin, in fp32 and quantized by NNCF post-training quantization (default preset) on the
same ``calib`` batches as the PyTorch and ONNX Runtime static recipes.

The compiled model runs behind :class:`ptq.recipes.peer.PeerModule`, the wrapper ONNX Runtime
uses, with as many inference threads as torch (``INFERENCE_NUM_THREADS``), one stream, the
``LATENCY`` performance hint, no CPU pinning (the cores are shared with torch and the timer) and
``f32`` inference precision: on CPUs with bf16 units OpenVINO would otherwise run its "fp32" model
in bf16, and the case would measure another precision than it names.

``ov_default`` is the float path a user of OpenVINO gets without asking: the same properties but
no ``INFERENCE_PRECISION_HINT``, so the plugin picks (bf16 on CPUs with bf16 units, f32 elsewhere).
Every OpenVINO case reads back the precision the compiled model runs in
(``compiled_model.get_property("INFERENCE_PRECISION_HINT")``) and records it in its notes
(``inference_precision``, ``precision_ran``, ``precision_label``), which the fastest-path summary
reports. See docs/fast-paths.md.
"""

from __future__ import annotations

import functools
import importlib.metadata
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ptq.errors import UserError
from ptq.models.base import Built, ModelEntry
from ptq.recipes.base import Quantized, Recipe, register_handler
from ptq.recipes.peer import LibraryLimits, PeerModule, calib_inputs, peer_result, require
from ptq.recipes.torch_ao import saturates_int16

__all__ = [
    "OV_PRECISIONS",
    "OpenVino",
    "OvModule",
    "count_ov_layers",
    "default_precision",
    "input_quantizers",
    "ov_config",
    "precision_ran",
]

QUANTIZATIONS = ("none", "static")
#: OpenVINO ops that carry weights.
_WEIGHTED_OPS = {"Convolution", "GroupConvolution", "MatMul", "LSTMSequence", "GRUSequence", "RNNSequence"}
#: Ops between a weight constant and its consumer: decompression (int8/fp16 -> f32) and layout.
_WEIGHT_PATH = {"Convert", "Multiply", "Subtract", "Reshape", "Transpose", "Unsqueeze", "FakeQuantize"}
_LOW_BIT = {"i8", "u8", "i4", "u4"}
#: OpenVINO element type names (``Type.get_type_name()``) -> the suite's precision names.
OV_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


@dataclass(frozen=True)
class OpenVino(Recipe):
    """Convert with ``ov.convert_model``; run in OpenVINO, optionally quantized by ``nncf.quantize``.

    ``static`` calibrates on ``calib_batches`` x ``calib_batch_size`` samples of ``calib_split``,
    as :class:`~ptq.recipes.onnx_runtime.OnnxRuntime` does, with NNCF's default (performance) preset.
    """

    quantization: str = "none"
    #: ``INFERENCE_PRECISION_HINT``; None leaves it to OpenVINO (its default for the CPU), read back.
    inference_precision: str | None = "f32"
    calib_batches: int = 8
    calib_batch_size: int = 8
    calib_split: str = "calib"
    #: (model family, ``nncf.ModelType`` name): NNCF's TRANSFORMER scheme keeps the ops whose int8
    #: breaks attention (softmax inputs, layer norms) in float; without it MiniLM's embeddings fell
    #: to a cosine far below the tolerance here. The preset stays NNCF's default.
    model_types: tuple[tuple[str, str], ...] = (("text", "TRANSFORMER"),)
    stack: ClassVar[str] = "openvino"

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise UserError(
                f"recipe {self.name!r}: quantization must be one of {', '.join(QUANTIZATIONS)}, got {self.quantization!r}"
            )
        if self.calib_batches < 1 or self.calib_batch_size < 1:
            raise UserError(f"recipe {self.name!r}: calib_batches and calib_batch_size must be >= 1")

    def quantizes(self) -> bool:
        return self.quantization != "none"

    def precision(self) -> str:
        """int8 when quantized; else the float precision the hint names, or for OpenVINO's default
        the one the CPU plugin reports for this CPU (each case also records what its compiled model ran)."""
        if self.quantizes():
            return "int8"
        hint = self.inference_precision or default_precision()
        return OV_PRECISIONS.get(hint, hint)


@functools.lru_cache(maxsize=1)
def default_precision() -> str:
    """The CPU plugin's default ``INFERENCE_PRECISION_HINT`` on this CPU (``f32``, ``bf16``...), or
    ``default`` where OpenVINO is not installed (the case then skips)."""
    try:
        import openvino as ov
    except ImportError:
        return "default"
    return ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


class OvModule(PeerModule):
    """Calls an OpenVINO compiled model with torch tensors; returns torch tensors.

    It keeps the ``ov.Model`` and the plugin's properties so that a deep copy compiles it again:
    the CPU plugin's own weight buffers and infer request, a new placement of the peer as a deep
    copy is of a PyTorch model (:mod:`ptq.run.placement`). A compiled model is one draw: ten
    fresh compiles of resnet18's int8 model spread 11% (CV 2.8%), the one original re-timed 2.3%.
    """

    def __init__(self, ov_model: Any, config: dict[str, Any]) -> None:
        import openvino as ov

        compiled = ov.Core().compile_model(ov_model, "CPU", config)
        # share_inputs: the request reads the input arrays in place, as ``compiled_model(x)`` does (its
        # default); ``infer``'s default copies each input into the request's own tensors first.
        super().__init__(lambda arrays: self.request.infer(arrays, share_inputs=True).to_tuple())
        self.compiled, self.ov_model, self.config = compiled, ov_model, config
        self.request = compiled.create_infer_request()  # one request reused: no allocation per call

    def __deepcopy__(self, memo: dict[int, Any]) -> OvModule:
        return OvModule(self.ov_model, self.config)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its IR (``ov.Model`` is not picklable), weights as they are: compiled again on load."""
        xml, weights = _ir(self.ov_model)
        return (_ov_module_from_ir, (xml, weights, dict(self.config)))


def _ir(ov_model: Any) -> tuple[bytes, bytes]:
    """The IR ``ov.save_model`` writes (``.xml``, ``.bin``), weights not recompressed."""
    import openvino as ov

    with tempfile.TemporaryDirectory(prefix="ptq-openvino-") as tmp:
        path = Path(tmp) / "model.xml"
        ov.save_model(ov_model, str(path), compress_to_fp16=False)
        return path.read_bytes(), path.with_suffix(".bin").read_bytes()


def _ov_module_from_ir(xml: bytes, weights: bytes, config: dict[str, Any]) -> OvModule:
    import numpy as np
    import openvino as ov

    tensor = ov.Tensor(np.frombuffer(weights, dtype=np.uint8).copy()) if weights else ov.Tensor(np.empty(0, np.uint8))
    return OvModule(ov.Core().read_model(model=xml.decode(), weights=tensor), config)


def ov_config(threads: int, precision: str | None) -> dict[str, Any]:
    """The CPU plugin's properties for a case: torch's thread count, one latency-bound stream, and
    the inference precision unless ``precision`` is None (OpenVINO's default)."""
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
    }
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


def precision_ran(compiled: Any, recipe: OpenVino) -> dict[str, Any]:
    """What the compiled model runs in, read back from the plugin: ``inference_precision`` (its type
    name), ``precision_ran`` (the suite's name: int8 for a quantized model, whose float ops run in
    ``inference_precision``), ``precision_label``, the words the fastest-path summary shows, and
    ``runtime_default``: whether it is what OpenVINO runs without a hint on this CPU."""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    ran = "int8" if recipe.quantizes() else OV_PRECISIONS.get(hint, hint)
    if recipe.quantizes():
        label = f"int8 (float ops {hint})"
    elif recipe.inference_precision is None:
        same = " on this CPU, the same as an f32 hint (ov_fp32)" if hint == "f32" else " on this CPU"
        label = f"{ran} (OpenVINO's default{same})"
    else:
        label = ran
    # What a user gets without a hint: the case runs it when it names no precision, or the one it names is the default.
    default = not recipe.quantizes() and (recipe.inference_precision is None or hint == default_precision())
    return {"inference_precision": hint, "precision_ran": ran, "precision_label": label, "runtime_default": default}


def _quantized_weight(node: Any) -> bool:
    """Does the weight feeding ``node`` come from a FakeQuantize or a low-bit constant?"""
    seen = 0
    while seen < 8:  # a decompression chain is a few ops long
        kind = node.get_type_name()
        if kind == "FakeQuantize" or (kind == "Constant" and node.get_element_type().get_type_name() in _LOW_BIT):
            return True
        if kind not in _WEIGHT_PATH or node.get_input_size() == 0:
            return False
        node, seen = node.input(0).get_source_output().get_node(), seen + 1
    return False


def count_ov_layers(model: Any) -> tuple[int, int]:
    """(weighted ops with a quantized weight, weighted ops left float) of an OpenVINO model."""
    quantized = floats = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() in _WEIGHTED_OPS and op.get_input_size() > 1:
            if _quantized_weight(op.input(1).get_source_output().get_node()):
                quantized += 1
            else:
                floats += 1
    return quantized, floats


def _convert(model: nn.Module, inputs: tuple[torch.Tensor, ...], entry: ModelEntry) -> Any:
    import openvino as ov
    from openvino.frontend import GeneralFailure, NotImplementedFailure, OpConversionFailure, OpValidationFailure
    from openvino.tools.ovc.error import BasicError

    # Conversion limits belong to the model: an op the frontend cannot convert, or what the
    # TorchScript tracer it runs refuses (RuntimeError); anything else is a bug and fails the case.
    limits = LibraryLimits(
        kinds=(
            OpConversionFailure,
            OpValidationFailure,
            NotImplementedFailure,
            GeneralFailure,
            BasicError,
            RuntimeError,
        )
    )
    with limits.skip_unsupported(lambda error: f"ov.convert_model of {entry.name!r} failed ({error})"), torch.no_grad():
        return ov.convert_model(model, example_input=inputs)


def input_quantizers(model: Any) -> list[str]:
    """Per model input that NNCF quantized, ``"signed"`` or ``"unsigned"``: the sign of its FakeQuantize's
    range, which the calibration data decides (ImageNet-normalised crops go below zero, images in [0, 1)
    do not). It is the one difference NNCF's default settings leave between the suite's int8 model and one
    calibrated on images in [0, 1) (docs/fast-paths.md), and it selects the CPU plugin's int8 input path."""
    found = []
    for op in model.get_ordered_ops():
        if (
            op.get_type_name() == "FakeQuantize"
            and op.input(0).get_source_output().get_node().get_type_name() == "Parameter"
        ):
            low = op.input(3).get_source_output().get_node()
            signed = low.get_type_name() == "Constant" and float(min(low.get_data().flatten())) < 0
            found.append("signed" if signed else "unsigned")
    return found


def _nncf_quantize(ov_model: Any, recipe: OpenVino, built: Built, family: str) -> Any:
    import nncf

    batches = [
        tuple(t.numpy() for t in b)
        for b in calib_inputs(built, recipe.calib_split, recipe.calib_batches, recipe.calib_batch_size)
    ]
    dataset = nncf.Dataset(batches, lambda b: list(b))
    model_type = dict(recipe.model_types).get(family)
    kwargs: dict[str, Any] = {"model_type": getattr(nncf.ModelType, model_type)} if model_type else {}
    if saturates_int16("x86"):  # NNCF's remedy on CPUs whose int8 kernels saturate (no VNNI): every layer
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

        kwargs["advanced_parameters"] = AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE)
    return nncf.quantize(ov_model, dataset, subset_size=len(batches), **kwargs)


def _ir_bytes(ov_model: Any) -> int:
    """Bytes of the IR (``.xml`` + ``.bin``) ``ov.save_model`` writes, weights not recompressed."""
    return sum(map(len, _ir(ov_model)))


@register_handler(OpenVino)
def _openvino(recipe: OpenVino, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    require(recipe.name, ("openvino",) + (("nncf",) if recipe.quantizes() else ()), "openvino")
    ov_model = _convert(model, entry.example_inputs(built), entry)
    notes: dict[str, Any] = {"converter": "ov.convert_model"}
    if recipe.quantizes():
        ov_model = _nncf_quantize(ov_model, recipe, built, entry.family)
        notes["calibration"] = (
            f"{recipe.calib_batches}x{recipe.calib_batch_size} {recipe.calib_split} samples, nncf.quantize, default preset"
        )
        notes["nncf"] = importlib.metadata.version("nncf")
        notes["nncf_model_type"] = dict(recipe.model_types).get(entry.family, "default")
        notes["input_quantizers"] = input_quantizers(ov_model)
        notes["overflow_fix"] = "ENABLE" if saturates_int16("x86") else "NNCF default"
    quantized, floats = count_ov_layers(ov_model)
    config = ov_config(torch.get_num_threads(), recipe.inference_precision)
    module = OvModule(ov_model, config)
    notes.update(
        serialized_bytes=_ir_bytes(ov_model),
        size_method="size of the OpenVINO IR (.xml + .bin, ov.save_model without fp16 compression)",
        ov_config={k: str(v) for k, v in config.items()},
        **precision_ran(module.compiled, recipe),
    )
    return peer_result(module, "openvino", "CPU", (quantized, floats), notes)
