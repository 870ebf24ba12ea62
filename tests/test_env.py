import pytest

from ptq.host.env import FINGERPRINT_KEYS, environment, fingerprint


def test_environment_records_what_results_need():
    env = environment(threads=3)
    for key in (*FINGERPRINT_KEYS, "transformers"):
        assert key in env
    assert env["threads"] == 3 and env["device"] == "cpu"


def test_fingerprint_changes_with_what_matters_only():
    env = environment(threads=2)
    assert fingerprint(env) == fingerprint(dict(env))
    assert fingerprint(env) != fingerprint({**env, "threads": 1})
    assert fingerprint(env) != fingerprint({**env, "torch": "0.0"})
    assert fingerprint(env) == fingerprint({**env, "numpy": "0.0"})


def test_benchmark_threads_leave_one_core_spare(monkeypatch):
    import ptq.host.env

    for torch_default, expected in ((1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr(ptq.host.env, "torch_default_threads", lambda n=torch_default: n)
        assert ptq.host.env.benchmark_threads() == expected


def _ptq_env(capsys, *args: str) -> dict:
    import json

    from ptq.cli import main

    assert main(["env", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_ptq_env_defaults_to_the_threads_a_benchmark_run_uses(monkeypatch, capsys):
    import ptq.host.env

    monkeypatch.setattr(ptq.host.env, "torch_default_threads", lambda: 8)  # a run would use 7; this process may use 8
    out = _ptq_env(capsys)
    assert out["threads"] == 7
    assert out["fingerprint"] == fingerprint(environment(7)) != fingerprint(environment(8))
    assert out["keys"] == {kind: ptq.host.env.key_hash(environment(7), kind) for kind in ptq.host.env.KEYS}
    assert out["recorded_by"].startswith("a default benchmark run: 7 thread(s)")
    out = _ptq_env(capsys, "--threads", "3")
    assert out["threads"] == 3 and out["fingerprint"] == fingerprint(environment(3))
    assert out["recorded_by"] == "a benchmark run with --ptq-threads=3 (the default is 7)"


def test_ptq_env_refuses_a_thread_count_below_one(capsys):
    from ptq.cli import main

    assert main(["env", "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ptq: error: --threads=0: must be >= 1") and len(err.splitlines()) == 1


@pytest.mark.slow
def test_ptq_env_prints_the_keys_a_default_run_records(pytester):
    """End to end, each in its own process: the run's JSON and ``ptq env`` agree."""
    import json
    import subprocess
    import sys

    pytester.makepyfile(test_suite="def test_case(ptq_bench):\n    ptq_bench()\n")
    result = pytester.runpytest_subprocess(
        "--benchmark-only",
        "--ptq-models=micro_linear_256",
        "--ptq-recipes=fp32",
        "--ptq-probes=size",
        "--benchmark-min-rounds=3",
        "--benchmark-max-time=0.01",
        "--ptq-warmup=1",
        "--ptq-pair-time=0",
        "--benchmark-json=run.json",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 0, result.stdout.str()
    recorded = json.loads((pytester.path / "run.json").read_text())["ptq"]
    code = "import sys; from ptq.cli import main; sys.exit(main(['env']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    printed = json.loads(done.stdout)
    assert (printed["fingerprint"], printed["keys"], printed["threads"]) == (
        recorded["fingerprint"],
        recorded["keys"],
        recorded["environment"]["threads"],
    )
