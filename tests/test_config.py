import fnmatch
import json
import math
import re

import pytest

from ptq.config import Config, Range, Section, load_config, register_section, validate
from ptq.errors import UserError
from ptq.gate.judges import DEFAULTS

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
    assert cfg.resolve("test_section", model="other", recipe="other", defaults={"limit": 0, "name": "d"}) == {
        "limit": 1,
        "name": "d",
    }
    assert cfg.resolve("test_section", model="resnet18", recipe="fp32")["limit"] == 2
    assert cfg.resolve("test_section", model="resnet18", recipe="static_int8")["limit"] == 4
    assert cfg.resolve("test_section", model="mobilenet_v2", recipe="static_int8")["limit"] == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nope": {}}, r"unknown section \[tool.ptq.nope\]; valid sections: .*test_section"),
        ({"test_section": {"limt": 1}}, r"unknown key 'limt' in \[tool.ptq.test_section\]; valid keys: limit, name"),
        (
            {"test_section": {"limit": "high"}},
            r"^pyproject.toml: \[tool.ptq.test_section\] limit = 'high': must be a number$",
        ),
        ({"test_section": {"limit": True}}, r"\] limit = True: must be a number$"),
        ({"test_section": {"name": 3}}, r"\] name = 3: must be a string$"),
        (
            {"test_section": {"models": {"resnet18": {"limt": 1}}}},
            r"unknown key 'limt' in \[tool.ptq.test_section.models.resnet18\]; valid keys: limit, name",
        ),
        (
            {"test_section": {"models": 3}},
            r"models in \[tool.ptq.test_section\] must hold tables such as "
            r"\[tool.ptq.test_section.models.NAME\]",
        ),
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
    (tmp_path / "results" / "ptq.toml").write_text("[test_section]\nlimit = 6\n")
    assert load_config(tmp_path).section("test_section") == {"limit": 6}  # pyproject has no [tool.ptq]
    (tmp_path / "pyproject.toml").write_text("[tool.ptq.test_section]\nlimit = 5\n")
    with pytest.raises(
        UserError,
        match=r"results/ptq.toml and \[tool.ptq\] in .*pyproject.toml both configure ptq, "
        r"and only one is read; keep one: .*",
    ):
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


@pytest.mark.parametrize(
    ("value", "inside"), [(0, False), (1e-9, True), (0.5, True), (1, False), (math.nan, False), (math.inf, False)]
)
def test_an_open_range_excludes_its_ends_and_every_range_excludes_non_finite(value, inside):
    assert (value in Range(0, 1, low_open=True, high_open=True)) is inside


@pytest.mark.parametrize(
    ("bound", "text"),
    [
        (Range(0), ">= 0"),
        (Range(0, low_open=True), "> 0"),
        (Range(high=1), "<= 1"),
        (Range(0, 1, high_open=True), "in [0, 1)"),
    ],
)
def test_a_range_says_itself(bound, text):
    assert str(bound) == text


GATE_REFUSALS = [
    (
        {"latency_threshold": -1},
        "[tool.ptq.gate] latency_threshold = -1 is out of range: it must be >= 0 (a fraction "
        "of the latency statistic: 0.05 is 5%)",
    ),
    ({"alpha": 5}, "[tool.ptq.gate] alpha = 5 is out of range: it must be in (0, 1) (a p-value cutoff)"),
    ({"alpha": 0}, "[tool.ptq.gate] alpha = 0 is out of range: it must be in (0, 1) (a p-value cutoff)"),
    ({"memory_absolute": -100}, "[tool.ptq.gate] memory_absolute = -100 is out of range: it must be >= 0 (bytes)"),
    (
        {"size_threshold": -0.5},
        "[tool.ptq.gate] size_threshold = -0.5 is out of range: it must be >= 0 (a fraction "
        "of serialized bytes: 0.01 is 1%)",
    ),
    ({"speedup_threshold": 1}, "[tool.ptq.gate] speedup_threshold = 1 is out of range: it must be in [0, 1) *"),
    (
        {"cases": {"resnet18-static_int8": {"drift_tolerance": -0.1}}},
        "[tool.ptq.gate.cases.resnet18-static_int8] drift_tolerance = -0.1 is out of range: it must be >= 0 *",
    ),
    (
        {"recipes": {"static_int8": {"memory_threshold": math.inf}}},
        "[tool.ptq.gate.recipes.static_int8] memory_threshold = inf is out of range: it must be >= 0 *",
    ),
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
    with pytest.raises(
        UserError, match=r"config section 'x' constrains undeclared key\(s\) limt; declare them in keys"
    ):
        Section("x", {"limit": int}, bounds={"limt": Range(0)})


@pytest.mark.slow
def test_a_bad_config_value_is_a_usage_error_before_any_benchmark(pytester: pytest.Pytester):
    pytester.makepyprojecttoml("[tool.ptq.gate.models.micro_linear_256]\nalpha = 5\n")
    pytester.makepyfile(test_suite="def test_case(ptq_bench):\n    ptq_bench()\n")
    result = pytester.runpytest_subprocess(
        "--benchmark-only", "--ptq-models=micro_linear_256", "--ptq-recipes=fp32", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: *pyproject.toml: [[]tool.ptq.gate.models.micro_linear_256[]] alpha = 5 is out "
            "of range: it must be in (0, 1) (a p-value cutoff)"
        ]
    )
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
    code = "from ptq.config import load_config; c = load_config('.'); print(sorted(c.data))"
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "tolerance" in done.stdout


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "min_top1_agreement = 75",
            "min_top1_agreement = 75 is out of range: it must be in [0, 1] (a share: 0.01 is 1%)",
        ),
        ("min_cosine = 2", "min_cosine = 2 is out of range: it must be in [-1, 1] (a cosine similarity)"),
    ],
)
def test_drift_tolerances_outside_their_domain_are_refused_when_the_config_loads(tmp_path, line, message):
    import ptq.probes.drift.profiles  # noqa: F401  (registers [tool.ptq.tolerance])

    (tmp_path / "pyproject.toml").write_text(f"[tool.ptq.tolerance]\n{line}\n")
    with pytest.raises(UserError, match=re.escape(message)):
        load_config(tmp_path)


