import math
import re

import pytest

from ptq.errors import UserError
from ptq.gate.judges import DEFAULTS
from ptq.run.config import Config, Range, Section, load_config, register_section, validate

register_section(Section("test_section", {"limit": (int, float), "name": str}))


def test_resolve_most_specific_wins():
    cfg = validate(
        {
            "test_section": {
                "limit": 1,
                "models": {"resnet18": {"limit": 2}},
                "recipes": {"static_int8": {"limit": 3}},
                "cases": {"resnet18-static_int8": {"limit": 4}},
            }
        },
        "x",
    )
    assert cfg.resolve("test_section", model="other", recipe="other", defaults={"limit": 0, "name": "d"}) == {"limit": 1, "name": "d"}
    assert cfg.resolve("test_section", model="resnet18", recipe="fp32")["limit"] == 2
    assert cfg.resolve("test_section", model="resnet18", recipe="static_int8")["limit"] == 4
    assert cfg.resolve("test_section", model="mobilenet_v2", recipe="static_int8")["limit"] == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nope": {}}, r"unknown section \[tool.ptq.nope\]; valid sections: .*test_section"),
        ({"test_section": {"limt": 1}}, r"unknown key 'limt' in \[tool.ptq.test_section\]; valid keys: limit, name"),
        ({"test_section": {"limit": "high"}}, r"^pyproject.toml: \[tool.ptq.test_section\] limit = 'high': must be a number$"),
        ({"test_section": {"limit": True}}, r"\] limit = True: must be a number$"),
        ({"test_section": {"name": 3}}, r"\] name = 3: must be a string$"),
        ({"test_section": {"models": {"resnet18": {"limt": 1}}}},
         r"unknown key 'limt' in \[tool.ptq.test_section.models.resnet18\]; valid keys: limit, name"),
        ({"test_section": {"models": 3}}, r"models in \[tool.ptq.test_section\] must hold tables such as "
                                          r"\[tool.ptq.test_section.models.NAME\]"),
    ],
)
def test_bad_config_names_the_key_and_the_fix(data, message):
    with pytest.raises(UserError, match=message):
        validate(data, "pyproject.toml")


def test_load_reads_results_file_or_pyproject_and_never_ignores_one_silently(tmp_path):
    assert load_config(tmp_path) == Config({})
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_config(tmp_path) == Config({}, str(tmp_path / "pyproject.toml"))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "ptq.toml").write_text('[test_section]\nlimit = 6\n')
    assert load_config(tmp_path).section("test_section") == {"limit": 6}  # pyproject has no [tool.ptq]
    (tmp_path / "pyproject.toml").write_text('[tool.ptq.test_section]\nlimit = 5\n')
    with pytest.raises(UserError, match=r"results/ptq.toml and \[tool.ptq\] in .*pyproject.toml both configure ptq, "
                                        r"and only one is read; keep one: .*"):
        load_config(tmp_path)
    (tmp_path / "results" / "ptq.toml").unlink()
    assert load_config(tmp_path).section("test_section") == {"limit": 5}
    (tmp_path / "results" / "ptq.toml").write_text("[test_section\n")
    (tmp_path / "pyproject.toml").unlink()
    with pytest.raises(UserError, match=r"cannot parse ptq config .*ptq.toml: .*; fix the TOML syntax"):
        load_config(tmp_path)


def test_results_file_errors_name_its_own_headers(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "ptq.toml").write_text('[gate.cases."a.b"]\nalpha = 1\n')
    with pytest.raises(UserError, match=r'ptq.toml: \[gate.cases."a.b"\] alpha = 1 is out of range'):
        load_config(tmp_path)


@pytest.mark.parametrize(("value", "inside"), [(0, False), (1e-9, True), (0.5, True), (1, False), (math.nan, False),
                                               (math.inf, False)])
def test_an_open_range_excludes_its_ends_and_every_range_excludes_non_finite(value, inside):
    assert (value in Range(0, 1, low_open=True, high_open=True)) is inside


@pytest.mark.parametrize(("bound", "text"), [(Range(0), ">= 0"), (Range(0, low_open=True), "> 0"),
                                             (Range(high=1), "<= 1"), (Range(0, 1, high_open=True), "in [0, 1)")])
def test_a_range_says_itself(bound, text):
    assert str(bound) == text


