"""Language models: the text splits, the LM drift metrics on hand-computed examples, the decode
loop on a tiny Llama, and the lm probe's record."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from ptq.errors import UserError
from ptq.models import Built, get_model, lm
from ptq.probes.drift import measures as m
from ptq.probes.drift.profiles import profile_for
from ptq.probes.lm import Decoded, cache_bytes, decode_figures, decode_memory, find_lm, greedy_decode
from ptq.probes.lm import _lm_probe as lm_probe
from ptq.recipes import get_recipe
from ptq.run.workbench import RunOptions

pytest.importorskip("transformers")

TINY = lm.LMConfig(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1
)


@pytest.fixture(scope="module")
def tiny() -> lm.CausalLM:
    return TINY.build(seed=0).eval()


# -- the text -----------------------------------------------------------------------------------


def test_text_parts_share_no_topic_and_cover_all():
    from pydoc_data.topics import topics

    parts = lm.topic_split()
    names = [set(parts[p]) for p in lm.TEXT_SPLITS]
    assert all(not (a & b) for i, a in enumerate(names) for b in names[i + 1 :])
    assert set().union(*names) == set(topics)


def test_no_eval_or_calib_window_occurs_in_the_training_text():
    train = lm.decode_bytes(lm.text_split("train").tolist())
    data = lm.lm_text(128, 8, 8)
    for split in ("calib", "eval"):
        windows = data.batch(split, 0, data.size(split)).inputs[0]
        assert len(windows) == 8
        assert not any(lm.decode_bytes(w.tolist()) in train for w in windows)
    calib = lm.decode_bytes(lm.text_split("calib").tolist())
    assert not any(lm.decode_bytes(w.tolist()) in calib for w in data.batch("eval", 0, 8).inputs[0])


def test_target_is_the_next_token():
    batch = lm.lm_text(16, 2, 2).batch("eval", 0, 2)
    (inputs,), target = batch.inputs, batch.target
    assert inputs.shape == target.shape == (2, 16)
    assert torch.equal(inputs[:, 1:], target[:, :-1])
    assert lm.decode_bytes(lm.encode_bytes("héllo")) == "héllo"


def test_unknown_split_names_the_valid_ones():
    with pytest.raises(Exception, match="unknown data split 'train'; valid splits: calib, eval"):
        lm.lm_text(16, 2, 2).batch("train", 0, 1)


# -- metrics --------------------------------------------------------------------------------------


def test_perplexity_by_hand():
    logits = torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]).log().unsqueeze(0)
    assert m.perplexity(logits, torch.tensor([[0, 0]])) == pytest.approx(2.0)
    assert m.perplexity(logits, torch.tensor([[0, 1]])) == pytest.approx(math.sqrt(8))  # exp(mean(ln 2, ln 4))
    assert m.perplexity(torch.zeros(1, 3, 10), torch.tensor([[1, 2, 3]])) == pytest.approx(10.0)  # uniform


def test_kl_divergence_by_hand():
    p = torch.tensor([[0.5, 0.5]]).log()
    q = torch.tensor([[0.25, 0.75]]).log()
    assert m.kl_divergence(p, q) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75))
    assert m.kl_divergence(p, p + 3.0) == pytest.approx(0.0, abs=1e-12)  # a shift leaves softmax alone
    with pytest.raises(ValueError, match="shapes differ"):
        m.kl_divergence(p, torch.zeros(1, 3))


def test_token_agreement_by_hand():
    assert m.token_agreement(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 0, 4]])) == 0.75
    with pytest.raises(ValueError, match="one shape"):
        m.token_agreement(torch.tensor([[1]]), torch.tensor([[1, 2]]))


def test_lm_drift_profile_reads_perplexity_and_its_rise():
    profile = profile_for(get_model("tiny_lm"))
    ref = torch.tensor([[0.5, 0.25, 0.25]]).log().unsqueeze(0)
    cand = torch.tensor([[0.25, 0.5, 0.25]]).log().unsqueeze(0)
    figures = profile.measure(ref, cand, torch.tensor([[0]]))
    assert profile.name == "lm"
    assert figures["perplexity_fp32"] == pytest.approx(2.0)
    assert figures["perplexity"] == pytest.approx(4.0)
    assert figures["perplexity_rise"] == pytest.approx(1.0)
    assert figures["top1_agreement"] == 0.0
    assert {g.key for g in profile.gates} >= {"max_perplexity_rise", "min_top1_agreement"}


# -- decoding -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_greedy_decode_with_cache_matches_recomputing_without(tiny):
    prompt = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got = greedy_decode(tiny, prompt, 6)
        seq = prompt
        for _ in range(6):
            seq = torch.cat([seq, tiny(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(got.tokens, seq[:, 5:])
    assert len(got.step_s) == 5
    # keys and values: layers x batch x kv heads x cached positions (5 + 5) x head dim, float32
    assert got.cache_bytes == 2 * 2 * 2 * 1 * 10 * 16 * 4


def test_decode_figures_from_known_step_times():
    runs = [
        Decoded(torch.zeros(2, 3), first_token_s=0.010, step_s=(0.001, 0.003), cache_bytes=0),
        Decoded(torch.zeros(2, 3), first_token_s=0.030, step_s=(0.002, 0.002), cache_bytes=0),
    ]
    figures = decode_figures(runs)
    assert figures["time_to_first_token_ms"] == pytest.approx(20.0)
    assert figures["decode_ms_per_token_p50"] == pytest.approx(2.0)
    assert figures["decode_ms_per_token_p90"] == pytest.approx(2.7)  # linear between 2 and 3 ms
    assert figures["tokens_per_s"] == pytest.approx(1000.0)  # 2 rows x 2 steps in 4 ms, both runs


def test_cache_bytes_of_nested_tensors():
    assert cache_bytes(((torch.zeros(2, 3), torch.zeros(4, dtype=torch.int8)),)) == 2 * 3 * 4 + 4


@pytest.mark.slow
def test_lm_probe_records_decode_against_fp32(tiny):
    from ptq.recipes import apply_recipe

    data = lm.lm_text(16, 2, 2)
    built = Built(tiny, weights="random:seed=0", data=data)
    entry = SimpleNamespace(name="tiny", family="lm", batch_size=1)
    applied = apply_recipe(get_recipe("dynamic_int8"), entry, built)
    quantized = applied.model
    prepared = SimpleNamespace(
        entry=entry,
        built=built,
        model=quantized,
        recipe=get_recipe("dynamic_int8"),
        quantized=applied,
        inputs=data.batch("eval", 0, 1).inputs,
    )
    figures = lm_probe(prepared, None, RunOptions(pair_budget_s=0.05)).to_dict()  # as stored
    assert find_lm(quantized) is quantized
    assert figures["prompt_tokens"] == 16 and figures["new_tokens"] > 1
    assert 0.0 <= figures["generated_token_agreement"] <= 1.0
    assert figures["tokens_per_s"] > 0 and figures["kv_cache_bytes"] > 0
    assert figures["decode_speedup"]["low"] <= figures["decode_speedup"]["ratio"] <= figures["decode_speedup"]["high"]
    assert figures["memory"]["kv_cache_bytes"] == figures["kv_cache_bytes"]
    assert "not_measured" in lm_probe(prepared, None, RunOptions(pair_budget_s=0, probes="lm")).memory
    assert lm_probe(SimpleNamespace(entry=SimpleNamespace(family="vision")), None, RunOptions()) is None
    compiled = SimpleNamespace(**{**vars(prepared), "quantized": SimpleNamespace(notes={"deploy": "compile"})})
    skipped = lm_probe(compiled, None, RunOptions()).to_dict()
    assert "deploys the prefill forward as compile" in skipped["not_measured"]
    assert "tokens_per_s" not in skipped  # never the eager model's decode under a compiled recipe's name


@pytest.mark.slow
def test_decode_memory_splits_the_peak_and_the_cache_grows_with_new_tokens(tiny):
    from ptq.probes.size import state_dict_bytes

    prompt = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        greedy_decode(tiny, prompt, 2)  # warm: the first call pays one-time costs
    short, long = decode_memory(tiny, prompt, 4), decode_memory(tiny, prompt, 12)
    for figures in (short, long):
        parts = figures["weights_bytes"] + figures["kv_cache_bytes"] + figures["activations_and_other_bytes"]
        assert parts == figures["peak_bytes"]  # nothing floored: the process holds far more than this model
        assert figures["peak_bytes"] == figures["decode"]["peak_bytes"]
        assert figures["decode"]["increment_bytes"] >= figures["kv_cache_bytes"]  # the cache is built in the run
        assert figures["activations_bytes"] == figures["decode"]["increment_bytes"] - figures["kv_cache_bytes"]
        assert figures["weights_bytes"] == state_dict_bytes(tiny)
        tensors = tiny.state_dict().values()
        raw = sum(t.numel() * t.element_size() for t in tensors)
        assert raw < figures["weights_bytes"] < raw + 1024 * len(tensors)  # the tensors plus torch.save's framing
    # keys and values: layers x batch x kv heads x head dim x float32 bytes, per cached position
    per_position = 2 * 2 * 1 * 1 * 16 * 4
    assert long["kv_cache_bytes"] - short["kv_cache_bytes"] == 8 * per_position
    assert short["kv_cache_bytes"] == (8 + 3) * per_position


# -- models ---------------------------------------------------------------------------------------


def test_quick_matrix_runs_tiny_lm_with_its_main_recipes_only():
    from ptq.run.matrix import QUICK_LM_RECIPES, select_cases

    assert [c.recipe for c in select_cases("quick", models="tiny_lm")] == QUICK_LM_RECIPES.split(",")
    assert "tiny_lm" not in {c.model for c in select_cases("default")}
    assert "static_int8" in {c.recipe for c in select_cases("quick", models="digits_cnn")}
    with pytest.raises(
        UserError,
        match="--ptq-models='tiny_lm' --ptq-recipes='static_int8' selects no case of "
        "matrix 'quick' \\(tiny_lm runs only fp32,",
    ):
        select_cases("quick", models="tiny_lm", recipes="static_int8")


def test_llm_matrix_compiles_tiny_lm_only():
    from ptq.run.matrix import LM_COMPILED, LM_RECIPES, select_cases

    recipes = {m: [c.recipe for c in select_cases("llm", models=m)] for m in ("tiny_lm", "smollm2_135m")}
    assert set(recipes["tiny_lm"]) == {*LM_RECIPES.split(","), *LM_COMPILED.split(",")}
    assert set(recipes["smollm2_135m"]) == set(LM_RECIPES.split(","))
    assert recipes["tiny_lm"][0] == recipes["smollm2_135m"][0] == "fp32"


def test_traced_lms_are_a_known_issue_with_the_measured_reason():
    from ptq.run.known_issues import known_issue
    from ptq.run.matrix import Case

    issue = known_issue(Case("tiny_lm", "fp32_jit"))
    assert issue is not None and "index 1 is out of bounds" in issue.reason
    assert known_issue(Case("tiny_lm", "fp32_compile")) is None


def test_production_shapes_are_smollm2_135m():
    from transformers import LlamaConfig, LlamaForCausalLM

    fields = {k: v for k, v in vars(lm.SMOLLM2_135M).items() if k != "extra"}
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**fields, **dict(lm.SMOLLM2_135M.extra)))
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, as SmolLM2's config says
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6  # each shared tensor counted once


def test_smollm2_never_downloads_unasked(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(lm, "SMOLLM2_ID", "ptq-tests/not-cached-anywhere")  # auto looks in the local cache only
    monkeypatch.setattr(lm, "SMOLLM2_135M", TINY)
    built = get_model("smollm2_135m").build(weights="auto")
    assert built.weights.startswith("random:seed=0 (shapes of ptq-tests/not-cached-anywhere")
    assert built.data.tokenizer is None
