"""ONNX Runtime as the peer: the same model exported to ONNX and run by onnxruntime, in fp32
and quantized by onnxruntime's own static (QDQ) and dynamic quantization.

The handler returns an ``nn.Module`` that calls an ``InferenceSession`` (``ptq.recipes.peer``,
shared with OpenVINO), so the suite times, warms up and probes it as it does a PyTorch model.
"""

from __future__ import annotations

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

__all__ = ["OnnxRuntime", "OrtModule", "count_onnx_layers"]

QUANTIZATIONS = ("none", "static", "dynamic")
#: onnxruntime's ``ORT_LOGGING_LEVEL_ERROR``. At its default (warning) each new session logs a
#: ``CleanUnusedInitializersAndNodeArgs`` line per initializer its graph optimizer removed, and
#: ptq makes one per placement: hundreds of lines that say nothing about the case.
LOG_ERRORS_ONLY = 3
EXPORTERS = ("torchscript", "dynamo")
#: Weighted ONNX ops, float and quantized.
_FLOAT_OPS = {"Conv", "Gemm", "MatMul", "LSTM", "GRU"}
_INT_OPS = {
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "DynamicQuantizeMatMul",
    "DynamicQuantizeLSTM",
}


@dataclass(frozen=True)
class OnnxRuntime(Recipe):
    """Export with ``torch.onnx.export``; run in onnxruntime, optionally quantized by it.

    ``static`` calibrates on the same ``calib`` batches as the PyTorch static recipes
    (``calib_batches`` x ``calib_batch_size``), QDQ format, per-channel weights, uint8
    activations and int8 weights (U8S8, onnxruntime's advice for x86).
    """

    quantization: str = "none"
    exporter: str = "torchscript"
    opset: int = 17
    per_channel: bool = True
    calib_batches: int = 8
    calib_batch_size: int = 8
    calib_split: str = "calib"
    stack: ClassVar[str] = "onnxruntime"

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise UserError(
                f"recipe {self.name!r}: quantization must be one of {', '.join(QUANTIZATIONS)}, got {self.quantization!r}"
            )
        if self.exporter not in EXPORTERS:
            raise UserError(
                f"recipe {self.name!r}: exporter must be one of {', '.join(EXPORTERS)}, got {self.exporter!r}"
            )

    def quantizes(self) -> bool:
        return self.quantization != "none"


