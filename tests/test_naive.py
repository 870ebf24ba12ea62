import pytest

from ptq.cli import main
from ptq.lab.naive import naive_once


def test_naive_once_reports_both_single_call_times():
    out = naive_once("micro_linear_256", "dynamic_int8")
    assert out["float_s"] > 0 and out["quantized_s"] > 0
    assert out["ratio"] == pytest.approx(out["quantized_s"] / out["float_s"])


@pytest.mark.slow
def test_naive_command_prints_both_methods(capsys):
    assert main(["naive", "micro_linear_256", "dynamic_int8", "--repeat", "1", "--pair-time", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "naive, one time.time() call each in a fresh process" in out
    assert "ptq, warm-up excluded" in out and "interleaved pairs" in out


def test_naive_command_refuses_a_bad_repeat(capsys):
    assert main(["naive", "micro_linear_256", "dynamic_int8", "--repeat", "0"]) == 2
    assert "--repeat=0: must be >= 1" in capsys.readouterr().err  # checked with every numeric option (ptq.cli)
