"""The verdict layer against oracles from outside it (no model needed): scipy.stats, closed
forms, plain simulations written here, hand-computed cases and the rules as
../shared/SCIENCE.md and the modules' docstrings state them. Each test names the quantity it
checks; tests/mutants.toml lists the bugs each one kills (./run mutants).

- how a pytest failure becomes an outcome (plugin/verdicts.py) and how item outcomes become a
  claim's row and the terminal verdict (report/results.py), from the rule: only an assertion
  in the claim's own file refutes; anything else is an error of the tool;
- the statistics rows (`analyse`) against scipy on a small sample of per-template head
  differences (tests/data/head_differences_synthetic.csv: SYNTHETIC, normal with outliers);
  the permutation test's +1 and its exact/random switch, Bonferroni's strict `<`;
- the order in which a verdict's detail names units, the levels it prints, and the unit
  table's power columns (noncentral t; TOST at the SD's upper bound, simulated);
- the power of the minimum-effect test and of TOST against the noncentral t, a large-n normal
  form and simulations of normal samples decided by scipy.stats.ttest_1samp;
- `flip_rate` (the controls' predictions) and `family_rates` (power.csv) against plain
  sign-flip simulations decided by scipy.

The cheap tests come first: the mutation gate runs this file with -x.
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from experiments.analysis import bound_verdict, planted_control, unit_table, within_verdict
from experiments.plan import load_plan
from metrics.power import beyond_power, difference_power, family_rates, flip_rate, tost_power
from metrics.statistics import (BEYOND, NOT_NEGLIGIBLE, UNDECIDED, WITHIN, analyse, beyond_p, reject, sign_flip_p,
                                tost_p)
from plugin.verdicts import TOOL_ERROR, item_outcome, outcome_of_exception
from report.results import Report, claim_table

PLAN = load_plan()
DATA = Path(__file__).resolve().parents[1] / "data" / "head_differences_synthetic.csv"
SESOI = 0.01


def heads() -> np.ndarray:
    """[20 units, 30 templates] of synthetic per-template head differences (see the file's header)."""
    return np.loadtxt(DATA, delimiter=",", comments="#")


def exact(means, sds, n=30, seed=0) -> np.ndarray:
    """Samples [units, n] whose means and SDs (ddof=1) are exactly the given ones."""
    z = np.random.default_rng(seed).normal(size=(len(means), n))
    z = (z - z.mean(1, keepdims=True)) / z.std(1, ddof=1, keepdims=True)
    return np.asarray(means, dtype=float)[:, None] + np.asarray(sds, dtype=float)[:, None] * z


def greater(x, value):
    """scipy's one-sided p of H0 mean <= value, along the last axis."""
    return stats.ttest_1samp(x, value, axis=-1, alternative="greater").pvalue


def less(x, value):
    return stats.ttest_1samp(x, value, axis=-1, alternative="less").pvalue


def scipy_flags(x, level: float, sesoi: float = SESOI) -> dict:
    """Each test's decision on samples x [..., n] at `level`, taken by scipy: the two-sided
    t-test; the minimum-effect test (one of its one-sided tests against the band's edges at
    level / 2: the two-sided (1 - level) interval outside the band); TOST (both one-sided
    tests against the edges at level: the (1 - 2 level) interval inside)."""
    return {"difference": stats.ttest_1samp(x, 0.0, axis=-1).pvalue < level,
            "beyond": (greater(x, sesoi) < level / 2) | (less(x, -sesoi) < level / 2),
            "equivalence": (greater(x, -sesoi) < level) & (less(x, sesoi) < level)}


# --- how a pytest failure becomes an outcome (plugin/verdicts.py) --------------------------------

def raised(error: BaseException, where: Path | None = None):
    """The ExceptionInfo of `error` raised in this file, or in a file at `where` (as an engine's
    own assertion would be)."""
    with pytest.raises(BaseException) as info:
        if where is None:
            raise error
        exec(compile("raise error", str(where), "exec"), {"error": error})
    return info


def test_only_an_assertion_in_the_claims_own_file_refutes_it(tmp_path):
    here = Path(__file__)
    assert outcome_of_exception(raised(AssertionError("moved")), here) == "refuted"
    assert outcome_of_exception(raised(AssertionError("moved")), tmp_path / "test_other.py") == "error"
    assert outcome_of_exception(raised(AssertionError("engine"), tmp_path / "engine.py"), here) == "error"
    assert outcome_of_exception(raised(TypeError("bad shard")), here) == "error"
    assert outcome_of_exception(raised(ValueError("not finite")), here) == "error"


def test_pytest_fail_in_the_claims_own_file_refutes_it():
    """pytest.fail raises inside pytest's own code: the frame that counts is the claim's, which called it."""
    def claim():
        pytest.fail("the claim's test found what the claim rules out")
    assert outcome_of_exception(raised_by(claim), Path(__file__)) == "refuted"


def raised_by(function):
    with pytest.raises(BaseException) as info:
        function()
    return info


def phase(when: str, *, failed=False, skipped=False, error: BaseException | None = None, said=None, where=None):
    """(item, call, report) of one phase of an item in this file, as pytest hands them over."""
    item = SimpleNamespace(path=Path(__file__), user_properties=[("claim", {"outcome": o}) for o in (said or [])])
    call = SimpleNamespace(excinfo=None if error is None else raised(error, where))
    report = SimpleNamespace(when=when, failed=failed, skipped=skipped, sections=[])
    return item, call, report


def test_an_items_outcome_follows_its_phase_and_its_exception(tmp_path):
    item, call, report = phase("call", failed=True, error=AssertionError("L03 moved"))
    assert item_outcome(item, call, report) == {"outcome": "refuted", "message": "AssertionError: L03 moved"}
    assert report.sections == []
    item, call, report = phase("setup", failed=True, error=AssertionError("fixture"))
    assert item_outcome(item, call, report)["outcome"] == "error"       # a fixture is the tool's, whatever it raised
    assert report.sections == [("tool error", TOOL_ERROR)]
    item, call, report = phase("call", failed=True, error=AssertionError("deep"), where=tmp_path / "engine.py")
    assert item_outcome(item, call, report)["outcome"] == "error"
    item, call, report = phase("call", failed=True, error=KeyError("shard"))
    assert item_outcome(item, call, report)["outcome"] == "error"
    assert item_outcome(*phase("call", failed=True)) == {"outcome": "error", "message": "failed"}
    assert item_outcome(*phase("setup", skipped=True)) == {"outcome": "not run", "message": ""}
    assert item_outcome(*phase("call", skipped=True)) == {"outcome": "not run", "message": ""}
    assert item_outcome(*phase("teardown", skipped=True)) is None
    assert item_outcome(*phase("setup")) is None and item_outcome(*phase("teardown")) is None
    assert item_outcome(*phase("call")) == {"outcome": "held", "message": ""}
    assert item_outcome(*phase("call", said=["held", "not established"]))["outcome"] == "not established"


# --- item outcomes become a claim's row and the terminal verdict (report/results.py) ------------

def collected(items=(), said=(), failed_silently=()):
    """What the plugin collects from a run: one statement per claim, what items said, their
    outcomes per phase, and items that failed without a word."""
    tests = {t for t, *_ in items} | {t for t, *_ in said} | set(failed_silently)
    return SimpleNamespace(
        rows={"test-doc": [{"test": t, "doc": f"{t} holds", "line": k} for k, t in enumerate(sorted(tests))],
              "claim": [{"test": t, "item": i, "outcome": o, "detail": d, "named": {}} for t, i, o, d in said],
              "item-outcome": [{"test": t, "item": i, "outcome": o, "message": m} for t, i, o, m in items]},
        outcomes={t: [(f"{t}[x]", "failed")] for t in failed_silently})


def test_a_claims_row_combines_its_items_phases_and_counts_a_silent_failure_as_an_error():
    a, b, c = "claims/study_sentence.py::test_a", "claims/study_sentence.py::test_b", "claims/study_sentence.py::test_c"
    rows = {r["test"]: r for r in claim_table(collected(
        items=[(a, "L01", "refuted", "AssertionError: L01 moved"), (a, "L01", "held", ""),     # call, then teardown
               (a, "L02", "held", ""), (c, "", "held", "")],
        said=[(c, "", "not established", "L03 undecided")],
        failed_silently=[b]))}
    assert rows[a]["outcome"] == "refuted" and rows[a]["refuted"] == 1 and rows[a]["held"] == 1
    assert rows[a]["detail"].startswith("refuted at 1 of 2 items: L01")
    assert rows[b]["outcome"] == "error" and rows[b]["errors"] == 1
    assert rows[c]["detail"] == "L03 undecided"               # one item: its own words, as said


def test_the_terminal_verdict_puts_errors_first_and_never_counts_them_as_refuted():
    claims = [{"test": "claims/study_sentence.py::test_a", "outcome": "error", "detail": "TypeError"},
              {"test": "claims/study_sentence.py::test_b", "outcome": "refuted", "detail": "L03"},
              {"test": "claims/study_sentence.py::test_c", "outcome": "not established", "detail": "L04"}]
    report = Report(Path("/results/m/q"), "m", expected=4, recorded=4, claims=claims)
    lines = report.summary_lines()
    assert lines[0].startswith("TOOL ERROR: 1 claim(s) could not be decided") and lines[0].endswith(": test_a")
    assert lines[1] == "CLAIMS FAILED: 1 claim(s) refuted in this run: test_b"
    assert [c["test"] for c in report.failed] == ["claims/study_sentence.py::test_b"]


# --- the statistics rows against scipy ---------------------------------------------------------

def test_every_statistics_row_is_scipys_on_the_recorded_head_differences():
    """Every number of every row, at the Bonferroni level alpha / 20 (20 units), and each
    unit's category from its intervals as the statistics module states the rule: beyond when
    the (1 - level) interval lies outside +-SESOI, within when the (1 - 2 level) one lies
    inside, not shown negligible when the first excludes 0, undecided otherwise."""
    x = heads()
    rows = analyse(x, [(L, None) for L in range(20)], alpha=0.05, correction="bonferroni",
                   equivalence_correction="bonferroni", sesoi=SESOI)
    level = 0.05 / 20
    found = set()
    for row, sample in zip(rows, x):
        ref = stats.ttest_1samp(sample, 0.0)
        ci, eq = ref.confidence_interval(1 - level), ref.confidence_interval(1 - 2 * level)
        assert row.level == level and row.n == 30
        assert row.mean == pytest.approx(sample.mean(), abs=1e-15)
        assert row.sd == pytest.approx(sample.std(ddof=1)) and row.se == pytest.approx(stats.sem(sample))
        assert (row.ci_low, row.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
        assert (row.eq_low, row.eq_high) == pytest.approx((eq.low, eq.high), abs=1e-12)
        assert row.t == pytest.approx(ref.statistic) and row.p == pytest.approx(ref.pvalue, rel=1e-9)
        assert row.p_adjusted == pytest.approx(min(1.0, 20 * ref.pvalue), rel=1e-9)
        p_tost = max(greater(sample, -SESOI), less(sample, SESOI))
        p_beyond = min(1.0, 2 * min(greater(sample, SESOI), less(sample, -SESOI)))
        assert row.p_tost == pytest.approx(p_tost, rel=1e-9, abs=1e-300)
        assert row.p_beyond == pytest.approx(p_beyond, rel=1e-9, abs=1e-300)
        assert (row.significant, row.equivalent, row.beyond) == (ref.pvalue < level, p_tost < level,
                                                                 p_beyond < level)
        if ci.low > SESOI or ci.high < -SESOI:
            want = BEYOND
        elif -SESOI < eq.low and eq.high < SESOI:
            want = WITHIN
        elif ci.low > 0 or ci.high < 0:
            want = NOT_NEGLIGIBLE
        else:
            want = UNDECIDED
        assert row.category == want, (row.label, row.interval())
        found.add(want)
        # 2**30 sign patterns: 9999 drawn, and a Monte Carlo p is never below 2 / (9999 + 1)
        assert row.p_permutation >= 2 / 10000
        ref_perm = stats.permutation_test((sample,), np.mean, permutation_type="samples", n_resamples=9999,
                                          random_state=1).pvalue
        tail = ref_perm / 2                  # p = 2 x a tail share of 9999 draws, in each of two simulations
        assert abs(row.p_permutation - ref_perm) < 4 * 2 * np.sqrt(2 * tail * (1 - tail) / 9999) + 2e-4
    assert found == {BEYOND, WITHIN, NOT_NEGLIGIBLE, UNDECIDED}      # the sample tests every category


def test_a_constant_sample_on_the_bound_is_neither_inside_nor_outside_it():
    """A sample without spread is decided with certainty (p 0 or 1): inside the open band, outside
    it, or, exactly on +-SESOI, neither."""
    for value, inside, outside in [(SESOI, 1.0, 1.0), (-SESOI, 1.0, 1.0), (0.0099, 0.0, 1.0), (-0.0101, 1.0, 0.0)]:
        x = np.full((1, 5), value)
        assert (tost_p(x, SESOI)[0], beyond_p(x, SESOI)[0]) == (inside, outside), value


def test_tost_decides_at_the_level_and_not_at_twice_it():
    """One unit (level = alpha = 0.05), mean 0, SD set so that scipy's TOST p is 1.5 x level:
    not shown within (its 90% interval reaches past +-SESOI); at 0.5 x level it is."""
    n = 30
    for ratio, within in [(1.5, False), (0.5, True)]:
        sd = SESOI * np.sqrt(n) / stats.t.isf(ratio * 0.05, n - 1)
        x = exact([0.0], [sd], n=n)
        p_tost = max(greater(x[0], -SESOI), less(x[0], SESOI))
        assert p_tost == pytest.approx(ratio * 0.05)
        (row,) = analyse(x, [(0, None)], alpha=0.05, correction="bonferroni", equivalence_correction="bonferroni",
                         sesoi=SESOI)
        assert row.equivalent is within and (row.category == WITHIN) is within, (ratio, row.interval())


def test_a_monte_carlo_permutation_p_counts_the_observed_pattern():
    """With B random sign patterns, p = 2 (b + 1) / (B + 1) (Phipson & Smyth 2010). 30 distinct
    positive values: only the all-plus pattern (chance 2**-30 a draw) reaches the observed mean,
    so b = 0 and p = 2 / (B + 1), never 0."""
    x = np.linspace(0.1, 3.0, 30)
    assert sign_flip_p(x, n_resamples=999)[0] == 2 / 1000
    assert sign_flip_p(x, n_resamples=9999)[0] == 2 / 10000


def test_a_permutation_test_with_as_many_resamples_as_patterns_is_exact():
    """2**n <= n_resamples: every pattern enumerated, p = 2 min(P(null >= obs), P(null <= obs))
    over the 2**n patterns (brute force here), with no +1."""
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0], n_resamples=16)[0] == 2 / 16
    x = np.random.default_rng(9).normal(0.4, 1.0, 10)
    null = np.array(list(itertools.product((-1.0, 1.0), repeat=10))) @ x / 10
    brute = min(1.0, 2 * min(np.mean(null >= x.mean() - 1e-12), np.mean(null <= x.mean() + 1e-12)))
    assert sign_flip_p(x, n_resamples=1024)[0] == pytest.approx(brute, abs=1e-15)