# Bad inputs, round three (issue 29): rows 7, 17 (config values), 22 and 23.


def _files(root) -> list[str]:
    """The files under ``root``, less what pytester keeps there of the session it runs (its
    temporary directory, its captured stdout and stderr)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).parts[0].startswith(("runpytest", "stdout", "stderr"))
    )


def _pytest_with_config(pytester: pytest.Pytester, *args: str):
    pytester.makepyfile(test_suite="def test_case(ptq_bench):\n    ptq_bench()\n")
    before = _files(pytester.path)
    result = pytester.runpytest_subprocess(
        "--benchmark-only",
        "--ptq-models=micro_linear_256",
        "--ptq-recipes=fp32",
        "--ptq-save-baseline",
        "-p",
        "no:cacheprovider",
        *args,
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output
    [error] = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()  # no case ran
    assert _files(pytester.path) == before  # nothing saved, no baseline, no lock
    return error


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"lots"', "'lots': cannot parse size 'lots'; write bytes or a size such as '24 MB', '512 KiB' or '1.5 GiB'"),
        (
            '"-5 MB"',
            "'-5 MB': must be positive, got '-5 MB'; write bytes or a size such as '24 MB', '512 KiB' or '1.5 GiB'",
        ),
        ("-5", "-5: must be positive, got -5; write bytes or a size such as '24 MB', '512 KiB' or '1.5 GiB'"),
        ('"1e999 GB"', "'1e999 GB': cannot parse size '1e999 GB'; write bytes or a size such as *"),
    ],
    ids=["lots", "negative-size", "negative-bytes", "not-a-number"],
)
def test_a_memory_budget_that_is_not_a_size_is_a_usage_error_before_any_benchmark(
    pytester: pytest.Pytester, value, problem
):
    """Row 7: collection passed, every case was timed, then each failed with a traceback, exit 1."""
    pytester.makepyprojecttoml(f"[tool.ptq.memory]\ninference_limit = {value}\n")
    error = _pytest_with_config(pytester)
    expected = f"ERROR: {pytester.path / 'pyproject.toml'}: [tool.ptq.memory] inference_limit = {problem}"
    assert fnmatch.fnmatchcase(error, expected.replace("[", "[[]")), error


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("min_sqnr_db = nan", "[tool.ptq.tolerance] min_sqnr_db = nan: must be a finite number"),
        ("max_perplexity_rise = inf", "[tool.ptq.tolerance] max_perplexity_rise = inf: must be a finite number"),
        ("min_cosine = -inf", "[tool.ptq.tolerance] min_cosine = -inf is out of range: it must be in [-1, 1] *"),
    ],
)
def test_a_config_value_that_is_not_a_finite_number_is_refused(tmp_path, line, message):
    """Row 17's config half: TOML spells nan and inf; an unbounded key took them."""
    (tmp_path / "pyproject.toml").write_text(f"[tool.ptq.tolerance]\n{line}\n")
    with pytest.raises(UserError) as caught:
        load_config(tmp_path)
    assert fnmatch.fnmatchcase(str(caught.value), f"{tmp_path / 'pyproject.toml'}: {message}".replace("[", "[[]"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("data", "why"),
    [
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
            "not UTF-8 text (byte 0x89 at offset 0), so not TOML; restore it, write its settings as TOML, or delete it",
        ),
        (b"[gate]\nalpha = 0.01\n\x00\x01\x02", "*; fix the TOML syntax"),
    ],
    ids=["binary", "nul-bytes"],
)
def test_a_binary_results_ptq_toml_is_one_usage_error(pytester: pytest.Pytester, data, why):
    """Row 22: was INTERNALERROR (UnicodeDecodeError), exit 3."""
    (pytester.path / "results").mkdir()
    (pytester.path / "results" / "ptq.toml").write_bytes(data)
    error = _pytest_with_config(pytester)
    path = pytester.path / "results" / "ptq.toml"
    lead = "ERROR: cannot read ptq config" if "UTF-8" in why else "ERROR: cannot parse ptq config"
    assert fnmatch.fnmatchcase(error, f"{lead} {path}: {why}"), error
    assert path.read_bytes() == data


