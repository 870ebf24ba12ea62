"""Decoder language models: ``tiny_lm``, trained here at first use on English text that ships with
Python, and ``smollm2_135m``, SmolLM2-135M's shapes with seeded random weights offline.

The text is the standard library's own documentation (``pydoc_data.topics``), split by topic into
three disjoint parts: training (used only to train ``tiny_lm``), calibration and evaluation, so a
recipe never calibrates on the text it is judged on and the model never trained on either. Tokens
are bytes (256) plus a few specials: no tokenizer to download, and every model here can read them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.host.cache import atomic_write, cache_dir
from ptq.models.base import SPLITS, Batch, Built
from ptq.models.digits import weights_hash

__all__ = [
    "BOS",
    "EOS",
    "SMOLLM2_ID",
    "TEXT_SPLITS",
    "VOCAB_SIZE",
    "CausalLM",
    "LMConfig",
    "LMText",
    "TrainConfig",
    "decode_bytes",
    "encode_bytes",
    "text_split",
    "topic_split",
    "trained_tiny_lm",
]

#: Byte tokens 0-255, then the specials; the vocabulary is padded to a multiple of 16, which
#: torchao's CPU int4 packing asks of a Linear's out_features (the LM head).
BOS, EOS, VOCAB_SIZE = 256, 257, 272
#: The three parts of the text; ``calib`` and ``eval`` are the data splits recipes and drift see.
TEXT_SPLITS = ("train", "calib", "eval")
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M"


def encode_bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def decode_bytes(ids: list[int]) -> str:
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


@functools.cache
def topic_split(seed: int = 0, n_eval: int = 10, n_calib: int = 6) -> dict[str, tuple[str, ...]]:
    """Topic names of each part: a seeded shuffle of the sorted names, eval first, then calib."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    shuffled = [names[i] for i in order]
    return {
        "eval": tuple(shuffled[:n_eval]),
        "calib": tuple(shuffled[n_eval : n_eval + n_calib]),
        "train": tuple(shuffled[n_eval + n_calib :]),
    }


@functools.cache
def text_split(part: str, seed: int = 0) -> torch.Tensor:
    """One part's topics, concatenated, as byte tokens (each topic opened by BOS)."""
    if part not in TEXT_SPLITS:
        raise UserError(f"unknown text part {part!r}; valid: {', '.join(TEXT_SPLITS)}")
    from pydoc_data.topics import topics

    ids: list[int] = []
    for name in topic_split(seed)[part]:
        ids += [BOS, *encode_bytes(topics[name])]
    return torch.tensor(ids, dtype=torch.long)


@functools.cache
def _tokenized(tokenizer: Any, part: str, seed: int) -> torch.Tensor:
    from pydoc_data.topics import topics

    return torch.tensor([i for name in topic_split(seed)[part] for i in tokenizer(topics[name])["input_ids"]])


@dataclass(frozen=True)
class LMText:
    """Non-overlapping windows of ``seq_len + 1`` tokens of one text part: inputs are the first
    ``seq_len`` tokens, the target the next token at each position. ``n_windows[split]`` caps how
    many windows a split offers (``size``); the drift probe evaluates all of them."""

    seq_len: int = 128
    n_windows: tuple[tuple[str, int], ...] = (("calib", 32), ("eval", 32))
    seed: int = 0
    description: str = ""
    #: A transformers tokenizer for real pretrained weights; None: byte tokens.
    tokenizer: Any = None

    def size(self, split: str) -> int:
        return min(dict(self.n_windows)[split], self._windows(split).shape[0])

    def _windows(self, split: str) -> torch.Tensor:
        if split not in SPLITS:
            raise UserError(f"unknown data split {split!r}; valid splits: {', '.join(SPLITS)}")
        ids = text_split(split, self.seed) if self.tokenizer is None else _tokenized(self.tokenizer, split, self.seed)
        n = (len(ids) - 1) // self.seq_len
        return torch.stack([ids[i * self.seq_len : (i + 1) * self.seq_len + 1] for i in range(n)])

    def batch(self, split: str, index: int, batch_size: int) -> Batch:
        windows = self._windows(split)[: self.size(split)]
        idx = torch.arange(index * batch_size, (index + 1) * batch_size) % len(windows)
        rows = windows[idx]
        return Batch((rows[:, :-1].contiguous(),), rows[:, 1:].contiguous())


def lm_text(seq_len: int, n_calib: int, n_eval: int, tokenizer: Any = None) -> LMText:
    tokens = "byte tokens" if tokenizer is None else f"{type(tokenizer).__name__} tokens"
    return LMText(
        seq_len,
        (("calib", n_calib), ("eval", n_eval)),
        tokenizer=tokenizer,
        description=(
            f"pydoc_data.topics {tokens}, windows of {seq_len}: {n_eval} eval windows from "
            f"{len(topic_split()['eval'])} held-out topics, {n_calib} calib windows from "
            f"{len(topic_split()['calib'])} others; tiny_lm trained on the remaining topics only"
        ),
    )


class CausalLM(nn.Module):
    """A transformers causal LM as ptq runs it: ``forward(input_ids) -> logits`` (prefill, no
    cache: what the timed rounds and drift see) and ``step`` (one call with a KV cache: decode)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits

    def step(self, input_ids: torch.Tensor, past: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits of the last position, and the cache extended by ``input_ids``."""
        out = self.lm(input_ids=input_ids, use_cache=True, logits_to_keep=1, **{_cache_argument(self.lm): past})
        return out.logits[:, -1], out.past_key_values


