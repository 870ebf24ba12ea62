"""Which model x recipe cases a run covers: named matrices narrowed by glob selections."""

from __future__ import annotations

from dataclasses import dataclass

from ptq.errors import UserError
from ptq.models import list_models
from ptq.recipes import REFERENCE, list_recipes

__all__ = ["COMPILED", "MATRICES", "SLOW_KERNELS", "Case", "Matrix", "select_cases"]


@dataclass(frozen=True)
class Case:
    """One benchmark case; its id is the pytest-benchmark name comparisons match on."""

    model: str
    recipe: str

    @property
    def id(self) -> str:
        return f"{self.model}-{self.recipe}"


@dataclass(frozen=True)
class Matrix:
    """Model and recipe globs (comma-separated); ``*`` includes what users register too."""

    models: str = "*"
    recipes: str = "*"
    description: str = ""
    exclude_recipes: str | None = None


#: torch.compile recipes take tens of seconds per model on 2 cores: opt-in (``deploy``) only.
COMPILED = "*_compile,pt2e_*"
#: torchao's CPU int4 kernel is built for batch-1 decoding: MiniLM at batch 32 x 128 tokens took
#: 38.6 s a call here (fp32: 0.67 s), so a case would take minutes. Opt-in (``all``) only.
SLOW_KERNELS = "ao_int4_weight_only_cpu"

MATRICES: dict[str, Matrix] = {
    "default": Matrix(
        description="every registered model x every recipe but the torch.compile ones and CPU int4",
        exclude_recipes=f"{COMPILED},{SLOW_KERNELS}",
    ),
    "quick": Matrix(
        # Small models only: with MobileNetV2 it took 3 min 27 s here, and MiniLM (0.6 s a call
        # at batch 32) alone would take the 3 minutes this matrix is for. digits_cnn is the CNN.
        models="digits_cnn,lstm_classifier,micro_linear_256,micro_conv_16,micro_lstm_128",
        description="one model of each family but text x the default recipes, for CI smoke runs (< 3 min)",
        exclude_recipes=f"{COMPILED},{SLOW_KERNELS}",
    ),
    "deploy": Matrix(
        models="mobilenet_v2,resnet18,mobilenet_v3_large,minilm_l6,lstm_classifier,digits_cnn",
        description="the non-micro models x every recipe but CPU int4, torch.compile and PT2E included (slow: compiles)",
        exclude_recipes=SLOW_KERNELS,
    ),
    "all": Matrix(description="every registered model x every registered recipe (slow: compiles, CPU int4)"),
}


def select_cases(
    matrix: str = "default", models: str | None = None, recipes: str | None = None
) -> list[Case]:
    """Cases of ``matrix`` whose model and recipe match the optional globs, model-major with
    the fp32 reference first, so its latency is measured before the cases compared to it."""
    if matrix not in MATRICES:
        raise UserError(f"unknown matrix {matrix!r}; valid matrices: {', '.join(MATRICES)}")
    m = MATRICES[matrix]
    model_names = [n for n in list_models(m.models) if n in set(list_models(models))]
    recipe_names = [n for n in list_recipes(m.recipes, m.exclude_recipes) if n in set(list_recipes(recipes))]
    for label, pattern, found in (("model", models, model_names), ("recipe", recipes, recipe_names)):
        if pattern and not found:
            valid = list_models() if label == "model" else list_recipes()
            raise UserError(f"--ptq-{label}s={pattern!r} matches no {label} of matrix {matrix!r}; valid: {', '.join(valid)}")
    recipe_names.sort(key=lambda r: r != REFERENCE)
    return [Case(mo, r) for mo in model_names for r in recipe_names]
