"""The layers of ptq/ form a stack (docs/ARCHITECTURE.md): the import-linter contract in
pyproject.toml holds on the tree, and it breaks when an import runs back up, a circle is closed
or a new top-level unit is left out of the stack."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

pytest.importorskip("importlinter", reason="the contract runs under import-linter (pip install -e '.[dev]')")

ROOT = Path(__file__).resolve().parent.parent
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the ``ptq`` package under ``root``, with ``root``'s pyproject.toml."""
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = (c for c in config["contracts"] if c["id"] == "layers")
    return contract["layers"]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of ptq/'s Python files and of pyproject.toml, to plant an import in."""
    shutil.copytree(ROOT / "ptq", tmp_path / "ptq", ignore=shutil.ignore_patterns("__pycache__", "templates"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(root: Path, module: str, line: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = root / module.replace(".", "/") / "__init__.py"
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_contract_lists_every_top_level_unit_of_ptq():
    listed = {unit.strip() for layer in _layers() for unit in layer.split("|")}
    units = {p.stem for p in (ROOT / "ptq").glob("*.py") if p.stem != "__init__"}
    units |= {p.name for p in (ROOT / "ptq").iterdir() if (p / "__init__.py").exists()}
    assert listed == units


def test_ptq_keeps_its_layers():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_the_unchanged_copy_keeps_its_layers(copy):
    proc = _lint(copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # an import back up: storage (the results schema) reading the judges
        ("ptq.storage.runs", "from ptq.gate import judges", "ptq.storage is not allowed to import ptq.gate"),
        # a circle: render already imports storage
        ("ptq.storage.chain", "import ptq.render.tables", "ptq.storage is not allowed to import ptq.render"),
        # the bottom reaching the top, inside a function (imports there count too)
        ("ptq.errors", "def _late():\n    import ptq.cli", "ptq.errors is not allowed to import ptq.cli"),
        # two units side by side on one layer import neither each other
        ("ptq.render.html", "import ptq.lab", "ptq.render is not allowed to import ptq.lab"),
    ],
)
def test_a_planted_import_breaks_the_contract(copy, module, line, broken):
    _plant(copy, module, line)
    proc = _lint(copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert broken in proc.stdout


def test_a_new_unit_outside_the_stack_breaks_the_contract(copy):
    (copy / "ptq" / "newcomer.py").write_text('"""A unit nobody placed in a layer."""\n', encoding="utf-8")
    proc = _lint(copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ptq.newcomer" in proc.stdout
