import json

import pytest

from ptq.cli import main


@pytest.mark.slow
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


def test_ab_with_an_unbalanced_quote_in_pytest_args_is_a_usage_error(monkeypatch, capsys):
    import ptq.cli.ab

    def no_work(*args, **kwargs):
        raise AssertionError("ptq ab went on to materialize a side")

    monkeypatch.setattr(ptq.cli.ab, "materialize", no_work)
    assert main(["ab", "HEAD", "HEAD", "--pytest-args=--ptq-models='micro_*"]) == 2
    err = capsys.readouterr().err
    assert err.startswith('ptq: error: --pytest-args="--ptq-models=\'micro_*": No closing quotation; close every quote')
    assert len(err.strip().splitlines()) == 1


def test_a_command_registered_twice_is_an_error_naming_both_modules():
    from ptq.cli import COMMANDS, command
    from ptq.errors import PtqError

    def other(args):
        return 0

    with pytest.raises(PtqError, match=r"command 'list' is registered twice \(ptq\.cli and (tests\.)?test_cli\)"):
        command("list", lambda p: None, "a clash")(other)
    assert COMMANDS["list"].run is not other


@pytest.mark.slow
def test_the_command_line_and_the_package_load_without_torch():
    """``ptq --help``, ``compare``, ``report`` and ``merge`` read result files: importing torch
    (seconds) for them was the issue; the check runs in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import sys, ptq, ptq.cli; ptq.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_package_exports_load_on_first_use():
    import ptq

    assert sorted(ptq._EXPORTS) == sorted(set(ptq.__all__) - {"__version__"})
    assert ptq.get_model("micro_conv_16").name == "micro_conv_16" and callable(ptq.load)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ptq.nope  # noqa: B018