GATE_REFUSALS = [
    ({"latency_threshold": -1}, "[tool.ptq.gate] latency_threshold = -1 is out of range: it must be >= 0 (a fraction "
                                "of the latency statistic: 0.05 is 5%)"),
    ({"alpha": 5}, "[tool.ptq.gate] alpha = 5 is out of range: it must be in (0, 1) (a p-value cutoff)"),
    ({"alpha": 0}, "[tool.ptq.gate] alpha = 0 is out of range: it must be in (0, 1) (a p-value cutoff)"),
    ({"memory_absolute": -100}, "[tool.ptq.gate] memory_absolute = -100 is out of range: it must be >= 0 (bytes)"),
    ({"size_threshold": -0.5}, "[tool.ptq.gate] size_threshold = -0.5 is out of range: it must be >= 0 (a fraction "
                               "of serialized bytes: 0.01 is 1%)"),
    ({"speedup_threshold": 1}, "[tool.ptq.gate] speedup_threshold = 1 is out of range: it must be in [0, 1) *"),
    ({"cases": {"resnet18-static_int8": {"drift_tolerance": -0.1}}},
     "[tool.ptq.gate.cases.resnet18-static_int8] drift_tolerance = -0.1 is out of range: it must be >= 0 *"),
    ({"recipes": {"static_int8": {"memory_threshold": math.inf}}},
     "[tool.ptq.gate.recipes.static_int8] memory_threshold = inf is out of range: it must be >= 0 *"),
]


@pytest.mark.parametrize(("table", "message"), GATE_REFUSALS)
def test_gate_values_out_of_range_are_refused_naming_scope_value_and_range(table, message):
    import fnmatch

    with pytest.raises(UserError) as caught:
        validate({"gate": table}, "pyproject.toml")
    assert fnmatch.fnmatchcase(str(caught.value), f"pyproject.toml: {message}".replace("[", "[[]")), str(caught.value)


def test_gate_defaults_are_inside_their_declared_ranges():
    assert validate({"gate": DEFAULTS}, "defaults").section("gate") == DEFAULTS


def test_a_type_error_names_the_type_in_words():
    with pytest.raises(UserError, match=r"\[tool.ptq.tolerance\] min_sqnr_db = 'high': must be a number$") as caught:
        validate({"tolerance": {"min_sqnr_db": "high"}}, "pyproject.toml")
    assert "<class" not in str(caught.value)


def test_constraints_on_undeclared_keys_are_refused():
    with pytest.raises(UserError, match=r"config section 'x' constrains undeclared key\(s\) limt; declare them in keys"):
        Section("x", {"limit": int}, bounds={"limt": Range(0)})


def test_a_bad_config_value_is_a_usage_error_before_any_benchmark(pytester: pytest.Pytester):
    pytester.makepyprojecttoml("[tool.ptq.gate.models.micro_linear_256]\nalpha = 5\n")
    pytester.makepyfile(test_suite="def test_case(ptq_bench):\n    ptq_bench()\n")
    result = pytester.runpytest_subprocess("--benchmark-only", "--ptq-models=micro_linear_256", "--ptq-recipes=fp32",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *pyproject.toml: [[]tool.ptq.gate.models.micro_linear_256[]] alpha = 5 is out "
                                 "of range: it must be in (0, 1) (a p-value cutoff)"])
    assert "passed" not in result.stdout.str()


def test_a_bad_config_value_is_a_cli_usage_error(tmp_path, capsys):
    import json

    from gate_fixtures import bench, run, samples

    from ptq.cli import main

    (tmp_path / "pyproject.toml").write_text("[tool.ptq.gate]\nlatency_threshold = -1\n")
    (tmp_path / "run.json").write_text(json.dumps(run(bench("m-fp32", samples(1e-3)))))
    assert main(["compare", "--root", str(tmp_path), str(tmp_path / "run.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ptq: error: ") and "latency_threshold = -1 is out of range" in err
    assert len(err.strip().splitlines()) == 1


def test_the_repositorys_own_config_loads_in_a_fresh_process():
    # Sections register on import; a command that never imports the drift probe must still
    # accept [tool.ptq.tolerance] (ptq compare once refused this repository's pyproject).
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = "from ptq.run.config import load_config; c = load_config('.'); print(sorted(c.data))"
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "tolerance" in done.stdout


@pytest.mark.parametrize(("line", "message"), [
    ("min_top1_agreement = 75", "min_top1_agreement = 75 is out of range: it must be in [0, 1] (a share: 0.01 is 1%)"),
    ("min_cosine = 2", "min_cosine = 2 is out of range: it must be in [-1, 1] (a cosine similarity)"),
])
def test_drift_tolerances_outside_their_domain_are_refused_when_the_config_loads(tmp_path, line, message):
    import ptq.probes.drift.profiles  # noqa: F401  (registers [tool.ptq.tolerance])

    (tmp_path / "pyproject.toml").write_text(f"[tool.ptq.tolerance]\n{line}\n")
    with pytest.raises(UserError, match=re.escape(message)):
        load_config(tmp_path)
