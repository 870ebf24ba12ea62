"""Renderers of one Comparison: text, Markdown, the HTML section and the versioned JSON, which
validates against the JSON Schema shipped in ptq/gate/schemas/."""

from __future__ import annotations

import json
import sys
from fnmatch import fnmatch
from pathlib import Path

import jsonschema
import pytest
from gate_fixtures import bench, run, samples

from ptq.cli import build_parser, main
from ptq.gate.comparison import (
    EXIT_NO_BASELINE,
    EXIT_OK,
    EXIT_REGRESSION,
    FORMATS,
    OUTCOME_NAMES,
    SCHEMA_ID,
    SCHEMA_VERSION,
    VERDICT_IDS,
    as_json,
    compare,
    json_schema,
    render,
)
from ptq.stats.decide import Verdict
from ptq.storage.runs import parse_run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parent.parent
SIZE = lambda n: {"size": {"serialized_bytes": n}}  # noqa: E731
BASE = run(
    bench("m-fp32", samples(1e-3, seed=1), metrics=SIZE(1000)),
    bench("m-int8", samples(5e-4, seed=2), metrics=SIZE(300)),
    bench("m-fp16", samples(8e-4, seed=3), metrics=SIZE(500)),
)
#: m-int8 20% slower, m-fp16 smaller, m-fp32 unchanged, m-new new.
CURRENT = run(
    bench("m-fp32", samples(1e-3, seed=11), metrics=SIZE(1000)),
    bench("m-int8", samples(6e-4, seed=12), metrics=SIZE(300)),
    bench("m-fp16", samples(8e-4, seed=13), metrics=SIZE(400)),
    bench("m-new", samples(1e-3, seed=14)),
)


def _compare(base=BASE, cur=CURRENT, **kw):
    return compare(parse_run(base, "base.json"), parse_run(cur, "cur.json"), **kw)


COMPARISONS = {
    "regression": lambda: _compare(),
    "accepted-new": lambda: _compare(accept_new=True),
    "no-baseline": lambda: _compare(run(), CURRENT),
    "not-measured": lambda: _compare(cur=run(bench("m-fp32", samples(1e-3, seed=31)))),
    "pass": lambda: _compare(cur=run(bench("m-fp32", samples(1e-3, seed=41), metrics=SIZE(1000)))),
    "empty": lambda: _compare(run(), run()),
}


@pytest.mark.parametrize("name", COMPARISONS)
def test_json_validates_against_the_shipped_schema_and_carries_the_gates_decision(name):
    c = COMPARISONS[name]()
    doc = json.loads(render(c, "json"))
    jsonschema.validate(doc, json_schema(), cls=jsonschema.Draft202012Validator)
    assert (doc["schema"], doc["version"]) == (SCHEMA_ID, SCHEMA_VERSION) == ("ptq.comparison", 1)
    assert doc["exit_code"] == c.exit_code and doc["outcome"] == OUTCOME_NAMES[c.exit_code]
    assert [(r["case"], r["metric"]) for r in doc["rows"]] == [(r.case, r.metric) for r in c.rows]
    assert [r["verdict"] for r in doc["rows"] if r["fails"]] == [VERDICT_IDS[r.verdict] for r in c.failing]
    assert sum(doc["counts"].values()) == len(c.rows)


def test_json_outcomes_of_the_fixture_comparisons():
    outcomes = {name: as_json(make())["outcome"] for name, make in COMPARISONS.items()}
    assert outcomes == {
        "regression": "fail",
        "accepted-new": "fail",
        "no-baseline": "no-baseline",
        "not-measured": "fail",
        "pass": "pass",
        "empty": "pass",
    }
    assert as_json(COMPARISONS["no-baseline"]())["no_baseline"] == "base.json holds no case"


