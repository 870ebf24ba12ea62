"""Decoding with a KV cache, the other half of an LM's latency: the timed rounds of an ``lm`` case
are its prefill (one batch x prompt forward); this probe decodes greedily from a prompt of the
held-out text, a fixed number of new tokens with end-of-sequence ignored, and records time to
first token, per-token latency (p50 / p90), tokens per second, the KV cache's size, how many of
the generated tokens match fp32's, the decode step's interleaved speedup over fp32, and the peak
memory of one decode run split into weights, KV cache and the rest.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ptq.errors import PtqError
from ptq.models.lm import CausalLM
from ptq.probes import memory
from ptq.probes.drift.measures import token_agreement
from ptq.probes.size import state_dict_bytes
from ptq.probes.speedup import time_pairs
from ptq.recipes import REFERENCE
from ptq.recipes.deploy import deployment_form
from ptq.stats.decide import DEFAULT_LOCATION, location
from ptq.stats.estimate import paired_quantile_ratio
from ptq.storage.figures import LmFigures

if TYPE_CHECKING:
    from ptq.run.workbench import PreparedCase, RunOptions
    from ptq.storage.results import CaseResult

__all__ = [
    "DECODE",
    "DecodeSpec",
    "Decoded",
    "cache_bytes",
    "decode_figures",
    "decode_memory",
    "find_lm",
    "greedy_decode",
]

FAMILY = "lm"


@dataclass(frozen=True)
class DecodeSpec:
    """Prompt tokens (from the eval split's first windows, the entry's batch size), new tokens
    generated per run, and timed runs after one untimed warm-up run."""

    prompt_len: int = 64
    new_tokens: int = 32
    repeats: int = 3
    seed: int = 0


DECODE = DecodeSpec()


@dataclass(frozen=True)
class Decoded:
    """One greedy run: the new tokens (batch, new_tokens), the prefill's time (time to first
    token), each later step's time, and the KV cache's bytes at the end."""

    tokens: torch.Tensor
    first_token_s: float
    step_s: tuple[float, ...]
    cache_bytes: int


def cache_bytes(past: Any) -> int:
    """Bytes held by a transformers cache (its layers' keys and values) or nested tensors."""
    if isinstance(past, torch.Tensor):
        return past.numel() * past.element_size()
    if isinstance(past, (tuple, list)):
        return sum(cache_bytes(p) for p in past)
    layers = getattr(past, "layers", None)
    if layers is not None:
        return sum(
            cache_bytes(getattr(layer, "keys", None)) + cache_bytes(getattr(layer, "values", None)) for layer in layers
        )
    return 0


def greedy_decode(
    lm: CausalLM, prompt: torch.Tensor, new_tokens: int, *, timer: Callable[[], float] = time.perf_counter
) -> Decoded:
    """Prefill ``prompt`` (batch, length), then feed back the arg-max token ``new_tokens - 1``
    times through the KV cache. End-of-sequence is not special: every run makes as many steps."""
    if new_tokens < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    start = timer()
    logits, past = lm.step(prompt)
    token = logits.argmax(-1, keepdim=True)
    first = timer() - start
    tokens, steps = [token], []
    for _ in range(new_tokens - 1):
        start = timer()
        logits, past = lm.step(token, past)
        token = logits.argmax(-1, keepdim=True)
        steps.append(timer() - start)
        tokens.append(token)
    return Decoded(torch.cat(tokens, dim=1), first, tuple(steps), cache_bytes(past))


def decode_figures(runs: list[Decoded]) -> dict[str, float]:
    """Time to first token (median over runs), per-token latency p50 / p90 over every step of
    every run, and tokens per second (batch x steps over their summed time, median over runs)."""
    steps = np.asarray([s for r in runs for s in r.step_s], dtype=float)
    rates = [r.tokens.shape[0] * len(r.step_s) / sum(r.step_s) for r in runs if r.step_s]
    return {
        "time_to_first_token_ms": float(np.median([r.first_token_s for r in runs])) * 1e3,
        "decode_ms_per_token_p50": float(np.quantile(steps, 0.5)) * 1e3 if steps.size else float("nan"),
        "decode_ms_per_token_p90": float(np.quantile(steps, 0.9)) * 1e3 if steps.size else float("nan"),
        "tokens_per_s": float(np.median(rates)) if rates else float("nan"),
    }


def decode_memory(lm: CausalLM, prompt: torch.Tensor, new_tokens: int) -> dict[str, Any]:
    """Peak memory of one greedy run (memray, as the memory probe tracks an inference; call it on a
    warmed-up model) split into the weights as loaded, the KV cache at the end, and the rest."""
    weights = state_dict_bytes(lm)
    with torch.inference_mode(), memory.track() as tracking:
        run = greedy_decode(lm, prompt, new_tokens)
    if tracking.memory is None:  # pragma: no cover - track() always fills it on a clean exit
        raise PtqError("memray returned no capture for the decode run")
    peak = tracking.memory.peak_bytes
    return {
        "method": "memray high-water mark of one decode run; peak = RSS before + increment (as the memory probe)",
        "peak_bytes": peak,
        "weights_bytes": weights,
        "weights": "len of torch.save(state_dict) of the decoding model: parameters, persistent buffers and "
        "quantized weights as the recipe packed them (torch.save's framing adds ~0.4 KiB a tensor)",
        "kv_cache_bytes": run.cache_bytes,
        "activations_and_other_bytes": max(peak - weights - run.cache_bytes, 0),
        "activations_and_other": "peak - weights - KV cache, floored at 0: the decode's activations and "
        "temporaries plus the process's other resident memory (interpreter, libraries, "
        "the float model and anything else the session holds)",
        # The decode's own part of that: its high-water mark (which the cache, built during the run, is in) less the cache.
        "activations_bytes": max(tracking.memory.increment_bytes - run.cache_bytes, 0),
        "decode": tracking.memory.to_dict(),
    }


def find_lm(model: nn.Module) -> CausalLM | None:
    """The :class:`CausalLM` a recipe left in ``model`` (itself, inside a compiled wrapper, or a
    submodule); None when the recipe replaced it (an exported or peer runtime has no KV cache)."""
    return next((m for m in model.modules() if isinstance(m, CausalLM)), None)


#: Float tokens per float model (weakly held): every case of a model compares with the same run.
_FLOAT_TOKENS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], torch.Tensor]] = weakref.WeakKeyDictionary()


