"""PT2E static int8: ``torch.export`` + torchao's ``X86InductorQuantizer`` + ``torch.compile``.

The converted graph holds reference quantize/dequantize ops that run slower than fp32 in
eager mode; inductor fuses them into int8 kernels, so the recipe always compiles, with
``freezing`` on (weights folded and pre-packed, as the x86 int8 kernels need).

Known issue (torch 2.14.1 + torchao 0.18): with the default non-strict ``torch.export``, a
module called twice (torchvision's BasicBlock reuses one ``nn.ReLU``) lands in one source
partition with two outputs, and ``prepare_pt2e`` raises "Input partition has more than one
output node". Strict (dynamo) export names each call apart, so ``strict=True`` is the default.

The graph is exported with a free batch dimension (``torch.export.Dim``): exported at batch 1 it
kept the guard ``x.size()[0] == 1``, and the drift and memory probes, which feed other batch
sizes, failed on it. ``torch.compile`` compiles the benchmark batch size with ``freezing`` first;
another batch size recompiles (outside the timed calls).

``autocast="bfloat16"`` is the tutorial's int8-mixed-bf16 lowering: the converted model compiled
and called under ``torch.autocast("cpu", dtype=torch.bfloat16)``, so the ops left in float run in
bf16. It needs bf16 units, and skips without them, naming the flags (docs/fast-paths.md).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import traceback
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.models.base import Built, ModelEntry
from ptq.recipes.base import Quantized, Recipe, register_handler
from ptq.recipes.deploy import compile_model
from ptq.recipes.peer import LibraryLimits

__all__ = ["Pt2eInt8", "count_pt2e_layers"]

KNOWN_PARTITION_ERROR = "Input partition has more than one output node"
KNOWN_EMPTY_PARTITION_FRAME = "_get_output_nodes_of_partitions"
_WEIGHTED_OPS = ("aten.conv1d", "aten.conv2d", "aten.conv3d", "aten.linear")


@dataclass(frozen=True)
class Pt2eInt8(Recipe):
    """Static (or dynamic-activation) int8 through PT2E, calibrated on the ``calib`` split."""

    version: int = 2  # 2: exported with a free batch dimension
    calib_samples: int = 64
    calib_split: str = "calib"
    is_dynamic: bool = False
    strict_export: bool = True
    freezing: bool = True
    warmup_calls: int = 3
    #: None: the float ops stay fp32; ``"bfloat16"``: int8-mixed-bf16 (compiled and run under autocast).
    autocast: str | None = None
    stack: ClassVar[str] = "pt2e"

    def __post_init__(self) -> None:
        from ptq.recipes.fast_path import AUTOCAST_DTYPES

        if self.calib_samples < 1:
            raise UserError(f"recipe {self.name!r}: calib_samples must be >= 1, got {self.calib_samples}")
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise UserError(
                f"recipe {self.name!r}: autocast must be None or one of {', '.join(AUTOCAST_DTYPES)}, "
                f"got {self.autocast!r}"
            )


def count_pt2e_layers(gm: torch.fx.GraphModule) -> tuple[int, int, dict[str, int]]:
    """(weighted ops whose weight is dequantized, weighted ops left float, q/dq node counts)."""
    quantized = floats = 0
    qdq: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        target = str(node.target)
        if "quantize_per" in target:
            key = target.split(".")[-2]
            qdq[key] = qdq.get(key, 0) + 1
        if target.startswith(_WEIGHTED_OPS):
            weight = node.args[1] if len(node.args) > 1 else None
            is_dq = isinstance(weight, torch.fx.Node) and "dequantize" in str(weight.target)
            quantized, floats = (quantized + 1, floats) if is_dq else (quantized, floats + 1)
    return quantized, floats, qdq


def _known_prepare_issue(exc: BaseException) -> str | None:
    """The known ``prepare_pt2e`` failures, named; None for any other (the case then fails)."""
    if isinstance(exc, ValueError) and KNOWN_PARTITION_ERROR in str(exc):
        return f"{KNOWN_PARTITION_ERROR!r} on a module called twice after non-strict export; use strict_export=True"
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, IndexError) and frames and frames[-1].name == KNOWN_EMPTY_PARTITION_FRAME:
        # Seen on MiniLM (BERT): strict or not, batch free or not; the linear + unary pattern finds a
        # source partition without output nodes.
        return f"IndexError in {KNOWN_EMPTY_PARTITION_FRAME} (a linear + unary partition without an output node)"
    return None


def _export_limits() -> LibraryLimits:
    """What ``torch.export`` raises for a model it cannot export (strict export wraps the model's
    own errors in dynamo's exceptions), or whose batch dimension it cannot free (the guard it names
    is in the reason). A ``TypeError`` from ptq's own arguments is none of these: it fails the case."""
    from torch._dynamo.exc import TorchDynamoException
    from torch.fx.experimental.symbolic_shapes import ConstraintViolationError, GuardOnDataDependentSymNode

    return LibraryLimits(kinds=(TorchDynamoException, GuardOnDataDependentSymNode, ConstraintViolationError), chars=160)


