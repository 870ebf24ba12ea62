"""Cases that run but are known to give unusable results: skipped with the measured reason.

A known issue is data, not an if-chain in a recipe: model and recipe globs, what was measured,
and why. The case is skipped by default so the main job stays meaningful; run it anyway with
``--ptq-run-known-issues`` to see whether a new torch/torchao/onnxruntime fixed it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptq.errors import DuplicateRegistration
from ptq.registry import match_globs
from ptq.run.matrix import LM_MODELS, Case

__all__ = ["KnownIssue", "known_issue", "list_known_issues", "register_known_issue"]


@dataclass(frozen=True)
class KnownIssue:
    models: str  # comma-separated fnmatch globs
    recipes: str
    reason: str

    def matches(self, case: Case) -> bool:
        return bool(match_globs([case.model], self.models)) and bool(match_globs([case.recipe], self.recipes))


_ISSUES: list[KnownIssue] = []


def register_known_issue(issue: KnownIssue) -> KnownIssue:
    same = next((i for i in _ISSUES if (i.models, i.recipes) == (issue.models, issue.recipes)), None)
    if same is not None:
        raise DuplicateRegistration(
            f"a known issue for models {issue.models!r} x recipes {issue.recipes!r} is already "
            f"registered ({same.reason!r}); edit that entry instead of adding another"
        )
    _ISSUES.append(issue)
    return issue


def list_known_issues() -> list[KnownIssue]:
    return list(_ISSUES)


def known_issue(case: Case) -> KnownIssue | None:
    return next((i for i in _ISSUES if i.matches(case)), None)


register_known_issue(
    KnownIssue(
        "minilm_l6",
        "ort_static_int8",
        "onnxruntime 1.32 static QDQ int8 (MinMax calibration, every op quantized) collapses the "
        "MiniLM embeddings: cosine 0.44 to fp32 and paraphrase retrieval -2.5 points on the eval "
        "sentences (measured 2026-11-26); ort_dynamic_int8 is the ONNX Runtime recipe for transformers",
    )
)
register_known_issue(
    KnownIssue(
        "smollm2_135m",
        "ao_int4_weight_only_cpu",
        "torchao 0.18's CPU int4 layout is a batch-1 decoding kernel: on tiny_lm its prefill (1 x 128 "
        "tokens) took 753 ms against fp32's 17.9 ms and its decode 10.8 ms a token against 6.4 ms "
        "(measured 2026-11-30, 2 shared cores); at SmolLM2-135M's 82x the parameters a case would run for minutes",
    )
)
register_known_issue(
    KnownIssue(
        LM_MODELS,
        "fp32_jit",
        "torch.jit.trace records the traced call's batch size in transformers' causal mask (TracerWarning at "
        "masking_utils: batch_size != position_ids.shape[0]): the traced tiny_lm ran its batch-1 prefill, then "
        "failed on drift's 32 windows with 'index 1 is out of bounds for dimension 0 with size 1' (transformers "
        "5, measured 2026-11-30); fp32_compile is the float LM's faster form",
    )
)
