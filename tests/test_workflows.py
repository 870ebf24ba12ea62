"""The GitHub workflows: valid against GitHub's schema, clean under zizmor, and their commands
run here. "Run here" means: every ``ptq`` command line parses with ptq's own parser, every
pytest option they pass is registered, and the gate's and the history jobs' shell steps run as
written (bash, the fixture run split into shards, a fake ``gh`` recording its calls, a stub
``ptq ab`` saving sides made from fixture runs, a bare repository standing in for GitHub's with
its ``ptq-history`` branch). The jobs live in reusable
workflows (``reusable-*.yml``, ``on: workflow_call``) that ptq's own workflows call, as a project
that adopts ptq does: their ``inputs`` take the values ptq's callers pass (else their defaults)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ptq.cli import COMMANDS, build_parser

ROOT = Path(__file__).parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
FIXTURE_RUN = ROOT / "tests" / "fixtures" / "history" / "runs" / "run-0004.json"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _steps():
    for path in WORKFLOWS:
        for job_name, job in _load(path)["jobs"].items():
            for step in job.get("steps", []):  # a job that calls a reusable workflow has none
                yield path.name, job_name, step


LOCAL = "./.github/workflows/"


def _callers() -> dict[str, tuple[str, dict]]:
    """Reusable workflow -> (the workflow whose job calls it, that job)."""
    return {
        job["uses"].removeprefix(LOCAL): (path.name, job)
        for path in WORKFLOWS
        for job in _load(path)["jobs"].values()
        if job.get("uses", "").startswith(LOCAL)
    }


def _inputs(workflow: str) -> dict[str, str]:
    """A reusable workflow's inputs as ptq's own caller sets them: its ``with``, else the default."""
    declared = (_load(ROOT / ".github" / "workflows" / workflow)[True]["workflow_call"] or {}).get("inputs", {})
    given = _callers()[workflow][1].get("with", {})
    return {name: str(given.get(name, spec.get("default", ""))) for name, spec in declared.items()}


def _resolve(value: object, inputs: dict[str, str]) -> str:
    return re.sub(r"\$\{\{ inputs\.([\w-]+) \}\}", lambda m: inputs[m[1]], str(value))


def _commands(script: str) -> list[list[str]]:
    """The ``ptq`` and ``pytest`` command lines of a step's script, as argv lists (redirections cut).
    An array the script fills (``NAME=(--flag value)``) is expanded as filled, so its options parse too."""
    arrays = dict(re.findall(r"\b(\w+)=\(([^)]+)\)", script))  # one read with ``read -ra`` expands to nothing
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        line = re.sub(r"^\s*(then|else)?\s*", "", line)
        if not re.match(r"(ptq|pytest) ", line):
            continue
        line = re.split(r" (?:>|>>|\|) ", line)[0]
        line = re.sub(r'"\$\{(\w+)\[@\]\}"', lambda m: arrays.get(m[1], ""), line)
        out.append(shlex.split(line))
    return out


def test_there_are_workflows_for_tests_pull_requests_history_baselines_and_the_comment():
    names = {p.name for p in WORKFLOWS}
    assert {"tests.yml", "benchmarks.yml", "history.yml", "baselines.yml", "comment.yml"} <= names
    # Each of ptq's own calls the reusable workflow a project that adopts ptq calls.
    assert {k: v[0] for k, v in _callers().items()} == {
        "reusable-gate.yml": "benchmarks.yml",
        "reusable-history.yml": "history.yml",
        "reusable-baselines.yml": "baselines.yml",
        "reusable-comment.yml": "comment.yml",
    }
    for reusable in _callers():
        assert set(_load(ROOT / ".github" / "workflows" / reusable)[True]) == {"workflow_call"}, reusable
    triggers = {p.name: _load(p)[True] for p in WORKFLOWS}  # YAML 1.1 reads `on` as True
    assert set(triggers["tests.yml"]) == {"push", "pull_request"}
    assert "pull_request" in triggers["benchmarks.yml"] and "workflow_dispatch" in triggers["baselines.yml"]
    assert triggers["history.yml"]["push"]["branches"] == ["main"]
    benchmarks = _load(ROOT / ".github" / "workflows" / "benchmarks.yml")["name"]
    assert triggers["comment.yml"] == {"workflow_run": {"workflows": [benchmarks], "types": ["completed"]}}


def _writes(job: dict) -> set[str]:
    return {scope for scope, level in job.get("permissions", {}).items() if level == "write"}


def _jobs(path: Path) -> dict[str, dict]:
    """A workflow's jobs, and those of the reusable workflows it calls (named caller/job)."""
    out = {}
    for name, job in _load(path)["jobs"].items():
        out[name] = job
        if job.get("uses", "").startswith(LOCAL):
            called = _load(ROOT / ".github" / "workflows" / job["uses"].removeprefix(LOCAL))["jobs"]
            out.update({f"{name}/{inner}": sub for inner, sub in called.items()})
    return out


def test_no_job_a_pull_request_starts_can_write_only_the_comment_poster_can():
    """The gate's verdict never depends on a write token (a fork's pull request has none)."""
    for path in WORKFLOWS:
        if "pull_request" in _load(path)[True]:
            writing = {name: _writes(job) for name, job in _jobs(path).items() if _writes(job)}
            assert writing == {}, f"{path.name}: {writing}"
    jobs = _jobs(ROOT / ".github" / "workflows" / "comment.yml")
    assert {name: _writes(job) for name, job in jobs.items()} == {
        "post": {"pull-requests"},
        "post/post": {"pull-requests"},
    }
    # It runs no code of the pull request: no checkout, no install, no ptq, pytest or python.
    assert not any(
        "checkout" in s.get("uses", "") or re.search(r"^\s*(pip|ptq|pytest|python)\b", s.get("run", ""), re.M)
        for s in jobs["post/post"]["steps"]
    )


def test_pull_request_runs_are_cancelled_when_a_newer_push_supersedes_them():
    for path in WORKFLOWS:
        doc = _load(path)
        if "pull_request" in doc[True]:
            assert "github.event.pull_request.number" in doc["concurrency"]["group"], path.name
            assert doc["concurrency"]["cancel-in-progress"] in (True, "${{ github.event_name == 'pull_request' }}")


def test_no_run_that_writes_the_history_waits_in_a_concurrency_group():
    """Issue 29, row 8: history.yml and deploy.yml shared group ``ptq-history`` with cancel-in-progress
    false, but GitHub keeps one pending run per group and cancels the older pending one: of three
    pushes within one run, the middle one's link was lost. No run that writes branch ptq-history
    is in a group another run can join (the branch's pushes are retried on top of one another
    instead: the tests of the record and chain jobs below)."""
    writers = [
        p
        for p in WORKFLOWS
        if any(job.get("uses", "").endswith("reusable-history.yml") for job in _load(p)["jobs"].values())
    ]
    assert {p.name for p in writers} == {"history.yml", "deploy.yml"}
    for path in writers:
        assert "concurrency" not in _load(path), path.name
        for job in _load(path)["jobs"].values():
            assert "concurrency" not in job, path.name
    # What ptq init writes for a project: its push (history) and dispatch (baselines) runs have a
    # group of their own each; a pull request's newer push still cancels its older run.
    from ptq.cli.init import _template

    group = yaml.safe_load(re.sub(r"\{\{ptq:\w+\}\}", "x", _template("ptq.yml.tmpl")))["concurrency"]
    assert group == {
        "group": "ptq-${{ github.event.pull_request.number || github.run_id }}",
        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
    }
    for job in _load(ROOT / ".github" / "workflows" / HISTORY)["jobs"].values():
        assert "concurrency" not in job


@pytest.mark.slow
def test_dependabot_keeps_the_pinned_actions_current():
    path = ROOT / ".github" / "dependabot.yml"
    [update] = yaml.safe_load(path.read_text())["updates"]
    assert update["package-ecosystem"] == "github-actions" and update["directory"] == "/"
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.dependabot", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_untrusted_values_reach_scripts_through_env_only():
    for name, job, step in _steps():
        assert "${{" not in step.get("run", ""), f"{name} {job} {step.get('name')}: an expression in a run: script"


