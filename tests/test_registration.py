"""Explicit registration: built-ins declared as data, entry points for third parties, nothing
registered by importing a module, and the commands that read result files import no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoints, PathDistribution
from pathlib import Path

import pytest
from gate_fixtures import bench, run, samples

import ptq.registry
from ptq import config
from ptq.config.sections import BUILTIN_SECTIONS
from ptq.errors import DuplicateRegistration, UserError
from ptq.gate import judges
from ptq.probes import BUILTIN_PROBES
from ptq.registry import NamedRegistry
from ptq.run import probing as probes

TESTS = Path(__file__).parent
PLUGIN = "registration_plugin"


def _python(code: str, *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter that can import this folder's helpers."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )


@pytest.mark.slow
def test_importing_every_module_registers_nothing():
    proc = _python("""
        import importlib, json, pkgutil
        import ptq
        walked = [m.name for m in pkgutil.walk_packages(ptq.__path__, "ptq.") if not m.name.endswith("__main__")]
        for name in walked:
            importlib.import_module(name)
        from ptq.gate.judges import list_judges
        from ptq.probes import list_probes
        from ptq.config import list_sections
        from ptq.run import workbench
        print(json.dumps([walked, list_probes(), list_judges(), list_sections(), sorted(workbench._QUANTIZE_MONITORS)]))
    """)
    assert proc.returncode == 0, proc.stderr
    walked, probe_names, judge_names, sections, monitors = json.loads(proc.stdout.splitlines()[-1])
    assert {"ptq.probes.memory", "ptq.probes.drift.profiles", "ptq.plugins.deploy", "ptq.gate.judges"} <= set(walked)
    assert probe_names == [p.name for p in BUILTIN_PROBES] == ["speedup", "lm", "deployment", "drift", "memory", "size"]
    assert judge_names == [j.name for j in judges.JUDGES]
    assert sections == [s.name for s in BUILTIN_SECTIONS]
    assert monitors == []


def test_every_builtin_probe_resolves_to_a_function():
    for probe in BUILTIN_PROBES:
        for target in (probe.fn, probe.monitor):
            if target is not None:
                assert callable(ptq.registry.resolve(target)), (probe.name, target)


def test_a_probe_s_quantize_monitor_runs_only_where_the_probe_is_selected():
    from ptq.probes.memory import quantize_monitor
    from ptq.run.workbench import RunOptions

    assert probes.quantize_monitors(RunOptions()) == {"memory": quantize_monitor}
    assert probes.quantize_monitors(RunOptions(probes="size,drift")) == {}


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install a distribution (a dist-info folder) whose entry points are the given lines, then
    give every registry fresh built-ins with its entry points not yet read."""

    def install(**groups: list[str]) -> list[str]:
        info = tmp_path / "energy_plugin-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: energy-plugin\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(
            "".join(f"[{g}]\n" + "".join(f"{line}\n" for line in lines) for g, lines in groups.items())
        )
        found = PathDistribution(info).entry_points
        calls: list[str] = []

        def entry_points(*, group: str) -> EntryPoints:
            calls.append(group)
            return found.select(group=group)

        monkeypatch.setattr(ptq.registry, "entry_points", entry_points)
        for module in (probes, judges, config):
            reg = module._REGISTRY
            monkeypatch.setattr(
                module,
                "_REGISTRY",
                NamedRegistry(reg.kind, reg.item_type, entry_point_group=reg.entry_point_group, builtins=reg.builtins),
            )
        return calls

    return install


def test_entry_points_extend_each_registry_after_the_builtins(installed):
    calls = installed(
        **{
            "ptq.probes": [f"params = {PLUGIN}:PROBE"],
            "ptq.judges": [f"params = {PLUGIN}:JUDGE"],
            "ptq.config_sections": [f"energy = {PLUGIN}:SECTION"],
        }
    )
    assert probes.list_probes() == [p.name for p in BUILTIN_PROBES] + ["params"]
    assert probes.list_probes()[-1] == "params"
    assert calls.count("ptq.probes") == 1  # read once, on first use
    assert judges.list_judges()[-1] == "params" and judges.get_judge("params").name == "params"
    checked = config.validate({"energy": {"max_joules": 3}}, "pyproject.toml")
    assert checked.section("energy") == {"max_joules": 3}
    with pytest.raises(UserError, match=r"\[tool.ptq.energy\] max_joules = -1 is out of range: it must be >= 0"):
        config.validate({"energy": {"max_joules": -1}}, "pyproject.toml")


def test_register_probe_appends_after_the_builtins(installed):
    installed()
    probes.register_probe("mine")(lambda prepared, result, options: 1)
    assert probes.list_probes() == [p.name for p in BUILTIN_PROBES] + ["mine"]


def test_an_entry_point_clashing_with_a_builtin_is_a_duplicate(installed):
    installed(**{"ptq.probes": [f"speedup = {PLUGIN}:CLASHING_PROBE"]})
    with pytest.raises(DuplicateRegistration, match="probe 'speedup' is already registered"):
        probes.list_probes()


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (f"{PLUGIN}:MISSING", r"cannot load: AttributeError: .*MISSING"),
        ("no_such_module_xyz:PROBE", r"cannot load: ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        (f"{PLUGIN}:NOT_A_PROBE", r"resolves to a int, not a ptq.probes.Probe"),
    ],
)
def test_a_broken_entry_point_names_its_distribution_and_the_fix(installed, target, why):
    installed(**{"ptq.probes": [f"energy = {target}"]})
    with pytest.raises(UserError, match=why) as caught:
        probes.list_probes()
    message = str(caught.value)
    assert f"entry point energy = '{target}' (group ptq.probes) of energy-plugin" in message
    assert (
        '[project.entry-points."ptq.probes"] of energy-plugin and reinstall it, or uninstall energy-plugin' in message
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two runs to compare and two shards to merge, as the plugin writes them."""
    root = tmp_path_factory.mktemp("runs")
    files = {
        "base.json": run(bench("m-r", samples(0.01, seed=1), metrics={"size": {"serialized_bytes": 1000}})),
        "cur.json": run(bench("m-r", samples(0.01, seed=2), metrics={"size": {"serialized_bytes": 1000}})),
        "shard1.json": run(bench("a-r", samples(0.01, seed=3))),
        "shard2.json": run(bench("b-r", samples(0.01, seed=4))),
    }
    for name, data in files.items():
        (root / name).write_text(json.dumps(data))
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "cur.json", "--baseline", "base.json", "--root", "."],
        ["report", "cur.json", "base.json", "-o", "report.html", "--root", "."],
        ["merge", "-o", "merged.json", "shard1.json", "shard2.json"],
    ],
    ids=lambda argv: argv[0],
)
def test_commands_that_read_runs_import_no_torch(runs, argv):
    proc = _python(
        f"""
        import sys
        from ptq.cli import main
        code = main({argv!r})
        print(code, sorted(m for m in ("torch", "torchvision") if m in sys.modules))
    """,
        cwd=runs,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 []"