def test_bonferroni_rejects_strictly_below_alpha_over_m():
    """p < alpha / m: a p exactly at 0.05 / 2 = 0.025 is not rejected, one just below is."""
    assert reject([0.025, 0.5], 0.05, "bonferroni").tolist() == [False, False]
    assert reject([0.0249999, 0.5], 0.05, "bonferroni").tolist() == [True, False]
    assert reject([0.01, 0.0125, 0.02, 0.3], 0.05, "bonferroni").tolist() == [True, False, False, False]


# --- the words of a verdict and the unit table's power columns ---------------------------------

def test_a_verdict_names_units_largest_first_and_prints_the_levels_it_decided_at():
    """Refuted: the units shown beyond, the largest |estimate| first, with intervals at
    1 - alpha / m. Held: TOST's intervals at 1 - 2 alpha / m (m = 4: 0.9875 and 0.975)."""
    x = exact([0.03, -0.05, 0.04, 0.0], [0.004] * 4)
    rows = unit_table(x, [(L, None) for L in range(4)], PLAN)
    assert [r.category for r in rows] == [BEYOND, BEYOND, BEYOND, WITHIN]
    refuted = within_verdict(rows, PLAN, bound=SESOI, what="heads")
    assert refuted.outcome == "refuted" and refuted.beyond == ("L01", "L02", "L00")
    assert refuted.detail.startswith("3 of 4 heads shown beyond ±0.01 (0.9875 intervals): L01 -0.0500")
    held = within_verdict(rows[3:] + rows[3:], PLAN, bound=SESOI, what="heads")
    assert held.outcome == "held" and "(TOST, 0.975 intervals)" in held.detail