def test_the_only_zizmor_suppression_is_the_comment_workflows_trigger_with_its_reason():
    found = [(p.name, line.strip()) for p in WORKFLOWS for line in p.read_text().splitlines() if "zizmor:" in line]
    [(name, line)] = found
    assert name == "comment.yml" and line.startswith("workflow_run: # zizmor: ignore[dangerous-triggers] ")
    assert len(line.split("]", 1)[1].split()) >= 5  # a reason, not just the rule


@pytest.mark.slow
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(path):
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_zizmor_finds_nothing_medium_or_high():
    result = subprocess.run(
        [
            BIN / "zizmor",
            "--offline",
            "--format",
            "json",
            "--min-severity",
            "medium",
            *map(str, WORKFLOWS),
            str(ROOT / ".github" / "dependabot.yml"),
        ],
        capture_output=True,
        text=True,
    )
    findings = json.loads(result.stdout)
    assert findings == [], json.dumps(findings, indent=1)[:3000]


def test_actions_pinned_pip_cached_no_xdist_permissions_minimal():
    for path in WORKFLOWS:
        text = path.read_text()
        for ref in re.findall(r"uses:\s*(\S+)(.*)", text):
            if ref[0].startswith(LOCAL):  # a reusable workflow of the same commit
                assert (ROOT / ".github" / "workflows" / ref[0].removeprefix(LOCAL)).exists(), ref[0]
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref[0]), f"{path.name}: {ref[0]} is not pinned by SHA"
            assert re.match(r"\s*# v\d", ref[1]), f"{path.name}: {ref[0]} has no version comment"
        assert _load(path)["permissions"] == {}, f"{path.name}: top-level permissions must be empty"
    for name, _job, step in _steps():
        if "setup-python" in step.get("uses", ""):
            assert step["with"]["cache"] == "pip", name
        for cmd in _commands(step.get("run", "")):
            if cmd[:1] == ["pytest"] and "benchmarks" in cmd:
                assert not any(a in ("-n", "--numprocesses") or a.startswith("-n") for a in cmd), (
                    f"{name}: xdist in {cmd}"
                )


def test_the_docs_pin_the_bencher_action_like_every_other_action():
    """Issue 29, row 25: the Bencher example used ``bencherdev/bencher@main``, a branch anyone with
    push rights there moves; the workflows pin each action by commit SHA with its version said."""
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [
        (p.name, ref, rest) for p in docs for ref, rest in re.findall(r"uses:\s*(bencherdev/\S+)(.*)", p.read_text())
    ]
    assert found, "no Bencher example in the README or docs/"
    for name, ref, rest in found:
        assert re.fullmatch(r"bencherdev/bencher@[0-9a-f]{40}", ref), f"{name}: {ref} is not pinned by SHA"
        assert re.match(r"\s*# v\d", rest), f"{name}: {ref} has no version comment"


def test_every_ptq_command_in_the_workflows_parses():
    parser, seen = build_parser(), set()
    for name, _job, step in _steps():
        for cmd in _commands(step.get("run", "")):
            if cmd[:1] != ["ptq"]:
                continue
            seen.add(cmd[1])
            assert cmd[1] in COMMANDS, f"{name}: ptq {cmd[1]} is not a ptq command"
            argv = [re.sub(r"\$\{?\w+\}?", "x", a) for a in cmd[1:]]
            parser.parse_args(argv)  # SystemExit on a bad command or option
    assert {"merge", "report", "compare"} <= seen


def test_the_gate_and_the_history_job_look_up_baselines_alike():
    """Same judges, same fallback to the branch a push to main records baselines on."""
    gate, record = _job(GATE, "gate"), _load(ROOT / ".github" / "workflows" / HISTORY)
    assert _resolve(record["env"]["GATE_JUDGES"], _inputs(HISTORY)) == _resolve(
        gate["env"]["GATE_JUDGES"], _inputs(GATE)
    )
    for step in (_step(GATE, "gate", "Compare with the baseline"), _step(HISTORY, "record", RECORD)):
        compares = [c for c in _commands(step["run"]) if c[:2] == ["ptq", "compare"]]
        assert compares, step["name"]
        for c in compares:
            assert c[-2:] == ["--fallback-root", "history"] and "--accept-new" in c, c


@pytest.mark.slow
def test_every_pytest_option_in_the_workflows_is_registered():
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    used = {
        a.split("=")[0]
        for _n, _j, step in _steps()
        for cmd in _commands(step.get("run", ""))
        if cmd[:1] == ["pytest"]
        for a in cmd
        if a.startswith("--")
    }
    assert {"--ptq-shard", "--benchmark-only", "--benchmark-json"} <= used
    missing = {o for o in used if o not in help_text}
    assert not missing, f"pytest does not know {missing}"


def _job(workflow: str, job: str) -> dict:
    return _load(ROOT / ".github" / "workflows" / workflow)["jobs"][job]


def _step(workflow: str, job: str, name: str) -> dict:
    for step in _job(workflow, job)["steps"]:
        if step.get("name") == name:
            return step
    raise LookupError(name)


def _fake_gh(bin_dir: Path, existing_id: str = "", head: str = "c0ffee") -> Path:
    """``gh`` that logs its arguments and answers the two queries the posting step makes."""
    log = bin_dir / "gh.log"
    gh = bin_dir / "gh"
    gh.write_text(
        f'#!/bin/sh\necho "$@" >> {log}\n'
        f'case "$*" in *"/pulls/"*) echo "{head}";; *--paginate*) echo "{existing_id}";; esac\n'
    )
    gh.chmod(0o755)
    return log


def _bash(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True)


def _run_steps(
    workflow: str, job: str, names: tuple[str, ...], cwd: Path, extra_env: dict | None = None, **values: str
) -> subprocess.CompletedProcess:
    """Run the named steps of a job as the runner would: the workflow's, job's and steps' literal
    env, then ``values`` for every expression-valued one (each must be given, so a renamed one
    fails here), and ``extra_env`` (the test's stand-ins). Stops at the first step that fails and
    returns it."""
    inputs = _inputs(workflow) if workflow in _callers() else {}
    literal = {
        k: _resolve(v, inputs)
        for k, v in {
            **_load(ROOT / ".github" / "workflows" / workflow).get("env", {}),
            **_job(workflow, job).get("env", {}),
        }.items()
    }
    result = None
    for name in names:
        step = _step(workflow, job, name)
        given = {k: _resolve(v, inputs) for k, v in step.get("env", {}).items()}
        env = {**literal, **{k: v for k, v in given.items() if "${{" not in v}}
        wanted = {k for k, v in given.items() if "${{" in v}
        assert wanted <= set(values), f"{name}: give {wanted - set(values)}"
        env.update({k: values[k] for k in wanted})
        base = dict(
            os.environ,
            PATH=f"{cwd / 'bin'}:{BIN}:{os.environ['PATH']}",
            PYTHONPATH=str(ROOT),
            GITHUB_STEP_SUMMARY=str(cwd / "summary.md"),
        )
        result = _bash(step["run"], cwd, {**base, **env, **(extra_env or {})})
        if result.returncode != 0:
            return result
    return result


def _shards(run: Path, directory: Path) -> None:
    """``run`` split as two ``--ptq-shard`` runs would write it: shard-1.json, shard-2.json."""
    doc = json.loads(run.read_text())
    directory.mkdir(parents=True, exist_ok=True)
    for i, keep in enumerate((lambda g: g == "digits_cnn", lambda g: g != "digits_cnn"), 1):
        part = dict(doc, benchmarks=[b for b in doc["benchmarks"] if keep(b["group"])])
        (directory / f"shard-{i}.json").write_text(json.dumps(part))


def _workspace(tmp_path: Path, *, baseline: bool) -> Path:
    """What the gate job has after its downloads: the fixture run split into two shards, the
    history branch's runs before it (1 and 3), and (``baseline``) run 3 stored as run 4's baseline
    (run 4 regressed)."""
    doc = json.loads(FIXTURE_RUN.read_text())
    _shards(FIXTURE_RUN, tmp_path / "shards")
    (tmp_path / "history" / "runs").mkdir(parents=True)
    for older in ("run-0001.json", "run-0003.json"):
        shutil.copy(FIXTURE_RUN.parent / older, tmp_path / "history" / "runs" / older)
    if baseline:
        (tmp_path / "results" / "baselines").mkdir(parents=True)
        shutil.copy(
            FIXTURE_RUN.parent / "run-0003.json",
            tmp_path / "results" / "baselines" / f"{doc['ptq']['fingerprint']}.json",
        )
    (tmp_path / "bin").mkdir()
    return tmp_path


