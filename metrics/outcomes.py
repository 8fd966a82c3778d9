"""How a claim's outcome is decided: the one place, as pure functions of what was shown.

A claim ends in one of four outcomes (`OUTCOMES`):

    held             the data show what the claim says
    refuted          the data contradict it (only an assertion of the claim's own test, or one
                     of the rules below, can say so)
    not established  the data could not decide: never evidence against the claim
    error            the tool failed (a traceback, a crashed shard): never a result

and "not run" when none of its items ran. The rules, from the categories of a claim's units
(metrics.statistics.CATEGORIES):

    every_unit_within   "every unit within the bound": held when every unit is shown within,
                        refuted when some unit is shown beyond, otherwise not established
    share_beyond        "beyond the bound at more than `share` of the units": held when more
                        than share x n units are shown beyond; refuted only when so many are
                        shown within that even every other unit beyond could not make the
                        share; otherwise not established
    none_flagged        the seed's significance claim, "no unit significant": held when no unit
                        is flagged, refuted when one is (a failure to reject is the claim's
                        own test passing, as the seed designed it)
    combine             a claim made of items (one per head, per block, per sentence): error
                        if any item errored, else refuted if any was refuted, else not
                        established if any was not established or did not run, else held
    control             a planted-effect control: held when every realized rate lies within its
                        tolerance of the predicted one and the claim's outcome changed as it
                        must on every draw; refuted otherwise; not established without draws

A claim with no unit is not established: nothing was shown either way. A category that is
not one of the taxonomy's (a unit that could not be analysed) is a ValueError, which the
plugin reports as an error of the tool.
"""
from __future__ import annotations

import math

from metrics.statistics import BEYOND, CATEGORIES, WITHIN

HELD, REFUTED, NOT_ESTABLISHED, ERROR, NOT_RUN = "held", "refuted", "not established", "error", "not run"
OUTCOMES = (HELD, REFUTED, NOT_ESTABLISHED, ERROR)
SHOWN = OUTCOMES + (NOT_RUN,)          # what a report can show for a claim


def _checked(categories) -> list[str]:
    categories = list(categories)
    wrong = sorted({repr(c) for c in categories if c not in CATEGORIES})
    if wrong:
        raise ValueError(f"unit categories {', '.join(wrong)} are not among {CATEGORIES}: a unit that could not "
                         "be analysed decides nothing")
    return categories


def every_unit_within(categories) -> str:
    """The outcome of "every unit lies within the bound" from its units' categories."""
    categories = _checked(categories)
    if not categories:
        return NOT_ESTABLISHED
    if BEYOND in categories:
        return REFUTED
    if all(c == WITHIN for c in categories):
        return HELD
    return NOT_ESTABLISHED


def share_beyond(categories, share: float) -> str:
    """The outcome of "beyond the bound at more than `share` of the units" (0 <= share < 1)."""
    if not 0 <= share < 1:
        raise ValueError(f"share must lie in [0, 1), got {share}")
    categories = _checked(categories)
    n = len(categories)
    if n == 0:
        return NOT_ESTABLISHED
    if categories.count(BEYOND) > share * n:
        return HELD
    could_be_beyond = n - categories.count(WITHIN)
    if not could_be_beyond > share * n:
        return REFUTED
    return NOT_ESTABLISHED


def needed_beyond(share: float, n: int) -> int:
    """The fewest units shown beyond that make more than `share` of n."""
    return math.floor(share * n) + 1


def none_flagged(flags) -> str:
    """The outcome of "no unit is flagged" (e.g. significant after Bonferroni)."""
    flags = [bool(f) for f in flags]
    if not flags:
        return NOT_ESTABLISHED
    return REFUTED if any(flags) else HELD


def combine(outcomes) -> str:
    """A claim's outcome from its items' outcomes (each one of SHOWN)."""
    outcomes = list(outcomes)
    wrong = sorted({repr(o) for o in outcomes if o not in SHOWN})
    if wrong:
        raise ValueError(f"item outcomes {', '.join(wrong)} are not among {SHOWN}")
    if not outcomes or all(o == NOT_RUN for o in outcomes):
        return NOT_RUN
    for outcome in (ERROR, REFUTED):
        if outcome in outcomes:
            return outcome
    if NOT_ESTABLISHED in outcomes or NOT_RUN in outcomes:
        return NOT_ESTABLISHED
    return HELD


def within_tolerance(realized: float, predicted: float, tolerance: float) -> bool:
    """Does a realized rate lie within `tolerance` of the predicted one (both sides)?"""
    return abs(realized - predicted) <= tolerance


def control(arms, violations: int) -> str:
    """A planted-effect control's outcome. arms: [(draws, realized, predicted, tolerance)];
    violations: draws on which the claim's outcome did not change as the planted unit's
    category says it must."""
    arms = [a for a in arms if a[0] > 0]
    if not arms:
        return NOT_ESTABLISHED
    if violations or not all(within_tolerance(r, p, t) for _, r, p, t in arms):
        return REFUTED
    return HELD


def fails_run(outcome: str, fail_on) -> bool:
    """Does a claim with this outcome fail the run? An error always does (the tool failed);
    the others as the plan's fail_on says."""
    return outcome == ERROR or outcome in fail_on
