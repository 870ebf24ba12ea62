"""The GitHub workflows: valid against GitHub's schema, clean under zizmor, and their commands
run here. "Run here" means: every ``ptq`` command line parses with ptq's own parser, every
pytest option they pass is registered, and the gate job's shell steps run as written (bash, the
fixture run split into shards, a fake ``gh`` recording its calls)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ptq.cli import COMMANDS, build_parser

ROOT = Path(__file__).parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
FIXTURE_RUN = ROOT / "tests" / "fixtures" / "history" / "runs" / "run-0004.json"
#: Commands and options the workflows use that arrive with the baselines/gate branch.
PENDING = {"compare", "--ptq-save-baseline"}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _steps():
    for path in WORKFLOWS:
        for job_name, job in _load(path)["jobs"].items():
            for step in job["steps"]:
                yield path.name, job_name, step


def _commands(script: str) -> list[list[str]]:
    """The ``ptq`` and ``pytest`` command lines of a step's script, as argv lists (redirections cut)."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        line = re.sub(r"^\s*(then|else)?\s*", "", line)
        if not re.match(r"(ptq|pytest) ", line):
            continue
        line = re.split(r" (?:>|>>|\|) ", line)[0]
        out.append(shlex.split(line))
    return out


def test_there_are_workflows_for_tests_pull_requests_history_and_baselines():
    names = {p.name for p in WORKFLOWS}
    assert {"tests.yml", "benchmarks.yml", "history.yml", "baselines.yml"} <= names
    triggers = {p.name: _load(p)[True] for p in WORKFLOWS}  # YAML 1.1 reads `on` as True
    assert set(triggers["tests.yml"]) == {"push", "pull_request"}
    assert "pull_request" in triggers["benchmarks.yml"] and "workflow_dispatch" in triggers["baselines.yml"]
    assert triggers["history.yml"]["push"]["branches"] == ["main"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(path):
    result = subprocess.run([BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_medium_or_high():
    result = subprocess.run([BIN / "zizmor", "--offline", "--format", "json", "--min-severity", "medium", *map(str, WORKFLOWS)],
                            capture_output=True, text=True)
    findings = json.loads(result.stdout)
    assert findings == [], json.dumps(findings, indent=1)[:3000]


def test_actions_pinned_pip_cached_no_xdist_permissions_minimal():
    for path in WORKFLOWS:
        text = path.read_text()
        for ref in re.findall(r"uses:\s*(\S+)(.*)", text):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref[0]), f"{path.name}: {ref[0]} is not pinned by SHA"
            assert re.match(r"\s*# v\d", ref[1]), f"{path.name}: {ref[0]} has no version comment"
        assert _load(path)["permissions"] == {}, f"{path.name}: top-level permissions must be empty"
    for name, _job, step in _steps():
        if "setup-python" in step.get("uses", ""):
            assert step["with"]["cache"] == "pip", name
        for cmd in _commands(step.get("run", "")):
            if cmd[:1] == ["pytest"] and "benchmarks" in cmd:
                assert not any(a in ("-n", "--numprocesses") or a.startswith("-n") for a in cmd), f"{name}: xdist in {cmd}"


def test_every_ptq_command_in_the_workflows_parses():
    parser, seen = build_parser(), set()
    for _name, _job, step in _steps():
        for cmd in _commands(step.get("run", "")):
            if cmd[:1] != ["ptq"]:
                continue
            seen.add(cmd[1])
            if cmd[1] not in COMMANDS and cmd[1] in PENDING:
                continue
            argv = [re.sub(r"\$\{?\w+\}?", "x", a) for a in cmd[1:]]
            parser.parse_args(argv)  # SystemExit on a bad command or option
    assert {"merge", "report"} <= seen


def test_every_pytest_option_in_the_workflows_is_registered():
    help_text = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd=ROOT,
                               capture_output=True, text=True).stdout
    used = {a.split("=")[0] for _n, _j, step in _steps() for cmd in _commands(step.get("run", ""))
            if cmd[:1] == ["pytest"] for a in cmd if a.startswith("--")}
    assert {"--ptq-shard", "--benchmark-only", "--benchmark-json"} <= used
    missing = {o for o in used - PENDING if o not in help_text}
    assert not missing, f"pytest does not know {missing}"


def _step(workflow: str, job: str, name: str) -> str:
    for step in _load(ROOT / ".github" / "workflows" / workflow)["jobs"][job]["steps"]:
        if step.get("name") == name:
            return step["run"]
    raise LookupError(name)


def _fake_gh(bin_dir: Path, existing_id: str) -> Path:
    log = bin_dir / "gh.log"
    gh = bin_dir / "gh"
    gh.write_text(f'#!/bin/sh\necho "$@" >> {log}\ncase "$*" in *--jq*) echo "{existing_id}";; esac\n')
    gh.chmod(0o755)
    return log


def _bash(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("existing", ["", "4242"], ids=["new-comment", "update-comment"])
def test_gate_job_steps_run_on_fixture_shards(tmp_path, existing):
    doc = json.loads(FIXTURE_RUN.read_text())
    (tmp_path / "shards").mkdir()
    for i, keep in enumerate((lambda g: g == "digits_cnn", lambda g: g != "digits_cnn"), 1):
        part = dict(doc, benchmarks=[b for b in doc["benchmarks"] if keep(b["group"])])
        (tmp_path / "shards" / f"shard-{i}.json").write_text(json.dumps(part))
    shutil.copytree(FIXTURE_RUN.parent, tmp_path / "history")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = _fake_gh(bin_dir, existing)
    summary = tmp_path / "summary.md"
    env = dict(os.environ, PATH=f"{bin_dir}:{BIN}:{os.environ['PATH']}", GITHUB_STEP_SUMMARY=str(summary),
               GH_TOKEN="x", REPO="owner/repo", PR="7", PYTHONPATH=str(ROOT))

    for name in ("Merge shards", "Compare with the baseline", "Comment on the pull request (one comment, updated)"):
        result = _bash(_step("benchmarks.yml", "gate", name), tmp_path, env)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
    merged = json.loads((tmp_path / "run.json").read_text())
    assert len(merged["benchmarks"]) == len(doc["benchmarks"])
    # The fixtures have no results/baselines/: the check fails closed, saying how to record one.
    assert "FAIL: no baseline" in summary.read_text() and "--ptq-save-baseline" in summary.read_text()
    assert (tmp_path / "comment.md").read_text().startswith("<!-- ptq-report -->\n### ptq regression gate: FAIL: no baseline")
    failed = _bash(_step("benchmarks.yml", "gate", "Fail on regression"), tmp_path, env)
    assert failed.returncode == 3
    assert failed.stdout.startswith("::error title=ptq: no baseline::") and "--ptq-save-baseline" in failed.stdout
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    calls = log.read_text().splitlines()
    assert "--jq" in calls[0]
    assert calls[1].startswith("api --method PATCH repos/owner/repo/issues/comments/4242" if existing
                               else "api --method POST repos/owner/repo/issues/7/comments")


def test_gate_step_with_a_baseline(tmp_path):
    if "compare" not in COMMANDS:
        pytest.skip("`ptq compare` arrives with the baselines/gate branch; this test runs the compare path once it is merged")
    doc = json.loads(FIXTURE_RUN.read_text())
    (tmp_path / "run.json").write_text(json.dumps(doc))
    (tmp_path / "results" / "baselines").mkdir(parents=True)
    shutil.copy(FIXTURE_RUN.parent / "run-0003.json", tmp_path / "results" / "baselines" / f"{doc['ptq']['fingerprint']}.json")
    shutil.copytree(FIXTURE_RUN.parent, tmp_path / "history")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", GITHUB_STEP_SUMMARY=str(tmp_path / "s.md"), PYTHONPATH=str(ROOT))
    result = _bash(_step("benchmarks.yml", "gate", "Compare with the baseline"), tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "compare.rc").read_text().strip() == "1"  # run 4 regressed against run 3
    assert (tmp_path / "comment.md").read_text().startswith("<!-- ptq-report -->")


def test_baselines_are_recorded_in_the_shards_pull_requests_run():
    # A quantize step's memory depends on which cases ran before it in the process.
    shards = {p.name: _load(p).get("env", {}).get("SHARDS") for p in WORKFLOWS}
    assert shards["baselines.yml"] == shards["benchmarks.yml"] is not None
    assert '--ptq-shard="$SHARD/$SHARDS"' in _step("baselines.yml", "refresh",
                                                   "Benchmarks, shard after shard, saved as the baseline of this runner's fingerprint")