GATE, HISTORY, BASELINES, COMMENT = (
    "reusable-gate.yml",
    "reusable-history.yml",
    "reusable-baselines.yml",
    "reusable-comment.yml",
)
GATE_STEPS = ("Merge shards", "Compare with the baseline", "HTML report")
#: The pull request's base commit: "" here, as none is in the workspace (the bootstrap tests make one).
GATE_VALUES = {"BASE_SHA": ""}
COMMENT_VALUES = {"PR": "7", "RUN_URL": "https://github.com/owner/repo/actions/runs/99"}


def _latency_stand_in(cwd: Path) -> int:
    """The latency-ab job's output without ptq ab (minutes of timing): the same renderer judging
    run 4's latency against run 3's, as ab.md in the artifact layout; returns its exit code."""
    out = cwd / "parts" / "ptq-ab" / "ab.md"
    out.parent.mkdir(parents=True)
    args = [
        str(BIN / "ptq"),
        "compare",
        str(FIXTURE_RUN),
        "--baseline",
        str(FIXTURE_RUN.parent / "run-0003.json"),
        "--judges",
        "latency",
    ]
    for fmt, path in (("md", out), ("json", cwd / "ab.json")):
        done = subprocess.run(
            [*args, "--format", fmt], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))
        )
        path.write_text(done.stdout)
    return done.returncode


def _gate_artifact(cwd: Path) -> None:
    (cwd / "parts" / "ptq-run").mkdir(parents=True)
    shutil.copy(cwd / "compare.md", cwd / "parts" / "ptq-run" / "compare.md")


@pytest.mark.slow
def test_gate_job_steps_run_on_fixture_shards_and_fail_without_a_baseline(tmp_path):
    cwd = _workspace(tmp_path, baseline=False)
    result = _run_steps(GATE, "gate", GATE_STEPS, cwd, **GATE_VALUES)
    assert result.returncode == 0, result.stdout + result.stderr
    merged = json.loads((cwd / "run.json").read_text())
    assert len(merged["benchmarks"]) == len(json.loads(FIXTURE_RUN.read_text())["benchmarks"])
    # No results/baselines/ and none recorded on the branch: the check fails closed, listing both
    # places and saying how a baseline gets there.
    summary = (cwd / "summary.md").read_text()
    assert "FAIL: no baseline" in summary and "--ptq-save-baseline" in summary
    assert "stored in results/baselines: none" in summary and "nor under --fallback-root history" in summary
    first = _job(GATE, "gate")["env"]["FIRST_BASELINE"]
    assert summary.rstrip().endswith(first)  # the comment's gate part ends with how to get one
    assert json.loads((cwd / "compare.json").read_text())["outcome"] == "no-baseline"
    assert (cwd / "report.html").read_text().startswith("<!DOCTYPE html>")
    failed = _run_steps(GATE, "gate", ("Fail on regression",), cwd)
    assert failed.returncode == 3
    [line] = failed.stdout.splitlines()  # one annotation
    assert line.startswith("::error title=ptq: no baseline::")
    for said in ("A push to main records one", "run the refresh baselines workflow", "fails here by design"):
        assert said in line, said


@pytest.mark.slow
def test_html_report_step_runs_before_the_first_push_to_main(tmp_path):
    cwd = _workspace(tmp_path, baseline=True)
    shutil.rmtree(cwd / "history")  # no ptq-history branch yet
    result = _run_steps(GATE, "gate", GATE_STEPS, cwd, **GATE_VALUES)
    assert result.returncode == 0, result.stdout + result.stderr
    html = (cwd / "report.html").read_text()
    assert "FAIL: 1 regression" in html and "digits_cnn-static_int8" in html  # the gate's own comparison


def _failing_rows(part: str) -> set[tuple[str, str]]:
    """(case, metric) of the rows in a rendered part's "Failing the gate" table."""
    if "Failing the gate" not in part:
        return set()
    table = part.split("Failing the gate", 1)[1].split("\n\n")[1]
    return {tuple(cell.strip() for cell in line.split("|")[1:3]) for line in table.splitlines()[2:]}


@pytest.mark.slow
def test_the_comment_shows_exactly_the_rows_the_checks_fail_on(tmp_path):
    cwd = _workspace(tmp_path, baseline=True)
    assert _run_steps(GATE, "gate", GATE_STEPS, cwd, **GATE_VALUES).returncode == 0
    gate = _run_steps(GATE, "gate", ("Fail on regression",), cwd)
    assert gate.returncode == 1 and "::error title=ptq: gate failed::" in gate.stdout
    ab_exit = _latency_stand_in(cwd)
    assert ab_exit == 1
    _gate_artifact(cwd)
    built = _run_steps(
        GATE, "comment", ("Build the comment",), cwd, **COMMENT_VALUES, AB_RESULT="failure", GATE_RESULT="failure"
    )
    assert built.returncode == 0, built.stdout + built.stderr
    comment = (cwd / "comment" / "comment.md").read_text()
    assert comment.startswith("<!-- ptq-report -->\n") and f"]({COMMENT_VALUES['RUN_URL']})" in comment
    assert (cwd / "comment" / "pr-number").read_text() == "7\n"
    _, latency, gate_part = comment.split("\n---\n")
    assert "(job `latency-ab`: failure)" in latency and "(job `gate`: failure)" in gate_part
    for part, judged in ((latency, cwd / "ab.json"), (gate_part, cwd / "compare.json")):
        doc = json.loads(judged.read_text())
        failing = {(r["case"], r["metric"]) for r in doc["rows"] if r["fails"]}
        assert failing and _failing_rows(part) == failing  # case by case, no more, no less
        assert doc["summary"] in part and part.index("Failing the gate") < part.index("<details>")
        assert part.count("digits_cnn-fp32") >= 1  # every row under <details>
    assert _failing_rows(gate_part) == {("digits_cnn-static_int8", "memory")}
    assert _failing_rows(latency) == {("micro_linear_256-static_int8", "latency")}


@pytest.mark.slow
def test_a_comment_too_long_for_github_keeps_the_failing_rows(tmp_path):
    cwd = _workspace(tmp_path, baseline=True)
    assert _run_steps(GATE, "gate", GATE_STEPS, cwd, **GATE_VALUES).returncode == 0
    _latency_stand_in(cwd)
    _gate_artifact(cwd)
    step = _step(GATE, "comment", "Build the comment")
    assert int(step["env"]["LIMIT"]) < 65536
    script = step["run"]
    env = dict(os.environ, **COMMENT_VALUES, AB_RESULT="failure", GATE_RESULT="failure", LIMIT="3000")
    assert _bash(script, cwd, env).returncode == 0
    comment = (cwd / "comment" / "comment.md").read_text()
    assert "<details>" not in comment and "GitHub caps a comment at 65,536 characters" in comment
    assert "digits_cnn-static_int8 | memory" in comment and "micro_linear_256-static_int8 | latency" in comment


@pytest.mark.slow
def test_a_job_that_stopped_before_judging_is_said_in_the_comment(tmp_path):
    cwd = _workspace(tmp_path, baseline=True)
    result = _run_steps(
        GATE, "comment", ("Build the comment",), cwd, **COMMENT_VALUES, AB_RESULT="cancelled", GATE_RESULT="skipped"
    )
    assert result.returncode == 0, result.stderr
    comment = (cwd / "comment" / "comment.md").read_text()
    assert comment.count("No verdict: the job stopped before judging") == 2 and "(job `gate`: skipped)" in comment


POST = ("Post or update the one comment",)
POST_VALUES = {"GH_TOKEN": "x", "REPO": "owner/repo", "HEAD_SHA": "c0ffee"}


def _artifact(cwd: Path, pr: str) -> None:
    (cwd / "comment").mkdir()
    (cwd / "comment" / "comment.md").write_text("<!-- ptq-report -->\nbody\n")
    (cwd / "comment" / "pr-number").write_text(pr)


