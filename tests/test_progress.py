"""Progress lines: elapsed time and the time left from the mean step, on an injected clock."""

from __future__ import annotations

from ptq.progress import Progress, duration


def test_duration_is_short_and_exact():
    assert [duration(x) for x in (0, 41.6, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]


def test_each_step_says_what_is_done_and_how_long_the_rest_takes():
    now = [100.0]
    lines: list[str] = []
    p = Progress("duet sweeps", 4, emit=lines.append, clock=lambda: now[0])
    assert p.summary() == "0/4 done, 0s elapsed, time left known after the first step"
    now[0] += 30
    p.step("placement 1")
    now[0] += 10
    p.step()
    assert lines == [
        "duet sweeps: 1/4 done, 30s elapsed, about 1m30s left (placement 1)",
        "duet sweeps: 2/4 done, 40s elapsed, about 40s left",
    ]
