"""The outcome rules (metrics/outcomes.py) as truth tables, against an oracle written here:
a claim is held when it is true in every world the shown categories allow, refuted when it is
false in every one, not established otherwise. A unit shown within or beyond is what it was
shown; a unit neither shown within nor beyond (undecided, not shown negligible) may truly be
either. Enumerating those worlds is a plain, independent restatement of the three outcomes
(../shared/SCIENCE.md, "Outcomes and names"). No model needed."""
import itertools
import math

import numpy as np
import pytest

from experiments.analysis import bound_verdict, share_verdict, unit_table, within_verdict
from experiments.plan import load_plan
from metrics import outcomes
from metrics.statistics import BEYOND, CATEGORIES, NOT_NEGLIGIBLE, UNDECIDED, WITHIN

PLAN = load_plan()
OPEN = (UNDECIDED, NOT_NEGLIGIBLE)


def worlds(categories):
    """Every assignment of the truth (within / beyond) the shown categories allow."""
    choices = [(c,) if c in (WITHIN, BEYOND) else (WITHIN, BEYOND) for c in categories]
    return list(itertools.product(*choices))


def oracle(categories, claim) -> str:
    """held / refuted / not established from the claim's truth in every allowed world."""
    if not categories:
        return "not established"
    truths = {claim(world) for world in worlds(categories)}
    return "held" if truths == {True} else "refuted" if truths == {False} else "not established"


def every_within(world) -> bool:
    return all(c == WITHIN for c in world)


def more_than(share):
    return lambda world: sum(c == BEYOND for c in world) > share * len(world)


def combinations(max_units: int):
    for n in range(0, max_units + 1):
        yield from itertools.product(CATEGORIES, repeat=n)


def test_every_unit_within_is_the_oracle_on_every_combination_of_up_to_five_units():
    for cats in combinations(5):
        assert outcomes.every_unit_within(cats) == oracle(cats, every_within), cats


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 0.6])
def test_share_beyond_is_the_oracle_on_every_combination_of_up_to_five_units(share):
    for cats in combinations(5):
        assert outcomes.share_beyond(cats, share) == oracle(cats, more_than(share)), (share, cats)


def test_the_positive_control_of_the_default_run_is_not_refuted_by_undecided_blocks():
    """Issue 21's case: 9 beyond, 1 within, 11 not shown negligible, 9 undecided of 30, share 0.5:
    the data cannot decide (up to 29 blocks could be beyond), so not established, not refuted."""
    cats = [BEYOND] * 9 + [WITHIN] + [NOT_NEGLIGIBLE] * 11 + [UNDECIDED] * 9
    assert outcomes.share_beyond(cats, 0.5) == "not established"
    assert outcomes.share_beyond([BEYOND] * 16 + [WITHIN] * 14, 0.5) == "held"
    assert outcomes.share_beyond([BEYOND] * 15 + [WITHIN] * 15, 0.5) == "refuted"       # 15 is not more than half
    assert outcomes.share_beyond([BEYOND] * 14 + [WITHIN] * 15 + [UNDECIDED], 0.5) == "refuted"
    assert outcomes.share_beyond([BEYOND] * 14 + [WITHIN] * 14 + [UNDECIDED] * 2, 0.5) == "not established"
    assert outcomes.needed_beyond(0.5, 30) == 16 and outcomes.needed_beyond(0.5, 31) == 16


def test_none_flagged_is_the_seeds_two_outcome_claim():
    assert outcomes.none_flagged([False] * 30) == "held"
    assert outcomes.none_flagged([False] * 29 + [True]) == "refuted"
    assert outcomes.none_flagged([]) == "not established"


@pytest.mark.parametrize("rule", [outcomes.every_unit_within, lambda c: outcomes.share_beyond(c, 0.5)])
def test_a_unit_that_could_not_be_analysed_is_an_error_not_an_outcome(rule):
    for bad in ([WITHIN, None], [float("nan")], ["within"], [BEYOND, "error"]):
        with pytest.raises(ValueError, match="not among"):
            rule(bad)


def test_nan_samples_cannot_be_categorised():
    x = np.zeros((3, 10))
    x[1, 4] = np.nan
    with pytest.raises(ValueError, match="finite"):
        unit_table(x, [(i, None) for i in range(3)], PLAN)


def test_combine_puts_error_before_refuted_before_not_established_before_held():
    shown = outcomes.SHOWN
    for n in range(0, 4):
        for items in itertools.product(shown, repeat=n):
            if not items or set(items) == {"not run"}:
                want = "not run"
            elif "error" in items:
                want = "error"
            elif "refuted" in items:
                want = "refuted"
            elif "not established" in items or "not run" in items:
                want = "not established"
            else:
                want = "held"
            assert outcomes.combine(items) == want, items
    with pytest.raises(ValueError, match="not among"):
        outcomes.combine(["failed"])