def test_units_not_shown_either_way_are_named_largest_first_and_the_bound_is_not_outside():
    x = exact([0.0, 0.004, -0.014, 0.012, 0.002], [0.002, 0.03, 0.03, 0.03, 0.03])
    rows = unit_table(x, [(L, None) for L in range(5)], PLAN)
    assert [r.category for r in rows] == [WITHIN] + [UNDECIDED] * 4
    v = within_verdict(rows, PLAN, bound=SESOI, what="heads")
    assert v.outcome == "not established" and v.not_shown == ("L02", "L03", "L01", "L04")
    assert "not shown: 4, of which 2 with an estimate outside ±0.01: L02 -0.0140" in v.detail
    on_bound = [rows[0], dataclasses.replace(rows[1], mean=SESOI), rows[4]]     # an estimate exactly on the bound
    v = within_verdict(on_bound, PLAN, bound=SESOI, what="heads")
    assert v.not_shown == ("L01", "L04") and "with an estimate outside" not in v.detail


def test_numbers_beyond_the_bound_are_named_largest_first():
    v = bound_verdict([0.02, -0.05, 0.001, 0.03], ["L00", "L01", "L02", "L03"], bound=SESOI, what="blocks")
    assert v.outcome == "refuted" and v.beyond == ("L01", "L03", "L00")
    assert "L01 -0.0500, L03 +0.0300, L00 +0.0200; 1 within" in v.detail


