"""Which model x recipe cases a run covers: named matrices narrowed by glob selections."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from ptq.errors import UserError
from ptq.models import BUILTIN_MODELS, list_models
from ptq.recipes import REFERENCE, list_recipes
from ptq.registry import match_globs

__all__ = [
    "AXES",
    "COMPILED",
    "FAST_PATHS",
    "GPU_RECIPES",
    "LM_COMPILED",
    "LM_MODELS",
    "LM_RECIPES",
    "MAIN_MODELS",
    "MAIN_RECIPES",
    "MAIN_TEXT_RECIPES",
    "MATRICES",
    "QUICK_LM_RECIPES",
    "SLOW_KERNELS",
    "Axis",
    "Case",
    "Matrix",
    "default_matrix",
    "select_cases",
]


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
    exclude_models: str | None = None
    #: (model globs, recipe globs): a model matching the first runs only the recipes matching the
    #: second, so one matrix can hold small models x many recipes and an LM x the few meant for it.
    only: tuple[tuple[str, str], ...] = ()
    #: Only models the project registers (its conftest.py, a plugin, an entry point), none of ptq's own.
    project_only: bool = False

    def allows(self, case: Case) -> bool:
        return all(
            match_globs([case.recipe], recipes) for models, recipes in self.only if match_globs([case.model], models)
        )


#: torch.compile recipes take tens of seconds per model on 2 cores: opt-in (``deploy``) only.
COMPILED = "*_compile,pt2e_*"
#: Each runtime's own fast path (docs/fast-paths.md): OpenVINO at its default precision and torch's
#: eager channels_last / autocast bf16 forms; their compiled forms are in COMPILED. On CPUs without
#: bf16 units ov_default runs f32 (ov_fp32 again) and the bf16 forms skip, so they stay out of the
#: default run's cost: ``deploy`` (and ``all``) only.
FAST_PATHS = "ov_default,fp32_channels_last,bf16_autocast"
#: torchao's CPU int4 kernel is built for batch-1 decoding: MiniLM at batch 32 x 128 tokens took
#: 38.6 s a call here (fp32: 0.67 s), so a case would take minutes. Opt-in (``all``) only.
SLOW_KERNELS = "ao_int4_weight_only_cpu"
#: Decoder LMs and the recipes that apply to them (weight-only and dynamic int8, CPU int4, fp8
#: weights, bf16): opt-in (``llm``) until their cost in the default run is measured.
LM_MODELS = "tiny_lm,smollm2_135m"
LM_RECIPES = "fp32,dynamic_int8,ao_int8_weight_only,ao_int8_dynamic,ao_int4_weight_only_cpu,ao_float8_weight_only,bf16"
#: Compiled forms that ran cleanly on ``tiny_lm`` (their decode is not measured: only the prefill
#: forward is compiled); not yet tried on smollm2_135m, whose compile cost is unmeasured.
LM_COMPILED = "fp32_compile,bf16_compile,ao_int8_dynamic_compile,pt2e_static_int8"
#: ``tiny_lm``'s main recipes, the ones the quick matrix runs: the fastest int8 and bf16 forms of
#: its prefill (torchao's int8 dynamic and fp8 weights were 2x slower than fp32 on it).
QUICK_LM_RECIPES = "fp32,dynamic_int8,ao_int8_weight_only,bf16"
#: Recipes whose models run on a CUDA device (ptq.run.workbench.DEVICE_RECIPES): the fp32 reference,
#: bf16, torchao int8 weight-only / dynamic, int4 weight-only (CUDA layout) and float8 (skipped below
#: compute capability 8.9 where the config needs it).
GPU_RECIPES = (
    "fp32,bf16,ao_int8_weight_only,ao_int8_dynamic,ao_int4_weight_only,ao_float8_weight_only,ao_float8_dynamic"
)

#: The main job's cases: the non-micro models but MobileNetV3 (MobileNetV2 is its family) and the
#: decoder LMs, x the float form and the int8 / bf16 forms a user of each stack reaches for first
#: (torch eager, torchao, ONNX Runtime, OpenVINO). The micro models, fp16, float8, int4 and traced
#: forms stay in ``default``, one option away: its 252 cases took an hour on 2 cores, which a main
#: job run on every merge cannot spend.
MAIN_MODELS = "mobilenet_v2,resnet18,minilm_l6,lstm_classifier,digits_cnn"
MAIN_RECIPES = (
    "fp32,dynamic_int8,static_int8,ao_int8_dynamic,ao_int8_weight_only,bf16,ort_fp32,ort_dynamic_int8,"
    "ort_static_int8,ov_fp32,ov_int8"
)
#: MiniLM's forms in ``main``: fp32 and torch's dynamic int8 (the form a transformer encoder's users
#: ship first). At batch 32 x 128 tokens a call takes most of a second, so each of its cases costs
#: half a minute of timing and probes and seconds per visit: with every recipe, its eleven cases
#: stalled a main job past 25 minutes on 2 cores. torchao's int8 dynamic is left out for another
#: reason: on a CPU without VNNI its matmul runs a fallback (``_int_scaled_matmul_cpu``) that took
#: minutes for one case's timing rounds. ``deploy`` and ``default`` have the rest.
MAIN_TEXT_RECIPES = "fp32,dynamic_int8"

MATRICES: dict[str, Matrix] = {
    "project": Matrix(
        description="the models this project registers (conftest.py, plugins) x the default recipes; what runs "
        "without --ptq-matrix wherever a project registers a model",
        exclude_recipes=f"{COMPILED},{FAST_PATHS},{SLOW_KERNELS}",
        project_only=True,
    ),
    "main": Matrix(
        models=MAIN_MODELS,
        recipes=MAIN_RECIPES,
        only=(("minilm_l6", MAIN_TEXT_RECIPES),),
        description="ptq's real models x each stack's float and headline int8/bf16 recipes: what a run in ptq's "
        "own repository covers without --ptq-matrix (the main job)",
    ),
    "default": Matrix(
        description="every registered model but the LMs x every recipe but the torch.compile ones, the runtimes' "
        "own fast paths and CPU int4",
        exclude_recipes=f"{COMPILED},{FAST_PATHS},{SLOW_KERNELS}",
        exclude_models=LM_MODELS,
    ),
    "quick": Matrix(
        # Small models only: with MobileNetV2 it took 3 min 27 s here, and MiniLM (0.6 s a call
        # at batch 32) alone would take the 3 minutes this matrix is for. digits_cnn is the CNN.
        models="digits_cnn,lstm_classifier,micro_linear_256,micro_conv_16,micro_lstm_128,tiny_lm",
        description=f"one model of each family but text x the default recipes, tiny_lm x {QUICK_LM_RECIPES} only, "
        "for CI smoke runs (< 3 min)",
        exclude_recipes=f"{COMPILED},{FAST_PATHS},{SLOW_KERNELS}",
        only=(("tiny_lm", QUICK_LM_RECIPES),),
    ),
    "deploy": Matrix(
        models="mobilenet_v2,resnet18,mobilenet_v3_large,minilm_l6,lstm_classifier,digits_cnn",
        description="the non-micro models x every recipe but CPU int4, torch.compile, PT2E and each runtime's own fast "
        "path included (slow: compiles)",
        exclude_recipes=SLOW_KERNELS,
    ),
    "llm": Matrix(
        models=LM_MODELS,
        recipes=f"{LM_RECIPES},{LM_COMPILED}",
        only=(("smollm2_135m", LM_RECIPES),),
        description="decoder LMs x the recipes that apply to them, tiny_lm also compiled: prefill, "
        "KV-cache decode, perplexity (see README, Language models)",
    ),
    "gpu": Matrix(
        recipes=GPU_RECIPES,
        exclude_models=LM_MODELS,
        description="the default models x the recipes that run on CUDA; run with --ptq-device=cuda (.ci/gpu)",
    ),
    "all": Matrix(description="every registered model x every registered recipe (slow: compiles, CPU int4)"),
}


@dataclass(frozen=True)
class Axis:
    """One side of the matrix: what ``--ptq-<name>s`` selects and the names a matrix offers."""

    name: str
    names: Callable[[Matrix], list[str]]

    def narrow(self, matrix: str, pattern: str | None) -> list[str]:
        """The matrix's names matching ``pattern``; a blank pattern, or one glob matching none of
        them, is an error naming the glob, the nearest names and the matrices that have it."""
        offered = self.names(MATRICES[matrix])
        if pattern is None:
            return offered
        option, globs = f"--ptq-{self.name}s={pattern!r}", [g.strip() for g in pattern.split(",") if g.strip()]
        if not globs:
            raise UserError(
                f"{option} is blank; give comma-separated globs of {self.name} names, or drop the "
                f"option for every {self.name} of matrix {matrix!r}"
            )
        for glob in globs:
            if match_globs(offered, glob):
                continue
            elsewhere = [m for m in MATRICES if match_globs(self.names(MATRICES[m]), glob)]
            close = difflib.get_close_matches(glob, offered, n=3)
            hint = (
                f"it is in {'matrix' if len(elsewhere) == 1 else 'matrices'} {', '.join(elsewhere)}: "
                f"pass --ptq-matrix={elsewhere[0]}"
                if elsewhere
                else f"nearest: {', '.join(close)}"
                if close
                else f"valid: {', '.join(offered)}"
            )
            where = f"{option}: {glob!r}" if len(globs) > 1 else option
            raise UserError(f"{where} matches no {self.name} of matrix {matrix!r}; {hint}")
        return match_globs(offered, globs)


def _models(m: Matrix) -> list[str]:
    names = list_models(m.models, m.exclude_models)
    return [n for n in names if n not in BUILTIN_MODELS] if m.project_only else names


def default_matrix() -> str:
    """The matrix a run without ``--ptq-matrix`` or ``--ptq-models`` covers: in a project that
    registers models of its own, those (``project``: a user's run measures their models, not
    ptq's 250 built-in cases); in ptq's own repository, ``main`` (its real models x each stack's
    headline recipes). Named models are looked up in ``default``, which holds every registered
    model but the LMs."""
    return "project" if _models(MATRICES["project"]) else "main"


AXES = {
    "model": Axis("model", _models),
    "recipe": Axis("recipe", lambda m: list_recipes(m.recipes, m.exclude_recipes)),
}


def select_cases(matrix: str = "default", models: str | None = None, recipes: str | None = None) -> list[Case]:
    """Cases of ``matrix`` whose model and recipe match the optional globs, model-major with
    the fp32 reference first, so its latency is measured before the cases compared to it.
    Every glob must match something: a typo would silently run fewer cases."""
    if matrix not in MATRICES:
        raise UserError(f"unknown matrix {matrix!r}; valid matrices: {', '.join(MATRICES)}")
    model_names = AXES["model"].narrow(matrix, models)
    recipe_names = AXES["recipe"].narrow(matrix, recipes)
    recipe_names.sort(key=lambda r: r != REFERENCE)
    spec = MATRICES[matrix]
    cases = [case for mo in model_names for r in recipe_names if spec.allows(case := Case(mo, r))]
    if not cases:
        chosen = " ".join(f"--ptq-{axis}s={glob!r}" for axis, glob in (("model", models), ("recipe", recipes)) if glob)
        limits = "; ".join(f"{m} runs only {r}" for m, r in spec.only)
        raise UserError(
            f"{chosen or 'the matrix'} selects no case of matrix {matrix!r} ({limits}); widen the selection"
        )
    return cases