def test_an_error_always_fails_the_run_and_not_established_never_does():
    assert outcomes.fails_run("error", ("refuted",)) and outcomes.fails_run("error", ())
    assert outcomes.fails_run("refuted", ("refuted",)) and not outcomes.fails_run("not established", ("refuted",))
    assert not outcomes.fails_run("held", ("refuted", "not established"))


@pytest.mark.parametrize("arms, violations, want", [
    ([], 0, "not established"),
    ([(0, math.nan, 0.5, 0.1)], 0, "not established"),                 # no draws
    ([(100, 0.50, 0.52, 0.05)], 0, "held"),
    ([(100, 0.75, 0.50, 0.25)], 0, "held"),                             # on the tolerance: within
    ([(100, 0.53, 0.50, 0.02)], 0, "refuted"),                          # above: more liberal than stated
    ([(100, 0.47, 0.50, 0.02)], 0, "refuted"),                          # below: power overstated
    ([(100, 0.50, 0.50, 0.02), (100, 0.9, 0.5, 0.02)], 0, "refuted"),   # one arm missed
    ([(100, 0.50, 0.50, 0.02)], 1, "refuted"),                          # the claim's rule broke once
])
def test_the_control_rule(arms, violations, want):
    assert outcomes.control(arms, violations) == want


# --- each kind of claim, from rows of the real analysis ---------------------------------------

def rows_of(means, sds, n=30, seed=0, sesoi=None):
    """Units whose samples have exactly the given means and SDs."""
    z = np.random.default_rng(seed).normal(size=(len(means), n))
    z = (z - z.mean(1, keepdims=True)) / z.std(1, ddof=1, keepdims=True)
    x = np.asarray(means)[:, None] + np.asarray(sds)[:, None] * z
    return unit_table(x, [(i, None) for i in range(len(means))], PLAN, sesoi=sesoi)


def test_within_verdict_names_the_units_that_decide_it():
    rows = rows_of([0.0, 0.0, 0.03, 0.008, -0.015], [0.002, 0.002, 0.002, 0.02, 0.03])
    assert [r.category for r in rows] == [WITHIN, WITHIN, BEYOND, UNDECIDED, UNDECIDED]
    v = within_verdict(rows, PLAN, bound=0.01, what="heads")
    assert v.outcome == "refuted" and v.beyond == ("L02",)
    assert v.not_shown == ("L04", "L03")                # the estimate outside the bound first
    assert v.detail.startswith("1 of 5 heads shown beyond ±0.01 (")
    open_ = within_verdict(rows[:2] + rows[3:], PLAN, bound=0.01, what="heads")
    assert open_.outcome == "not established" and open_.not_shown == ("L04", "L03")
    assert "of which 1 with an estimate outside ±0.01: L04 -0.0150" in open_.detail
    held = within_verdict(rows[:2], PLAN, bound=0.01, what="heads")
    assert held.outcome == "held" and held.detail.startswith("all 2 heads shown within ±0.01 (TOST")
    assert within_verdict([], PLAN, bound=0.01).outcome == "not established"


def test_a_unit_shown_within_with_low_tost_power_is_within_and_said_so():
    rows = rows_of([0.0], [0.03], n=30)              # TOST just rejects; its power at the SD's upper bound is ~0
    (row,) = rows
    assert row.category == WITHIN and row.tost_power < PLAN.power_target
    v = within_verdict(rows, PLAN, bound=0.01)
    assert v.outcome == "held" and "TOST power below 0.8" in v.detail and "for 1 of them" in v.detail


def test_bound_verdict_compares_numbers_without_sampling_error_directly():
    v = bound_verdict([0.001, -0.0125, 0.0099], ["L00", "L01", "L02"], bound=0.01, what="blocks")
    assert v.outcome == "refuted" and v.beyond == ("L01",) and "L01 -0.0125" in v.detail
    assert bound_verdict([0.001, 0.0099], ["L00", "L02"], bound=0.01).outcome == "held"
    on = bound_verdict([0.001, 0.01], ["L00", "L02"], bound=0.01)
    assert on.outcome == "not established" and on.not_shown == ("L02",)


def test_share_verdict_counts_what_was_shown():
    rows = rows_of([0.05] * 3 + [0.0] * 2 + [0.012] * 5, [0.005] * 3 + [0.002] * 2 + [0.03] * 5)
    cats = [r.category for r in rows]
    assert cats.count(BEYOND) == 3 and cats.count(WITHIN) == 2
    v = share_verdict(rows, PLAN, share=0.5, bound=0.01, what="blocks")
    assert v.outcome == "not established" and "beyond ±0.01 at 3 of 10 blocks (needed: more than 50%, 6)" in v.detail
    assert share_verdict(rows[:5], PLAN, share=0.5, bound=0.01).outcome == "held"          # 3 of 5
    assert share_verdict(rows[3:5] + rows[:1], PLAN, share=0.5, bound=0.01).outcome == "refuted"   # 1 of 3