def test_a_control_follows_the_rule_and_allows_only_the_error_of_its_draws():
    """Five units shown within and one undecided: a draw of the undecided unit that stays
    undecided leaves "every unit within" not established, never held (the rule), so the control
    finds no violation; each arm's tolerance is control_z simulation SEs of a rate over its draws
    (at most 0.5 / sqrt(draws) each, analysis plan: control_z, control_draws) plus one draw."""
    x = exact([0.0] * 5 + [0.0], [0.002] * 5 + [0.03])
    rows = unit_table(x, [(L, None) for L in range(6)], PLAN)
    assert [r.category for r in rows] == [WITHIN] * 5 + [UNDECIDED]
    control = planted_control(x, rows, PLAN, family="heads")
    assert control.outcome == "held" and sum(a.violations for a in control.arms) == 0, control.detail
    for arm in control.arms:
        assert 1 / arm.draws <= arm.tolerance <= PLAN.control_z * 0.5 / np.sqrt(arm.draws) + 1 / arm.draws


def test_the_power_columns_are_the_noncentral_t_and_tost_at_the_sds_upper_bound():
    """`power`: the two-sided t-test at alpha / m finding a shift of SESOI with the observed SD
    (noncentral t). `tost_power`: TOST at alpha / m showing a true 0 within SESOI with the SD at
    its one-sided 80% upper bound sd sqrt((n - 1) / chi2_0.2(n - 1)) (analysis plan:
    sd_upper_confidence), here by a simulation of normal samples decided by scipy."""
    x = exact([0.0, 0.0], [0.02, 0.012])
    rows = unit_table(x, [(0, None), (1, None)], PLAN)
    n, level = 30, PLAN.alpha / 2
    c = stats.t.isf(level / 2, n - 1)
    for row, sd in zip(rows, (0.02, 0.012)):
        nc = SESOI * np.sqrt(n) / sd
        assert row.power == pytest.approx(stats.nct.sf(c, n - 1, nc) + stats.nct.cdf(-c, n - 1, nc), abs=2e-4)
    upper = 0.02 * np.sqrt((n - 1) / stats.chi2.ppf(1 - PLAN.sd_upper_confidence, n - 1))
    draws = 20000
    simulated = scipy_flags(np.random.default_rng(15).normal(0.0, upper, (draws, n)), level)["equivalence"].mean()
    assert 0.1 < simulated < 0.5
    assert abs(rows[0].tost_power - simulated) < 4 * np.sqrt(simulated * (1 - simulated) / draws) + 2e-3


