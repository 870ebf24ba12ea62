"""The typed results schema (ptq.storage.figures): kinds checked, round trips lossless, the
docs' tables (docs/output.md, docs/gate-and-statistics.md) tied to the declarations, and runs recorded before it
still load and compare."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ptq.gate.comparison import compare
from ptq.gate.judges import JUDGES
from ptq.storage.figures import (
    DriftFigures,
    MemoryFigures,
    NotMeasured,
    SchemaError,
    SpeedupFigures,
    read_figures,
    schema_rows,
    schema_table,
)
from ptq.storage.runs import parse_run

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_PAGE = (ROOT / "docs" / "output.md").read_text()  # the results-schema table
GATE_PAGE = (ROOT / "docs" / "gate-and-statistics.md").read_text()  # the judge table
#: Baselines as recorded before the typed schema (schema_version 1, old fingerprint keys), cut to four cases.
PRE_SCHEMA = ROOT / "tests" / "fixtures" / "pre_schema_baselines"


def test_the_docs_schema_table_is_the_generated_one():
    found = re.search(r"<!-- results-schema: begin[^>]*-->\n(.*?)\n<!-- results-schema: end -->", OUTPUT_PAGE, re.S)
    assert found, "docs/output.md lost its results-schema markers"
    assert found.group(1) == schema_table(), (
        "regenerate it: python -c 'from ptq.storage.figures import schema_table; print(schema_table())'"
    )


def test_every_judge_reads_declared_figures_and_the_docs_name_them():
    declared = {path for path, _, _ in schema_rows()}
    table = GATE_PAGE[GATE_PAGE.index("| metric | judged by |") :]
    table = table[: table.index("\n\n")]
    for judge in JUDGES:
        assert judge.reads, f"judge {judge.name} declares no figure it reads"
        for path in judge.reads:
            assert path in declared or path == "stats.data", f"{judge.name} reads {path}, not in the schema"
            assert f"`{path}`" in table, (
                f"the judge table of docs/gate-and-statistics.md does not name {path} ({judge.name})"
            )


def test_round_trip_keeps_undeclared_keys_and_nested_steps():
    stored = {
        "method": "memray",
        "inference": {
            "increment_bytes": 1024,
            "baseline_bytes": 10,
            "peak_bytes": 1034,
            "top_sites": [{"bytes": 1, "allocations": 1, "where": "f"}],
            "future_field": 3,
        },
    }
    figures = MemoryFigures.from_dict(stored)
    assert figures.inference is not None and figures.inference.increment_bytes == 1024 and figures.quantize is None
    assert figures.inference.extra == {"future_field": 3}
    assert figures.to_dict() == stored
    drift = {
        "profile": "classifier",
        "passed": True,
        "headline": "top1_agreement",
        "value": 0.98,
        "higher_is_better": True,
        "top1_agreement": 0.98,
        "cosine_mean": 0.999,
    }
    assert DriftFigures.from_dict(drift).extra == {"top1_agreement": 0.98, "cosine_mean": 0.999}
    assert DriftFigures.from_dict(drift).to_dict() == drift


def test_a_wrong_kind_names_the_figure_and_readers_see_not_measured():
    with pytest.raises(SchemaError, match=r"metrics\.speedup\.low = 'x' is not a number"):
        SpeedupFigures.from_dict({"ratio": 2.0, "low": "x", "high": 2.1})
    with pytest.raises(SchemaError, match=r"metrics\.speedup\.high is missing"):
        SpeedupFigures.from_dict({"ratio": 2.0, "low": 1.9})
    with pytest.raises(SchemaError, match=r"metrics\.memory\.inference\.increment_bytes is missing"):
        MemoryFigures.from_dict({"inference": {"baseline_bytes": 1}})
    info = {"metrics": {"speedup": {"not_measured": "visit 3 raised"}, "drift": {"value": float("nan")}}}
    assert SpeedupFigures.read(info) == NotMeasured("visit 3 raised")
    assert read_figures(SpeedupFigures, info) is None  # not measured reads as absent
    assert DriftFigures.read(info) is None  # a NaN headline is malformed, never a number to compare
    assert MemoryFigures.read(info) is None and MemoryFigures.read({}) is None


@pytest.mark.parametrize("stored", sorted(PRE_SCHEMA.glob("*.json")), ids=lambda p: p.name)
def test_a_committed_run_from_before_the_schema_loads_and_compares(stored):
    """Baselines recorded before the typed schema (tests/fixtures/pre_schema_baselines: four cases
    of each default-matrix baseline main once held, kept as recorded): every figure they hold
    parses, a round trip keeps it, and comparing the run with itself judges every figure it has."""
    doc = json.loads(stored.read_text())
    run = parse_run(doc, str(stored))
    parsed = 0
    for b in doc["benchmarks"]:
        for cls in (SpeedupFigures, MemoryFigures, DriftFigures):
            if cls.PROBE in b["extra_info"].get("metrics", {}):
                figures = cls.from_dict(b["extra_info"]["metrics"][cls.PROBE])
                assert {k: v for k, v in figures.to_dict().items()} == {
                    k: v for k, v in b["extra_info"]["metrics"][cls.PROBE].items() if v is not None
                }
                parsed += 1
    assert parsed > 0
    rows = compare(run, run, judges=["memory", "size", "drift"]).rows
    assert {r.metric for r in rows} == {"memory", "size", "drift"}
    assert {r.verdict.name for r in rows} == {"OK"}  # each figure read back and judged against itself
