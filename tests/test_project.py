"""A project's conftest registrations reach every process that builds cases (:mod:`ptq.project`):
the CLI commands, a duet worker of ``ptq ab``, and the default matrix of a pytest session."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ptq.run.duet import Worker

ROOT_CONFTEST = """
import torch
from ptq.models import Built, TensorData, register_model
from ptq.recipes import DynamicQuant, register_recipe

pytest_plugins = ["pytester", "user_extra"]


@register_model("user_tiny", batch_size=4)
def user_tiny(*, weights):
    torch.manual_seed(0)
    data = TensorData(lambda g, n: (torch.randn(n, 16, generator=g),), "randn(16)")
    return Built(torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()), weights="random:seed=0", data=data)


register_recipe(DynamicQuant("user_dyn", layers=("Linear",), description="the project's own"))
"""

#: A module a conftest names in ``pytest_plugins``: registers too.
USER_EXTRA = """
from ptq.recipes import DynamicQuant, register_recipe

register_recipe(DynamicQuant("user_dyn_fp16", layers=("Linear",), dtype="float16"))
"""

BENCHMARKS_CONFTEST = """
import torch
from ptq.models import Built, TensorData, register_model


@register_model("user_deep", batch_size=4)
def user_deep(*, weights):
    data = TensorData(lambda g, n: (torch.randn(n, 8, generator=g),), "randn(8)")
    return Built(torch.nn.Linear(8, 8), weights="random:seed=0", data=data)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(ROOT_CONFTEST)
    (tmp_path / "user_extra.py").write_text(USER_EXTRA)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "conftest.py").write_text(BENCHMARKS_CONFTEST)
    (tmp_path / "benchmarks" / "test_ptq.py").write_text("def test_case(ptq_bench):\n    ptq_bench()\n")
    return tmp_path


def _ptq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from ptq.cli import main; sys.exit(main())", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_load_project_imports_both_conftests_and_their_plugins_once(project):
    done = _python(
        """
        from ptq.project import load_project, project_models, project_recipes
        first = load_project()
        again = load_project()
        print([p.name for p in first.loaded], len(again.loaded), len(again.already))
        print(project_models(), project_recipes())
    """,
        project,
    )
    assert done.returncode == 0, done.stderr
    loaded, registered = done.stdout.splitlines()
    assert loaded == "['conftest.py', 'conftest.py'] 0 2"  # the second call imports nothing: no duplicate error
    assert registered == "['user_tiny', 'user_deep'] ['user_dyn', 'user_dyn_fp16']"


@pytest.mark.slow
def test_a_conftest_that_fails_is_one_line_naming_it(project):
    (project / "conftest.py").write_text("import not_a_module_anywhere\n")
    listed = _ptq("list", "models", cwd=project)
    assert listed.returncode == 2
    [line] = listed.stderr.strip().splitlines()
    assert line.startswith(f"ptq: error: {project / 'conftest.py'} cannot be imported (ModuleNotFoundError")
    assert "Traceback" not in listed.stderr


@pytest.mark.slow
def test_ptq_list_shows_the_project_s_models_and_recipes_from_rootdir(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    models = _ptq("list", "models", "--rootdir", str(project), cwd=elsewhere)
    assert models.returncode == 0, models.stderr
    assert "user_tiny" in models.stdout and "user_deep" in models.stdout and "mobilenet_v2" in models.stdout
    recipes = _ptq("list", "recipes", cwd=project)
    assert "user_dyn" in recipes.stdout and "user_dyn_fp16" in recipes.stdout
    matrices = _ptq("list", "matrices", cwd=elsewhere)
    assert matrices.stdout.splitlines()[2].startswith("project")


@pytest.mark.slow
def test_a_duet_worker_prepares_the_cases_its_side_s_conftest_registers(project):
    with Worker("A", cwd=project) as worker:
        got = worker.prepare(["user_tiny-fp32", "user_tiny-user_dyn", "user_deep-fp32", "user_none-fp32"], threads=1)
        assert got["ready"] == ["user_deep-fp32", "user_tiny-fp32", "user_tiny-user_dyn"]
        assert (
            list(got["failed"]) == ["user_none-fp32"] and "unknown model 'user_none'" in got["failed"]["user_none-fp32"]
        )
        assert len(worker.time("user_tiny-user_dyn", 0.01)) >= 10


@pytest.mark.slow
def test_without_selection_a_project_runs_its_own_models_and_names_reach_the_built_ins(project):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}

    def collect(*args: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return [line.split("[", 1)[1].rstrip("]") for line in done.stdout.splitlines() if "::test_case[" in line]

    own = collect()
    assert {c.split("-")[0] for c in own} == {"user_tiny", "user_deep"} and "user_tiny-user_dyn" in own
    assert collect("--ptq-models=micro_conv_16", "--ptq-recipes=fp32") == ["micro_conv_16-fp32"]
    assert "mobilenet_v2-fp32" in collect("--ptq-matrix=default", "--ptq-recipes=fp32")