@pytest.mark.slow
@pytest.mark.parametrize("existing", ["", "4242"], ids=["new-comment", "update-comment"])
def test_comment_workflow_posts_or_updates_the_one_comment(tmp_path, existing):
    (tmp_path / "bin").mkdir()
    log = _fake_gh(tmp_path / "bin", existing)
    _artifact(tmp_path, "7\n")
    result = _run_steps(COMMENT, "post", POST, tmp_path, **POST_VALUES)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "api repos/owner/repo/pulls/7 --jq .head.sha"
    assert "github-actions[bot]" in calls[1] and "<!-- ptq-report -->" in calls[1]  # only its own comment
    assert calls[2] == (
        "api --method PATCH repos/owner/repo/issues/comments/4242 -F body=@comment/comment.md"
        if existing
        else "api --method POST repos/owner/repo/issues/7/comments -F body=@comment/comment.md"
    )


@pytest.mark.slow
@pytest.mark.parametrize("pr", ["", "abc", "7; touch pwned", "$(touch pwned)", "7\n8", "-1", "7 8"])
def test_comment_workflow_refuses_a_pull_request_number_that_is_not_an_integer(tmp_path, pr):
    (tmp_path / "bin").mkdir()
    log = _fake_gh(tmp_path / "bin")
    _artifact(tmp_path, pr)
    result = _run_steps(COMMENT, "post", POST, tmp_path, **POST_VALUES)
    assert result.returncode == 1 and "pull-request number is not an integer; nothing posted" in result.stdout
    assert not log.exists() and not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_comment_workflow_posts_nothing_where_the_pull_requests_head_is_another_commit(tmp_path):
    (tmp_path / "bin").mkdir()
    log = _fake_gh(tmp_path / "bin", head="deadbeef")  # pushed since, or a forged number
    _artifact(tmp_path, "8\n")
    result = _run_steps(COMMENT, "post", POST, tmp_path, **POST_VALUES)
    assert result.returncode == 0 and "::warning title=ptq comment::pull request 8's head is deadbeef" in result.stdout
    assert log.read_text().splitlines() == ["api repos/owner/repo/pulls/8 --jq .head.sha"]


def test_latency_job_uploads_the_markdown_the_comment_includes():
    uploads = [s for s in _job(GATE, "latency-ab")["steps"] if "upload-artifact" in s.get("uses", "")]
    [upload] = uploads
    assert upload["with"]["name"] == "ptq-ab" and upload["with"]["path"] == "ab.md" and upload["if"] == "always()"
    assert "ptq-ab/ab.md" in _step(GATE, "comment", "Build the comment")["run"]
    assert set(_job(GATE, "comment")["needs"]) == {"gate", "latency-ab"}


def test_baselines_are_recorded_in_the_shards_pull_requests_run():
    # A quantize step's memory depends on which cases ran before it in the process.
    shards = {
        w: (_inputs(w)["shards"], _load(ROOT / ".github" / "workflows" / w)["env"]["SHARDS"])
        for w in (GATE, HISTORY, BASELINES)
    }
    assert len(set(shards.values())) == 1 and shards[GATE] == ("2", "${{ inputs.shards }}")
    # The same shards one after another on one runner (history, baselines), merged as the gate merges them,
    # with the same selection and options as the pull request's.
    [loop] = _commands(_step(HISTORY, "record", "Benchmarks, shard after shard")["run"])
    [gate] = _commands(_step(GATE, "bench", "Benchmarks (one shard)")["run"])
    [save] = _commands(
        _step(
            BASELINES, "refresh", "Benchmarks, shard after shard, saved as the baseline of this runner's fingerprint"
        )["run"]
    )
    assert loop == gate == [a for a in save if a != "--ptq-save-baseline"] and "--ptq-shard=$SHARD/$SHARDS" in gate
    for option in ("--ptq-matrix=$MATRIX", "--ptq-models=$MODELS", "--ptq-recipes=$RECIPES"):
        assert option in gate
    assert [c[:2] for c in _commands(_step(HISTORY, "record", "Merge shards")["run"])] == [["ptq", "merge"]]
    names = [s["name"] for s in _job(HISTORY, "record")["steps"] if "name" in s]
    assert names[-5:] == ["Benchmarks, shard after shard", *HISTORY_STEPS]


# The history's record job (push to main) after its benchmarks: the shards merged, the branch
# checked out from a bare repository standing in for GitHub's, a baseline recorded where none
# applies and pushed; the run itself goes to an artifact, never to the branch.
RECORD = "Record this runner's baseline where none applies"
HISTORY_STEPS = (
    "Merge shards",
    "Check out branch ptq-history",
    RECORD,
    "Push the recorded baseline to branch ptq-history",
)
HISTORY_VALUES = {"GH_TOKEN": "x", "REPO": "owner/repo", "SHA": "0123456789abcdef0123"}
RUNS = FIXTURE_RUN.parent
FINGERPRINT = json.loads(FIXTURE_RUN.read_text())["ptq"]["fingerprint"]  # runs 1, 3 and 4
OTHER_CPU = RUNS / "run-0005.json"  # another fingerprint, the same numerics keys as runs 1-4


