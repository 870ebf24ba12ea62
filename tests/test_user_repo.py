"""The gate on a user's own models, as a user runs it: a throwaway git repository whose model and
recipe are registered only in its ``conftest.py``, set up by ``ptq init``, gated by ``ptq ab``.

Every part that builds cases must see that conftest: the pytest sessions, the duet workers of
each side (each with its own side's conftest), ``ptq list``. A slowdown made of real extra compute
is flagged on the latency rows; an A/A passes; a model that cannot be built on one side fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: The user's conftest: a model and a recipe of their own. ``REPEAT`` re-applies the last layer,
#: real compute with no new weights (so size stays put); ``BROKEN`` makes the builder fail.
CONFTEST = """
import torch
from ptq.models import Built, TensorData, register_model
from ptq.recipes import DynamicQuant, register_recipe

REPEAT = {repeat}
BROKEN = {broken}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.ModuleList(torch.nn.Linear(384, 384) for _ in range(4))

    def forward(self, x):
        for layer in self.body:
            x = torch.relu(layer(x))
        for _ in range(REPEAT):
            x = torch.relu(self.body[-1](x))
        return x


@register_model("user_mlp", batch_size=64)
def user_mlp(*, weights):
    if BROKEN:
        raise RuntimeError("this side's user_mlp cannot be built")
    torch.manual_seed(0)
    data = TensorData(lambda g, n: (torch.randn(n, 384, generator=g),), "randn(384)")
    return Built(Net().eval(), weights="random:seed=0", data=data)


register_recipe(DynamicQuant("user_dynamic", layers=("Linear",), description="the user's own recipe"))
"""

#: Small sessions (their timings are not what the duet judges) and the duet's default plan.
PYTEST_ARGS = (
    "--ptq-models=user_mlp --ptq-recipes=fp32,user_dynamic --benchmark-max-time=0.05 "
    "--ptq-pair-time=0.05 --ptq-placements=2 --ptq-rerun-target=0 --ptq-probes=size,drift"
)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=u", "-c", "user.email=u@example.com", *args],
        check=True,
        capture_output=True,
    )


def _commit(repo: Path, message: str, *, repeat: int = 0, broken: bool = False) -> None:
    (repo / "conftest.py").write_text(textwrap.dedent(CONFTEST.format(repeat=repeat, broken=broken)))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    """A git repository set up as the README says: its conftest first, then ``ptq init``."""
    repo = tmp_path / "project"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "conftest.py").write_text(textwrap.dedent(CONFTEST.format(repeat=0, broken=False)))
    init = _run([sys.executable, "-c", "import sys; from ptq.cli import main; sys.exit(main())", "init"], repo)
    assert init.returncode in (0, 1), init.stdout + init.stderr  # 1: it kept the conftest.py written above
    assert (repo / "benchmarks" / "test_ptq.py").is_file()
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "ptq init")
    return repo


def _ab(repo: Path, a: str, b: str) -> subprocess.CompletedProcess[str]:
    return _run(
        [
            sys.executable,
            "-c",
            "import sys; from ptq.cli import main; sys.exit(main())",
            "ab",
            a,
            b,
            "--rounds",
            "1",
            f"--pytest-args={PYTEST_ARGS}",
        ],
        repo,
    )


def _rows(out: str, metric: str) -> dict[str, str]:
    """{case: verdict} of the comparison table's rows for ``metric``."""
    found = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 3 and cells[0].startswith("user_mlp-") and cells[1] == metric:
            found[cells[0]] = cells[-1]
    return found


def test_ptq_list_and_the_default_matrix_are_the_project_s_models(user_repo):
    listed = _run(
        [sys.executable, "-c", "import sys; from ptq.cli import main; sys.exit(main())", "list", "models"], user_repo
    )
    assert listed.returncode == 0, listed.stderr
    assert "user_mlp" in listed.stdout
    collected = _run(
        [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider"], user_repo
    )
    ids = [line for line in collected.stdout.splitlines() if "::test_case[" in line]
    assert ids and all("[user_mlp-" in line for line in ids), collected.stdout[-2000:]
    assert any("[user_mlp-user_dynamic]" in line for line in ids)


def test_a_real_slowdown_of_a_conftest_model_is_a_latency_regression_and_an_a_a_passes(user_repo):
    same = _ab(user_repo, "HEAD", "HEAD")
    assert same.returncode == 0, same.stdout + same.stderr[-3000:]
    assert _rows(same.stdout, "latency") == {"user_mlp-fp32": "ok", "user_mlp-user_dynamic": "ok"}, same.stdout
    assert "could not prepare" not in same.stderr

    _commit(user_repo, "slower: the last layer applied twice more", repeat=2)
    slower = _ab(user_repo, "HEAD~1", "HEAD")
    assert slower.returncode == 1, slower.stdout + slower.stderr[-3000:]
    assert _rows(slower.stdout, "latency") == {"user_mlp-fp32": "REGRESSION", "user_mlp-user_dynamic": "REGRESSION"}, (
        slower.stdout
    )


def test_a_model_that_cannot_be_built_on_one_side_is_a_failing_row(user_repo):
    _commit(user_repo, "breaks the model", broken=True)
    broken = _ab(user_repo, "HEAD~1", "HEAD")
    assert broken.returncode == 1, broken.stdout + broken.stderr[-3000:]
    assert "not measured" in broken.stdout
    assert "PASS" not in broken.stdout.splitlines()[-1]


def test_ptq_init_in_an_empty_repository_then_exactly_its_next_commands_measure_and_save_a_baseline(tmp_path):
    """The README's "Use ptq in your repository", as a user types it: ``ptq init --models GLOB`` in an
    empty repository, then the commands its hint prints, verbatim."""
    import shlex

    repo = tmp_path / "empty"
    repo.mkdir()
    _git(repo, "init", "-q")
    init = _run(
        [sys.executable, "-c", "import sys; from ptq.cli import main; sys.exit(main())", "init", "--models", "my_*"],
        repo,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    hint = [line.strip() for line in init.stdout.splitlines() if line.startswith("  ")]
    assert hint and hint[0].startswith("pytest benchmarks --benchmark-only --ptq-models=")
    for line in hint:
        if line.startswith("git "):
            env = {
                **os.environ,
                "GIT_AUTHOR_NAME": "u",
                "GIT_AUTHOR_EMAIL": "u@example.com",
                "GIT_COMMITTER_NAME": "u",
                "GIT_COMMITTER_EMAIL": "u@example.com",
            }
            done = subprocess.run(line, shell=True, cwd=repo, env=env, capture_output=True, text=True, check=False)
        else:
            argv = shlex.split(line)
            assert argv[0] == "pytest"
            done = _run([sys.executable, "-m", *argv], repo)
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    [baseline] = (repo / "results" / "baselines").glob("*.json")
    committed = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True, check=True).stdout
    assert f"results/baselines/{baseline.name}" in committed and ".lock" not in committed
    assert "my_mlp-static_int8" in baseline.read_text()
