"""Model size on disk: the bytes ``torch.save(model.state_dict(), f)`` writes, and the ratio to fp32.

This is the figure the quantization tutorials print (and torchvision's ``_file_size`` metadata
records: ResNet-18 44.7 MB float, 11.2 MB int8). The bytes are counted as torch writes them,
so nothing the size of the model is buffered.
"""

from __future__ import annotations

import weakref
from typing import IO, TYPE_CHECKING, cast

import torch
from torch import nn

from ptq.storage.figures import SizeFigures

if TYPE_CHECKING:
    from ptq.run.workbench import PreparedCase, RunOptions
    from ptq.storage.results import CaseResult

__all__ = ["PROBE", "state_dict_bytes"]

PROBE = "size"


class _ByteCounter:
    """A write-only file object that keeps only the number of bytes written."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def state_dict_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(model.state_dict(), f)``; equal to the file the tutorial writes."""
    sink = _ByteCounter()
    torch.save(model.state_dict(), cast(IO[bytes], sink))  # torch.save only writes and flushes it
    return sink.count


#: Float model -> its serialized size; every quantized case of a model divides by the same one.
_FP32_BYTES: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


def _fp32_bytes(model: nn.Module) -> int:
    if model not in _FP32_BYTES:
        _FP32_BYTES[model] = state_dict_bytes(model)
    return _FP32_BYTES[model]


def script_bytes(model: torch.jit.ScriptModule) -> int:
    """Size of ``torch.jit.save(model, f)``: a frozen module keeps its weights as constants,
    so its state_dict is empty and would report a size of zero."""
    sink = _ByteCounter()
    torch.jit.save(model, sink)
    return sink.count


#: Forms whose archive does not hold the weights faithfully: ``optimize_for_inference`` packs
#: convolution weights into MKLDNN contexts, and ``torch.jit.save`` wrote 2.06 MB for a
#: ResNet-18 whose weights are 46.8 MB. Reported as not measured rather than as a 0.04x model.
UNSIZED_FORMS = {
    "jit_optimize": "torch.jit.optimize_for_inference packs weights into MKLDNN contexts that torch.jit.save does not size faithfully"
}


def serialized_bytes(prepared: PreparedCase) -> tuple[int | None, str]:
    """(bytes, how) for the form the case deploys: ONNX file, TorchScript archive or state_dict."""
    form = prepared.quantized.notes.get("deploy")
    if form in UNSIZED_FORMS:
        return None, f"not measured: {UNSIZED_FORMS[form]}"
    if "serialized_bytes" in prepared.quantized.notes:  # a peer runtime's own file (OpenVINO IR)
        return int(prepared.quantized.notes["serialized_bytes"]), str(prepared.quantized.notes["size_method"])
    if "onnx_bytes" in prepared.quantized.notes:
        return int(prepared.quantized.notes["onnx_bytes"]), "size of the ONNX file onnxruntime loads"
    if isinstance(prepared.model, torch.jit.ScriptModule):
        return script_bytes(prepared.model), "len of torch.jit.save(model)"
    if prepared.model is prepared.built.model:
        return _fp32_bytes(prepared.built.model), "len of torch.save(model.state_dict())"
    return state_dict_bytes(prepared.model), "len of torch.save(model.state_dict())"


def _size_probe(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> SizeFigures:
    fp32 = _fp32_bytes(prepared.built.model)
    size, method = serialized_bytes(prepared)
    return SizeFigures(
        method=method,
        serialized_bytes=size,
        fp32_state_dict_bytes=fp32,
        ratio_vs_fp32=round(size / fp32, 4) if size is not None else None,
    )
