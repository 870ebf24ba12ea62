"""``ptq init``: a new project gets a working suite and workflows that pass GitHub's schema and
zizmor; nothing that exists is ever overwritten."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import unprivileged
import yaml

from ptq import __version__
from ptq.cli import main
from ptq.cli.init import GITIGNORE, TARGETS, WORKFLOWS_FROM, next_commands
from ptq.config import load_config
from ptq.host.cache import atomic_write
from ptq.recipes import list_recipes
from ptq.run.matrix import MATRICES

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
TREE = sorted([*TARGETS.values(), "pyproject.toml", ".gitignore"])
CALLERS = (".github/workflows/ptq.yml", ".github/workflows/ptq-comment.yml")
#: Small sessions: what is checked is that every case runs and passes its drift tolerances, not its timing.
FAST = [
    "--benchmark-min-rounds=3",
    "--benchmark-max-time=0.01",
    "--ptq-warmup=1",
    "--ptq-pair-time=0.01",
    "--ptq-placements=2",
    "--ptq-rerun-target=0",
    "-p",
    "no:cacheprovider",
]


def _init(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["init", str(tmp_path), *args])
    return code, capsys.readouterr().out


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", *args, *FAST],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _ptq_init(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ptq init`` in a process of its own, as a user runs it: what the project's conftest files
    register stays out of this session's registries."""
    return subprocess.run(
        [sys.executable, "-m", "ptq.cli", "init", str(project), *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_init_then_benchmark_the_example_model_it_writes(tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    code, out = _init(project, capsys)
    assert code == 0 and _tree(project) == TREE
    assert all(f"wrote {path}" in out for path in TREE)
    assert out.splitlines()[0] == "models: my_mlp (the example model ptq init writes in conftest.py)"
    assert [line.strip() for line in out.splitlines() if line.startswith("  ")] == next_commands("my_mlp")
    run = _pytest(
        project, "--ptq-models=my_*", "--ptq-recipes=fp32,dynamic_int8,static_int8_calib16", "--benchmark-json=out.json"
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"\b3 passed\b", run.stdout), run.stdout[-2000:]
    cases = {b["extra_info"]["case"] for b in json.loads((project / "out.json").read_text())["benchmarks"]}
    assert cases == {"my_mlp-fp32", "my_mlp-dynamic_int8", "my_mlp-static_int8_calib16"}


@pytest.mark.slow
def test_the_example_model_passes_every_recipe_of_the_default_matrix(tmp_path, capsys):
    """The first run a user makes, as ``ptq init``'s hint says (its timings cut short): every case
    of the matrix runs, within the default drift tolerances, or is skipped for what the machine lacks."""
    assert _init(tmp_path, capsys)[0] == 0
    run = _pytest(tmp_path, "--ptq-models=my_mlp", "--benchmark-json=out.json", "-rs")
    assert run.returncode == 0 and " failed" not in run.stdout, run.stdout[-5000:] + run.stderr[-3000:]
    project = MATRICES["project"]  # the matrix a project that registers models runs by default
    wanted = {f"my_mlp-{r}" for r in [*list_recipes(project.recipes, project.exclude_recipes), "static_int8_calib16"]}
    measured = {
        b["extra_info"]["case"]: b["extra_info"] for b in json.loads((tmp_path / "out.json").read_text())["benchmarks"]
    }
    skipped = set(re.findall(r"^SKIPPED \[\d+\] \S+: (my_mlp-\w+):", run.stdout, re.M))
    assert set(measured) | skipped == wanted and not set(measured) & skipped, run.stdout[-3000:]
    for case, info in measured.items():
        drift = info["metrics"]["drift"]
        assert drift["passed"] and drift["violations"] == [], (case, drift)
    for core in ("fp32", "dynamic_int8", "static_int8", "static_int8_jit", "static_int8_calib16"):
        assert f"my_mlp-{core}" in measured  # torch alone runs these on any CPU


@pytest.mark.slow
@pytest.mark.parametrize("where", ["conftest.py", "benchmarks/conftest.py"])
def test_the_workflows_run_the_models_the_projects_conftest_registers(tmp_path, where):
    (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / where).write_text(CONFTEST_WITH_MODELS)
    done = _ptq_init(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "models: acme_net,acme_cnn (registered by the project's conftest)"
    for caller in (".github/workflows/ptq.yml",):
        for job in yaml.safe_load((tmp_path / caller).read_text())["jobs"].values():
            assert job["with"]["models"] == "acme_net,acme_cnn"
    assert [line.strip() for line in done.stdout.splitlines() if line.startswith("  ")] == next_commands(
        "acme_net,acme_cnn"
    )
    assert next_commands("acme_net,acme_cnn")[0] == (
        "pytest benchmarks --benchmark-only --ptq-models=acme_net,acme_cnn --ptq-save-baseline"
    )
    conftest = (tmp_path / "conftest.py").read_text()
    if where == "conftest.py":  # the project's own, left as it is and not named as kept
        assert (
            conftest == CONFTEST_WITH_MODELS
            and "left conftest.py as it is: the project's; its models: acme_net, acme_cnn" in done.stdout
        )
    else:  # ptq's, with the example commented out: the project has models of its own
        assert "wrote conftest.py" in done.stdout
        assert '# @register_model("my_mlp", batch_size=8)' in conftest and "\n@register_model" not in conftest
    # --models wins over what the project registers
    (tmp_path / ".github" / "workflows" / "ptq.yml").unlink()
    assert _ptq_init(tmp_path, "--models", "acme_*").returncode == 1  # the rest exists
    assert (
        yaml.safe_load((tmp_path / ".github" / "workflows" / "ptq.yml").read_text())["jobs"]["gate"]["with"]["models"]
        == "acme_*"
    )


CONFTEST_WITH_MODELS = """import torch
from ptq.models import Built, TensorData, register_model


def _build(*, weights):
    data = TensorData(lambda g, n: (torch.rand(n, 4, generator=g),), "rand(4)")
    return Built(torch.nn.Linear(4, 2), weights="random", data=data)


register_model("acme_net", batch_size=2)(_build)
register_model("acme_cnn", batch_size=2)(_build)
"""


def test_a_conftest_that_cannot_be_imported_is_one_error_naming_it(tmp_path, capsys):
    (tmp_path / "conftest.py").write_text("import no_such_module_here\n")
    assert main(["init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "conftest.py cannot be imported (ModuleNotFoundError" in err and "or name the models with --models" in err
    assert _tree(tmp_path) == ["conftest.py"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("files", "editable"),
    [
        ({}, False),
        ({"pyproject.toml": "[tool.ruff]\nline-length = 100\n"}, False),
        ({"pyproject.toml": '[project]\nname = "acme"\nversion = "1"\n'}, True),
        ({"pyproject.toml": '[build-system]\nrequires = ["hatchling"]\n'}, True),
        ({"setup.py": "\n"}, True),
    ],
    ids=["bare", "pyproject-tools-only", "pyproject-project", "pyproject-build-system", "setup-py"],
)
def test_the_runners_install_ptq_with_every_extra_and_the_project_where_it_installs(tmp_path, capsys, files, editable):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert _init(tmp_path, capsys)[0] == 0
    pin = f"'pytest-ptq[all]=={__version__}'"
    for job in yaml.safe_load((tmp_path / CALLERS[0]).read_text())["jobs"].values():
        assert job["with"]["install"] == (f"pip install {pin} -e ." if editable else f"pip install {pin}")
    # as the reusable workflows run it: eval "$INSTALL"
    install = yaml.safe_load((tmp_path / CALLERS[0]).read_text())["jobs"]["gate"]["with"]["install"]
    echoed = subprocess.run(
        ["bash", "-c", 'pip() { printf "%s\\n" "$@"; }; eval "$INSTALL"'],
        text=True,
        capture_output=True,
        env={"INSTALL": install, "PATH": os.environ["PATH"]},
    )
    assert echoed.stdout.splitlines() == [
        "install",
        f"pytest-ptq[all]=={__version__}",
        *(["-e", "."] if editable else []),
    ]


def test_a_gitignore_is_written_or_given_the_lines_it_lacks(tmp_path, capsys):
    assert _init(tmp_path, capsys)[0] == 0
    written = (tmp_path / ".gitignore").read_text().splitlines()
    assert written[0].startswith("# ptq") and written[1:] == list(GITIGNORE)
    assert {"results/**/*.lock", ".*.tmp", ".benchmarks/"} <= set(GITIGNORE)
    other = tmp_path / "other"
    other.mkdir()
    mine = "# ours\n.venv\n/.benchmarks\n*.pyc"  # no final newline; .benchmarks/ there already
    (other / ".gitignore").write_text(mine)
    code, out = _init(other, capsys)
    assert code == 0 and "appended ptq's ignores to .gitignore" in out
    text = (other / ".gitignore").read_text()
    assert text.startswith(mine + "\n# ptq") and text.count(".benchmarks") == 1
    assert [line for line in GITIGNORE if line not in text.splitlines()] == [".benchmarks/"]
    (other / "pyproject.toml").unlink()
    code, out = _init(other, capsys)  # everything there: the .gitignore is left as it is
    assert code == 1 and "kept .gitignore: already ignores ptq's files; left as is" in out
    assert (other / ".gitignore").read_text() == text


def test_the_gitignore_keeps_what_ptq_writes_out_of_git_add(tmp_path, capsys):
    assert _init(tmp_path, capsys)[0] == 0
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    made = [
        "results/baselines/abc.json.lock",
        "results/baselines/.abc.json.x1y2.tmp",
        ".benchmarks/Linux/0001.json",
        "benchmarks/__pycache__/test_ptq.cpython-311.pyc",
        "results/baselines/abc.json",
    ]
    for name in made:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    added = subprocess.run(["git", "add", "-A", "--dry-run"], cwd=tmp_path, capture_output=True, text=True, check=True)
    staged = {line.removeprefix("add '").removesuffix("'") for line in added.stdout.splitlines()}
    assert "results/baselines/abc.json" in staged and not set(made[:-1]) & staged


@pytest.mark.slow
@pytest.mark.parametrize("project", ["bare", "installable-with-models"])
def test_the_generated_workflows_pass_githubs_schema_and_zizmor_and_the_caller_is_short(tmp_path, capsys, project):
    if project == "bare":
        assert _init(tmp_path, capsys)[0] == 0
    else:  # install "pip install 'pytest-ptq[all]==V' -e .", models from its conftest: quotes and commas in the YAML
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "acme"\nversion = "1"\n')
        (tmp_path / "conftest.py").write_text(CONFTEST_WITH_MODELS)
        assert _ptq_init(tmp_path).returncode == 0
        assert (
            "-e ." in (tmp_path / CALLERS[0]).read_text() and "acme_net,acme_cnn" in (tmp_path / CALLERS[0]).read_text()
        )
    workflows = [str(tmp_path / p) for p in CALLERS]
    schema = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows],
        capture_output=True,
        text=True,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    dependabot = subprocess.run(
        [
            BIN / "check-jsonschema",
            "--builtin-schema",
            "vendor.dependabot",
            str(tmp_path / ".github" / "dependabot.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert dependabot.returncode == 0, dependabot.stdout + dependabot.stderr
    audit = subprocess.run(
        [
            BIN / "zizmor",
            "--offline",
            "--format",
            "json",
            "--min-severity",
            "low",
            *workflows,
            str(tmp_path / ".github" / "dependabot.yml"),
        ],
        capture_output=True,
        text=True,
    )
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
        done = subprocess.run(
            ["git", "cat-file", "-e", f"{sha}:.github/workflows/reusable-{name}.yml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{sha} has no reusable-{name}.yml: {done.stderr}"
        pinned = subprocess.run(
            ["git", "show", f"{sha}:.github/workflows/reusable-{name}.yml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        current = (ROOT / ".github" / "workflows" / f"reusable-{name}.yml").read_text()
        assert pinned == current, (
            f"reusable-{name}.yml changed since the commit ptq init pins ({sha}): point "
            "ptq.cli.init.WORKFLOWS_FROM at the commit that changed it"
        )


def test_init_never_overwrites_and_names_what_it_would_have_written(tmp_path, capsys):
    (tmp_path / "conftest.py").write_text("MINE = 1\n")
    code, out = _init(tmp_path, capsys)
    assert code == 1
    assert (tmp_path / "conftest.py").read_text() == "MINE = 1\n"
    assert (
        "kept conftest.py: exists; left as is (to have it written again, delete it and rerun ptq init; "
        "--dry-run shows the plan); what ptq init would have written:"
    ) in out
    assert '    @register_model("my_mlp", batch_size=8)' in out  # it registers no model: the example, live
    assert "left as they were: conftest.py (ptq init never overwrites; delete a file to have it written again)" in out
    assert "wrote benchmarks/test_ptq.py" in out
    assert "next: register your models in conftest.py (the example above), then run:" in out
    before = {p: (tmp_path / p).read_text() for p in TREE}
    assert _init(tmp_path, capsys)[0] == 1  # a second run changes nothing
    assert {p: (tmp_path / p).read_text() for p in TREE} == before
    (tmp_path / ".github" / "workflows" / "ptq.yml").unlink()  # deleted: written again, with --models
    code, out = _init(tmp_path, capsys, "--models", "acme_*")
    assert code == 1 and "wrote .github/workflows/ptq.yml" in out
    assert yaml.safe_load((tmp_path / CALLERS[0]).read_text())["jobs"]["gate"]["with"]["models"] == "acme_*"


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    code, out = _init(tmp_path, capsys, "--dry-run")
    assert code == 0 and _tree(tmp_path) == []
    assert out.splitlines() == [
        "models: my_mlp (the example model ptq init writes in conftest.py)",
        *[f"would write {path}" for path in [*TARGETS.values(), "pyproject.toml", ".gitignore"]],
    ]


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
    assert (
        "kept pyproject.toml: already has [tool.ptq]; left as is (remove the section to have it appended again)" in out
    )


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("broken", (), "pyproject.toml: cannot parse it"),
        ("inline", (), "[tool.ptq] cannot be appended"),
        ("", ("--workflows-from", "pytest-ptq/ptq@v1"), "--workflows-from='pytest-ptq/ptq@v1': give OWNER/REPO@SHA"),
        ("", ("--model", "my-mlp"), "--model='my-mlp': must be a Python identifier"),
    ],
    ids=["unparseable-pyproject", "tool-as-inline-table", "workflows-not-pinned", "model-not-identifier"],
)
def test_bad_input_is_one_error_and_nothing_is_written(tmp_path, capsys, setup, args, message):
    if setup:
        (tmp_path / "pyproject.toml").write_text({"broken": "[project\n", "inline": "tool = {ruff = {}}\n"}[setup])
    before = _tree(tmp_path)
    code = main(["init", str(tmp_path), *args])
    assert code == 2 and message in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_a_directory_that_does_not_exist_is_a_usage_error(tmp_path, capsys):
    assert main(["init", str(tmp_path / "nope")]) == 2
    assert "nope: no such directory" in capsys.readouterr().err


@pytest.mark.slow
def test_the_readme_sequence_is_install_init_then_the_commands_init_prints():
    section = (ROOT / "README.md").read_text().split("## Use ptq in your repository\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert block[0] == "pip install 'pytest-ptq[all]'" and block[1].split("#")[0].strip() == "ptq init"
    assert block[2:] == next_commands("acme_mlp")


# Bad inputs, round three (issue 29): rows 5, 10, 15 and 21.


def test_a_project_configured_through_results_ptq_toml_keeps_its_pyproject_as_it_is(tmp_path, capsys):
    """Row 5: [tool.ptq] appended beside results/ptq.toml made every later pytest run exit 4."""
    mine = '[project]\nname = "acme"\nversion = "1"\n'
    (tmp_path / "pyproject.toml").write_text(mine)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "ptq.toml").write_text("[gate]\nmemory_threshold = 0.1\n")
    code, out = _init(tmp_path, capsys)
    assert code == 0, out
    assert (tmp_path / "pyproject.toml").read_text() == mine
    assert (
        "left pyproject.toml as it is: ptq is configured in results/ptq.toml, and reads that or [tool.ptq], not "
        "both; [tool.ptq] not added (put settings in results/ptq.toml)"
    ) in out
    assert load_config(tmp_path).section("gate") == {"memory_threshold": 0.1}  # what pytest reads: no conflict
    # A project with no pyproject.toml at all gets none written either.
    bare = tmp_path / "bare"
    (bare / "results").mkdir(parents=True)
    (bare / "results" / "ptq.toml").write_text("")
    code, out = _init(bare, capsys)
    assert code == 0 and not (bare / "pyproject.toml").exists()
    assert "left pyproject.toml unwritten: ptq is configured in results/ptq.toml" in out
    assert load_config(bare).source == str(bare / "results" / "ptq.toml")


@pytest.mark.parametrize("blocker", ["read-only", "a-file"])
def test_a_github_directory_that_cannot_be_written_is_one_error_and_nothing_is_written(blocker):
    """Row 10: was a PermissionError traceback, exit 1, with 3 of 7 files written already."""
    with unprivileged.workspace() as project:
        (project / "pyproject.toml").write_text('[project]\nname = "acme"\n')
        if blocker == "read-only":
            (project / ".github").mkdir()
            unprivileged.read_only(project / ".github")
        else:
            (project / ".github").write_text("not a directory\n")
        before = unprivileged.tree(project)
        done = unprivileged.ptq("init", project, cwd=project)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stdout == "" and "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        why = "cannot be written (permission denied)" if blocker == "read-only" else "not a directory"
        assert line.startswith(f"ptq: error: {project / '.github'}: {why}, so .github/")
        assert "nothing written" in line and line.endswith("then run ptq init again")
        assert unprivileged.tree(project) == before  # not one file written, no temporary file left


def test_a_write_that_fails_midway_undoes_the_files_written_before_it(tmp_path, capsys, monkeypatch):
    """Row 10, the case no check can foresee (a full disk): what was written is removed again."""
    import ptq.cli.init as init

    mine = "[tool.ruff]\nline-length = 100\n"
    (tmp_path / "pyproject.toml").write_text(mine)
    (tmp_path / ".gitignore").write_text("build/\n")
    written = []

    def full_disk(path, write):
        if len(written) == 4:
            raise OSError(28, "No space left on device", str(path))
        written.append(path)
        return atomic_write(path, write)

    monkeypatch.setattr(init, "atomic_write", full_disk)
    assert main(["init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("ptq: error: ") and "no space left on device" in err.lower()
    assert "nothing written" in err
    assert _tree(tmp_path) == [".gitignore", "pyproject.toml"] and not (tmp_path / ".github").exists()
    assert (tmp_path / "pyproject.toml").read_text() == mine and (tmp_path / ".gitignore").read_text() == "build/\n"


@pytest.mark.parametrize("kind", ["symlink", "mode-640", "crlf"])
def test_a_pyproject_and_gitignore_are_edited_in_place(tmp_path, capsys, kind):
    """Row 15: the symlink was replaced by a file, the mode became 644, CRLF became LF."""
    eol = "\r\n" if kind == "crlf" else "\n"
    mine = eol.join(["[project]", 'name = "acme"  # ours', "", "[tool.ruff]", "line-length = 100", ""])
    ignore = eol.join(["build/", "*.egg-info/", ""])
    project = tmp_path / "project"
    project.mkdir()
    if kind == "symlink":  # e.g. a monorepo sharing one pyproject.toml
        shared = tmp_path / "shared"
        shared.mkdir()
        (shared / "pyproject.toml").write_bytes(mine.encode())
        (shared / "gitignore").write_bytes(ignore.encode())
        (project / "pyproject.toml").symlink_to(shared / "pyproject.toml")
        (project / ".gitignore").symlink_to(shared / "gitignore")
    else:
        (project / "pyproject.toml").write_bytes(mine.encode())
        (project / ".gitignore").write_bytes(ignore.encode())
    if kind == "mode-640":
        (project / "pyproject.toml").chmod(0o640)
        (project / ".gitignore").chmod(0o640)
    modes = {name: (project / name).stat().st_mode for name in ("pyproject.toml", ".gitignore")}
    code, out = _init(project, capsys)
    assert (
        code == 0 and "appended [tool.ptq] to pyproject.toml" in out and "appended ptq's ignores to .gitignore" in out
    )
    for name, before in (("pyproject.toml", mine), (".gitignore", ignore)):
        path = project / name
        assert path.is_symlink() == (kind == "symlink"), name
        assert path.stat().st_mode == modes[name], name  # mode and kind of file kept
        data = path.read_bytes().decode()
        assert data.startswith(before), name  # what was there, byte for byte
        if kind == "crlf":
            assert data.count("\n") == data.count("\r\n"), name  # no line of ptq's in LF
        else:
            assert "\r" not in data, name
    if kind == "symlink":
        assert (tmp_path / "shared" / "pyproject.toml").read_bytes().decode().startswith(mine)
        assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["gitignore", "pyproject.toml"]  # no litter
    assert load_config(project).section("gate") == {"memory_threshold": 0.05}  # appended and read


@pytest.mark.slow
def test_init_in_a_subdirectory_of_a_git_repository_warns_that_github_reads_the_roots_workflows(tmp_path):
    """Row 21: workflows went to sub/.github without a word; GitHub never runs them."""
    repo = tmp_path / "repo"
    sub = repo / "packages" / "acme"
    sub.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    done = _ptq_init(sub)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [warning] = [line for line in done.stderr.splitlines() if line.startswith("ptq: warning: ")]
    assert warning == (
        f"ptq: warning: {sub} is a subdirectory of the git repository {repo.resolve()}: GitHub reads "
        f"workflows only from {repo.resolve() / '.github' / 'workflows'}, so the ones written under "
        f"{sub / '.github'} never run; move them there (and set their working-directory), or run "
        f"ptq init {repo.resolve()}"
    )
    assert (sub / ".github" / "workflows" / "ptq.yml").exists() and not (repo / ".github").exists()  # written as asked
    at_root = _ptq_init(repo)  # the repository's root: nothing to warn about
    assert at_root.returncode == 0 and "warning" not in at_root.stderr