def _git(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _remote(tmp_path: Path, branch: dict[str, Path] | None) -> tuple[Path, dict[str, str]]:
    """A bare repository whose ptq-history branch holds ``branch`` (path on it -> file to copy),
    no such branch where None; and the git config that sends the workflows' GitHub URL to it."""
    remote = tmp_path / "remote.git"
    _git("init", "--bare", "-b", "main", remote)
    if branch is not None:
        seed = tmp_path / "seed"
        _git("init", "-b", "ptq-history", seed)
        for name, src in branch.items():
            (seed / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, seed / name)
        _git("add", ".", cwd=seed)
        _git("commit", "-m", "seed", cwd=seed)
        _git("push", remote, "ptq-history", cwd=seed)
    github = f"https://x-access-token:{HISTORY_VALUES['GH_TOKEN']}@github.com/{HISTORY_VALUES['REPO']}.git"
    return remote, {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.file://{remote}.insteadOf",
        "GIT_CONFIG_VALUE_0": github,
    }


def _on_branch(remote: Path) -> list[str]:
    return sorted(_git("ls-tree", "-r", "--name-only", "ptq-history", cwd=remote).split())


def _push_to_main(
    tmp_path: Path, run: Path, branch: dict[str, Path] | None, main_baseline: Path | None = None, meanwhile=None
):
    """The record job's steps after its benchmarks, ``run`` standing in for what they measured:
    the record step's result, else the first that failed; then the push step's. ``meanwhile(remote)``
    stands for another run pushing to the branch between this one's checkout and its push."""
    cwd = tmp_path / "push"
    (cwd / "bin").mkdir(parents=True)
    _shards(run, cwd)
    if main_baseline is not None:
        (cwd / "results" / "baselines").mkdir(parents=True)
        shutil.copy(main_baseline, cwd / "results" / "baselines" / main_baseline.name)
    remote, git_env = _remote(tmp_path, branch)
    recorded = _run_steps(HISTORY, "record", HISTORY_STEPS[:3], cwd, git_env, **HISTORY_VALUES)
    if meanwhile is not None:
        meanwhile(remote)
    if recorded.returncode == 0:
        pushed = _run_steps(HISTORY, "record", HISTORY_STEPS[3:], cwd, git_env, **HISTORY_VALUES)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        recorded = subprocess.CompletedProcess(
            pushed.args, 0, recorded.stdout + pushed.stdout, recorded.stderr + pushed.stderr
        )
    return cwd, remote, recorded


def _another_run_pushes(tmp_path: Path, files: dict[str, bytes]) -> Callable[[Path], str]:
    """``meanwhile`` for :func:`_push_to_main` and :func:`_push_chain`: another run's push of
    ``files`` to branch ptq-history (creating it where there is none); it returns that commit."""

    def push(remote: Path) -> str:
        other = tmp_path / "other-run"
        has_branch = (
            subprocess.run(
                ["git", "ls-remote", "--exit-code", "--heads", str(remote), "ptq-history"], capture_output=True
            ).returncode
            == 0
        )
        if has_branch:
            _git("clone", "--depth", "1", "--branch", "ptq-history", f"file://{remote}", other)
        else:
            _git("init", "-b", "ptq-history", other)
        for name, data in files.items():
            (other / name).parent.mkdir(parents=True, exist_ok=True)
            (other / name).write_bytes(data)
        _git("add", ".", cwd=other)
        _git("commit", "-m", "another run", cwd=other)
        _git("push", f"file://{remote}", "ptq-history", cwd=other)
        return _git("rev-parse", "HEAD", cwd=other).strip()

    return push


@pytest.mark.slow
def test_a_push_to_main_records_the_baseline_none_applies_and_the_next_pull_request_is_gated(tmp_path):
    run3 = RUNS / "run-0003.json"
    cwd, remote, result = _push_to_main(tmp_path, run3, {"runs/run-0001.json": RUNS / "run-0001.json"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "::notice title=ptq: baseline recorded::" in result.stdout
    files = _on_branch(remote)
    assert files == sorted(["runs/run-0001.json", f"results/baselines/{FINGERPRINT}.json"])  # the run: an artifact
    stored = json.loads(_git("show", f"ptq-history:results/baselines/{FINGERPRINT}.json", cwd=remote))
    assert stored == json.loads((cwd / "run.json").read_text())  # the merged shards, as the gate merges them
    assert _git("log", "-1", "--format=%s", "ptq-history", cwd=remote).strip() == "baseline: 0123456789ab"
    # The pull request that follows (run 4, whose digits memory regressed) is gated by it.
    pr = _workspace(tmp_path / "pr", baseline=False)
    shutil.rmtree(pr / "history")
    _git("clone", "--branch", "ptq-history", f"file://{remote}", pr / "history")
    assert _run_steps(GATE, "gate", GATE_STEPS, pr, **GATE_VALUES).returncode == 0
    judged = json.loads((pr / "compare.json").read_text())
    assert judged["baseline"] == f"history/results/baselines/{FINGERPRINT}.json"
    assert judged["outcome"] == "fail" and judged["summary"].startswith("FAIL: 1 regression")
    assert _run_steps(GATE, "gate", ("Fail on regression",), pr).returncode == 1


@pytest.mark.slow
def test_the_first_push_to_main_creates_the_branch_with_the_run_and_its_baseline(tmp_path):
    _, remote, result = _push_to_main(tmp_path, FIXTURE_RUN, None)
    assert result.returncode == 0, result.stdout + result.stderr
    files = _on_branch(remote)
    assert files == [f"results/baselines/{FINGERPRINT}.json"]  # the baseline alone: the run is an artifact


@pytest.mark.slow
@pytest.mark.parametrize("where", ["main-own", "branch-own", "branch-same-numerics"])
def test_a_push_to_main_records_no_baseline_where_one_applies(tmp_path, where):
    branch = {"runs/run-0001.json": RUNS / "run-0001.json"}
    main_baseline = None
    if where == "main-own":
        main_baseline = tmp_path / f"{FINGERPRINT}.json"
        shutil.copy(RUNS / "run-0003.json", main_baseline)
    elif where == "branch-own":
        branch[f"results/baselines/{FINGERPRINT}.json"] = RUNS / "run-0003.json"
    else:  # another CPU model with the same ISA flags and versions: memory, size and drift compare
        branch[f"results/baselines/{json.loads(OTHER_CPU.read_text())['ptq']['fingerprint']}.json"] = OTHER_CPU
    before = [f for f in branch if f.startswith("results/")]
    _, remote, result = _push_to_main(tmp_path, FIXTURE_RUN, branch, main_baseline)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "A baseline applies to this runner; none recorded." in result.stdout
    files = _on_branch(remote)
    assert [f for f in files if f.startswith("results/")] == before  # nothing recorded
    for name in before:  # nothing replaced
        assert _git("show", f"ptq-history:{name}", cwd=remote) == branch[name].read_text()
    assert (
        files == sorted(branch) and len(_git("log", "--format=%H", "ptq-history", cwd=remote).split()) == 1
    )  # no push


@pytest.mark.slow
def test_a_push_to_main_stops_on_a_damaged_baseline_on_the_branch(tmp_path):
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"benchmarks": [')
    _, remote, result = _push_to_main(tmp_path, FIXTURE_RUN, {f"results/baselines/{FINGERPRINT}.json": damaged})
    assert result.returncode == 2 and "corrupt or truncated JSON" in result.stderr
    assert len(_git("log", "--format=%H", "ptq-history", cwd=remote).split()) == 1  # nothing pushed


# The history's chain job (after the record job): the commit's A/B against its parent, its
# summary appended to the chained history on the branch. A stub ``ptq ab`` (the real one takes
# minutes) saves two sides made from fixture runs 3 (parent) and 4 (commit: micro_linear_256-
# static_int8 1.5x slower) and exits with the code given; every other ptq command is the real one.
AB_STEP = "A/B of the parent commit against this one, latency timed as a duet"
CHAIN_STEPS = (
    AB_STEP,
    "Check out branch ptq-history",
    "Add the commit's summary to the chained history on branch ptq-history",
)
SLOWED = "micro_linear_256-static_int8"


def _sides(directory: Path) -> tuple[Path, Path]:
    """Fixture runs 3 and 4 as ``ptq ab --save`` writes its sides: each case's samples in 3 placements."""
    directory.mkdir()
    out = []
    for label, run in (("a", "run-0003.json"), ("b", "run-0004.json")):
        doc = json.loads((RUNS / run).read_text())
        for bench in doc["benchmarks"]:
            n = len(bench["stats"]["data"])
            bench["extra_info"]["ab_placement_sizes"] = [n // 3, n // 3, n - 2 * (n // 3)]
        (directory / f"{label}.json").write_text(json.dumps(doc))
        out.append(directory / f"{label}.json")
    return out[0], out[1]


def _stub_ab(bin_dir: Path, sides: tuple[Path, Path], code: int) -> Path:
    """``ptq`` whose ``ab`` logs its arguments one a line, saves ``sides`` (unless it fails, exit 2)
    and exits ``code``; any other command runs the real ptq."""
    log = bin_dir / "ab.args"
    saved = "".join(
        f'cp {src} results/ab/T-{label}.json\necho "saved: $PWD/results/ab/T-{label}.json"\n'
        for label, src in zip("ab", sides, strict=True)
    )
    body = (
        "echo 'ptq: error: side A wrote no results' >&2\n"
        if code == 2
        else f"mkdir -p results/ab\n{saved}echo '**ptq ab**: the verdict table'\n"
    )
    (bin_dir / "ptq").write_text(
        f'#!/bin/sh\nif [ "$1" != ab ]; then exec {BIN / "ptq"} "$@"; fi\n'
        f"printf '%s\\n' \"$@\" > {log}\n{body}exit {code}\n"
    )
    (bin_dir / "ptq").chmod(0o755)
    return log


def _commits(cwd: Path, parent: str) -> list[str]:
    """The checkout (``fetch-depth: 2``): HEAD with benchmarks/, after a parent ``with``
    benchmarks/, one ``without`` them, or ``none``; the SHAs, oldest first."""
    _git("init", "-b", "main", cwd)
    if parent != "none":
        (cwd / "README.md").write_text("parent\n")
        if parent == "with":
            (cwd / "benchmarks").mkdir()
            (cwd / "benchmarks" / "test_ptq.py").write_text("# parent\n")
        _git("add", "--all", "README.md", *(["benchmarks"] if parent == "with" else []), cwd=cwd)
        _git("commit", "-m", "parent", cwd=cwd)
    (cwd / "benchmarks").mkdir(exist_ok=True)
    (cwd / "benchmarks" / "test_ptq.py").write_text("# commit\n")
    _git("add", "benchmarks", cwd=cwd)
    _git("commit", "-m", "commit", cwd=cwd)
    return _git("rev-list", "--reverse", "HEAD", cwd=cwd).split()


def _push_chain(
    tmp_path: Path, *, parent: str = "with", code: int = 0, branch: dict[str, Path] | None = None, meanwhile=None
):
    """The chain job's steps after its install, as the runner runs them: the A/B step, then
    (where it set output ``b``, the later steps' ``if``) the branch checkout and the append
    (``meanwhile(remote)`` between them: another run's push). Returns the checkout, the remote,
    the A/B step's result, the later steps' (or None), the SHAs."""
    cwd = tmp_path / "push"
    (cwd / "bin").mkdir(parents=True)
    shas = _commits(cwd, parent)
    _stub_ab(cwd / "bin", _sides(tmp_path / "sides"), code)
    remote, git_env = _remote(tmp_path, branch)
    env = {**git_env, "GITHUB_OUTPUT": str(cwd / "output")}
    ab = _run_steps(HISTORY, "chain", CHAIN_STEPS[:1], cwd, env)
    outputs = (
        dict(line.split("=", 1) for line in (cwd / "output").read_text().splitlines())
        if (cwd / "output").exists()
        else {}
    )
    assert {_step(HISTORY, "chain", name)["if"] for name in CHAIN_STEPS[1:]} == {"steps.ab.outputs.b != ''"}
    rest = None
    if ab.returncode == 0 and outputs.get("b"):
        values = dict(
            GH_TOKEN=HISTORY_VALUES["GH_TOKEN"],
            REPO=HISTORY_VALUES["REPO"],
            **{k.upper(): v for k, v in outputs.items()},
        )
        rest = _run_steps(HISTORY, "chain", CHAIN_STEPS[1:2], cwd, env, **values)
        if rest.returncode == 0:
            if meanwhile is not None:
                meanwhile(remote)
            rest = _run_steps(HISTORY, "chain", CHAIN_STEPS[2:], cwd, env, **values)
    return cwd, remote, ab, rest, shas


@pytest.mark.slow
@pytest.mark.parametrize("code", [0, 1], ids=["pass", "regression"])
def test_a_push_to_main_adds_its_summary_to_the_chained_history_and_no_run(tmp_path, code):
    baseline = {f"results/baselines/{FINGERPRINT}.json": RUNS / "run-0003.json"}  # as the record job left it
    cwd, remote, ab, rest, (parent, commit) = _push_chain(tmp_path, code=code, branch=baseline)
    assert ab.returncode == 0 and rest is not None and rest.returncode == 0, (
        ab.stdout + ab.stderr + (rest.stderr if rest else "")
    )
    assert ("::warning title=ptq: slower than its parent::" in ab.stdout) == (code == 1)  # recorded all the same
    argv = (cwd / "bin" / "ab.args").read_text().splitlines()
    assert argv[:5] == ["ab", "HEAD~1", "HEAD", "--save", "--accept-new"]
    [passed] = [a.removeprefix("--pytest-args=") for a in argv if a.startswith("--pytest-args=")]
    assert shlex.split(passed)[0] == "--ptq-matrix=quick"
    files = _on_branch(remote)
    assert files == sorted([*baseline, f"chain/{commit}.json", "index.html"])  # no runs/
    summary = json.loads(_git("show", f"ptq-history:chain/{commit}.json", cwd=remote))
    assert (summary["commit"], summary["parent"]) == (commit, parent)
    assert summary["cases"][SLOWED]["verdict"] == "REGRESSION" and summary["cases"][SLOWED]["ratio"] > 1
    assert len(json.dumps(summary)) < (tmp_path / "sides" / "b.json").stat().st_size  # a summary, not the run
    assert commit[:12] in _git("show", "ptq-history:index.html", cwd=remote)
    assert _git("log", "-1", "--format=%s", "ptq-history", cwd=remote).strip() == f"chain: {commit[:12]}"
    assert sorted(p.name for p in (cwd / "results" / "ab").iterdir()) == ["T-a.json", "T-b.json"]  # the artifact's


@pytest.mark.slow
def test_the_next_push_extends_the_chain_the_branch_holds(tmp_path):
    earlier = tmp_path / "earlier"
    a, b = _sides(tmp_path / "earlier-sides")
    done = subprocess.run(
        [
            BIN / "ptq",
            "chain",
            "append",
            str(a),
            str(b),
            "--commit",
            "e" * 40,
            "--parent",
            "d" * 40,
            "--time",
            "2000-01-01T00:00:00Z",
            "-d",
            str(earlier),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert done.returncode == 0, done.stderr
    _, remote, ab, rest, (_, commit) = _push_chain(
        tmp_path, branch={f"chain/{'e' * 40}.json": earlier / f"{'e' * 40}.json"}
    )
    assert ab.returncode == 0 and rest is not None and rest.returncode == 0, ab.stderr + (rest.stderr if rest else "")
    assert _on_branch(remote) == sorted([f"chain/{'e' * 40}.json", f"chain/{commit}.json", "index.html"])
    html = _git("show", "ptq-history:index.html", cwd=remote)
    assert "e" * 12 in html and commit[:12] in html  # the report draws both links


@pytest.mark.slow
def test_a_link_is_added_on_top_of_what_another_run_pushed_meanwhile(tmp_path):
    """Row 8: runs are not serialized, so none is cancelled; the push another run got ahead of is
    made again on top of the branch, and neither run's link is lost."""
    earlier = tmp_path / "earlier"
    a, b = _sides(tmp_path / "earlier-sides")
    done = subprocess.run(
        [
            BIN / "ptq",
            "chain",
            "append",
            str(a),
            str(b),
            "--commit",
            "e" * 40,
            "--parent",
            "d" * 40,
            "--time",
            "2000-01-01T00:00:00Z",
            "-d",
            str(earlier),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert done.returncode == 0, done.stderr
    [(name, data)] = [(f"chain/{p.name}", p.read_bytes()) for p in earlier.iterdir()]
    other = _another_run_pushes(tmp_path, {name: data, "index.html": b"the other run's report\n"})
    _, remote, ab, rest, (_, commit) = _push_chain(tmp_path, branch={"README.md": ROOT / "README.md"}, meanwhile=other)
    assert ab.returncode == 0 and rest is not None and rest.returncode == 0, ab.stderr + (
        rest.stdout + rest.stderr if rest else ""
    )
    assert (
        "Branch ptq-history moved since the checkout (another run pushed); adding the link on top of it (try 1 of 5)"
        in rest.stdout
    )
    assert _on_branch(remote) == sorted(["README.md", name, f"chain/{commit}.json", "index.html"])  # both links
    assert _git("show", f"ptq-history:{name}", cwd=remote).encode() == data  # the other run's, as it pushed it
    html = _git("show", "ptq-history:index.html", cwd=remote)
    assert "e" * 12 in html and commit[:12] in html  # the report drawn again, from both links
    log = _git("log", "--format=%s", "ptq-history", cwd=remote).split("\n")
    assert log[:3] == [f"chain: {commit[:12]}", "another run", "seed"]  # on top of it: nothing of it undone


@pytest.mark.slow
@pytest.mark.parametrize("other", ["another-file", "same-baseline"])
def test_a_baseline_is_recorded_on_top_of_what_another_run_pushed_meanwhile(tmp_path, other):
    """Row 8, the record job: a baseline another run recorded at the same path meanwhile is kept."""
    theirs = (RUNS / "run-0001.json").read_bytes()
    files = (
        {f"chain/{'e' * 40}.json": b"{}\n"}
        if other == "another-file"
        else {f"results/baselines/{FINGERPRINT}.json": theirs}
    )
    cwd, remote, result = _push_to_main(
        tmp_path, RUNS / "run-0003.json", None, meanwhile=_another_run_pushes(tmp_path, files)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recording on top of it (try 1 of 5)" in result.stdout
    assert _on_branch(remote) == sorted({*files, f"results/baselines/{FINGERPRINT}.json"})
    stored = _git("show", f"ptq-history:results/baselines/{FINGERPRINT}.json", cwd=remote).encode()
    if other == "another-file":  # this run's baseline, on top of the other run's commit
        assert json.loads(stored) == json.loads((cwd / "run.json").read_text())
        assert _git("log", "--format=%s", "ptq-history", cwd=remote).split("\n")[:2] == [
            "baseline: 0123456789ab",
            "another run",
        ]
    else:  # the first recorded is kept; this run pushes nothing
        assert stored == theirs
        assert (
            f"::notice title=ptq: baseline kept::another run recorded results/baselines/{FINGERPRINT}.json "
            "meanwhile; kept, this run's not pushed"
        ) in result.stdout
        assert _git("log", "--format=%s", "ptq-history", cwd=remote).split("\n")[0] == "another run"


@pytest.mark.slow
def test_the_chain_job_fails_closed_when_ptq_ab_fails(tmp_path):
    _, remote, ab, rest, _ = _push_chain(tmp_path, code=2, branch={"README.md": ROOT / "README.md"})
    assert ab.returncode == 2 and rest is None
    assert "::error title=ptq: A/B failed::ptq ab HEAD~1 HEAD exited 2; nothing recorded" in ab.stdout
    assert _on_branch(remote) == ["README.md"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("parent", "code", "why"),
    [
        ("none", 0, "no parent commit"),
        ("without", 0, "has no benchmarks/"),
        ("with", 3, "measured no case (ptq ab exit 3)"),
    ],
)
def test_the_chain_starts_at_a_commit_without_a_measured_parent(tmp_path, parent, code, why):
    cwd, remote, ab, rest, shas = _push_chain(
        tmp_path, parent=parent, code=code, branch={"README.md": ROOT / "README.md"}
    )
    assert ab.returncode == 0 and rest is None, ab.stdout + ab.stderr
    [notice] = [
        line for line in ab.stdout.splitlines() if line.startswith("::notice title=ptq: the chain starts here::")
    ]
    assert why in notice and shas[-1][:12] in notice
    assert (cwd / "bin" / "ab.args").exists() == (code == 3)  # nothing timed without a parent's benchmarks
    assert _on_branch(remote) == ["README.md"]  # nothing appended


def test_the_history_jobs_never_push_at_once_and_keep_raw_runs_as_artifacts():
    record, chain = _job(HISTORY, "record"), _job(HISTORY, "chain")
    assert chain["needs"] == "record" and _writes(chain) == {"contents"}
    assert chain["steps"][0]["with"]["fetch-depth"] == 2
    retention = _load(ROOT / ".github" / "workflows" / HISTORY)[True]["workflow_call"]["inputs"]["retention-days"]
    assert retention["type"] == "number" and retention["default"] > 0
    uploads = {
        job: [s["with"] for s in _job(HISTORY, job)["steps"] if "upload-artifact" in s.get("uses", "")]
        for job in ("record", "chain")
    }
    assert [u["path"] for u in uploads["record"]] == ["run.json"] and [u["path"] for u in uploads["chain"]] == [
        "results/ab/"
    ]
    assert all(u["retention-days"] == "${{ inputs.retention-days }}" for us in uploads.values() for u in us)
    assert not any("runs" in s.get("run", "") for s in record["steps"] + chain["steps"])  # no raw run on the branch


def _gate_with_branch_baseline(tmp_path: Path, baseline: Path, name: str, *, on_main: Path | None = None) -> Path:
    cwd = _workspace(tmp_path, baseline=False)
    (cwd / "history" / "results" / "baselines").mkdir(parents=True)
    shutil.copy(baseline, cwd / "history" / "results" / "baselines" / name)
    if on_main is not None:
        (cwd / "results" / "baselines").mkdir(parents=True)
        shutil.copy(on_main, cwd / "results" / "baselines" / f"{FINGERPRINT}.json")
    result = _run_steps(GATE, "gate", GATE_STEPS, cwd, **GATE_VALUES)
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd


@pytest.mark.slow
@pytest.mark.parametrize(
    ("baseline", "exit_code"),
    [("run-0003.json", 1), ("run-0004.json", 0)],
    ids=["regressed-against-it", "unchanged-against-it"],
)
def test_the_gate_judges_by_the_baseline_a_push_to_main_recorded(tmp_path, baseline, exit_code):
    cwd = _gate_with_branch_baseline(tmp_path, RUNS / baseline, f"{FINGERPRINT}.json")
    judged = json.loads((cwd / "compare.json").read_text())
    assert judged["baseline"] == f"history/results/baselines/{FINGERPRINT}.json" and judged["exit_code"] == exit_code
    assert _run_steps(GATE, "gate", ("Fail on regression",), cwd).returncode == exit_code
    assert judged["summary"] in (cwd / "report.html").read_text()  # the report's comparison is the gate's
    assert "No baseline" not in (cwd / "compare.md").read_text()


@pytest.mark.slow
def test_the_gate_uses_a_recorded_baseline_of_another_cpu_whose_numerics_keys_match(tmp_path):
    other = json.loads(OTHER_CPU.read_text())["ptq"]["fingerprint"]
    assert other != FINGERPRINT
    cwd = _gate_with_branch_baseline(tmp_path, OTHER_CPU, f"{other}.json")
    judged = json.loads((cwd / "compare.json").read_text())
    assert judged["baseline"] == f"history/results/baselines/{other}.json" and judged["outcome"] != "no-baseline"


@pytest.mark.slow
def test_a_baseline_in_results_baselines_comes_before_the_recorded_one(tmp_path):
    cwd = _gate_with_branch_baseline(tmp_path, FIXTURE_RUN, f"{FINGERPRINT}.json", on_main=RUNS / "run-0003.json")
    judged = json.loads((cwd / "compare.json").read_text())
    assert judged["baseline"] == f"results/baselines/{FINGERPRINT}.json" and judged["exit_code"] == 1


@pytest.mark.slow
def test_fallback_root_that_is_not_a_directory_is_a_usage_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [BIN / "ptq", "compare", str(FIXTURE_RUN), "--fallback-root", "history"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ptq: error: --fallback-root history: no such directory; name a checkout holding results/baselines/"
    )
    both = subprocess.run(
        [BIN / "ptq", "compare", str(FIXTURE_RUN), "--fallback-root", ".", "--baseline", str(FIXTURE_RUN)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def _fake(bin_dir: Path, name: str) -> Path:
    """``name`` on PATH logging its arguments (and pip's extra index) one call a line."""
    log = bin_dir / f"{name}.log"
    tool = bin_dir / name
    tool.write_text(f'#!/bin/sh\necho "PIP_EXTRA_INDEX_URL=$PIP_EXTRA_INDEX_URL $*" >> {log}\n')
    tool.chmod(0o755)
    return log


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workflow", "job"),
    [
        (GATE, "bench"),
        (GATE, "latency-ab"),
        (GATE, "gate"),
        (HISTORY, "record"),
        (HISTORY, "chain"),
        (BASELINES, "refresh"),
    ],
)
def test_install_takes_torch_from_the_cpu_index_then_extra_packages_and_prints_the_keys(tmp_path, workflow, job):
    (tmp_path / "bin").mkdir()
    pip, ptq = _fake(tmp_path / "bin", "pip"), _fake(tmp_path / "bin", "ptq")
    result = _run_steps(workflow, job, ("Install",), tmp_path, {"EXTRA_PACKAGES": "onnx  'scipy>=1.11'"})
    assert result.returncode == 0, result.stdout + result.stderr
    cpu = _load(ROOT / ".github" / "workflows" / workflow)[True]["workflow_call"]["inputs"]["torch-index"]["default"]
    assert cpu == "https://download.pytorch.org/whl/cpu" and "torch-index" not in _callers()[workflow][1]["with"]
    assert pip.read_text().splitlines() == [
        f"PIP_EXTRA_INDEX_URL={cpu} install -c constraints.txt -e .[all,dev]",
        f"PIP_EXTRA_INDEX_URL={cpu} install onnx 'scipy>=1.11'",
    ]
    assert ptq.read_text().split()[1:] == ["env"]  # the keys, torch's build (+cpu) in its version


@pytest.mark.slow
def test_install_without_a_torch_index_leaves_pips_own(tmp_path):
    (tmp_path / "bin").mkdir()
    pip = _fake(tmp_path / "bin", "pip")
    _fake(tmp_path / "bin", "ptq")
    result = _run_steps(GATE, "bench", ("Install",), tmp_path, {"TORCH_INDEX": "", "PIP_EXTRA_INDEX_URL": ""})
    assert result.returncode == 0 and pip.read_text().startswith("PIP_EXTRA_INDEX_URL= install -c constraints.txt")


@pytest.mark.slow
@pytest.mark.parametrize(("shards", "expected"), [("2", "list=[1,2]"), ("1", "list=[1]"), ("0", None), ("x", None)])
def test_the_plan_job_lists_the_shards_or_refuses_a_count_that_is_not_one_or_more(tmp_path, shards, expected):
    out = tmp_path / "output"
    result = _run_steps(GATE, "plan", ("Shards",), tmp_path, {"SHARDS": shards, "GITHUB_OUTPUT": str(out)})
    if expected is None:
        assert result.returncode == 2 and f"input shards = '{shards}': give a whole number, 1 or more" in result.stdout
    else:
        assert result.returncode == 0 and out.read_text().strip() == expected


@pytest.mark.slow
def test_the_latency_ab_passes_the_selection_to_every_session_as_one_quoted_string(tmp_path):
    (tmp_path / "bin").mkdir()
    log = tmp_path / "bin" / "ptq.args"
    (tmp_path / "bin" / "ptq").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\n")  # one argument a line
    (tmp_path / "bin" / "ptq").chmod(0o755)
    step = "A/B of base commit against head, latency timed as a duet (the latency gate)"
    result = _run_steps(GATE, "latency-ab", (step,), tmp_path, {"MODELS": "acme_*,resnet_custom"}, BASE_SHA="abc123")
    assert result.returncode == 0, result.stdout + result.stderr
    argv = log.read_text().splitlines()
    assert argv[:3] == ["ab", "abc123", "HEAD"] and "--accept-new" in argv
    [passed] = [a.removeprefix("--pytest-args=") for a in argv if a.startswith("--pytest-args=")]
    assert shlex.split(passed) == [
        "--ptq-matrix=quick",
        "--ptq-models=acme_*,resnet_custom",
        "--ptq-recipes=*",
        "--benchmark-max-time=0.5",
        "--ptq-pair-time=0.5",
    ]


# The pull request that adds ptq: its base commit has no benchmarks/, so it can have no baseline
# yet and no A side to time. Both checks pass as "bootstrap", with a notice saying what comes next;
# a base commit with benchmarks/ (or one not in the checkout) still fails closed.
AB_GATE_STEP = "A/B of base commit against head, latency timed as a duet (the latency gate)"


def _base(cwd: Path, *, benchmarks: bool) -> str:
    """The checkout's base commit, with or without benchmarks/; its SHA."""
    _git("init", "-q", "-b", "main", cwd)
    (cwd / "README.md").write_text("the project\n")
    if benchmarks:
        (cwd / "benchmarks").mkdir(exist_ok=True)
        (cwd / "benchmarks" / "test_ptq.py").write_text("# base\n")
    _git("add", "README.md", *(["benchmarks"] if benchmarks else []), cwd=cwd)
    _git("commit", "-q", "-m", "base", cwd=cwd)
    return _git("rev-parse", "HEAD", cwd=cwd).strip()


@pytest.mark.slow
@pytest.mark.parametrize("base", ["without-benchmarks", "with-benchmarks", "not-in-checkout"])
def test_a_pull_request_adding_ptq_passes_the_gate_as_bootstrap_and_any_other_without_a_baseline_fails(tmp_path, base):
    cwd = _workspace(tmp_path, baseline=False)
    sha = _base(cwd, benchmarks=base == "with-benchmarks")
    if base == "not-in-checkout":
        sha = "f" * 40
    result = _run_steps(GATE, "gate", GATE_STEPS, cwd, BASE_SHA=sha)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((cwd / "compare.json").read_text())["outcome"] == "no-baseline"  # judged alike: none applies
    verdict = _run_steps(GATE, "gate", ("Fail on regression",), cwd)
    summary, part = (cwd / "summary.md").read_text(), (cwd / "compare.md").read_text()
    bootstrap = " ".join(_job(GATE, "gate")["env"]["BOOTSTRAP"].split())
    if base == "without-benchmarks":
        assert verdict.returncode == 0, verdict.stdout + verdict.stderr
        [line] = verdict.stdout.splitlines()
        assert line == f"::notice title=ptq: bootstrap::{bootstrap}"
        assert bootstrap.startswith("bootstrap: ") and "Next: merge it; the push to main records" in bootstrap
        assert part.strip() == bootstrap and bootstrap in summary  # the comment's gate part and the job summary
        assert (cwd / "compare.bootstrap").read_text().strip() == sha[:12]
    else:
        assert verdict.returncode == 3 and verdict.stdout.startswith("::error title=ptq: no baseline::")
        assert "bootstrap:" not in summary and not (cwd / "compare.bootstrap").exists()
        assert summary.rstrip().endswith(_job(GATE, "gate")["env"]["FIRST_BASELINE"])


@pytest.mark.slow
def test_a_bootstrap_mark_the_pull_request_brings_is_not_taken(tmp_path):
    cwd = _workspace(tmp_path, baseline=False)
    sha = _base(cwd, benchmarks=True)
    (cwd / "compare.bootstrap").write_text("forged\n")  # a file of the pull request's tree
    assert _run_steps(GATE, "gate", GATE_STEPS, cwd, BASE_SHA=sha).returncode == 0
    assert _run_steps(GATE, "gate", ("Fail on regression",), cwd).returncode == 3


@pytest.mark.slow
@pytest.mark.parametrize("benchmarks", [False, True], ids=["base-without-benchmarks", "base-with-benchmarks"])
def test_the_latency_ab_of_a_pull_request_adding_ptq_is_a_bootstrap_notice(tmp_path, benchmarks):
    sha = _base(tmp_path, benchmarks=benchmarks)
    (tmp_path / "bin").mkdir()
    log = tmp_path / "bin" / "ptq.args"
    (tmp_path / "bin" / "ptq").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\necho '**ptq ab**'\n")
    (tmp_path / "bin" / "ptq").chmod(0o755)
    result = _run_steps(GATE, "latency-ab", (AB_GATE_STEP,), tmp_path, BASE_SHA=sha)
    assert result.returncode == 0, result.stdout + result.stderr
    if benchmarks:
        assert log.read_text().splitlines()[:3] == ["ab", sha, "HEAD"] and "bootstrap" not in result.stdout
        return
    assert not log.exists()  # nothing timed
    [line] = result.stdout.splitlines()
    assert line.startswith(f"::notice title=ptq: bootstrap::bootstrap: the base commit {sha[:12]} has no benchmarks/")
    said = line.split("::", 2)[2]
    assert (tmp_path / "ab.md").read_text().strip() == said and said in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_the_history_commits_no_lock_file_to_its_branch(tmp_path):
    cwd = tmp_path / "push"
    (cwd / "bin").mkdir(parents=True)
    _shards(RUNS / "run-0003.json", cwd)
    remote, git_env = _remote(tmp_path, None)
    assert _run_steps(HISTORY, "record", HISTORY_STEPS[:3], cwd, git_env, **HISTORY_VALUES).returncode == 0
    (cwd / "history" / "results" / "baselines" / f"{FINGERPRINT}.json.lock").write_text("")
    (cwd / "history" / "results" / "baselines" / f".{FINGERPRINT}.json.x1.tmp").write_text("")
    pushed = _run_steps(HISTORY, "record", HISTORY_STEPS[3:], cwd, git_env, **HISTORY_VALUES)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert _on_branch(remote) == [f"results/baselines/{FINGERPRINT}.json"]


@pytest.mark.slow
def test_the_baselines_pull_request_holds_the_baselines_and_no_lock_file(tmp_path):
    cwd = tmp_path / "checkout"
    _base(cwd, benchmarks=True)
    (cwd / "bin").mkdir()
    gh = _fake_gh(cwd / "bin")
    stored = cwd / "results" / "baselines"
    stored.mkdir(parents=True)
    shutil.copy(FIXTURE_RUN, stored / f"{FINGERPRINT}.json")
    (stored / f"{FINGERPRINT}.json.lock").write_text("")  # what --ptq-save-baseline's lock leaves
    remote, git_env = _remote(tmp_path, None)
    done = _run_steps(
        BASELINES,
        "refresh",
        ("Open a pull request with the new baseline",),
        cwd,
        git_env,
        GH_TOKEN="x",
        REPO="owner/repo",
        RUN_ID="42",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(_git("ls-tree", "-r", "--name-only", "ptq/baselines-42", cwd=remote).split())
    assert files == sorted(["README.md", "benchmarks/test_ptq.py", f"results/baselines/{FINGERPRINT}.json"])
    assert gh.read_text().startswith("pr create --repo owner/repo --head ptq/baselines-42")
