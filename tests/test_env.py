from ptq.env import FINGERPRINT_KEYS, environment, fingerprint


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
    import ptq.env

    for torch_default, expected in ((1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr(ptq.env, "TORCH_DEFAULT_THREADS", torch_default)
        assert ptq.env.benchmark_threads() == expected