def test_the_schema_names_every_verdict_and_outcome_and_refuses_what_it_does_not_know():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$defs"]["verdict"]["enum"] == [VERDICT_IDS[v] for v in Verdict]
    assert schema["properties"]["outcome"]["enum"] == list(OUTCOME_NAMES.values())
    assert (
        schema["properties"]["exit_code"]["enum"] == list(OUTCOME_NAMES) == [EXIT_OK, EXIT_REGRESSION, EXIT_NO_BASELINE]
    )
    doc = as_json(_compare())
    for broken in ({**doc, "version": 2}, {**doc, "extra": 1}, {**doc, "rows": [{**doc["rows"][0], "verdict": "bad"}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_ships_as_package_data():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ptq"]
    shipped = [p.relative_to(ROOT / "ptq").as_posix() for p in (ROOT / "ptq" / "gate" / "schemas").iterdir()]
    assert shipped and all(any(fnmatch(f, g) for g in globs) for f in shipped)


def test_compare_and_ab_write_json(tmp_path, capsys):
    base, cur = tmp_path / "base.json", tmp_path / "cur.json"
    base.write_text(json.dumps(BASE))
    cur.write_text(json.dumps(CURRENT))
    assert main(["compare", str(cur), "--baseline", str(base), "--format", "json", "--judges", "*"]) == EXIT_REGRESSION
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, json_schema(), cls=jsonschema.Draft202012Validator)
    assert doc["exit_code"] == EXIT_REGRESSION and doc["current"] == str(cur)
    assert build_parser().parse_args(["ab", "HEAD~1", "HEAD", "--format", "json"]).format == "json"
    assert {"text", "md", "json", "html"} <= set(FORMATS)


def test_text_keeps_its_columns_and_explains_each_row_that_is_not_ok():
    text = render(_compare())
    header = next(line for line in text.splitlines() if line.startswith("case "))
    assert header.split() == ["case", "metric", "baseline", "current", "change", "verdict"]
    details = [line for line in text.splitlines() if line.startswith("detail: ")]
    assert any(d.startswith("detail: m-int8 latency: p1 ratio") and "Mann-Whitney p=" in d for d in details)
    assert "detail: m-fp16 size: allowed: 1%" in details  # improved is explained too
    assert not any(d.startswith(("detail: m-fp32", "detail: m-new")) for d in details)  # ok, new: nothing to explain
    assert text.endswith("FAIL: 1 regression, 1 new (1 improved, 4 ok)")


def _table_rows(md: str, start: str, end: str) -> list[list[str]]:
    block = md[md.index(start) : md.index(end)]
    return [[c.strip() for c in line.split(" | ")] for line in block.splitlines() if line.startswith("| ")][1:]


def test_markdown_puts_failing_rows_first_with_their_details_and_every_row_under_details():
    c = _compare()
    md = render(c, "md")
    assert md.startswith("### ptq regression gate: FAIL: 1 regression, 1 new (1 improved, 4 ok)")
    failing = _table_rows(md, "Failing the gate (2 of 7 rows)", "<details>")
    assert [row[:2] for row in failing] == [["| m-int8", "latency"], ["| m-new", "*"]]
    assert failing[0][5] == "**REGRESSION**" and failing[0][6].startswith("p1 ratio")
    every = _table_rows(md, "<details><summary>All 7 rows</summary>", "</details>")
    assert len(every) == len(c.rows)
    improved = next(row for row in every if row[5] == "improved: refresh the baseline")
    assert improved[6] == "allowed: 1% |"  # explained, not failing
    assert md.index("- 1 case(s) have no baseline figure") < md.index("<details>")  # notes before the long table


def test_markdown_and_html_without_a_baseline_say_so_once_instead_of_a_row_per_case(tmp_path):
    c = _compare(run(), CURRENT)
    md = render(c, "md")
    assert "**No baseline**: base.json holds no case." in md and "Failing the gate" not in md
    assert md.count("| m-") == 4  # under <details> only
    html = render(c, "html")
    assert "No baseline</b>: base.json holds no case" in html and "Failing the gate" not in html


def test_markdown_and_html_escape_what_would_break_them():
    weird = run(bench("m<b>|x-int8", samples(5e-4, seed=2), metrics=SIZE(300)))
    slower = run(bench("m<b>|x-int8", samples(5e-4, seed=2), metrics=SIZE(900)))
    c = _compare(weird, slower)
    md = render(c, "md")
    assert "| m&lt;b>\\|x-int8 | size |" in md and "<b>" not in md
    html = render(c, "html")
    assert "<code>m&lt;b&gt;|x-int8</code>" in html and "<b>|" not in html


def test_html_section_marks_failing_rows_and_badges_by_verdict_id():
    html = render(_compare(), "html")
    assert html.startswith('<div class="comparison fail"><p class="outcome"><b>FAIL: 1 regression')
    assert html.count('<tr class="regression fails">') == 2  # in the failing table and under <details>
    assert '<span class="badge improved">improved: refresh the baseline</span>' in html
    assert '<tr class="ok">' in html and "<details><summary>All 7 rows</summary>" in html
    assert render(COMPARISONS["pass"](), "html").startswith('<div class="comparison pass">')


@pytest.mark.parametrize("name", COMPARISONS)
def test_markdown_has_no_empty_paragraphs(name):
    c = COMPARISONS[name]()
    assert "\n\n\n" not in render(c, "md")
    assert render(c, "md").count("<details>") == (1 if c.rows else 0)