# --- power against closed forms and simulations ------------------------------------------------

def test_the_difference_tests_power_at_no_shift_is_its_level():
    """A two-sided test at `level` rejects a true null with probability `level`, both tails."""
    for n, level in [(9, 0.05), (24, 0.05 / 30), (120, 0.05 / 270)]:
        np.testing.assert_allclose(difference_power(n, [0.002, 0.03], 0.0, level), level, rtol=0.01)    # GRID: ~0.2%
        np.testing.assert_allclose(difference_power(n, [0.01], -0.01, level), difference_power(n, [0.01], 0.01, level))


def noncentral_beyond(n, sd, shift, level):
    """The minimum-effect test's power in closed form: (mean - SESOI) / se is noncentral t with
    noncentrality (shift - SESOI) sqrt(n) / sd, (mean + SESOI) / se with (shift + SESOI) ...;
    it rejects when the first exceeds c or the second falls below -c (disjoint events)."""
    c = stats.t.isf(level / 2, n - 1)
    upper, lower = ((shift - SESOI) * np.sqrt(n) / sd, (shift + SESOI) * np.sqrt(n) / sd)
    above, below = stats.nct.sf(c, n - 1, upper), stats.nct.cdf(-c, n - 1, lower)
    # scipy's nct gives nan far in its tails, where the probability is 0 or 1 to double precision
    assert np.all(np.abs(upper - c)[np.isnan(above)] > 8) and np.all(np.abs(lower + c)[np.isnan(below)] > 8)
    return np.where(np.isnan(above), upper > c, above) + np.where(np.isnan(below), lower < -c, below)