def test_an_unreadable_config_and_a_non_table_tool_ptq_are_one_cli_error(tmp_path, capsys):
    from gate_fixtures import bench, run, samples

    from ptq.cli import main

    (tmp_path / "run.json").write_text(json.dumps(run(bench("m-fp32", samples(1e-3)))))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "ptq.toml").mkdir()  # a directory where the file goes
    assert main(["compare", "--root", str(tmp_path), str(tmp_path / "run.json")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(
            f"ptq: error: cannot read ptq config {tmp_path / 'results' / 'ptq.toml'}: is a directory; "
            "make it a readable file"
        )
        and len(err.splitlines()) == 1
    )
    (tmp_path / "results" / "ptq.toml").rmdir()
    (tmp_path / "pyproject.toml").write_text("[tool]\nptq = 5\n")
    with pytest.raises(
        UserError, match=r"pyproject.toml: tool.ptq = 5 must be a table \(\[tool.ptq.\*\] sections\); fix it"
    ):
        load_config(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "gate.models.no_such_model",
            "[tool.ptq.gate.models.no_such_model] names no registered model 'no_such_model', so "
            "its settings would apply to nothing; fix the name (ptq list models) or delete the "
            "table",
        ),
        (
            "tolerance.models.micro_linear_265",
            "[tool.ptq.tolerance.models.micro_linear_265] names no registered model "
            "'micro_linear_265', so its settings would apply to nothing; nearest: "
            "micro_linear_256*; fix the name (ptq list models) or delete the table",
        ),
        (
            "gate.recipes.static_int9",
            "[tool.ptq.gate.recipes.static_int9] names no registered recipe 'static_int9', *"
            "nearest: static_int8*; fix the name (ptq list recipes) or delete the table",
        ),
        (
            'gate.cases."micro_linear_256-fp64"',
            "[tool.ptq.gate.cases.micro_linear_256-fp64] names no registered case "
            "'micro_linear_256-fp64', *; fix the name (MODEL-RECIPE: ptq list models, "
            "ptq list recipes) or delete the table",
        ),
    ],
    ids=["model", "model-typo", "recipe", "case"],
)
def test_a_config_table_naming_no_registered_model_recipe_or_case_is_refused(pytester: pytest.Pytester, table, message):
    """Row 23, first half: accepted silently, its settings applied to nothing."""
    pytester.makepyprojecttoml(
        f"[tool.ptq.{table}]\n{'alpha = 0.05' if table.startswith('gate') else 'min_cosine = 0.5'}\n"
    )
    error = _pytest_with_config(pytester)
    expected = f"ERROR: {pytester.path / 'pyproject.toml'}: {message}"
    assert fnmatch.fnmatchcase(error, expected.replace("[", "[[]")), error


@pytest.mark.slow
def test_config_tables_of_registered_names_and_of_the_projects_own_models_pass(pytester: pytest.Pytester):
    pytester.makeconftest("""
import torch
from ptq.models import Built, TensorData, register_model


@register_model("acme_net", batch_size=2)
def acme_net(*, weights):
    return Built(torch.nn.Linear(4, 2), weights="random", data=TensorData(lambda g, n: (torch.rand(n, 4, generator=g),), "rand(4)"))
""")
    pytester.makepyprojecttoml(
        "[tool.ptq.gate.models.acme_net]\nalpha = 0.05\n[tool.ptq.gate.recipes.fp32]\nalpha = 0.05\n"
        '[tool.ptq.tolerance.cases."micro_linear_256-dynamic_int8"]\nmin_cosine = 0.5\n'
    )
    pytester.makepyfile(test_suite="def test_case(ptq_bench):\n    ptq_bench()\n")
    result = pytester.runpytest_subprocess(
        "--benchmark-only",
        "--ptq-models=acme_net",
        "--ptq-recipes=fp32",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["test_suite.py::test_case[[]acme_net-fp32[]]"])
