import json

from ptq.cli import main


def test_list_models_and_recipes(capsys):
    assert main(["list", "models", "--include", "micro_conv_*"]) == 0
    out = capsys.readouterr().out
    assert "micro_conv_16" in out and "micro_linear_256" not in out
    assert main(["list", "recipes"]) == 0
    out = capsys.readouterr().out
    assert "static_int8" in out and "torch.ao.fx" in out
    assert main(["list", "matrices"]) == 0
    assert "quick" in capsys.readouterr().out


def test_env_prints_the_fingerprinted_environment(capsys):
    assert main(["env"]) == 0
    env = json.loads(capsys.readouterr().out)
    assert len(env["fingerprint"]) == 12 and env["torch"] and env["threads"] >= 1
