"""Deployment forms: another recipe's model traced and frozen by ``torch.jit``, or ``torch.compile``d.

A speedup over eager fp32 flatters quantization when the float model was never optimized, so
float and quantized models get the same deployment forms. Tracing, freezing and compiling
happen while the case is prepared, with warm-up calls that trigger the compilation; their time
is recorded in ``notes["deploy_seconds"]`` and never in the latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.models.base import Built, ModelEntry
from ptq.recipes.base import Quantized, Recipe, apply_recipe, register_handler
from ptq.recipes.peer import LibraryLimits, peer_runtime

__all__ = ["DEPLOY_FORMS", "Deployed", "NoGradCall", "compile_model", "deployment_form"]

#: form -> what it does, recorded with the result.
DEPLOY_FORMS = {
    "jit_freeze": "torch.jit.trace + torch.jit.freeze",
    "jit_optimize": "torch.jit.trace + torch.jit.optimize_for_inference",
    "compile": "torch.compile(backend='inductor')",
}


@dataclass(frozen=True)
class Deployed(Recipe):
    """Recipe ``base`` applied, then its model deployed in ``form`` (one of :data:`DEPLOY_FORMS`).

    ``freezing`` sets inductor's ``freezing`` while compiling: weights become constants,
    which x86 int8 kernels need to pre-pack them.
    """

    base: str = "fp32"
    form: str = "compile"
    freezing: bool = True
    warmup_calls: int = 3
    stack: ClassVar[str] = "deployed"

    def __post_init__(self) -> None:
        if self.form not in DEPLOY_FORMS:
            raise UserError(
                f"recipe {self.name!r}: unknown deployment form {self.form!r}; valid: {', '.join(DEPLOY_FORMS)}"
            )
        if self.warmup_calls < 1:
            raise UserError(f"recipe {self.name!r}: warmup_calls must be >= 1 (the first call compiles)")

    def quantizes(self) -> bool:
        from ptq.recipes import get_recipe

        return get_recipe(self.base).quantizes()

    def precision(self) -> str:
        from ptq.recipes import get_recipe

        return get_recipe(self.base).precision()


def deployment_form(quantized: Quantized) -> str:
    """The deployment form a result ran in: ``eager`` unless a recipe recorded another."""
    return str(quantized.notes.get("deploy", "eager"))


def compile_model(
    model: nn.Module, inputs: tuple[Any, ...], *, freezing: bool, warmup_calls: int
) -> tuple[nn.Module, float]:
    """``torch.compile`` and call it until compiled; returns the module and the seconds spent.

    ``freezing`` is set while the warm-up calls compile (passing it in ``options`` instead makes
    inductor fail on ``onednn.qconv_prepack``); :class:`NoGradCall` keeps later calls in the
    compiled grad mode, so no recompilation happens without it.
    """
    import torch._inductor.config as inductor_config

    start = time.perf_counter()
    # torch.compile of a module returns an OptimizedModule; its annotation only says "a callable"
    compiled = NoGradCall(cast(nn.Module, torch.compile(model, backend="inductor")))
    with inductor_config.patch(freezing=freezing):
        for _ in range(warmup_calls):
            compiled(*inputs)
    return compiled, time.perf_counter() - start


class NoGradCall(nn.Module):
    """Runs a compiled module under ``no_grad`` even inside the suite's ``inference_mode``.

    Inductor's int8 weight pre-packing (``onednn.qconv_prepack``) has no kernel for inference
    tensors, and dynamo guards on the grad mode: compiling and timing in one mode, ``no_grad``,
    avoids both the failure and a recompilation inside the timed rounds.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True) -> NoGradCall:
        """Deployed for inference only: ``.eval()`` must not rewrite (and so recompile) the inner graph."""
        self.training = mode
        return self

    def forward(self, *inputs: Any) -> Any:
        with torch.inference_mode(False), torch.no_grad():
            return self.inner(*inputs)


def _jit(model: nn.Module, inputs: tuple[Any, ...], form: str, warmup_calls: int) -> tuple[nn.Module, float]:
    start = time.perf_counter()
    with torch.no_grad():
        traced = torch.jit.trace(model, inputs, check_trace=False).eval()
        frozen = torch.jit.freeze(traced) if form == "jit_freeze" else torch.jit.optimize_for_inference(traced)
    with torch.inference_mode():  # as the timed calls run; the profiling executor specializes on these
        for _ in range(warmup_calls):
            frozen(*inputs)
    return frozen, time.perf_counter() - start


@register_handler(Deployed)
def _deployed(recipe: Deployed, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    from ptq.recipes import get_recipe

    base = get_recipe(recipe.base)
    if isinstance(base, Deployed):
        raise UserError(f"recipe {recipe.name!r}: base {recipe.base!r} is already deployed; name an eager recipe")
    inner = apply_recipe(base, entry, built)
    if "deploy" in inner.notes:
        raise NotApplicable(f"recipe {recipe.base!r} already deploys as {inner.notes['deploy']}")
    runtime = peer_runtime(inner.stack)
    if runtime is not None:
        raise NotApplicable(f"recipe {recipe.base!r} runs in {runtime}, not in PyTorch; {recipe.form} does not apply")
    inputs = entry.example_inputs(built)
    if recipe.form == "compile":  # a compile error is a failure of the case, never a skip
        deployed, seconds = compile_model(
            inner.model, inputs, freezing=recipe.freezing, warmup_calls=recipe.warmup_calls
        )
    else:
        # Tracing limits belong to the model x base pair: the JIT's own errors (RuntimeError,
        # torch.jit.Error) skip, naming the base; anything else is a bug and fails the case.
        limits = LibraryLimits(kinds=(RuntimeError, torch.jit.Error))
        with limits.skip_unsupported(lambda error: f"{DEPLOY_FORMS[recipe.form]} failed on {recipe.base!r} ({error})"):
            deployed, seconds = _jit(inner.model, inputs, recipe.form, recipe.warmup_calls)
    notes = {
        **inner.notes,
        "base": recipe.base,
        "deploy": recipe.form,
        "deploy_detail": DEPLOY_FORMS[recipe.form]
        + (" (inductor freezing)" if recipe.form == "compile" and recipe.freezing else ""),
        "deploy_seconds": round(seconds, 3),
    }
    return Quantized(
        deployed,
        stack=inner.stack,
        engine=inner.engine,
        quantized_layers=inner.quantized_layers,
        float_layers=inner.float_layers,
        notes=notes,
    )
