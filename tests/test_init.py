"""``ptq init``: a new project gets a working suite and workflows that pass GitHub's schema and
zizmor; nothing that exists is ever overwritten."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ptq.cli import main
from ptq.cli.init import TARGETS, WORKFLOWS_FROM
from ptq.run.config import load_config

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
TREE = sorted([*TARGETS.values(), "pyproject.toml"])
CALLERS = (".github/workflows/ptq.yml", ".github/workflows/ptq-comment.yml")


def _init(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["init", str(tmp_path), *args])
    return code, capsys.readouterr().out


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _uncomment_example(conftest: Path) -> None:
    """The generated conftest.py with its commented example switched on, as its marker says."""
    out, inside = [], False
    for line in conftest.read_text().splitlines():
        if line.startswith("# ptq example"):
            inside = not line.startswith("# ptq example end")
            continue
        out.append((line[2:] if line.startswith("# ") else "") if inside else line)
    conftest.write_text("\n".join(out) + "\n")


def test_init_then_benchmark_a_model_registered_in_the_generated_conftest(tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    code, out = _init(project, capsys)
    assert code == 0 and _tree(project) == TREE
    assert all(f"wrote {path}" in out for path in TREE)
    _uncomment_example(project / "conftest.py")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "--ptq-models=my_*",
         "--ptq-recipes=fp32,dynamic_int8,static_int8_calib16", "--benchmark-json=out.json", "--benchmark-min-rounds=3",
         "--benchmark-max-time=0.01", "--ptq-warmup=1", "--ptq-pair-time=0.01", "-p", "no:cacheprovider"],
        cwd=project, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"\b3 passed\b", run.stdout), run.stdout[-2000:]
    cases = {b["extra_info"]["case"] for b in json.loads((project / "out.json").read_text())["benchmarks"]}
    assert cases == {"my_mlp-fp32", "my_mlp-dynamic_int8", "my_mlp-static_int8_calib16"}


def test_the_generated_workflows_pass_githubs_schema_and_zizmor_and_the_caller_is_short(tmp_path, capsys):
    assert _init(tmp_path, capsys)[0] == 0
    workflows = [str(tmp_path / p) for p in CALLERS]
    schema = subprocess.run([BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows],
                            capture_output=True, text=True)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    dependabot = subprocess.run([BIN / "check-jsonschema", "--builtin-schema", "vendor.dependabot",
                                 str(tmp_path / ".github" / "dependabot.yml")], capture_output=True, text=True)
    assert dependabot.returncode == 0, dependabot.stdout + dependabot.stderr
    audit = subprocess.run([BIN / "zizmor", "--offline", "--format", "json", "--min-severity", "low", *workflows,
                            str(tmp_path / ".github" / "dependabot.yml")], capture_output=True, text=True)
    assert json.loads(audit.stdout) == [], audit.stdout[:3000]
    assert len((tmp_path / CALLERS[0]).read_text().splitlines()) < 30


def test_the_callers_pin_the_reusable_workflows_and_pass_only_inputs_they_declare(tmp_path, capsys):
    assert _init(tmp_path, capsys, "--models", "acme_*,resnet_custom")[0] == 0
    repo, sha = WORKFLOWS_FROM.split("@")
    for caller in CALLERS:
        for name, job in yaml.safe_load((tmp_path / caller).read_text())["jobs"].items():
            path, ref = job["uses"].split("@")
            assert path.startswith(f"{repo}/.github/workflows/reusable-") and ref == sha, name
            declared = yaml.safe_load((ROOT / path.removeprefix(f"{repo}/")).read_text())[True]["workflow_call"]
            assert set(job.get("with", {})) <= set((declared or {}).get("inputs", {})), name
            if "with" in job:
                assert job["with"]["models"] == "acme_*,resnet_custom"


def test_the_pinned_commit_holds_the_reusable_workflows():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the pinned commit cannot be looked up")
    sha = WORKFLOWS_FROM.split("@")[1]
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True)
    if shallow.stdout.strip() == "true":
        pytest.skip("a shallow clone: the pinned commit may not be in it (fetch the history to check the pin)")
    for name in ("gate", "history", "baselines", "comment"):
        done = subprocess.run(["git", "cat-file", "-e", f"{sha}:.github/workflows/reusable-{name}.yml"], cwd=ROOT,
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{sha} has no reusable-{name}.yml: {done.stderr}"
        pinned = subprocess.run(["git", "show", f"{sha}:.github/workflows/reusable-{name}.yml"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout
        current = (ROOT / ".github" / "workflows" / f"reusable-{name}.yml").read_text()
        assert pinned == current, (f"reusable-{name}.yml changed since the commit ptq init pins ({sha}): point "
                                   "ptq.cli.init.WORKFLOWS_FROM at the commit that changed it")


def test_init_never_overwrites_and_names_what_it_would_have_written(tmp_path, capsys):
    (tmp_path / "conftest.py").write_text("MINE = 1\n")
    code, out = _init(tmp_path, capsys)
    assert code == 1
    assert (tmp_path / "conftest.py").read_text() == "MINE = 1\n"
    assert "kept conftest.py: exists; left as is; what ptq init would have written:" in out
    assert '    # @register_model("my_mlp", batch_size=8)' in out
    assert "left as they were: conftest.py (ptq init never overwrites)" in out
    assert "wrote benchmarks/test_ptq.py" in out
    before = {p: (tmp_path / p).read_text() for p in TREE}
    assert _init(tmp_path, capsys)[0] == 1  # a second run changes nothing
    assert {p: (tmp_path / p).read_text() for p in TREE} == before


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    code, out = _init(tmp_path, capsys, "--dry-run")
    assert code == 0 and _tree(tmp_path) == []
    assert out.splitlines() == [f"would write {path}" for path in [*TARGETS.values(), "pyproject.toml"]]


def test_tool_ptq_is_appended_to_an_existing_pyproject_keeping_its_comments(tmp_path, capsys):
    mine = '[project]\nname = "acme"  # our package\n\n[tool.ruff]\nline-length = 100'  # no final newline
    (tmp_path / "pyproject.toml").write_text(mine)
    code, out = _init(tmp_path, capsys)
    assert code == 0 and "appended [tool.ptq] to pyproject.toml" in out
    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith(mine + "\n") and "[tool.ptq.tolerance]" in text
    config = load_config(tmp_path)  # the section ptq reads, valid
    assert config.section("tolerance")["max_relative_accuracy_drop"] == 0.01


def test_an_existing_tool_ptq_is_left_as_it_is(tmp_path, capsys):
    mine = "[tool.ptq.gate]\nmemory_threshold = 0.1\n"
    (tmp_path / "pyproject.toml").write_text(mine)
    code, out = _init(tmp_path, capsys)
    assert code == 1 and (tmp_path / "pyproject.toml").read_text() == mine
    assert "kept pyproject.toml: already has [tool.ptq]; left as is" in out


@pytest.mark.parametrize(("setup", "args", "message"), [
    ("broken", (), "pyproject.toml: cannot parse it"),
    ("inline", (), "[tool.ptq] cannot be appended"),
    ("", ("--workflows-from", "pytest-ptq/ptq@v1"), "--workflows-from='pytest-ptq/ptq@v1': give OWNER/REPO@SHA"),
    ("", ("--model", "my-mlp"), "--model='my-mlp': must be a Python identifier"),
], ids=["unparseable-pyproject", "tool-as-inline-table", "workflows-not-pinned", "model-not-identifier"])
def test_bad_input_is_one_error_and_nothing_is_written(tmp_path, capsys, setup, args, message):
    if setup:
        (tmp_path / "pyproject.toml").write_text({"broken": "[project\n", "inline": 'tool = {ruff = {}}\n'}[setup])
    before = _tree(tmp_path)
    code = main(["init", str(tmp_path), *args])
    assert code == 2 and message in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_a_directory_that_does_not_exist_is_a_usage_error(tmp_path, capsys):
    assert main(["init", str(tmp_path / "nope")]) == 2
    assert "nope: no such directory" in capsys.readouterr().err