def _cache_argument(lm: nn.Module) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache`` (the old name warns, then goes)."""
    import inspect

    return "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"


@dataclass(frozen=True)
class LMConfig:
    """Llama shapes (transformers ``LlamaConfig`` fields)."""

    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    vocab_size: int = VOCAB_SIZE
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0
    extra: tuple[tuple[str, Any], ...] = ()

    def build(self, seed: int) -> CausalLM:
        from transformers import LlamaConfig, LlamaForCausalLM

        fields = {k: v for k, v in asdict(self).items() if k != "extra"}
        config = LlamaConfig(**fields, **dict(self.extra), bos_token_id=BOS, eos_token_id=EOS)
        torch.manual_seed(seed)
        return CausalLM(LlamaForCausalLM(config))


#: ``tiny_lm``: 1.6 M parameters; widths multiples of 128 so torchao's CPU int4 layout packs every Linear.
TINY_LM = LMConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=6)

#: SmolLM2-135M's config.json shapes (vocabulary, width, depth, grouped-query heads, tied head).
SMOLLM2_135M = LMConfig(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    max_position_embeddings=8192,
    tie_word_embeddings=True,
    rope_theta=100000.0,
    extra=(("rms_norm_eps", 1e-5),),
)


@dataclass(frozen=True)
class TrainConfig:
    """``tiny_lm``'s training: AdamW with linear warm-up and cosine decay on random windows of
    the train part, one thread, ``steps`` bounding the time (about 2 minutes here)."""

    model: LMConfig = field(default_factory=lambda: TINY_LM)
    seed: int = 0
    steps: int = 450
    batch_size: int = 8
    seq_len: int = 128
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01


TRAIN_CONFIG = TrainConfig()


def _config_key(cfg: TrainConfig) -> str:
    blob = json.dumps({"model": "tiny_lm-llama-v1", **asdict(cfg)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _lr_at(cfg: TrainConfig, step: int) -> float:
    import math

    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    done = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * done))


def train(cfg: TrainConfig = TRAIN_CONFIG, *, log: Callable[[int, float], None] | None = None) -> CausalLM:
    """Train from scratch on the train part only, deterministically (fixed seed, one thread)."""
    ids = text_split("train", cfg.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = cfg.model.build(cfg.seed)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        g = torch.Generator().manual_seed(cfg.seed + 1)
        model.train()
        for step in range(cfg.steps):
            starts = torch.randint(0, len(ids) - cfg.seq_len - 1, (cfg.batch_size,), generator=g)
            rows = torch.stack([ids[s : s + cfg.seq_len + 1] for s in starts.tolist()])
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, step)
            opt.zero_grad()
            logits = model(rows[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if log is not None:
                log(step, loss.item())
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def _train_into(path: Any, cfg: TrainConfig) -> str:
    start = time.perf_counter()
    buf = io.BytesIO()
    torch.save(train(cfg).state_dict(), buf)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    return f"trained now in {time.perf_counter() - start:.0f} s"


def trained_tiny_lm(cfg: TrainConfig = TRAIN_CONFIG) -> tuple[CausalLM, str]:
    """The cached trained model (training it on first use) and its provenance string; the model
    is always read back from the cache file, so a fresh and a cached run hold the same tensors."""
    key = _config_key(cfg)
    path = cache_dir() / f"tiny_lm-{key}.pt"
    how = "loaded" if path.exists() else _train_into(path, cfg)
    model = cfg.model.build(cfg.seed)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval(), (
        f"trained:tiny_lm:pydoc_data.topics train part,seed={cfg.seed},steps={cfg.steps},"
        f"key={key},sha256={weights_hash(model)} ({how})"
    )


def _smollm2(weights: str) -> Built:
    """Real weights from the hub id (only from the local cache unless ``pretrained``), else seeded
    random weights of the same shapes on byte tokens."""
    if weights != "random":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs = {} if weights == "pretrained" else {"local_files_only": True}
        try:
            tokenizer = AutoTokenizer.from_pretrained(SMOLLM2_ID, **kwargs)
            model = CausalLM(AutoModelForCausalLM.from_pretrained(SMOLLM2_ID, dtype=torch.float32, **kwargs))
        except OSError as exc:
            if weights == "pretrained":
                raise NotApplicable(
                    f"{SMOLLM2_ID} could not be loaded ({exc.__class__.__name__}: {exc}); "
                    "run online once, or use --ptq-weights=random"
                ) from exc
        else:
            return Built(model, weights=f"pretrained:huggingface:{SMOLLM2_ID}", data=lm_text(128, 8, 4, tokenizer))
    seed = TRAIN_CONFIG.seed
    return Built(
        SMOLLM2_135M.build(seed),
        data=lm_text(128, 8, 4),
        weights=(
            f"random:seed={seed} (shapes of {SMOLLM2_ID}; its drift is fidelity to the float model, "
            "its perplexity that of an untrained model)"
        ),
    )


def _register() -> None:
    from ptq.models import register_model

    @register_model(
        "tiny_lm",
        batch_size=1,
        family="lm",
        requires=("transformers",),
        tags=("transformer", "decoder"),
        description="1.6 M-parameter Llama trained here on pydoc_data.topics (byte tokens)",
    )
    def tiny_lm(*, weights: str) -> Built:
        data = lm_text(TRAIN_CONFIG.seq_len, 32, 32)
        if weights == "random":
            return Built(
                TRAIN_CONFIG.model.build(TRAIN_CONFIG.seed), weights=f"random:seed={TRAIN_CONFIG.seed}", data=data
            )
        model, label = trained_tiny_lm()
        return Built(model, weights=label, data=data)

    register_model(
        "smollm2_135m",
        batch_size=1,
        family="lm",
        requires=("transformers",),
        tags=("transformer", "decoder", "production-shape"),
        description=f"{SMOLLM2_ID} shapes (135 M parameters); real weights with --ptq-weights=pretrained",
    )(lambda *, weights: _smollm2(weights))


_register()
