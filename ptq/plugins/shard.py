"""``--ptq-shard=I/N``: run one of N deterministic slices of the matrix, for CI runners in parallel.

Whole models go to a shard (the i-th model of the selection to shard ``i % N + 1``), so a
model's fp32 reference always runs in the same session as its quantized cases: the unpaired
speedup needs it, and a model is built once per shard, not once per runner. ``ptq merge``
joins the shards' JSON files back into one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ptq.errors import UserError

__all__ = ["Shard", "parse_shard", "shard_of_models"]


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    index, sep, count = text.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = None
    if not sep or shard is None or not 1 <= shard.index <= shard.count:
        raise UserError(f"--ptq-shard={text!r} is not I/N with 1 <= I <= N; use e.g. --ptq-shard=1/3")
    return shard


def shard_of_models(models: list[str], count: int) -> dict[str, int]:
    """model -> 1-based shard, round-robin in the order the models first appear."""
    order = list(dict.fromkeys(models))
    return {m: i % count + 1 for i, m in enumerate(order)}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("ptq").addoption(
        "--ptq-shard",
        default=None,
        metavar="I/N",
        help="run only shard I of N (whole models, round-robin over the selection); join with `ptq merge`",
    )


_SHARD = pytest.StashKey[Shard]()


def pytest_configure(config: pytest.Config) -> None:
    text = config.getoption("--ptq-shard")
    if text is None:
        return
    try:
        config.stash[_SHARD] = parse_shard(text)
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None


def _case_model(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("ptq_case") if callspec else None
    return case.model if case is not None else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.stash.get(_SHARD, None)
    if shard is None:
        return
    models = [m for m in map(_case_model, items) if m is not None]
    assignment = shard_of_models(models, shard.count)
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        model = _case_model(item)
        (keep if model is None or assignment[model] == shard.index else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(optionalhook=True, trylast=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    shard = config.stash.get(_SHARD, None)
    if shard is not None and isinstance(output_json.get("ptq"), dict):
        output_json["ptq"]["shard"] = str(shard)


def pytest_report_header(config: pytest.Config) -> str | None:
    shard = config.stash.get(_SHARD, None)
    return f"ptq shard: {shard} (whole models, round-robin)" if shard else None