@pytest.mark.parametrize("n, level", [(9, 0.05 / 30), (24, 0.05 / 270), (120, 0.05 / 270)])
@pytest.mark.parametrize("shift", [0.0, 0.01, 0.014, 0.02, -0.02, 0.04])
def test_beyond_power_is_the_noncentral_t(n, level, shift):
    sd = np.array([0.002, 0.005, 0.01, 0.03])
    want = noncentral_beyond(n, sd, shift, level)
    np.testing.assert_allclose(beyond_power(n, sd, SESOI, level, shift), want, atol=2e-4)


def _assert_power_matches_simulation(power, flag: str, sd: float, shift: float, seed: int) -> None:
    """`power` against the share of 20000 normal samples (n 24, shift, sd) that scipy's tests
    flag as `flag` at 0.05 / 30, within 4 binomial SEs (+2e-3 for the power's grid)."""
    n, level, draws = 24, 0.05 / 30, 20000
    x = np.random.default_rng(seed).normal(shift, sd, (draws, n))
    simulated = scipy_flags(x, level)[flag].mean()
    predicted = power(n, [sd], SESOI, level, shift)[0]
    assert abs(predicted - simulated) < 4 * np.sqrt(max(simulated * (1 - simulated), 1e-4) / draws) + 2e-3


@pytest.mark.parametrize("sd, shift", [(0.005, 0.014), (0.005, -0.016), (0.01, 0.025), (0.005, 0.01)])
def test_beyond_power_matches_a_simulation_of_normal_samples_decided_by_scipy(sd, shift):
    _assert_power_matches_simulation(beyond_power, "beyond", sd, shift, seed=11)


@pytest.mark.parametrize("sd, shift", [(0.2, 0.0), (0.2, 0.004), (0.15, -0.005), (0.3, 0.0)])
def test_tost_power_at_large_n_is_the_normal_closed_form(sd, shift):
    """n = 2000: the SE is sd / sqrt(n) almost surely and t almost normal, so TOST at `level`
    shows the mean within +-SESOI when -SESOI + z se < mean < SESOI - z se, z = the normal
    (1 - level) quantile: a difference of two normal probabilities."""
    n, level = 2000, 0.05
    se, z = sd / np.sqrt(n), stats.norm.isf(level)
    want = max(0.0, stats.norm.cdf((SESOI - shift) / se - z) - stats.norm.cdf((-SESOI - shift) / se + z))
    assert 0.05 < want < 0.95 or shift == 0.0
    assert tost_power(n, [sd], SESOI, level, shift)[0] == pytest.approx(want, abs=0.01)