def _float_tokens(model: CausalLM, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    key = (*prompt.shape, new_tokens)
    cached = _FLOAT_TOKENS.get(model)
    if cached is None or cached[0] != key:
        cached = (key, greedy_decode(model, prompt, new_tokens).tokens)
        _FLOAT_TOKENS[model] = cached
    return cached[1]


def _step_call(lm: CausalLM, prompt: torch.Tensor) -> Callable[[], Any] | None:
    """One decode step at the prompt's length, the cache cropped back after it: each call the same.
    ``crop(-1)`` drops the last position in every transformers version (older ones read a positive
    argument as the length to keep, newer ones refuse it)."""
    logits, past = lm.step(prompt)
    crop = getattr(past, "crop", None)
    if crop is None:
        return None
    token = logits.argmax(-1, keepdim=True)

    def call() -> None:
        lm.step(token, past)
        crop(-1)

    return call


def _decode_speedup(reference: CausalLM, candidate: CausalLM, prompt: torch.Tensor, budget_s: float) -> dict[str, Any]:
    ref, cand = _step_call(reference, prompt), _step_call(candidate, prompt)
    if ref is None or cand is None:
        return {"not_measured": "the model's KV cache cannot be cropped back between calls"}
    pairs = time_pairs(ref, cand, budget_s=budget_s)
    est = paired_quantile_ratio([r for r, _ in pairs], [c for _, c in pairs], q=location(DEFAULT_LOCATION))
    return {
        "method": f"interleaved ABBA pairs of one decode step at {prompt.shape[1]} cached tokens, "
        f"{DEFAULT_LOCATION} of fp32 / {DEFAULT_LOCATION} of the case, bootstrap interval",
        **est.to_dict(),
    }


def _lm_probe(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> LmFigures | None:
    if prepared.entry.family != FAMILY:
        return None
    spec = DECODE
    lm, float_lm = find_lm(prepared.model), find_lm(prepared.built.model)
    prompt = prepared.built.data.batch("eval", 0, prepared.entry.batch_size).inputs[0][:, : spec.prompt_len]
    figures: dict[str, Any] = {
        "batch": prompt.shape[0],
        "prompt_tokens": prompt.shape[1],
        "new_tokens": spec.new_tokens,
        "decoding": "greedy, EOS ignored, KV cache",
        "prefill": f"the timed rounds: batch {list(prepared.inputs[0].shape)} without cache",
    }
    if lm is None or float_lm is None:
        figures["not_measured"] = (
            f"recipe {prepared.recipe.name!r} leaves no transformers model to decode with a KV cache"
        )
        return LmFigures.from_dict(figures)
    form = deployment_form(prepared.quantized)
    if form != "eager":  # the wrapper holds the prefill's forward only: decoding would time the eager model
        figures["not_measured"] = (
            f"recipe {prepared.recipe.name!r} deploys the prefill forward as {form}; "
            "its decode steps would run the eager model, so they are not measured under its name"
        )
        return LmFigures.from_dict(figures)
    with torch.inference_mode():
        torch.manual_seed(spec.seed)
        greedy_decode(lm, prompt, spec.new_tokens)  # warm-up: kernels chosen, weights packed
        runs = [greedy_decode(lm, prompt, spec.new_tokens) for _ in range(spec.repeats)]
        reference = _float_tokens(float_lm, prompt, spec.new_tokens)
        figures.update(
            decode_figures(runs),
            kv_cache_bytes=runs[0].cache_bytes,
            generated_token_agreement=token_agreement(reference, runs[0].tokens),
        )
        if prepared.recipe.name != REFERENCE and options.pair_budget_s > 0:
            figures["decode_speedup"] = _decode_speedup(float_lm, lm, prompt, options.pair_budget_s)
    figures["memory"] = (
        decode_memory(lm, prompt, spec.new_tokens)
        if memory.enabled(options)
        else {"not_measured": "the memory probe is not selected (--ptq-probes); memray runs with it"}
    )
    return LmFigures.from_dict(figures)  # checked against the schema as it is written