def _export_batch_free(model: nn.Module, entry: ModelEntry, built: Built, recipe: Pt2eInt8) -> nn.Module:
    """Export with a free batch dimension, so probes may feed any batch size.

    Traced at batch 2 at least: torch.export specialises a dimension of size 1 ("0/1
    specialisation"), which would pin the graph to batch 1 again.
    """
    sample = built.data.batch(recipe.calib_split, 0, max(2, entry.batch_size)).inputs
    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({0: batch} for _ in sample)
    with _export_limits().skip_unsupported(
        lambda error: f"torch.export of {entry.name!r} with a free batch dimension failed ({error})"
    ):
        return torch.export.export(model, sample, dynamic_shapes=shapes, strict=recipe.strict_export).module()


@register_handler(Pt2eInt8)
def _pt2e(recipe: Pt2eInt8, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    from ptq.recipes.fast_path import AUTOCAST_DTYPES, FastPathModule, require_bf16_units

    if importlib.util.find_spec("torchao") is None:
        raise NotApplicable(f"recipe {recipe.name!r} needs torchao; pip install torchao")
    units = require_bf16_units(recipe.name) if recipe.autocast else []
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    inputs = entry.example_inputs(built)
    exported = _export_batch_free(model, entry, built, recipe)  # export is the usual limit of PT2E
    quantizer = xiq.X86InductorQuantizer().set_global(
        xiq.get_default_x86_inductor_quantization_config(is_dynamic=recipe.is_dynamic)
    )
    try:
        prepared = prepare_pt2e(exported, quantizer)
    except (ValueError, IndexError) as exc:
        issue = _known_prepare_issue(exc)
        if issue is None:
            raise
        raise NotApplicable(f"known issue (torch 2.14 + torchao 0.18): X86InductorQuantizer: {issue}") from exc
    # Calibrated in batches of the benchmark batch size, as before the batch dimension was freed.
    size = entry.batch_size
    with torch.no_grad():
        for i in range(max(1, recipe.calib_samples // size)):
            prepared(*built.data.batch(recipe.calib_split, i, size).inputs)
    converted = allow_exported_model_train_eval(convert_pt2e(prepared))  # the suite calls .eval()
    quantized, floats, qdq = count_pt2e_layers(converted)
    if recipe.autocast:
        converted = FastPathModule(converted, channels_last=False, autocast=AUTOCAST_DTYPES[recipe.autocast])
    compiled, seconds = compile_model(converted, inputs, freezing=recipe.freezing, warmup_calls=recipe.warmup_calls)
    mixed = {"autocast": recipe.autocast, "bf16_units": units} if recipe.autocast else {}
    return Quantized(
        compiled,
        stack=f"pt2e+torchao=={importlib.metadata.version('torchao')}",
        engine="x86_inductor",
        quantized_layers=quantized,
        float_layers=floats,
        notes={
            "deploy": "compile",
            "deploy_detail": "torch.compile(backend='inductor')" + (" (inductor freezing)" if recipe.freezing else ""),
            "deploy_seconds": round(seconds, 3),
            "export": "strict" if recipe.strict_export else "non-strict",
            "qdq_nodes": qdq,
            "calibration": f"{max(1, recipe.calib_samples // size) * size} {recipe.calib_split} samples",
            "precision_ran": "int8",
            "precision_label": f"int8 (float ops {'bf16, autocast' if recipe.autocast else 'fp32'})",
            **mixed,
        },
    )