@pytest.mark.parametrize("sd, shift", [(0.004, 0.0), (0.006, 0.003), (0.008, 0.0)])
def test_tost_power_matches_a_simulation_of_normal_samples_decided_by_scipy(sd, shift):
    _assert_power_matches_simulation(tost_power, "equivalence", sd, shift, seed=12)


# --- flip_rate and family_rates against plain sign-flip simulations ------------------------------

@pytest.mark.parametrize("test, shift", [("difference", 0.0), ("difference", 0.01), ("beyond", 0.02),
                                         ("beyond", 0.0), ("equivalence", 0.0), ("equivalence", 0.004)])
def test_flip_rate_on_ten_values_is_the_enumeration_of_every_sign_pattern(test, shift):
    """n = 10: the planted sample s * r + shift takes each of its 2**10 sign patterns with equal
    chance; scipy decides each one."""
    x = heads()[:, :10]
    r = x - x.mean(1, keepdims=True)
    level = 0.05 / 20
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=10)))            # [1024, 10]
    want = scipy_flags(signs[None] * r[:, None] + shift, level)[test].mean(1)
    np.testing.assert_allclose(flip_rate(test, r, SESOI, level, shift), want, atol=1e-12)


@pytest.mark.parametrize("test, shift", [("difference", 0.01), ("beyond", 0.02), ("equivalence", 0.0)])
def test_flip_rate_on_thirty_values_matches_a_simulation_of_random_signs(test, shift):
    """n = 30 (the CLT route): 4000 random sign patterns per unit, decided by scipy; the closed
    form is normal for the flipped mean, hence the allowance beyond simulation error."""
    x = heads()
    r = x - x.mean(1, keepdims=True)
    level, draws = 0.05 / 20, 4000
    signs = np.random.default_rng(13).choice((-1.0, 1.0), size=(20, draws, 30))
    simulated = scipy_flags(signs * r[:, None] + shift, level)[test].mean(1)
    predicted = flip_rate(test, r, SESOI, level, shift)
    assert np.any((simulated > 0.1) & (simulated < 0.9))           # some unit where a wrong rate would show
    tolerance = 4 * np.sqrt(np.maximum(simulated * (1 - simulated), 1e-3) / draws) + 0.03
    assert np.all(np.abs(predicted - simulated) < tolerance), np.c_[predicted, simulated]


@pytest.mark.parametrize("test, k, units", [("difference", 0.5, slice(0, 8)), ("equivalence", 0.5, slice(0, 8)),
                                           ("beyond", 2.0, slice(11, 19))])
def test_family_rates_match_a_plain_simulation_of_the_planted_family(test, k, units):
    """power.csv's detection rate: each draw flips every unit's residual signs, plants k x SESOI
    into one unit drawn uniformly, and runs the family's test at alpha / units (scipy decides);
    the planted unit's detection rate, and at k = 0 the family-wise false-positive rate, must
    agree with family_rates within the error of two simulations."""
    x = heads()[units]
    r = x - x.mean(1, keepdims=True)
    m, draws = len(x), 2000
    rows = family_rates(x, label="q", ks=(k,), sesoi=SESOI, alpha=0.05, correction="bonferroni",
                        draws=draws, seed=5, test=test)
    rng = np.random.default_rng(14)
    planted = rng.integers(0, m, size=draws)
    delta = np.zeros((draws, m))
    delta[np.arange(draws), planted] = k * SESOI
    samples = rng.choice((-1.0, 1.0), size=(draws, m, 30)) * r[None] + delta[..., None]
    found = scipy_flags(samples, 0.05 / m)[test][np.arange(draws), planted].mean()
    assert 0.02 < found < 0.98                           # where a wrong standard error would show
    assert abs(rows[1].planted_flagged - found) < 4 * np.sqrt(2 * found * (1 - found) / draws)
    null = scipy_flags(rng.choice((-1.0, 1.0), size=(draws, m, 30)) * r[None], 0.05 / m)[test]
    family_wise = null.any(1).mean()
    assert abs(rows[0].any_null_flagged - family_wise) < 4 * np.sqrt(2 * max(family_wise, 0.01) / draws)
