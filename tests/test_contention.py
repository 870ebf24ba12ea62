"""The contention study: its summaries on planted rounds, and the command end to end on a micro case."""

from __future__ import annotations

import pytest

from ptq.cli import main
from ptq.lab.contention import ContentionStudy


def _planted() -> ContentionStudy:
    # the DRAM copy slows in rounds 3-5; fp32 follows it at full amplitude, the case at half; compute is flat
    dram = [5.0, 5.1, 5.0, 6.5, 7.0, 6.8]
    return ContentionStudy(
        "m",
        "r",
        tuple(
            {
                "compute": 1.40 + 0.001 * (k % 2),
                "cache_copy": 0.87,
                "dram_copy": d,
                "fp32": 40 * d / 5,
                "case": 10 * (1 + (d / 5 - 1) / 2),
            }
            for k, d in enumerate(dram)
        ),
    )


def test_the_summaries_say_which_meter_a_case_follows():
    s = _planted()
    assert s.correlation("dram_copy", "fp32") == pytest.approx(1.0)
    assert s.correlation("dram_copy", "case") == pytest.approx(1.0)
    assert abs(s.correlation("compute", "fp32")) < 0.5
    assert s.range()["dram_copy"] == pytest.approx(0.4) and s.range()["cache_copy"] == 0.0
    quiet, busy = s.speedup_by_dram(share=0.34)  # the two fastest and the two slowest DRAM rounds
    assert quiet == pytest.approx(4.0, rel=0.02) and busy > quiet


@pytest.mark.slow
def test_the_command_runs_a_study_and_refuses_too_few_rounds(capsys):
    assert main(["contention", "micro_linear_256", "dynamic_int8", "--rounds", "3", "--window", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "3 rounds on one placement" in out and "dram_copy" in out and "speedup (fp32 / case)" in out
    assert main(["contention", "micro_linear_256", "dynamic_int8", "--rounds", "2"]) == 2
    assert "--rounds must be >= 3" in capsys.readouterr().err
