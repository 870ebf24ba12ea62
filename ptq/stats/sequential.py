"""Sequential stopping for the duet: spend placements where the verdict is still open.

A fixed plan gives every case the same placements: a quiet case that settled after four is
timed ten times, and a case whose interval straddles the threshold gets no more than a settled
one (issue 27: +12.4% [+0.1%, +26.3%] judged ok). Here a case is looked at after each of a few
planned numbers of placements (:attr:`SequentialPlan.looks`) and stops at the first look where
the answer is clear:

- **regression** / **improved**: the judge's own rule holds, the geometric-mean ratio past the
  threshold AND the t-test's p below the per-look alpha;
- **no change**: the two-sided ``1 - 2 * beta_look`` interval of the ratio lies wholly inside
  ``(1 / (1 + threshold), 1 + threshold)`` (two one-sided tests of equivalence, at the futility
  share ``beta_look``);
- else it goes on, up to the last look, where the judge's rule with the per-look alpha decides.

Error rates under repeated looks: the gate's alpha is split evenly over the looks (Bonferroni:
alpha spending with a constant spend). A case with no change is called a regression at some look
with probability at most the sum of the per-look alphas, the gate's alpha, however the looks are
correlated. It is conservative against Pocock or O'Brien-Fleming boundaries, which need the
looks' joint normal law; the per-placement ratios are t-distributed and few, so the simple bound
is the honest one. ``ptq gate-quality --mode duet`` measures the rates it gives.

Stopping for "no change" has an error rate of its own, spent apart from alpha (efficacy and
futility boundaries, as group-sequential trials keep them): a change just at the threshold is
stopped as no change with probability at most ``beta`` over all looks, split evenly. It cannot
raise a false regression; it costs at most ``beta`` of the power at the threshold itself, and
nothing measurable at twice it. With ``beta`` = ``alpha`` (the first design) an A/A case with a
2% spread between placements settled at the first look 40% of the time, in synthetic streams;
with 0.05, 84%, while a 6% slowdown was caught 99.1% of the time against 99.4%
(``tests/test_sequential.py`` pins both rates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ptq.errors import UserError

__all__ = ["CONTINUE", "SequentialPlan", "decide_look"]

#: :func:`decide_look`'s answer while the case is still open.
CONTINUE = "continue"


@dataclass(frozen=True)
class SequentialPlan:
    """When a case may stop: after ``looks[i]`` placements, at the per-look alpha; the gate's
    ``alpha`` and ``threshold`` are the judge's (``[tool.ptq.gate]``)."""

    looks: tuple[int, ...] = (5, 10, 15, 20)
    alpha: float = 0.01
    threshold: float = 0.05
    #: The chance, over all looks, that a change at the threshold stops as "no change" (futility).
    beta: float = 0.05

    def __post_init__(self) -> None:
        if not self.looks or any(b <= a for a, b in zip(self.looks, self.looks[1:], strict=False)) or self.looks[0] < 3:
            raise UserError(
                f"--looks must be increasing placement counts, the first >= 3 (a t interval over "
                f"fewer placements has too few degrees of freedom), got {','.join(map(str, self.looks))}"
            )
        if not 0 < self.alpha < 1 or not 0 < self.beta < 1 or self.threshold <= 0:
            raise UserError(
                f"a sequential plan needs 0 < alpha < 1, 0 < beta < 1 and threshold > 0, got "
                f"{self.alpha}, {self.beta} and {self.threshold}"
            )

    @property
    def alpha_look(self) -> float:
        """The alpha spent at each look: the gate's, split evenly (their sum is the gate's)."""
        return self.alpha / len(self.looks)

    @property
    def beta_look(self) -> float:
        """The futility share spent at each look: a change at the threshold stops as "no change" at
        one look with at most this probability."""
        return self.beta / len(self.looks)

    @property
    def most(self) -> int:
        return self.looks[-1]

    def to_dict(self) -> dict[str, object]:
        return {
            "looks": list(self.looks),
            "alpha": self.alpha,
            "alpha_look": self.alpha_look,
            "beta": self.beta,
            "beta_look": self.beta_look,
            "threshold": self.threshold,
        }


def decide_look(ratios: Sequence[float], plan: SequentialPlan) -> str:
    """At a look, from the per-placement ratios (current / baseline, > 1 slower): ``regression``,
    ``improved``, ``no change`` or :data:`CONTINUE`. Not at a planned look, or past the last:
    :data:`CONTINUE` / the last look's rule."""
    from ptq.stats.estimate import geometric_interval

    n = len(ratios)
    if n not in plan.looks:
        return CONTINUE
    mid, _, _, p = geometric_interval(ratios, level=1 - plan.alpha_look)
    _, low, high, _ = geometric_interval(ratios, level=1 - 2 * plan.beta_look)
    band = 1 + plan.threshold
    if p < plan.alpha_look and mid > band:
        return "regression"
    if p < plan.alpha_look and mid < 1 / band:
        return "improved"
    if 1 / band < low and high < band:
        return "no change"
    return "undecided" if n == plan.most else CONTINUE