class OrtModule(PeerModule):
    """Calls an onnxruntime session with torch tensors; returns torch tensors.

    It keeps the serialized model so that a deep copy is a fresh session: its own initializers,
    pre-packed weights and arena, a new placement of the peer as a deep copy is of a PyTorch model
    (:mod:`ptq.run.placement`). Measured here, ten fresh resnet18 fp32 sessions spread like one
    session re-timed (CV 8.9% and 7.2%): ONNX Runtime showed no placement effect of its own, but
    the figures no longer rest on the one session the recipe built.
    """

    def __init__(self, model_bytes: bytes) -> None:
        session = _session(model_bytes)
        self.input_names = [i.name for i in session.get_inputs()]
        super().__init__(lambda arrays: self.session.run(None, dict(zip(self.input_names, arrays, strict=True))))
        self.session, self.model_bytes = session, model_bytes

    def __deepcopy__(self, memo: dict[int, Any]) -> OrtModule:
        return OrtModule(self.model_bytes)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its serialized model (a session is not picklable): a fresh session on load."""
        return (OrtModule, (self.model_bytes,))


def count_onnx_layers(model: Any) -> tuple[int, int]:
    """(quantized weighted ops, float weighted ops) of an ONNX graph; in QDQ form a float op
    counts as quantized when its weight comes through a DequantizeLinear."""
    producers = {out: node for node in model.graph.node for out in node.output}
    quantized = floats = 0
    for node in model.graph.node:
        if node.op_type in _INT_OPS:
            quantized += 1
        elif node.op_type in _FLOAT_OPS:
            weight = producers.get(node.input[1]) if len(node.input) > 1 else None
            if weight is not None and weight.op_type == "DequantizeLinear":
                quantized += 1
            else:
                floats += 1
    return quantized, floats


def _export(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, recipe: OnnxRuntime, entry: ModelEntry
) -> None:
    from torch.onnx.errors import OnnxExporterError

    names = [f"input{i}" for i in range(len(inputs))]
    with torch.no_grad():
        out = model(*inputs)
    outputs = [f"output{i}" for i in range(len(out) if isinstance(out, (tuple, list)) else 1)]
    # The batch dimension stays free: drift, memory and calibration feed other batch sizes.
    batch_free = {name: {0: "batch"} for name in names + outputs}
    # Export limits belong to the model: an op without a symbolic (OnnxExporterError), or what the
    # TorchScript tracer refuses (RuntimeError); anything else is a bug and fails the case.
    limits = LibraryLimits(kinds=(OnnxExporterError, RuntimeError))
    with (
        limits.skip_unsupported(
            lambda error: f"torch.onnx.export ({recipe.exporter}) of {entry.name!r} failed ({error})"
        ),
        torch.no_grad(),
    ):
        torch.onnx.export(
            model,
            inputs,
            str(path),
            input_names=names,
            output_names=outputs,
            opset_version=recipe.opset,
            dynamic_axes=batch_free,
            dynamo=recipe.exporter == "dynamo",
            **({"verbose": False} if recipe.exporter == "dynamo" else {}),  # type: ignore[arg-type]  # **kwargs of bools
        )


class _CalibReader:
    """onnxruntime's CalibrationDataReader over the model's ``calib`` split."""

    def __init__(self, recipe: OnnxRuntime, built: Built, names: list[str]) -> None:
        self._batches = calib_inputs(built, recipe.calib_split, recipe.calib_batches, recipe.calib_batch_size)
        self._names = names

    def get_next(self) -> dict[str, Any] | None:
        inputs = next(self._batches, None)
        return None if inputs is None else {n: t.numpy() for n, t in zip(self._names, inputs, strict=True)}


def _session(model: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = LOG_ERRORS_ONLY
    # Same thread count as the PyTorch cases of this session, for a fair comparison.
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's worker threads busy-wait after each call by default; on 2 cores that steals the CPU
    # from the torch call that follows in an interleaved pair and inflates ORT's speedup
    # (seen here: ort_fp32 MobileNetV2 4.18x paired vs 3.08x from separate medians).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@register_handler(OnnxRuntime)
def _onnx_runtime(recipe: OnnxRuntime, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    require(recipe.name, ("onnx", "onnxruntime") + (("onnxscript",) if recipe.exporter == "dynamo" else ()), "onnx")
    import onnx
    import onnxruntime as ort
    from onnxruntime import quantization as oq

    # The sessions onnxruntime.quantization makes for calibration take the default logger's level.
    ort.set_default_logger_severity(LOG_ERRORS_ONLY)
    inputs = entry.example_inputs(built)
    with tempfile.TemporaryDirectory(prefix="ptq-onnx-") as tmp:
        fp32_path = Path(tmp) / "model.onnx"
        _export(model, inputs, fp32_path, recipe, entry)
        path, notes = fp32_path, {"exporter": recipe.exporter, "opset": recipe.opset}
        if recipe.quantization != "none":
            path = Path(tmp) / "model.int8.onnx"
            names = [i.name for i in onnx.load(str(fp32_path)).graph.input]
            # ORT's documented remedy on CPUs whose int8 kernels saturate int16 sums (no VNNI): 7-bit
            # weights. The same kernel probe as static int8's decides (ptq.recipes.torch_ao).
            reduce = saturates_int16("x86")
            notes["reduce_range"] = reduce
            if recipe.quantization == "static":
                oq.quantize_static(
                    str(fp32_path),
                    str(path),
                    _CalibReader(recipe, built, names),
                    quant_format=oq.QuantFormat.QDQ,
                    per_channel=recipe.per_channel,
                    activation_type=oq.QuantType.QUInt8,
                    weight_type=oq.QuantType.QInt8,
                    reduce_range=reduce,
                )
                notes["calibration"] = (
                    f"{recipe.calib_batches}x{recipe.calib_batch_size} {recipe.calib_split} samples, MinMax, QDQ U8S8"
                )
            else:
                oq.quantize_dynamic(
                    str(fp32_path),
                    str(path),
                    per_channel=recipe.per_channel,
                    weight_type=oq.QuantType.QInt8,
                    reduce_range=reduce,
                )
        graph = onnx.load(str(path))  # with any external data, so the bytes below are the whole model
        q, f = count_onnx_layers(graph)
        notes["onnx_bytes"] = path.stat().st_size
    notes["intra_op_threads"] = torch.get_num_threads()
    return peer_result(OrtModule(graph.SerializeToString()), "onnxruntime", "CPUExecutionProvider", (q, f), notes)
